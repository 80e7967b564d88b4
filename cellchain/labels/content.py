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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cellchain.chain.models import Unit, UnitKind, UnitStatus
from cellchain.core.display import local_time, power_of_ten, scientific
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

#: 21 CFR 312.6(a), printed on every investigational product's label.
CAUTION = "Caution: New Drug—Limited by Federal (or United States) law to investigational use."
QUARANTINE = "QUARANTINE — NOT FOR CLINICAL USE"

#: a blocked unit whose donor was found ineligible (1271.65), and one blocked for another reason
INELIGIBLE_DONOR = "BLOCKED — INELIGIBLE DONOR — NOT FOR CLINICAL USE"
BLOCKED = "BLOCKED — NOT FOR CLINICAL USE"
#: what a label says about a unit that may not be used, by its status (a blocked unit's
#: marking says why it is blocked: ``status_marking``)
_STATUS_MARKING: dict[str, str] = {
    UnitStatus.QUARANTINE: QUARANTINE,
    UnitStatus.REJECTED: "REJECTED — NOT FOR CLINICAL USE",
}
#: statuses of units that no longer exist to carry a label
_GONE: frozenset[str] = frozenset({UnitStatus.CONSUMED, UnitStatus.DISCARDED, UnitStatus.INFUSED})
_ELIGIBILITY_WARNING: dict[str, str] = {
    Eligibility.PENDING: "Donor eligibility determination not complete (21 CFR 1271.60)",
    Eligibility.INELIGIBLE: "DONOR INELIGIBLE — never to be released (21 CFR 1271.65)",
}


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

    title = "No label for this unit"


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
) -> UnitLabel:
    """The label of ``unit`` as it must print now; refused for a unit that is gone."""
    return labels_for(session, [unit], templates=templates, zone=zone, isbt=isbt)[0]


def labels_for(
    session: DbSession,
    units: Sequence[Unit],
    *,
    templates: Mapping[str, LabelTemplate],
    zone: ZoneInfo,
    isbt: IsbtSettings,
) -> list[UnitLabel]:
    """The label of each of ``units`` as it must print now; refused, naming the first unit in
    order that is gone or has no template, as ``label_for`` of each in turn would be.

    The records a label prints are read for all the units together (``_Records``): a fixed
    number of queries for a lot's hundreds of bags, not several per bag. A prepared dose's
    label reads its dose order on its own (a dose is printed alone)."""
    records = _Records.load(session, units)
    return [_label(session, unit, records, templates, zone, isbt) for unit in units]


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
    markings: dict[int, str]
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
        markings = status_markings(session, units)
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
) -> UnitLabel:
    if unit.status in _GONE:
        raise NotLabellable(
            f"{unit.code} is {unit.status}; a label is printed only for a unit that exists."
        )
    template = template_for(unit, templates)
    if unit.kind == UnitKind.PREPARED_DOSE:
        return _dose_label(session, unit, template, zone)
    record = records.cell_records.get(unit.id)
    sample = records.samples.get(unit.id)
    lot = records.lot_of(unit)
    donation = unit.donation
    identifier = parse_identifier(unit.code)
    texts = {
        "identifier": identifier.display,
        "kind": unit.kind_label.capitalize(),
        "status": records.markings[unit.id],
        "eligibility": _ELIGIBILITY_WARNING.get(donation.eligibility, ""),
        "caution": CAUTION,
        "product": _product(lot, donation),
        "collected": _collected(donation, zone),
    }
    if lot is not None:
        texts["lot"] = f"Lot {lot.lot_number}"
        texts["expiry"] = _expiry(lot.expires_at, zone)
        texts["storage"] = _storage(lot)
    if record is not None:
        texts.update(_cells(record, zone))
    if sample is not None:
        texts["test"] = f"QC sample: {sample.purpose or 'release testing'}"
    message = _isbt_message(template, unit, lot, isbt, zone)
    content = LabelContent(encode_payload(identifier), texts, isbt_message=message)
    return UnitLabel(unit, lot, template, content, quarantine=texts["status"] == QUARANTINE)


def status_marking(session: DbSession, unit: Unit) -> str:
    """What the unit's label must say about its status now; "" for a unit that may be used.

    The one place a marking is decided. Quarantine and rejection are read from the status; a
    blocked unit's marking says why it is blocked, from the records: the recalls that name it
    ("RECALLED RC-2026-0001 — DO NOT USE", the word first so that a small label keeps it),
    the donor found ineligible (1271.65), or neither ("BLOCKED — NOT FOR CLINICAL USE")."""
    return status_markings(session, [unit])[unit.id]


def status_markings(session: DbSession, units: Sequence[Unit]) -> dict[int, str]:
    """``status_marking`` of each unit, by id: the recalls naming the blocked ones read in one
    query."""
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
    markings: dict[int, str] = {}
    for unit in units:
        if unit.status != UnitStatus.BLOCKED:
            markings[unit.id] = _STATUS_MARKING.get(unit.status, "")
            continue
        ineligible = unit.donation.eligibility == Eligibility.INELIGIBLE
        if numbers[unit.id]:
            donor = " — INELIGIBLE DONOR" if ineligible else ""
            markings[unit.id] = f"RECALLED {', '.join(numbers[unit.id])}{donor} — DO NOT USE"
        else:
            markings[unit.id] = INELIGIBLE_DONOR if ineligible else BLOCKED
    return markings


def wristband_for(patient: Patient, *, templates: Mapping[str, LabelTemplate]) -> UnitLabel:
    """The patient's wristband: study ID and COI identifier, scanned at the bedside. It never
    shows a name, a record number or the arm (the trial is single-blind)."""
    if patient.status != "enrolled":
        raise NotLabellable(f"{patient.study_id} is {patient.status}; no wristband is printed.")
    coi = parse_identifier(patient.coi)
    texts = {
        "patient_study_id": f"Study ID {patient.study_id}",
        "coi": f"COI {coi.display}",
        "identifier": f"{patient.protocol.code} — cell therapy trial subject",
        "status": "",
        "eligibility": "",
    }
    content = LabelContent(encode_payload(coi), texts)
    return UnitLabel(None, None, templates["wristband"], content, quarantine=False, patient=patient)


def _dose_label(
    session: DbSession, unit: Unit, template: LabelTemplate, zone: ZoneInfo
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
    identifier = parse_identifier(unit.code)
    patient = order.patient
    texts = {
        "identifier": identifier.display,
        "patient_study_id": f"Patient {patient.study_id}",
        "coi": f"COI {parse_identifier(patient.coi).display}",
        "visit": f"{order.visit} · planned {order.planned_on.isoformat()}",
        "product": _product(lot, unit.donation),
        "lot": f"Lot {lot.lot_number}" if lot is not None else "",
        "cells": f"{scientific(order.delivered_cells)} viable cells "
        f"({order.deviation_percent:+.1f} %)",
        "volume": f"Draw {order.volume_ml:.1f} mL from {len(order.bags)} bag(s)",
        "expiry": _expiry(lot.expires_at if lot is not None else None, zone)
        + f" · infuse within {order.protocol.parameters['thaw_to_infusion_minutes']} min of thaw",
        "storage": _storage(lot) if lot is not None else "",
        "caution": CAUTION,
        "status": status_marking(session, unit),
        "eligibility": _ELIGIBILITY_WARNING.get(unit.donation.eligibility, ""),
    }
    content = LabelContent(encode_payload(identifier), texts)
    return UnitLabel(unit, lot, template, content, quarantine=False)


def _product(lot: Lot | None, donation: Donation) -> str:
    product = lot.product_definition if lot is not None else donation.product_definition
    return f"{product.code} v{product.version} — {product.title}"


def _collected(donation: Donation, zone: ZoneInfo) -> str:
    return f"Collected {_time(donation.collected_at, zone)} · {donation.collection_site}"


def _expiry(expires_at: dt.datetime | None, zone: ZoneInfo) -> str:
    if expires_at is None:
        return "EXP —: no shelf life set"
    return f"EXP {_time(expires_at, zone)}"


def _storage(lot: Lot) -> str:
    limit = lot.product_definition.parameters.get("storage_max_temperature_c")
    if limit is None:
        return "Storage: see product definition"
    return f"Store at ≤ {float(limit):g} °C (liquid nitrogen vapour phase)".replace("-", "−")


def _cells(record: CellRecord, zone: ZoneInfo) -> dict[str, str]:
    texts: dict[str, str] = {
        "passage": f"Passage P{record.passage} · {_time(record.made_at, zone)}",
    }
    if record.total_cells_per_ml is not None:  # a cryobag: total counts and the viability at fill
        viable = (
            f", {record.viability_percent:g} % viable at fill"
            if record.viability_percent is not None
            else ""
        )
        if record.cells is not None:
            texts["cells"] = f"{scientific(record.cells)} total cells{viable}"
        texts["concentration"] = f"{exact_scientific(record.total_cells_per_ml)} total cells/mL"
    elif record.cells is not None:  # a bank vial: the viable cells frozen
        texts["cells"] = f"{scientific(record.cells)} viable cells"
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
