"""Labels for the technician's work queue (issue 21), each listing beside its count, the
condition written once, each count one statement:

- **to apply**: the prints of a unit's label (a container, bag or dose; not a patient's
  wristband) with copies neither applied (scanned on their container,
  ``service.record_applied``) nor destroyed (``service.destroy_labels``) — what the
  reconciliation counts as outstanding;
- **to print**: the cryobags of a lot that need a label printed — never labelled since the
  fill, or released while their latest label still says quarantine (what
  ``service.reconciliation`` lists per lot as ``never_printed`` and
  ``quarantine_labels_to_replace``, here for every lot at once).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import selectinload

from cellchain.chain.models import Unit, UnitKind, UnitStatus
from cellchain.extensions import DbSession
from cellchain.labels.models import LabelPrint
from cellchain.manufacturing.models import CellRecord, Lot

#: a bag in one of these needs no label any more (its life at the lab is over)
_FINAL = tuple(status.value for status in UnitStatus if status.final)
#: a bag in one of these is released: its label must not say quarantine
_RELEASED = (UnitStatus.AVAILABLE.value, UnitStatus.ALLOCATED.value)


def _outstanding() -> tuple[ColumnElement[bool], ...]:
    """The condition of ``outstanding_prints``."""
    return (
        LabelPrint.unit_id.is_not(None),
        LabelPrint.applied + LabelPrint.destroyed < LabelPrint.copies,
    )


def outstanding_prints(session: DbSession) -> list[LabelPrint]:
    """Unit label prints with copies still to apply (or destroy), the oldest first."""
    return list(
        session.execute(
            select(LabelPrint)
            .where(*_outstanding())
            .options(selectinload(LabelPrint.unit), selectinload(LabelPrint.printed_by))
            .order_by(LabelPrint.printed_at, LabelPrint.id)
        ).scalars()
    )


def count_outstanding_prints(session: DbSession) -> int:
    """How many prints ``outstanding_prints`` lists (one statement)."""
    return session.execute(
        select(func.count()).select_from(LabelPrint).where(*_outstanding())
    ).scalar_one()


@dataclass(frozen=True)
class ToPrint:
    """A bag that needs a label printed, and why (``replace``: its quarantine label)."""

    unit: Unit
    lot_id: int
    lot_number: str
    replace: bool


def _latest_quarantine_print() -> ColumnElement[bool]:
    """The unit's latest print carries the quarantine marking."""
    latest = (
        select(func.max(LabelPrint.id))
        .where(LabelPrint.unit_id == Unit.id)
        .correlate(Unit)
        .scalar_subquery()
    )
    return exists(
        select(LabelPrint.id).where(LabelPrint.id == latest, LabelPrint.quarantine.is_(True))
    )


def _never_printed() -> ColumnElement[bool]:
    return ~exists(select(LabelPrint.id).where(LabelPrint.unit_id == Unit.id))


def _to_print() -> ColumnElement[bool]:
    """The condition of ``labels_to_print`` (on ``Unit`` joined to its ``CellRecord``)."""
    return and_(
        Unit.kind == UnitKind.CRYOBAG.value,
        CellRecord.lot_id.is_not(None),
        Unit.status.not_in(_FINAL),
        or_(_never_printed(), and_(Unit.status.in_(_RELEASED), _latest_quarantine_print())),
    )


def labels_to_print(session: DbSession) -> list[ToPrint]:
    """The bags needing a label printed, by lot then bag, each with its lot and whether it
    was ever printed (one statement)."""
    rows = session.execute(
        select(Unit, Lot.id, Lot.lot_number, _never_printed())
        .join(CellRecord, CellRecord.unit_id == Unit.id)
        .join(Lot, Lot.id == CellRecord.lot_id)
        .where(_to_print())
        .order_by(Lot.id, Unit.id)
    ).all()
    return [
        ToPrint(unit, lot_id, lot_number, replace=not never)
        for unit, lot_id, lot_number, never in rows
    ]


def count_labels_to_print(session: DbSession) -> int:
    """How many bags ``labels_to_print`` lists (one statement)."""
    return session.execute(
        select(func.count())
        .select_from(Unit)
        .join(CellRecord, CellRecord.unit_id == Unit.id)
        .where(_to_print())
    ).scalar_one()
