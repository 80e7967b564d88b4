"""What waits at the clinic, for the home page's work queues (issue 21): each listing beside
its count, the condition written once, each count one statement.

- **Doses to thaw today**: prepared doses received at the clinic (their shipment received,
  not held), no bag thawed yet, whose planned date (``DoseOrder.planned_on``, the visit's day)
  is the site's day given.
- **Post-thaw decisions awaited**: a dose's latest post-thaw count outside tolerance with no
  decision yet, the dose still prepared (not infused, not cancelled): the bedside stops until
  an investigator signs *proceed* or *do not infuse* (``post_thaw.decide``; the same rule as
  ``post_thaw.dose_count``'s ``decision_needed``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import aliased

from cellchain.clinic.models import PostThawCount, Shipment, ShipmentItem, ShipmentStatus, Thaw
from cellchain.dosing.models import DoseOrder, DoseStatus
from cellchain.extensions import DbSession


def _to_thaw_on(day: dt.date) -> tuple[ColumnElement[bool], ...]:
    """The condition of ``to_thaw_on``."""
    received = (
        select(ShipmentItem.dose_order_id)
        .join(Shipment, Shipment.id == ShipmentItem.shipment_id)
        .where(Shipment.status == ShipmentStatus.RECEIVED.value)
    )
    return (
        DoseOrder.status == DoseStatus.PREPARED.value,
        DoseOrder.planned_on == day,
        DoseOrder.id.in_(received),
        DoseOrder.id.not_in(select(Thaw.dose_order_id)),
    )


def to_thaw_on(session: DbSession, day: dt.date) -> list[DoseOrder]:
    """Doses received at the clinic, not thawed, planned for ``day`` (the site's day)."""
    return list(
        session.execute(select(DoseOrder).where(*_to_thaw_on(day)).order_by(DoseOrder.id)).scalars()
    )


def count_to_thaw_on(session: DbSession, day: dt.date) -> int:
    """How many doses ``to_thaw_on`` lists (one statement)."""
    return session.execute(
        select(func.count()).select_from(DoseOrder).where(*_to_thaw_on(day))
    ).scalar_one()


def _decision_awaited() -> tuple[ColumnElement[bool], ...]:
    """The condition of ``decisions_awaited``: the dose's latest count (by the time counted,
    then the id, as ``post_thaw.counts_of`` orders them), outside tolerance, undecided, on a
    dose still prepared."""
    later = aliased(PostThawCount)
    newer = exists().where(
        later.dose_order_id == PostThawCount.dose_order_id,
        or_(
            later.counted_at > PostThawCount.counted_at,
            and_(later.counted_at == PostThawCount.counted_at, later.id > PostThawCount.id),
        ),
    )
    prepared = select(DoseOrder.id).where(DoseOrder.status == DoseStatus.PREPARED.value)
    return (
        PostThawCount.within_tolerance.is_(False),
        PostThawCount.decision.is_(None),
        PostThawCount.dose_order_id.in_(prepared),
        ~newer,
    )


def decisions_awaited(session: DbSession) -> list[PostThawCount]:
    """Post-thaw counts waiting for an investigator's signed decision, the oldest first."""
    return list(
        session.execute(
            select(PostThawCount)
            .where(*_decision_awaited())
            .order_by(PostThawCount.counted_at, PostThawCount.id)
        ).scalars()
    )


def count_decisions_awaited(session: DbSession) -> int:
    """How many counts ``decisions_awaited`` lists (one statement)."""
    return session.execute(
        select(func.count()).select_from(PostThawCount).where(*_decision_awaited())
    ).scalar_one()
