"""Thaw at the clinic: scanning a bag starts its thaw, scanning it again completes it.

The infusion must start within the product's window after the thaw (DOMAIN.md §7: at most
60 min by default). The window runs from the first thaw *start* of the dose: a dose of two
bags is as old as its first bag into the bath, and a thaw left running is not free time. Every
bag must be thawed (completed) before the bedside check passes. Scanning the dose label thaws
every bag of the dose at once. Only a dose received at the clinic and not held can be thawed.
A completion scanned sooner than the product's minimum thaw (2 min by default) is refused.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError

from cellchain.chain import service as chain
from cellchain.chain.models import EventType, Unit, UnitKind, UnitStatus
from cellchain.chain.service import CustodyInput
from cellchain.clinic.bedside.doses import lots_of_dose, refuse_unseen, scan_dose
from cellchain.clinic.models import ShipmentStatus, Thaw
from cellchain.clinic.shipments.shipments import shipment_of
from cellchain.core import audit
from cellchain.core.guarded import update_if
from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.dosing.models import DoseOrder, DoseStatus
from cellchain.errors import Conflict
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import Lot

#: Thaw to the start of the infusion when neither product nor protocol says (DOMAIN.md §7).
DEFAULT_THAW_WINDOW_MINUTES = 60
#: The shortest plausible thaw when the product does not say (``min_thaw_minutes``): a 20 mL
#: cryobag in a 37 °C bath takes two to three minutes to its last ice crystal. A second scan
#: sooner is a double scan or a bag taken out still frozen, never a completed thaw.
DEFAULT_MIN_THAW_MINUTES = 2.0


@dataclass
class ThawStep:
    """What one scan did: the thaws it started and the thaws it completed."""

    order: DoseOrder
    started: list[Thaw] = field(default_factory=list)
    completed: list[Thaw] = field(default_factory=list)


@dataclass(frozen=True)
class ThawState:
    """A dose's thaw as the bedside sees it: each bag's thaw and the deadline to start."""

    thaws: list[Thaw]
    bag_count: int
    window_minutes: int
    expires_at: dt.datetime | None  #: first thaw start + window; None until a thaw starts

    @property
    def complete(self) -> bool:
        return self.bag_count > 0 and sum(1 for t in self.thaws if t.completed_at) == self.bag_count

    def minutes_left(self, now: dt.datetime) -> float | None:
        if self.expires_at is None:
            return None
        return (self.expires_at - now).total_seconds() / 60


def scan_thaw(session: DbSession, code: str, *, actor: User, now: dt.datetime) -> ThawStep:
    """Start the thaw of the scanned bag (or of every bag of a scanned dose label), or
    complete it if it was started; refused if the dose may not be thawed, and as a code never
    issued when it is a dose of a patient the acting user does not see (review 2 item 13)."""
    refuse_unseen(session, code)
    scanned = scan_dose(session, code)
    order = scanned.order
    _require_thawable(session, order)
    bags = (
        [scanned.unit]
        if scanned.unit.kind == UnitKind.CRYOBAG.value
        else [bag.unit for bag in order.bags]
    )
    existing = {thaw.unit_id: thaw for thaw in thaws_of(session, order)}
    step = ThawStep(order=order)
    for bag in bags:
        thaw = existing.get(bag.id)
        if thaw is None:
            step.started.append(_start(session, bag, order, actor=actor, now=now))
        elif thaw.completed_at is None:
            _require_thawed(session, order, thaw, bag, now)
            step.completed.append(_complete(session, thaw, bag, actor=actor, now=now))
    if not step.started and not step.completed:
        raise Conflict(
            _(
                "%(unit)s is already thawed; a bag is thawed once. Go to the bedside check.",
                unit=scanned.unit.code,
            ),
            title=_("Already thawed"),
        )
    return step


def thaws_of(session: DbSession, order: DoseOrder) -> list[Thaw]:
    return list(
        session.execute(
            select(Thaw).where(Thaw.dose_order_id == order.id).order_by(Thaw.started_at, Thaw.id)
        ).scalars()
    )


def thaw_window_minutes(
    session: DbSession, order: DoseOrder, lots: Sequence[Lot] | None = None
) -> int:
    """Minutes from the thaw to the start of the infusion: the strictest of the protocol's
    limit and the limits of the dose's product definitions (60 if none says). ``lots``: the
    dose's lots (``lots_of_dose``) when the caller has them already."""
    return window_of(
        order,
        [
            lot.product_definition.parameters
            for lot in (lots_of_dose(session, order) if lots is None else lots)
        ],
    )


def window_of(order: DoseOrder, products: Sequence[Mapping[str, Any]]) -> int:
    """``thaw_window_minutes`` from the parameters of the product definitions of the dose's
    lots, already read (``doses.units_read``)."""
    return window_of_parameters(order.protocol.parameters, products)


def window_of_parameters(protocol: Mapping[str, Any], products: Sequence[Mapping[str, Any]]) -> int:
    """``window_of`` a dose ordered under a protocol of parameters ``protocol``: the
    shortest of the protocol's and the product definitions' windows."""
    limits = [
        int(minutes)
        for parameters in products
        if (minutes := parameters.get("thaw_to_infusion_minutes")) is not None
    ]
    own = protocol.get("thaw_to_infusion_minutes")
    if own is not None:
        limits.append(int(own))
    return min(limits, default=DEFAULT_THAW_WINDOW_MINUTES)


def min_thaw_minutes(session: DbSession, order: DoseOrder) -> float:
    """The shortest plausible thaw of the dose's bags: the longest minimum of its lots'
    product definitions (2 min if none says)."""
    minimums = [
        float(minutes)
        for lot in lots_of_dose(session, order)
        if (minutes := lot.product_definition.parameters.get("min_thaw_minutes")) is not None
    ]
    return max(minimums, default=DEFAULT_MIN_THAW_MINUTES)


def thaw_state(
    session: DbSession, order: DoseOrder, lots: Sequence[Lot] | None = None
) -> ThawState:
    """The dose's thaws and its deadline: the window runs from the moment the first bag went
    into the bath, so however long a thaw takes, it counts against the window. ``lots``: as
    for ``thaw_window_minutes``."""
    thaws = thaws_of(session, order)
    window = thaw_window_minutes(session, order, lots)
    started = [thaw.started_at for thaw in thaws]
    return ThawState(
        thaws=thaws,
        bag_count=len(order.bags),
        window_minutes=window,
        expires_at=min(started) + dt.timedelta(minutes=window) if started else None,
    )


def deadline(
    order: DoseOrder, products: Sequence[Mapping[str, Any]], first_started: dt.datetime | None
) -> tuple[int, dt.datetime | None]:
    """The thaw window and the deadline of ``thaw_state``, from the parameters of the
    product definitions of the dose's lots (``window_of``) and when the dose's first bag went
    into the bath (both already read: ``doses.units_read``, ``doses.doses_read``)."""
    return deadline_of(order.protocol.parameters, products, first_started)


def deadline_of(
    protocol: Mapping[str, Any],
    products: Sequence[Mapping[str, Any]],
    first_started: dt.datetime | None,
) -> tuple[int, dt.datetime | None]:
    """``deadline`` of a dose ordered under a protocol of parameters ``protocol``."""
    window = window_of_parameters(protocol, products)
    return window, first_started + dt.timedelta(minutes=window) if first_started else None


def thawing(session: DbSession) -> list[DoseOrder]:
    """Doses with a bag thawed or thawing and no infusion yet (the clinic's clock is running)."""
    return list(
        session.execute(select(DoseOrder).where(*_thawing()).order_by(DoseOrder.id)).scalars()
    )


def _thawing() -> tuple[ColumnElement[bool], ...]:
    """The condition of ``thawing``: prepared (not infused) with a thaw started."""
    return (
        DoseOrder.status == DoseStatus.PREPARED.value,
        DoseOrder.id.in_(select(Thaw.dose_order_id)),
    )


def count_thawing(session: DbSession) -> int:
    """How many doses ``thawing`` lists (one statement)."""
    return session.execute(
        select(func.count()).select_from(DoseOrder).where(*_thawing())
    ).scalar_one()


# --- internals ----------------------------------------------------------------------------------


def _require_thawable(session: DbSession, order: DoseOrder) -> None:
    code = order.dose_unit.code if order.dose_unit else _("dose order %(id)s", id=order.id)
    # By hand, not from a transition table: thawing changes the status of neither the dose,
    # its shipment nor its bags; it needs each as it is (prepared, received, dispensed).
    if order.status != DoseStatus.PREPARED.value:
        raise Conflict(
            _(
                "%(code)s is %(status)s; only a prepared dose is thawed.",
                code=code,
                status=DoseStatus(order.status).label,
            )
        )
    shipment = shipment_of(session, order)
    if shipment is None:
        raise Conflict(
            _("%(code)s has not left the lab; it is thawed at the clinic after receipt.", code=code)
        )
    if shipment.status != ShipmentStatus.RECEIVED.value:
        raise Conflict(
            _(
                "%(code)s is in shipment %(shipment)s, which is %(status)s (%(reason)s); only a "
                "received shipment that is not on hold can be thawed.",
                code=code,
                shipment=shipment.id,
                status=shipment.status_label,
                reason=shipment.hold_reason,
            )
            if shipment.hold_reason
            else _(
                "%(code)s is in shipment %(shipment)s, which is %(status)s; only a received "
                "shipment that is not on hold can be thawed.",
                code=code,
                shipment=shipment.id,
                status=shipment.status_label,
            ),
            title=_("Not received"),
        )
    blocked = [
        unit.code
        for unit in [order.dose_unit, *(bag.unit for bag in order.bags)]
        if unit is not None and unit.status != UnitStatus.DISPENSED.value
    ]
    if blocked:
        raise Conflict(
            _(
                "%(units)s cannot be thawed: not dispensed for use (quarantined, blocked or "
                "discarded).",
                units=", ".join(blocked),
            ),
            title=_("Not usable"),
        )


def _require_thawed(
    session: DbSession, order: DoseOrder, thaw: Thaw, bag: Unit, now: dt.datetime
) -> None:
    """A completion scan sooner than the product's minimum thaw, or at or before the start,
    cannot be true: refused, and the thaw keeps running (the window counts from its start)."""
    minimum = min_thaw_minutes(session, order)
    elapsed = (now - thaw.started_at).total_seconds()
    if elapsed < minimum * 60:
        raise Conflict(
            _(
                "The thaw of %(unit)s started %(seconds)s s ago; a bag takes at least "
                "%(minimum)s min to thaw, so it cannot be complete yet (a double scan?). Scan "
                "it again when it has thawed; the thaw window runs from its start.",
                unit=bag.code,
                seconds=format(max(elapsed, 0), ".0f"),
                minimum=format(minimum, "g"),
            ),
            title=_("Thaw not complete"),
        )


def _start(
    session: DbSession, bag: Unit, order: DoseOrder, *, actor: User, now: dt.datetime
) -> Thaw:
    thaw = Thaw(unit_id=bag.id, dose_order_id=order.id, started_at=now, started_by_id=actor.id)
    try:
        with session.begin_nested():  # one thaw per bag: of two scans at once, one starts it
            session.add(thaw)
    except IntegrityError as error:
        raise Conflict(
            _("The thaw of %(unit)s was started by someone else a moment ago.", unit=bag.code)
        ) from error
    _record(session, bag, "thaw started", actor=actor, now=now)
    audit.record(
        session,
        actor=actor,
        at=now,
        action="thaw.started",
        entity_type="unit",
        entity_id=bag.id,
        changes={"thaw_started_at": (None, now), "dose_order": (None, order.id)},
    )
    return thaw


def _complete(session: DbSession, thaw: Thaw, bag: Unit, *, actor: User, now: dt.datetime) -> Thaw:
    if not update_if(
        session, thaw, Thaw.completed_at.is_(None), completed_at=now, completed_by_id=actor.id
    ):
        raise Conflict(
            _("The thaw of %(unit)s was completed by someone else a moment ago.", unit=bag.code)
        )
    _record(session, bag, "thaw completed", actor=actor, now=now)
    audit.record(
        session,
        actor=actor,
        at=now,
        action="thaw.completed",
        entity_type="unit",
        entity_id=bag.id,
        changes={"thaw_completed_at": (None, now)},
    )
    return thaw


def _record(session: DbSession, bag: Unit, note: str, *, actor: User, now: dt.datetime) -> None:
    """The thaw in the bag's custody history (a scan at its location)."""
    chain.record_custody(
        session, bag, CustodyInput(EventType.SCANNED, note=note), actor=actor, now=now
    )
