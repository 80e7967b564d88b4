"""The equipment each kind of processing step needs (issue 22).

A step is refused when it names no piece of a kind it needs, or names a piece of a kind it
never uses: a step that names no equipment would otherwise escape the calibration and
maintenance check (``resources.usable_equipment``), and a freezer named in a passage would
pass for the cabinet it was not.

The table is a constant here, not a parameter of the product definition: which equipment an
open manipulation, a culture or a freezing needs is a rule of the process and of GMP (an open
manipulation in a biosafety cabinet, EU GMP Annex 1 / 21 CFR 1271.190), the same for every
product, whereas the product definition holds the figures a product's versions differ in
(limits, fill, formats). A rule in a QA-signed document would also let a version drop the
cabinet, and versions signed before it existed would have none (docs/manufacturing.md,
"Equipment each step needs").

| step | needs | may also name |
|---|---|---|
| isolation | biosafety cabinet, incubator | centrifuge, cell counter |
| passage | biosafety cabinet, incubator | centrifuge, cell counter |
| bank freeze | biosafety cabinet | incubator, centrifuge, cell counter, controlled-rate freezer |
| bank thaw | biosafety cabinet, incubator | centrifuge, cell counter |
| fill | biosafety cabinet | incubator, centrifuge, cell counter |
| freezing | controlled-rate freezer | biosafety cabinet |

- an open manipulation (tissue opened, vessels harvested or seeded, a vial thawed into
  vessels, cells formulated and filled into vials or bags) is done in a biosafety cabinet;
- vessels that go into culture (isolation, passage, bank thaw) go into an incubator;
- the lot's bags are frozen in a controlled-rate freezer, as before;
- the incubator the harvested vessels came from, the centrifuge and the cell counter of a
  harvest may be named, never needed: a harvest may be counted by hand (a haemocytometer is
  no registered kind) and a bank's vials may be frozen in a passive freezing container;
- an LN2 tank is never named by a processing step: storing is its own act
  (``storage.store_unit``), which takes the tank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cellchain.core.i18n import _
from cellchain.core.wording import joined_text
from cellchain.errors import InvalidInput
from cellchain.manufacturing.models import Equipment, EquipmentKind, StepKind
from cellchain.manufacturing.storage.storage import EQUIPMENT_KIND_NAMES
from cellchain.manufacturing.terms import term

_BSC = EquipmentKind.BIOSAFETY_CABINET
_INC = EquipmentKind.INCUBATOR
_CFG = EquipmentKind.CENTRIFUGE
_CNT = EquipmentKind.CELL_COUNTER
_CRF = EquipmentKind.CONTROLLED_RATE_FREEZER


@dataclass(frozen=True)
class StepEquipment:
    """The kinds of equipment a step needs (one piece of each at least), and those it may
    name besides."""

    needed: tuple[EquipmentKind, ...]
    optional: tuple[EquipmentKind, ...] = ()

    @property
    def allowed(self) -> tuple[EquipmentKind, ...]:
        return self.needed + self.optional


#: what each step needs and may name (the table in the module's docstring)
STEP_EQUIPMENT: dict[StepKind, StepEquipment] = {
    StepKind.ISOLATION: StepEquipment((_BSC, _INC), (_CFG, _CNT)),
    StepKind.PASSAGE: StepEquipment((_BSC, _INC), (_CFG, _CNT)),
    StepKind.BANK_FREEZE: StepEquipment((_BSC,), (_INC, _CFG, _CNT, _CRF)),
    StepKind.BANK_THAW: StepEquipment((_BSC, _INC), (_CFG, _CNT)),
    StepKind.FILL: StepEquipment((_BSC,), (_INC, _CFG, _CNT)),
    StepKind.FREEZING: StepEquipment((_CRF,), (_BSC,)),
}


def kind_name(kind: str) -> str:
    """An equipment kind (a stored value) in the reader's language."""
    found = EQUIPMENT_KIND_NAMES.get(kind)
    return str(found) if found is not None else kind.replace("_", " ")


def needed_names(step: StepKind) -> list[str]:
    """The kinds ``step`` needs, as a person reads them (the step forms say so)."""
    return [kind_name(kind) for kind in STEP_EQUIPMENT[step].needed]


def require_kinds(step: StepKind, items: Sequence[Equipment]) -> None:
    """Refuse (422, on the ``equipment`` field) a ``step`` whose ``items`` lack a kind it
    needs or include a kind it never uses, naming every one; nothing is recorded."""
    rule = STEP_EQUIPMENT[step]
    named = {item.kind for item in items}
    missing = [kind for kind in rule.needed if kind.value not in named]
    wrong = [item for item in items if item.kind not in {k.value for k in rule.allowed}]
    if not missing and not wrong:
        return
    step_name = term(step)
    sentences: list[str] = []
    notes: list[str] = []
    if missing:
        missing_names = ", ".join(kind_name(kind) for kind in missing)
        sentences.append(
            _(
                "Record the equipment this %(step)s used: it needs %(kinds)s; missing: "
                "%(missing)s.",
                step=step_name,
                kinds=", ".join(needed_names(step)),
                missing=missing_names,
            )
        )
        notes.append(_("Missing: %(missing)s.", missing=missing_names))
    for item in wrong:
        sentences.append(
            _(
                "%(code)s is a %(kind)s, which a %(step)s does not use; it uses: %(kinds)s.",
                code=item.code,
                kind=kind_name(item.kind),
                step=step_name,
                kinds=", ".join(kind_name(kind) for kind in rule.allowed),
            )
        )
        notes.append(_("%(code)s: not used by a %(step)s.", code=item.code, step=step_name))
    raise InvalidInput(
        joined_text(sentences),
        errors={"equipment": notes},
        title=_("Equipment needed by the step"),
    )
