"""What a unit's label prints, read from the records (DOMAIN.md §9, 21 CFR 1271.370, 312.6).

``label_for`` chooses the template for the unit's kind and fills every field the template
places from the unit, its donation, its lot and its product: the identifier with its check
character boxed, product and version, lot, cells and concentration saying which count they are
(a cryobag's TOTAL cells and total cells per mL with the viability at fill; a dose's viable
cells), volume, expiry date
and time in the site's zone, storage temperature, the investigational-use caution, the
quarantine marking while the unit is not released, and the donor-eligibility warning while
eligibility is pending or refused. The payload is the v1 format of ``core.payload``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cellchain.chain.models import UNIT_KIND_NAMES, Unit, UnitKind, UnitStatus
from cellchain.core.display import local_time, power_of_ten, scientific
from cellchain.core.i18n import (
    N_,
    SOURCE_LANGUAGE,
    LazyText,
    _,
    document_text,
    lazy,
    using_language,
)
from cellchain.core.identifiers import parse_identifier
from cellchain.core.payload import encode_payload
from cellchain.donors.models import Donation, Eligibility
from cellchain.dosing.models import DoseOrder, DoseStatus, Patient
from cellchain.errors import InvalidInput
from cellchain.extensions import DbSession
from cellchain.labels.layout import LabelContent
from cellchain.labels.templates import LabelTemplate
from cellchain.manufacturing.models import CellRecord, Lot, ProductDefinition
from cellchain.quality.models import QcSample
from cellchain.quality.results import lot_of_unit
from cellchain.traceability.models import Recall, RecallUnit

#: 21 CFR 312.6(a), printed on every investigational product's label, in English whatever the
#: label's languages (a US requirement, in the regulation's own words)
CAUTION = "Caution: New Drug—Limited by Federal (or United States) law to investigational use."
#: what a label printed in another language adds below the caution, in that language
#: (Chinese: 仅供临床试验使用); never printed in English, where the caution says it
INVESTIGATIONAL_USE = N_("For clinical trial use only")
QUARANTINE = N_("QUARANTINE — NOT FOR CLINICAL USE")

#: a blocked unit whose donor was found ineligible (1271.65), and one blocked for another reason
INELIGIBLE_DONOR = N_("BLOCKED — INELIGIBLE DONOR — NOT FOR CLINICAL USE")
BLOCKED = N_("BLOCKED — NOT FOR CLINICAL USE")
#: a recalled unit: the recalls' numbers in the first language's line only (a value is
#: printed once), the other languages' lines say the same without them
_RECALLED = (N_("RECALLED %(recalls)s — DO NOT USE"), N_("RECALLED — DO NOT USE"))
_RECALLED_INELIGIBLE = (
    N_("RECALLED %(recalls)s — INELIGIBLE DONOR — DO NOT USE"),
    N_("RECALLED — INELIGIBLE DONOR — DO NOT USE"),
)
#: what a label says about a unit that may not be used, by its status (a blocked unit's
#: marking says why it is blocked: ``status_marking``)
_STATUS_MARKING: dict[str, str] = {
    UnitStatus.QUARANTINE: QUARANTINE,
    UnitStatus.REJECTED: N_("REJECTED — NOT FOR CLINICAL USE"),
}
#: statuses of units that no longer exist to carry a label
_GONE: frozenset[str] = frozenset({UnitStatus.CONSUMED, UnitStatus.DISCARDED, UnitStatus.INFUSED})
_ELIGIBILITY_WARNING: dict[str, str] = {
    Eligibility.PENDING: N_("Donor eligibility determination not complete (21 CFR 1271.60)"),
    Eligibility.INELIGIBLE: N_("DONOR INELIGIBLE — never to be released (21 CFR 1271.65)"),
}


# --- the label's languages ----------------------------------------------------------------------


@dataclass(frozen=True)
class Fixed:
    """A fixed text of a label (a caption, a unit of measure, a marking): printed in each of
    the label's languages, joined by " / " on one line (``Lot / 批次``)."""

    message: str


#: one piece of a field's text: a value (a code, a number, a date: printed once) or a
#: ``Fixed`` text (printed in each language)
Part = str | Fixed


def label_languages() -> tuple[str, ...]:
    """The site's label languages (``CELLCHAIN_LABEL_LANGUAGES``), the first first; English
    outside an application (a script, a test without an app)."""
    from flask import current_app, has_app_context

    if has_app_context():
        configured = current_app.config.get("LABEL_LANGUAGES")
        if configured:
            return tuple(configured)
    return (SOURCE_LANGUAGE,)


def in_language(language: str, message: str, **values: object) -> str:
    """A label's fixed text in ``language`` (its catalogue's translation, else the English),
    its placeholders filled."""
    if language == SOURCE_LANGUAGE:
        text = message
    else:
        with using_language(language):
            text = str(document_text(message))
    return text % values if values else text


def _fixed(languages: Sequence[str], message: str) -> str:
    """``message`` in each language, joined with " / " (a language saying it the same way as
    one before it is not repeated)."""
    seen: list[str] = []
    for language in languages:
        text = in_language(language, message)
        if text not in seen:
            seen.append(text)
    return " / ".join(seen)


def compose(languages: Sequence[str], *parts: Part) -> str:
    """A field's text: its values once, its fixed texts in each language. In English alone
    exactly the English text (``compose(["en"], Fixed("Lot"), " L01") == "Lot L01"``)."""
    return "".join(
        _fixed(languages, part.message) if isinstance(part, Fixed) else part for part in parts
    )


def sentences(languages: Sequence[str], message: str, **values: object) -> str:
    """A whole sentence (a marking, a warning) on one line per language, the first first."""
    lines: list[str] = []
    for language in languages:
        line = in_language(language, message, **values)
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)


@dataclass(frozen=True)
class IsbtSettings:
    """ISBT 128 mode: on only when the site has configured product codes (licensed)."""

    #: cellchain product code (e.g. UC-MSC) → ISBT 128 product code (8 characters)
    product_codes: Mapping[str, str]

    @property
    def enabled(self) -> bool:
        return bool(self.product_codes)


@dataclass(frozen=True)
class UnitLabel:
    """One label ready to lay out (a unit's, or a patient's wristband): the template, the
    content and what the print log records."""

    unit: Unit | None
    lot: Lot | None
    template: LabelTemplate
    content: LabelContent
    quarantine: bool
    #: the patient of a wristband
    patient: Patient | None = None

    @property
    def isbt(self) -> bool:
        return self.content.isbt_message is not None


class NotLabellable(InvalidInput):
    """A unit that cannot be given a label here, and why."""

    title: str | LazyText = lazy("No label for this unit")


def template_for(unit: Unit, templates: Mapping[str, LabelTemplate]) -> LabelTemplate:
    """The template that labels this kind of unit."""
    for template in templates.values():
        if unit.kind in template.unit_kinds:
            return template
    raise NotLabellable(f"No label template labels a {unit.kind_label}.")


def label_for(
    session: DbSession,
    unit: Unit,
    *,
    templates: Mapping[str, LabelTemplate],
    zone: ZoneInfo,
    isbt: IsbtSettings,
    languages: Sequence[str] | None = None,
) -> UnitLabel:
    """The label of ``unit`` as it must print now; refused for a unit that is gone."""
    return labels_for(
        session, [unit], templates=templates, zone=zone, isbt=isbt, languages=languages
    )[0]


def labels_for(
    session: DbSession,
    units: Sequence[Unit],
    *,
    templates: Mapping[str, LabelTemplate],
    zone: ZoneInfo,
    isbt: IsbtSettings,
    languages: Sequence[str] | None = None,
) -> list[UnitLabel]:
    """The label of each of ``units`` as it must print now; refused, naming the first unit in
    order that is gone or has no template, as ``label_for`` of each in turn would be.

    ``languages``: the label's languages, the first first (the site's
    ``CELLCHAIN_LABEL_LANGUAGES`` when not given). The content's ``texts`` are always the
    English the print log records; ``printed`` what the label prints in those languages.

    The records a label prints are read for all the units together (``_Records``): a fixed
    number of queries for a lot's hundreds of bags, not several per bag. A prepared dose's
    label reads its dose order on its own (a dose is printed alone)."""
    chosen = tuple(languages) if languages else label_languages()
    records = _Records.load(session, units)
    return [_label(session, unit, records, templates, zone, isbt, chosen) for unit in units]


@dataclass(frozen=True)
class _Records:
    """What the labels of some units print besides the units themselves, read together: the
    cell records and QC samples (by unit), the lots they belong to, and the status markings.
    The units' donations and the product definitions of the donations and lots are loaded
    into the session, where ``unit.donation`` and ``lot.product_definition`` find them (held
    here too: the session keeps only weak references to unchanged objects)."""

    cell_records: dict[int, CellRecord]
    samples: dict[int, QcSample]
    lots: dict[int, Lot]
    markings: dict[int, _Marking]
    loaded: tuple[object, ...]

    @classmethod
    def load(cls, session: DbSession, units: Sequence[Unit]) -> _Records:
        ids = [unit.id for unit in units]
        cell_records = {
            row.unit_id: row
            for row in session.execute(
                select(CellRecord).where(CellRecord.unit_id.in_(ids))
            ).scalars()
        }
        samples = {
            row.unit_id: row
            for row in session.execute(select(QcSample).where(QcSample.unit_id.in_(ids))).scalars()
        }
        lot_ids = {sample.lot_id for sample in samples.values()} | {
            record.lot_id for record in cell_records.values() if record.lot_id is not None
        }
        lots = (
            {
                lot.id: lot
                for lot in session.execute(select(Lot).where(Lot.id.in_(lot_ids))).scalars()
            }
            if lot_ids
            else {}
        )
        donation_ids = {unit.donation_id for unit in units}
        donations = session.scalars(select(Donation).where(Donation.id.in_(donation_ids))).all()
        product_ids = {donation.product_definition_id for donation in donations} | {
            lot.product_definition_id for lot in lots.values()
        }
        products = session.scalars(
            select(ProductDefinition).where(ProductDefinition.id.in_(product_ids))
        ).all()
        markings = _status_markings(session, units)
        return cls(cell_records, samples, lots, markings, (*donations, *products))

    def lot_of(self, unit: Unit) -> Lot | None:
        """``quality.results.lot_of_unit``: the lot the unit is a QC sample of, or a bag of."""
        sample = self.samples.get(unit.id)
        if sample is not None:
            return self.lots.get(sample.lot_id)
        record = self.cell_records.get(unit.id)
        if record is not None and record.lot_id is not None:
            return self.lots.get(record.lot_id)
        return None


def _label(
    session: DbSession,
    unit: Unit,
    records: _Records,
    templates: Mapping[str, LabelTemplate],
    zone: ZoneInfo,
    isbt: IsbtSettings,
    languages: tuple[str, ...],
) -> UnitLabel:
    if unit.status in _GONE:
        raise NotLabellable(
            _(
                "%(code)s is %(status)s; a label is printed only for a unit that exists.",
                code=unit.code,
                status=unit.status_name,
            )
        )
    template = template_for(unit, templates)
    if unit.kind == UnitKind.PREPARED_DOSE:
        return _dose_label(session, unit, template, zone, languages)
    record = records.cell_records.get(unit.id)
    sample = records.samples.get(unit.id)
    lot = records.lot_of(unit)
    identifier = parse_identifier(unit.code)

    def texts_in(chosen: Sequence[str]) -> dict[str, str]:
        donation = unit.donation
        texts = {
            "identifier": identifier.display,
            "kind": _kind(unit, chosen),
            "status": records.markings[unit.id].printed(chosen),
            "eligibility": _eligibility(donation.eligibility, chosen),
            "caution": caution(chosen),
            "product": _product(lot, donation, chosen),
            "collected": _collected(donation, zone, chosen),
        }
        if lot is not None:
            texts["lot"] = compose(chosen, Fixed(N_("Lot")), f" {lot.lot_number}")
            texts["expiry"] = _expiry(lot.expires_at, zone, chosen)
            texts["storage"] = _storage(lot, chosen)
        if record is not None:
            texts.update(_cells(record, zone, chosen))
        if sample is not None:
            purpose: Part = sample.purpose or Fixed(N_("release testing"))
            texts["test"] = compose(chosen, Fixed(N_("QC sample")), ": ", purpose)
        return texts

    message = _isbt_message(template, unit, lot, isbt, zone)
    content = LabelContent(
        encode_payload(identifier),
        texts_in(ENGLISH),
        isbt_message=message,
        printed=_printed(languages, texts_in),
    )
    # whether the label is a quarantine label is the unit's status, in whatever language the
    # label prints it (the print log's ``quarantine``; release reprints replace these)
    return UnitLabel(unit, lot, template, content, quarantine=unit.status == UnitStatus.QUARANTINE)


#: the language the print log records a label's texts in
ENGLISH: tuple[str, ...] = (SOURCE_LANGUAGE,)


def _printed(
    languages: tuple[str, ...], texts_in: Callable[[Sequence[str]], dict[str, str]]
) -> dict[str, str] | None:
    """What the label prints in ``languages``; None when that is the English record itself."""
    return None if languages == ENGLISH else texts_in(languages)


@dataclass(frozen=True)
class _Marking:
    """A status marking: the first language's line (with any values) and the other
    languages' lines (the same words, the values not repeated)."""

    first: str
    others: str
    values: Mapping[str, str]

    @property
    def english(self) -> str:
        return in_language(SOURCE_LANGUAGE, self.first, **self.values)

    def printed(self, languages: Sequence[str]) -> str:
        """One line per language, the first with the values."""
        if not self.first:
            return ""
        lines: list[str] = []
        for index, language in enumerate(languages):
            if index == 0:
                line = in_language(language, self.first, **self.values)
            else:
                line = in_language(language, self.others)
            if line not in lines:
                lines.append(line)
        return "\n".join(lines)


def status_marking(session: DbSession, unit: Unit) -> str:
    """What the unit's label must say about its status now; "" for a unit that may be used.

    The one place a marking is decided. Quarantine and rejection are read from the status; a
    blocked unit's marking says why it is blocked, from the records: the recalls that name it
    ("RECALLED RC-2026-0001 — DO NOT USE", the word first so that a small label keeps it),
    the donor found ineligible (1271.65), or neither ("BLOCKED — NOT FOR CLINICAL USE").
    In English: what the print log records and label control compares."""
    return status_markings(session, [unit])[unit.id]


def status_markings(session: DbSession, units: Sequence[Unit]) -> dict[int, str]:
    """``status_marking`` of each unit, by id: the recalls naming the blocked ones read in one
    query."""
    return {
        unit_id: marking.english for unit_id, marking in _status_markings(session, units).items()
    }


def _status_markings(session: DbSession, units: Sequence[Unit]) -> dict[int, _Marking]:
    blocked = [unit.id for unit in units if unit.status == UnitStatus.BLOCKED]
    numbers: dict[int, list[str]] = {unit_id: [] for unit_id in blocked}
    if blocked:
        for unit_id, number in session.execute(
            select(RecallUnit.unit_id, Recall.number)
            .join(Recall, RecallUnit.recall_id == Recall.id)
            .where(RecallUnit.unit_id.in_(blocked))
            .order_by(Recall.id)
        ):
            numbers[unit_id].append(number)
    markings: dict[int, _Marking] = {}
    for unit in units:
        if unit.status != UnitStatus.BLOCKED:
            text = _STATUS_MARKING.get(unit.status, "")
            markings[unit.id] = _Marking(text, text, {})
            continue
        ineligible = unit.donation.eligibility == Eligibility.INELIGIBLE
        if numbers[unit.id]:
            first, others = _RECALLED_INELIGIBLE if ineligible else _RECALLED
            markings[unit.id] = _Marking(first, others, {"recalls": ", ".join(numbers[unit.id])})
        else:
            text = INELIGIBLE_DONOR if ineligible else BLOCKED
            markings[unit.id] = _Marking(text, text, {})
    return markings


def caution(languages: Sequence[str]) -> str:
    """The 21 CFR 312.6 caution in English, and below it, for each other language, that
    language's investigational-use statement (Chinese: 仅供临床试验使用)."""
    lines = [CAUTION]
    for language in languages:
        if language != SOURCE_LANGUAGE:
            lines.append(in_language(language, INVESTIGATIONAL_USE))
    return "\n".join(dict.fromkeys(lines))


def wristband_for(
    patient: Patient,
    *,
    templates: Mapping[str, LabelTemplate],
    languages: Sequence[str] | None = None,
) -> UnitLabel:
    """The patient's wristband: study ID and COI identifier, scanned at the bedside. It never
    shows a name, a record number or the arm (the trial is single-blind)."""
    if patient.status != "enrolled":
        raise NotLabellable(f"{patient.study_id} is {patient.status}; no wristband is printed.")
    coi = parse_identifier(patient.coi)

    def texts_in(chosen: Sequence[str]) -> dict[str, str]:
        return {
            "patient_study_id": compose(chosen, Fixed(N_("Study ID")), f" {patient.study_id}"),
            "coi": compose(chosen, Fixed(N_("COI")), f" {coi.display}"),
            "identifier": compose(
                chosen, f"{patient.protocol.code} — ", Fixed(N_("cell therapy trial subject"))
            ),
            "status": "",
            "eligibility": "",
        }

    chosen = tuple(languages) if languages else label_languages()
    content = LabelContent(
        encode_payload(coi), texts_in(ENGLISH), printed=_printed(chosen, texts_in)
    )
    return UnitLabel(None, None, templates["wristband"], content, quarantine=False, patient=patient)


def _dose_label(
    session: DbSession,
    unit: Unit,
    template: LabelTemplate,
    zone: ZoneInfo,
    languages: tuple[str, ...],
) -> UnitLabel:
    """A prepared dose names its patient (study ID and COI, never a name) and its visit, and
    prints what the second check signed: cells, volume, bags."""
    order = session.execute(
        select(DoseOrder).where(DoseOrder.dose_unit_id == unit.id)
    ).scalar_one_or_none()
    if order is None or order.status != DoseStatus.PREPARED:
        raise NotLabellable(
            "A dose's label is printed only after its independent second check is signed."
        )
    bag_unit = order.bags[0].unit
    lot = lot_of_unit(session, bag_unit)
    marking = _status_markings(session, [unit])[unit.id]
    return dose_label_of(unit, order, lot, marking, template, zone, languages)


def dose_label_of(
    unit: Unit,
    order: DoseOrder,
    lot: Lot | None,
    marking: _Marking,
    template: LabelTemplate,
    zone: ZoneInfo,
    languages: tuple[str, ...],
) -> UnitLabel:
    """A prepared dose's label composed from its records, read by ``_dose_label`` (or, for the
    template check ``template_documents.fit``, plain objects at their longest)."""
    identifier = parse_identifier(unit.code)
    patient = order.patient
    minutes = order.protocol.parameters["thaw_to_infusion_minutes"]

    def texts_in(chosen: Sequence[str]) -> dict[str, str]:
        return {
            "identifier": identifier.display,
            "patient_study_id": compose(chosen, Fixed(N_("Patient")), f" {patient.study_id}"),
            "coi": compose(chosen, Fixed(N_("COI")), f" {parse_identifier(patient.coi).display}"),
            "visit": compose(
                chosen,
                _document(order.visit, chosen),
                " · ",
                Fixed(N_("planned")),
                f" {order.planned_on.isoformat()}",
            ),
            "product": _product(lot, unit.donation, chosen),
            "lot": (
                compose(chosen, Fixed(N_("Lot")), f" {lot.lot_number}") if lot is not None else ""
            ),
            "cells": compose(
                chosen,
                f"{scientific(order.delivered_cells)} ",
                Fixed(N_("viable cells")),
                f" ({order.deviation_percent:+.1f} %)",
            ),
            "volume": compose(
                chosen,
                Fixed(N_("Draw")),
                f" {order.volume_ml:.1f} mL ",
                Fixed(N_("from")),
                f" {len(order.bags)} ",
                Fixed(N_("bag(s)")),
            ),
            "expiry": _expiry(lot.expires_at if lot is not None else None, zone, chosen)
            + compose(
                chosen,
                " · ",
                Fixed(N_("infuse within")),
                f" {minutes} min ",
                Fixed(N_("of thaw")),
            ),
            "storage": _storage(lot, chosen) if lot is not None else "",
            "caution": caution(chosen),
            "status": marking.printed(chosen),
            "eligibility": _eligibility(unit.donation.eligibility, chosen),
        }

    content = LabelContent(
        encode_payload(identifier), texts_in(ENGLISH), printed=_printed(languages, texts_in)
    )
    return UnitLabel(unit, lot, template, content, quarantine=False)


def _kind(unit: Unit, languages: Sequence[str]) -> str:
    """What the unit is (``Cryobag / 冻存袋``): the English capitalised as labels always had it,
    the other languages as the pages name the kind."""
    names: list[str] = []
    for language in languages:
        if language == SOURCE_LANGUAGE:
            name = unit.kind_label.capitalize()
        else:
            with using_language(language):
                name = str(UNIT_KIND_NAMES.get(unit.kind, unit.kind_label))
        if name not in names:
            names.append(name)
    return " / ".join(names)


def _eligibility(eligibility: str, languages: Sequence[str]) -> str:
    warning = _ELIGIBILITY_WARNING.get(eligibility, "")
    return sentences(languages, warning) if warning else ""


def _document(text: str, languages: Sequence[str]) -> str:
    """A controlled document's text (a visit's name, a product's title) in each language, the
    English as signed, another as the catalogue translates it (``document_text``), where it
    does."""
    names: list[str] = []
    for language in languages:
        if language == SOURCE_LANGUAGE:
            name = text
        else:
            with using_language(language):
                name = str(document_text(text))
        if name not in names:
            names.append(name)
    return " / ".join(names)


def _product(lot: Lot | None, donation: Donation, languages: Sequence[str]) -> str:
    product = lot.product_definition if lot is not None else donation.product_definition
    return f"{product.code} v{product.version} — {_document(product.title, languages)}"


def _collected(donation: Donation, zone: ZoneInfo, languages: Sequence[str]) -> str:
    return compose(
        languages,
        Fixed(N_("Collected")),
        f" {_time(donation.collected_at, zone)} · {donation.collection_site}",
    )


def _expiry(expires_at: dt.datetime | None, zone: ZoneInfo, languages: Sequence[str]) -> str:
    if expires_at is None:
        return compose(languages, Fixed(N_("EXP —: no shelf life set")))
    return compose(languages, Fixed(N_("EXP")), f" {_time(expires_at, zone)}")


def _storage(lot: Lot, languages: Sequence[str]) -> str:
    limit = lot.product_definition.parameters.get("storage_max_temperature_c")
    if limit is None:
        return compose(languages, Fixed(N_("Storage: see product definition")))
    value = f"{float(limit):g}".replace("-", "−")
    return compose(
        languages,
        Fixed(N_("Store at")),
        f" ≤ {value} °C (",
        Fixed(N_("liquid nitrogen vapour phase")),
        ")",
    )


def _cells(record: CellRecord, zone: ZoneInfo, languages: Sequence[str]) -> dict[str, str]:
    texts: dict[str, str] = {
        "passage": compose(
            languages, Fixed(N_("Passage")), f" P{record.passage} · {_time(record.made_at, zone)}"
        ),
    }
    if record.total_cells_per_ml is not None:  # a cryobag: total counts and the viability at fill
        viable: list[Part] = (
            [", ", f"{record.viability_percent:g} % ", Fixed(N_("viable at fill"))]
            if record.viability_percent is not None
            else []
        )
        if record.cells is not None:
            texts["cells"] = compose(
                languages, f"{scientific(record.cells)} ", Fixed(N_("total cells")), *viable
            )
        texts["concentration"] = compose(
            languages,
            f"{exact_scientific(record.total_cells_per_ml)} ",
            Fixed(N_("total cells/mL")),
        )
    elif record.cells is not None:  # a bank vial: the viable cells frozen
        texts["cells"] = compose(
            languages, f"{scientific(record.cells)} ", Fixed(N_("viable cells"))
        )
    if record.volume_ml is not None:
        texts["volume"] = f"{record.volume_ml:g} mL"
    return texts


def exact_scientific(value: float) -> str:
    """A concentration as recorded, in the label's ``5.00 × 10⁶`` form with as many figures as
    the record holds (up to six): the dose is computed from this number, and whoever recomputes
    it by hand from the label must start from the same one (DOMAIN.md §7)."""
    if value <= 0 or not math.isfinite(value):
        return scientific(value)
    exponent = math.floor(math.log10(value))
    for decimals in range(2, 6):
        mantissa = round(value / 10**exponent, decimals)
        if math.isclose(mantissa * 10**exponent, value, rel_tol=1e-12):
            break
    if mantissa >= 10:  # 9.9999995e6 at five decimals: write 1.00000 × 10⁷
        exponent += 1
        mantissa = round(value / 10**exponent, decimals)
    return f"{mantissa:.{decimals}f} × {power_of_ten(exponent)}"


def _time(value: dt.datetime, zone: ZoneInfo) -> str:
    return local_time(value, zone)


def _isbt_message(
    template: LabelTemplate, unit: Unit, lot: Lot | None, isbt: IsbtSettings, zone: ZoneInfo
) -> str | None:
    """The ISBT 128 compound message, when the site runs ISBT mode and the label has room."""
    if template.datamatrix is None or lot is None or lot.expires_at is None:
        return None
    product_code = isbt.product_codes.get(lot.product_definition.code)
    if product_code is None:
        return None
    from cellchain.labels.isbt128 import compound_message

    din = parse_identifier(unit.donation.din).din  # the 13 characters, without K
    local_expiry = lot.expires_at.astimezone(zone).replace(tzinfo=None)  # ISBT: local time
    return compound_message(din, product_code, local_expiry)
