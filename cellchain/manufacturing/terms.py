"""The words for the values the lab stores (statuses, outcomes, categories), in the reader's
language: ``term("storage_excursion")`` reads "storage excursion" in English and 储存偏离 in
Chinese. A leaf: it imports nothing of the lab, so donors, quality and labels use it too.
The stored values themselves stay English (they are keys, and the audit trail's words)."""

from __future__ import annotations

from cellchain.core.i18n import LazyText, lazy

#: stored value → the word a person reads
TERMS: dict[str, LazyText] = {
    "registered": lazy("registered"),
    "received": lazy("received"),
    "rejected": lazy("rejected"),
    "processing": lazy("processing"),
    "pending": lazy("pending"),
    "eligible": lazy("eligible"),
    "ineligible": lazy("ineligible"),
    "quarantine": lazy("quarantine"),
    "released": lazy("released"),
    "process": lazy("process"),
    "equipment": lazy("equipment"),
    "material": lazy("material"),
    "storage_excursion": lazy("storage excursion"),
    "out_of_specification": lazy("out of specification"),
    "limit_excursion": lazy("limit excursion"),
    "documentation": lazy("documentation"),
    "other": lazy("other"),
    "isolation": lazy("isolation"),
    "passage": lazy("passage"),
    "bank_freeze": lazy("cell-bank freeze"),
    "bank_thaw": lazy("cell-bank thaw"),
    "fill": lazy("fill"),
    "freezing": lazy("freezing"),
    "storage": lazy("storage"),
    "acceptable": lazy("acceptable"),
    "not_acceptable": lazy("not acceptable"),
    "non_reactive": lazy("non-reactive"),
    "reactive": lazy("reactive"),
    "indeterminate": lazy("indeterminate"),
}


def term(value: object) -> str:
    """``value`` (a stored string or a StrEnum member) as a person reads it; a value not
    listed reads as stored, underscores as spaces."""
    key = str(getattr(value, "value", value))
    found = TERMS.get(key)
    return str(found) if found is not None else key.replace("_", " ")
