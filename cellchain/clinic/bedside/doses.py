"""Finding a dose from what is scanned at the clinic: its dose label or one of its bags.

A prepared dose is a unit made, at the second check, from the bags allocated to its order;
both its label and the bags' labels name the dose. A scan is resolved whole and exactly
(``chain.resolve_unit``); a unit that belongs to no live dose is refused with what it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import literal, select
from sqlalchemy.orm import joinedload, selectinload

from cellchain.chain import service as chain
from cellchain.chain.models import Unit, UnitKind
from cellchain.dosing.models import DoseBag, DoseOrder, DoseStatus
from cellchain.errors import InvalidInput
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import CellRecord, Lot
from cellchain.quality.models import QcSample

#: What is read of a scanned dose wherever it is checked (the bedside, the thaw): its
#: patient, prepared dose unit, weight used and bags with their units, loaded with the
#: order, so that the number of queries does not grow with the bags.
_DOSE_LOADED = (
    joinedload(DoseOrder.patient),
    joinedload(DoseOrder.dose_unit),
    joinedload(DoseOrder.weight),
    selectinload(DoseOrder.bags).joinedload(DoseBag.unit),
)


class NotADose(InvalidInput):
    """A scanned unit that is not a prepared dose or one of its bags."""

    title = "Not a dose"
    type_slug = "not-a-dose"


@dataclass(frozen=True)
class ScannedDose:
    """What a scanned label named: the unit itself and the dose order it belongs to."""

    unit: Unit
    order: DoseOrder


def dose_of_unit(session: DbSession, unit: Unit) -> DoseOrder | None:
    """The live (not cancelled) dose order ``unit`` is the prepared dose or a bag of."""
    if unit.kind == UnitKind.PREPARED_DOSE.value:
        return session.execute(
            select(DoseOrder).options(*_DOSE_LOADED).where(DoseOrder.dose_unit_id == unit.id)
        ).scalar_one_or_none()
    return session.execute(
        select(DoseOrder)
        .options(*_DOSE_LOADED)
        .join(DoseBag, DoseBag.order_id == DoseOrder.id)
        .where(DoseBag.unit_id == unit.id, DoseOrder.status != DoseStatus.CANCELLED.value)
    ).scalar_one_or_none()


def scan_dose(session: DbSession, code: str) -> ScannedDose:
    """The dose a scanned dose label or bag label names, or a clear error saying why not."""
    unit = chain.resolve_unit(session, code)
    order = dose_of_unit(session, unit)
    if order is not None and order.dose_unit_id is None:
        raise NotADose(
            f"{unit.code} is allocated to the {order.visit} dose of {order.patient.study_id} "
            f"(dose order {order.id}), which is not second-checked yet: only a prepared dose "
            "leaves the lab.",
            errors={"scan": ["Dose not prepared yet."]},
        )
    if order is None:
        what = (
            "a bag of no prepared dose"
            if unit.kind == UnitKind.CRYOBAG.value
            else f"a {unit.kind_label}, not a dose or a dose's bag"
        )
        raise NotADose(
            f"{unit.code} is {what}; scan the dose label or a bag of the dose.",
            errors={"scan": [f"{unit.code} belongs to no prepared dose."]},
        )
    return ScannedDose(unit=unit, order=order)


def units_of_dose(order: DoseOrder) -> list[Unit]:
    """The prepared dose and its bags: what travels, is received and is infused together."""
    units = [bag.unit for bag in order.bags]
    if order.dose_unit is not None:
        units.insert(0, order.dose_unit)
    return units


def lots_of_dose(session: DbSession, order: DoseOrder) -> list[Lot]:
    """The lots of the dose's bags (one donation, usually one lot), first seen first.

    As ``quality.results.lot_of_unit`` for each bag (the lot it is a QC sample of, else the
    lot its cell record names), in two queries whatever the number of bags."""
    unit_ids = [bag.unit_id for bag in order.bags]
    if not unit_ids:
        return []
    sampled = select(QcSample.unit_id, QcSample.lot_id, literal(0)).where(
        QcSample.unit_id.in_(unit_ids)
    )
    filled = select(CellRecord.unit_id, CellRecord.lot_id, literal(1)).where(
        CellRecord.unit_id.in_(unit_ids), CellRecord.lot_id.is_not(None)
    )
    lot_of: dict[int, int] = {}
    for unit_id, lot_id, _source in sorted(
        session.execute(sampled.union_all(filled)).all(), key=lambda row: row[2], reverse=True
    ):
        lot_of[unit_id] = lot_id  # a QC sample's lot (source 0) wins, as in ``lot_of_unit``
    ordered = list(dict.fromkeys(lot_of[u] for u in unit_ids if u in lot_of))
    if not ordered:
        return []
    found = {
        lot.id: lot
        for lot in session.execute(
            select(Lot).options(joinedload(Lot.product_definition)).where(Lot.id.in_(ordered))
        ).scalars()
    }
    return [found[lot_id] for lot_id in ordered]
