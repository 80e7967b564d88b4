"""Shipments: prepared doses leave the lab in a dry shipper, every hand-off on the way is a
scanned custody event, and the receipt at the clinic accepts them or holds them for QA.

* ``dispatch``: the technician scans the dose labels into a shipment (shipper and temperature
  logger IDs) and hands it to the courier. Each dose and its bags move allocated → dispensed
  in a guarded update, so a dose leaves in one shipment only, and only when each of its units
  carries the label its status requires (``labels.service.label_states``).
* ``hand_off``: the shipper's ID (or a dose label in it) is scanned at each hand-off; the
  event is recorded on every unit in it.
* ``receive``: the clinic records when it arrived, the temperature inside the shipper, the
  condition and whether the logger showed an excursion. A temperature above the product's
  storage limit, damage or a logger excursion holds the shipment for QA; nothing in it can be
  thawed or pass the bedside check until QA accepts it.
* ``decide_hold``: QA accepts (the doses may be used) or rejects (each dose is cancelled and
  its units discarded) a held shipment with an e-signature and a reason.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import selectinload

from cellchain.chain import service as chain
from cellchain.chain.models import GONE, EventType, Unit, UnitEvent, UnitStatus
from cellchain.chain.service import CustodyInput
from cellchain.clinic.bedside.doses import lots_of_dose, scan_dose, units_of_dose
from cellchain.clinic.models import (
    HOLD_DAMAGED,
    HOLD_LOGGER,
    HOLD_TEMPERATURE,
    SHIPMENT_TRANSITIONS,
    Condition,
    Shipment,
    ShipmentItem,
    ShipmentStatus,
)
from cellchain.core import actions, audit, listing, signatures
from cellchain.core.display import UTC_ZONE, local_time
from cellchain.core.guarded import update_if
from cellchain.core.i18n import _, document_text
from cellchain.core.identifiers import InvalidIdentifier
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, require
from cellchain.core.wording import joined_text
from cellchain.dosing.models import DoseOrder, DoseStatus, Patient
from cellchain.dosing.patients import patient_products, product_refusal, summarize
from cellchain.errors import Conflict, InvalidInput, NotFound, StateConflict
from cellchain.extensions import DbSession
from cellchain.labels import service as labels
from cellchain.manufacturing.models import LotStatus
from cellchain.manufacturing.storage.storage import DEFAULT_STORAGE_MAX_C
from cellchain.notifications import service as notifications
from cellchain.sites.service import destination_site

#: Where a shipment starts.
DISPATCH_LOCATION = "GMP lab — dispatch"
ACCEPT_MEANING = "approval: held shipment accepted for clinical use"
REJECT_MEANING = "rejection: held shipment rejected, its doses discarded"


class ShipmentAction(enum.StrEnum):
    """What may be done to a shipment once dispatched."""

    HAND_OFF = "hand_off"  #: a custody hand-off on the way (the status stays)
    RECEIVE = "receive"  #: the clinic's receipt: received, or held for QA
    DECIDE = "decide"  #: QA accepts or rejects a held shipment


#: The statuses each act starts from; those that change the status, from the transition table.
SHIPMENT_ACTIONS: dict[ShipmentAction, frozenset[ShipmentStatus]] = {
    ShipmentAction.HAND_OFF: frozenset({ShipmentStatus.IN_TRANSIT}),
    ShipmentAction.RECEIVE: actions.leading_to(
        SHIPMENT_TRANSITIONS, ShipmentStatus.RECEIVED, ShipmentStatus.HELD
    ),
    ShipmentAction.DECIDE: actions.leading_to(
        SHIPMENT_TRANSITIONS, ShipmentStatus.RECEIVED, ShipmentStatus.REJECTED
    ),
}


def shipment_actions(shipment: Shipment) -> frozenset[ShipmentAction]:
    """The acts the shipment's status allows; the page offers these (permissions apart)."""
    return actions.allowed(shipment.status, SHIPMENT_ACTIONS)


@dataclass(frozen=True)
class Dispatch:
    """What the technician enters and scans to send doses to the clinic."""

    shipper_id: str
    logger_id: str
    #: where at the site, as typed (e.g. "infusion room 2"); blank: the site's name
    destination: str
    courier: str
    dose_scans: Sequence[str]
    #: the clinical site it goes to (docs/sites.md); None: the only active clinical site
    site_id: int | None = None


@dataclass(frozen=True)
class HandOff:
    """A hand-off on the way: what was scanned, who took custody, where, the temperature."""

    scan: str
    counterparty: str
    location: str | None = None
    temperature_c: float | None = None
    at: dt.datetime | None = None


@dataclass(frozen=True)
class Receipt:
    """The clinic's receipt: what was scanned, when it arrived, the temperature inside the
    shipper, its condition and whether the logger showed an excursion in transit."""

    scan: str
    temperature_c: float | None
    condition: str
    logger_excursion: bool
    received_at: dt.datetime | None = None
    note: str | None = None


def dispatch(session: DbSession, form: Dispatch, *, actor: User, now: dt.datetime) -> Shipment:
    """Send prepared doses to the clinic; refused with every problem, nothing written then."""
    errors: dict[str, list[str]] = {}
    for field in ("shipper_id", "logger_id", "courier"):
        if not getattr(form, field).strip():
            errors[field] = [_("Required.")]
    site = None
    try:  # an unknown or inactive site, or the facility, is refused (issue 22)
        site = destination_site(session, form.site_id)
    except InvalidInput as problem:
        errors["site_id"] = [problem.detail]
    orders: dict[int, DoseOrder] = {}
    scans = [scan for scan in form.dose_scans if scan.strip()]
    if not scans:
        errors.setdefault("doses", []).append(_("Scan the label of at least one prepared dose."))
    for scan in scans:
        try:
            order = scan_dose(session, scan).order
        except (InvalidIdentifier, NotFound, InvalidInput) as problem:
            # the detail itself (``str()`` would lose the English it remembers)
            errors.setdefault("doses", []).append(problem.detail)
            continue
        problem_text = _not_shippable(session, order, now)
        if problem_text:
            errors.setdefault("doses", []).append(problem_text)
        elif site is not None and order.patient.site_id != site.id:
            errors.setdefault("doses", []).append(
                _(
                    "The dose of %(study_id)s is for a patient of %(their)s, not %(site)s.",
                    study_id=order.patient.study_id,
                    their=order.patient.site.name,
                    site=site.name,
                )
            )
        orders[order.id] = order
    if errors or site is None:
        raise InvalidInput(
            _("The shipment was not dispatched: %(problems)s", problems=summarize(errors)),
            errors=errors,
        )
    shipment = Shipment(
        shipper_id=form.shipper_id.strip(),
        logger_id=form.logger_id.strip(),
        destination=form.destination.strip() or site.name,
        destination_site_id=site.id,
        status=ShipmentStatus.IN_TRANSIT.value,
        dispatched_at=now,
        dispatched_by_id=actor.id,
    )
    session.add(shipment)
    session.flush()
    for order in orders.values():
        # The guarded status change comes first: of two dispatches of one dose at once, the
        # second finds it dispensed (a clear 409) before it could collide on the item row.
        for unit in units_of_dose(order):
            try:
                chain.change_status(
                    session,
                    unit,
                    UnitStatus.DISPENSED,
                    actor=actor,
                    now=now,
                    reason=f"dispatched to the clinic in shipment {shipment.id}",
                )
            except StateConflict:
                raise
            except Conflict as error:
                raise Conflict(
                    f"{unit.code} was dispatched or changed by someone else a moment ago; "
                    "reload and scan the doses again.",
                    title="Dose taken",
                ) from error
            chain.record_custody(
                session,
                unit,
                CustodyInput(
                    EventType.HANDED_OFF,
                    location=DISPATCH_LOCATION,
                    counterparty=form.courier,
                    note=_shipment_note(shipment),
                ),
                actor=actor,
                now=now,
            )
        session.add(ShipmentItem(shipment_id=shipment.id, dose_order_id=order.id))
    session.flush()
    session.refresh(shipment)
    audit.record(
        session,
        actor=actor,
        at=now,
        action="shipment.dispatched",
        entity_type="shipment",
        entity_id=shipment.id,
        changes={
            "shipper_id": (None, shipment.shipper_id),
            "logger_id": (None, shipment.logger_id),
            "destination": (None, shipment.destination),
            "site": (None, site.code),
            "courier": (None, form.courier.strip()),
            # a dispatched order is prepared: it has its dose unit
            "doses": (None, [o.dose_unit.code for o in orders.values()]),  # type: ignore[union-attr]
        },
    )
    notifications.notify(
        session,
        "shipment_dispatched",
        entity_type="shipment",
        entity_id=shipment.id,
        params={
            "shipment_id": shipment.id,
            "shipment": shipment.id,
            "shipper": shipment.shipper_id,
            "destination": shipment.destination,
            "doses": len(orders),
        },
        actor=actor,
        now=now,
    )
    return shipment


def hand_off(
    session: DbSession, shipment: Shipment, form: HandOff, *, actor: User, now: dt.datetime
) -> list[UnitEvent]:
    """A hand-off of the shipment on its way, recorded on every unit in it."""
    if ShipmentAction.HAND_OFF not in shipment_actions(shipment):
        raise Conflict(
            _(
                "Shipment %(shipment)s is %(status)s; hand-offs end at its receipt.",
                shipment=shipment.id,
                status=shipment.status_label,
            ),
            title=_("Shipment not in transit"),
        )
    _require_scan_of(session, shipment, form.scan)
    events = [
        chain.record_custody(
            session,
            unit,
            CustodyInput(
                EventType.HANDED_OFF,
                at=form.at,
                location=form.location,
                counterparty=form.counterparty,
                temperature_c=form.temperature_c,
                note=_shipment_note(shipment),
            ),
            actor=actor,
            now=now,
        )
        for unit in _units(shipment)
    ]
    audit.record(
        session,
        actor=actor,
        at=now,
        action="shipment.handed_off",
        entity_type="shipment",
        entity_id=shipment.id,
        changes={
            "counterparty": (None, form.counterparty.strip()),
            "temperature_c": (None, form.temperature_c),
        },
    )
    return events


def receive(
    session: DbSession,
    shipment: Shipment,
    form: Receipt,
    *,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> Shipment:
    """Receive the shipment at the clinic; an excursion, damage or a logger alarm holds it."""
    if ShipmentAction.RECEIVE not in shipment_actions(shipment):
        when = (
            _(" at %(when)s", when=local_time(shipment.received_at, zone))
            if shipment.received_at
            else ""
        )
        who = _(" by %(who)s", who=shipment.received_by.full_name) if shipment.received_by else ""
        raise Conflict(
            _(
                "Shipment %(shipment)s was already received%(when)s%(who)s; it is %(status)s. "
                "A shipment is received once.",
                shipment=shipment.id,
                when=when,
                who=who,
                status=shipment.status_label,
            ),
            title=_("Already received"),
        )
    errors = _receipt_errors(form, shipment, now)
    if errors:
        raise InvalidInput(
            _("The receipt was not recorded: %(problems)s", problems=summarize(errors)),
            errors=errors,
        )
    _require_scan_of(session, shipment, form.scan)
    assert form.temperature_c is not None
    limit = storage_limit(session, shipment)
    reasons = hold_reasons(form, limit)
    target = ShipmentStatus.HELD if reasons else ShipmentStatus.RECEIVED
    received_at = form.received_at or now
    # Conditional on the status read: a shipment received twice at once is received once.
    if not update_if(
        session,
        shipment,
        Shipment.status == ShipmentStatus.IN_TRANSIT.value,
        status=target.value,
        received_at=received_at,
        received_by_id=actor.id,
        arrival_temperature_c=form.temperature_c,
        condition=form.condition,
        logger_excursion=form.logger_excursion,
        receipt_note=(form.note or "").strip() or None,
        hold_reason=" ".join(reasons) or None,
    ):
        raise Conflict(
            _(
                "Shipment %(shipment)s was received by someone else a moment ago.",
                shipment=shipment.id,
            ),
            title=_("Already received"),
        )
    # A dose destroyed on the way (dosing/exceptions.py) stays destroyed: the shipper's arrival is
    # still recorded for the doses still live, its discarded units get no receipt (they are gone,
    # chain.GONE) and the audit entry names them, so the receiver knows which bags to return.
    units = _units(shipment)
    gone = [unit for unit in units if UnitStatus(unit.status) in GONE]
    for unit in (unit for unit in units if unit not in gone):
        chain.record_custody(
            session,
            unit,
            CustodyInput(
                EventType.RECEIVED,
                at=received_at,
                location=shipment.destination,
                temperature_c=form.temperature_c,
                note=_shipment_note(shipment)
                + (f"; held for QA: {' '.join(reasons)}" if reasons else ""),
            ),
            actor=actor,
            now=now,
        )
    audit.record(
        session,
        actor=actor,
        at=now,
        action="shipment.held" if reasons else "shipment.received",
        entity_type="shipment",
        entity_id=shipment.id,
        changes={
            "status": (ShipmentStatus.IN_TRANSIT.value, target.value),
            "arrival_temperature_c": (None, form.temperature_c),
            "condition": (None, form.condition),
            "logger_excursion": (None, form.logger_excursion),
            **(
                {"discarded_before_receipt": (None, ", ".join(unit.code for unit in gone))}
                if gone
                else {}
            ),
        },
        reason=" ".join(reasons) or None,
    )
    if reasons:
        notifications.notify(
            session,
            "receipt_held",
            entity_type="shipment",
            entity_id=shipment.id,
            params={
                "shipment_id": shipment.id,
                "shipment": shipment.id,
                "shipper": shipment.shipper_id,
                "destination": shipment.destination,
                "reasons": " ".join(reasons),
            },
            actor=actor,
            now=now,
        )
    return shipment


def decide_hold(
    session: DbSession,
    shipment: Shipment,
    *,
    accept: bool,
    reason: str,
    user: User,
    password: str,
    now: dt.datetime,
) -> Shipment:
    """QA's signed decision on a held shipment: accept it for use, or reject it (each dose is
    cancelled and its units discarded; a new dose must be ordered)."""
    require(user, Permission.DECIDE_HOLDS)
    target = ShipmentStatus.RECEIVED if accept else ShipmentStatus.REJECTED
    if ShipmentAction.DECIDE not in shipment_actions(shipment):
        raise StateConflict(f"Shipment {shipment.id}", shipment.status, target.value)
    if not reason.strip():
        raise InvalidInput(
            _("Say why the held shipment is accepted or rejected."),
            errors={"reason": [_("Required.")]},
        )
    shipment.decision_reason = reason.strip()
    session.flush()
    signatures.sign(
        session,
        record=shipment,
        meaning=ACCEPT_MEANING if accept else REJECT_MEANING,
        user=user,
        password=password,
        now=now,
        permission=Permission.DECIDE_HOLDS,
    )
    if not update_if(
        session,
        shipment,
        Shipment.status == ShipmentStatus.HELD.value,
        status=target.value,
        decided_at=now,
        decided_by_id=user.id,
    ):
        raise Conflict(
            _(
                "Shipment %(shipment)s was decided by someone else a moment ago.",
                shipment=shipment.id,
            )
        )
    if not accept:
        for item in shipment.items:
            # a dose destroyed on the way is already cancelled, its units already discarded
            if item.dose_order.status != DoseStatus.CANCELLED.value:
                _discard_dose(session, item.dose_order, shipment, user=user, now=now)
    audit.record(
        session,
        actor=user,
        at=now,
        action="shipment.accepted" if accept else "shipment.rejected",
        entity_type="shipment",
        entity_id=shipment.id,
        changes={"status": (ShipmentStatus.HELD.value, target.value)},
        reason=reason.strip(),
    )
    return shipment


# --- reading ------------------------------------------------------------------------------------


def get_shipment(session: DbSession, shipment_id: int) -> Shipment:
    return get_or_404(session, Shipment, shipment_id, "shipment", id_prefix="")


def list_shipments(session: DbSession, limit: int = 100) -> list[Shipment]:
    return list(
        session.execute(select(Shipment).order_by(Shipment.id.desc()).limit(limit)).scalars()
    )


def count_shipments(session: DbSession, status: ShipmentStatus) -> int:
    """How many shipments are in ``status`` (one statement): in transit, the clinic's to
    receive; held, QA's to decide."""
    return session.execute(
        select(func.count()).select_from(Shipment).where(Shipment.status == status.value)
    ).scalar_one()


def shipment_of(session: DbSession, order: DoseOrder) -> Shipment | None:
    """The shipment the dose left the lab in, if it has."""
    return session.execute(
        select(Shipment)
        .join(ShipmentItem, ShipmentItem.shipment_id == Shipment.id)
        .where(ShipmentItem.dose_order_id == order.id)
    ).scalar_one_or_none()


def ready_to_ship(session: DbSession) -> list[DoseOrder]:
    """Prepared doses still in the lab: second-checked, never shipped."""
    shipped = select(ShipmentItem.dose_order_id)
    return list(
        session.execute(
            select(DoseOrder)
            .where(DoseOrder.status == DoseStatus.PREPARED.value, DoseOrder.id.not_in(shipped))
            .order_by(DoseOrder.planned_on, DoseOrder.id)
        ).scalars()
    )


def labels_missing(
    session: DbSession, orders: Sequence[DoseOrder]
) -> dict[int, list[labels.LabelState]]:
    """For each dose order, its units whose label is missing or superseded (what the dispatch
    would refuse), so the page can say what to print and apply before scanning it."""
    return {
        order.id: [
            state for state in labels.label_states(session, units_of_dose(order)) if not state.ok
        ]
        for order in orders
    }


def storage_limit(session: DbSession, shipment: Shipment) -> float:
    """The warmest temperature the shipment's doses may arrive at: the strictest storage
    limit of their products (−135 °C by default)."""
    limits = [
        float(
            lot.product_definition.parameters.get(
                "storage_max_temperature_c", DEFAULT_STORAGE_MAX_C
            )
        )
        for item in shipment.items
        for lot in lots_of_dose(session, item.dose_order)
    ]
    return min(limits, default=DEFAULT_STORAGE_MAX_C)


def hold_reasons(form: Receipt, limit: float) -> list[str]:
    """Why a receipt holds the shipment for QA; none means it is accepted."""
    reasons = []
    if form.temperature_c is not None and form.temperature_c > limit:
        reasons.append(
            HOLD_TEMPERATURE.message
            % {"temperature": f"{form.temperature_c:g}", "limit": f"{limit:g}"}
        )
    if form.condition == Condition.DAMAGED.value:
        reasons.append(HOLD_DAMAGED.message)
    if form.logger_excursion:
        reasons.append(HOLD_LOGGER.message)
    return reasons


# --- internals ----------------------------------------------------------------------------------


def _not_shippable(session: DbSession, order: DoseOrder, now: dt.datetime) -> str | None:
    """Why the dose may not leave the lab, or None: the hard blocks before a bag is dispensed
    (DOMAIN.md §7) that can have changed since the second check, and every unit's label: the
    dose label and each bag's released label printed and applied, none superseded."""
    code = order.dose_unit.code if order.dose_unit else _("dose order %(id)s", id=order.id)
    # By hand, among reasons given all at once before anything changes: dispatch leaves the
    # dose prepared, and the units' change to dispensed is refused by UNIT_TRANSITIONS itself
    # (chain.change_status), after these checks.
    if order.status != DoseStatus.PREPARED.value:
        return _(
            "%(code)s is %(status)s; only a prepared (second-checked) dose is shipped.",
            code=code,
            status=DoseStatus(order.status).label,
        )
    shipped = shipment_of(session, order)
    if shipped is not None:
        return _(
            "%(code)s already left the lab in shipment %(shipment)s.",
            code=code,
            shipment=shipped.id,
        )
    problems = [
        _(
            "%(unit)s is %(status)s.",
            unit=unit.code,
            status=getattr(unit, "status_name", unit.status),
        )
        for unit in units_of_dose(order)
        if unit.status != UnitStatus.ALLOCATED.value
    ]
    for lot in lots_of_dose(session, order):
        if lot.status != LotStatus.RELEASED.value:
            problems.append(
                _(
                    "Lot %(lot)s is %(status)s, not released.",
                    lot=lot.lot_number,
                    # the stored status word in the reader's language
                    status=document_text(lot.status),
                )
            )
        elif lot.expires_at is None or lot.expires_at <= now:
            problems.append(_("Lot %(lot)s has expired.", lot=lot.lot_number))
        # a dose leaves the lab only of a product the patient's protocol allows (issue 22)
        wrong = product_refusal(
            patient_products(session, order.patient, at=now),
            lot.product_definition.code,
            order.patient.protocol.code,
        )
        if wrong:
            problems.append(_("Lot %(lot)s: %(problem)s", lot=lot.lot_number, problem=wrong))
    # a unit leaves the lab only with the label its status requires (DOMAIN.md §7, §9), said
    # in the reader's language (the refusal's audit entry reads the English: ``english_of``)
    problems.extend(
        state.problem
        for state in labels.label_states(session, units_of_dose(order))
        if state.problem is not None
    )
    if problems:
        return _(
            "%(code)s cannot be dispensed: %(problems)s",
            code=code,
            # joined keeping each problem's English, so the sentence's English is all English
            problems=joined_text(problems),
        )
    return None


def _receipt_errors(form: Receipt, shipment: Shipment, now: dt.datetime) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if form.temperature_c is None or not math.isfinite(form.temperature_c):
        errors["temperature_c"] = [_("Read the temperature inside the shipper on arrival.")]
    elif not -273.15 <= form.temperature_c <= 100:
        errors["temperature_c"] = [_("Must be between −273.15 and 100 °C.")]
    if form.condition not in {member.value for member in Condition}:
        errors["condition"] = [_("Choose intact or damaged.")]
    if form.received_at is not None:
        if form.received_at > now:
            errors["received_at"] = [_("A shipment cannot arrive in the future.")]
        elif form.received_at < shipment.dispatched_at:
            errors["received_at"] = [_("It cannot arrive before it was dispatched.")]
    return errors


def _require_scan_of(session: DbSession, shipment: Shipment, scan: str) -> None:
    """The scan must be the shipper's own ID or a label of a dose in it."""
    text = (scan or "").strip()
    if text and text == shipment.shipper_id:
        return
    if not text:
        raise InvalidInput(
            _("Scan the dry shipper's ID or a dose label in it."),
            errors={"scan": [_("Required.")]},
        )
    try:
        order = scan_dose(session, text).order
    except (InvalidIdentifier, NotFound, InvalidInput) as problem:
        raise InvalidInput(
            _(
                "%(scan)s is neither shipper %(shipper)s nor a dose in it: %(problem)s",
                scan=repr(text),
                shipper=shipment.shipper_id,
                problem=str(problem),
            ),
            errors={"scan": [_("Not this shipment.")]},
        ) from problem
    if order.id not in {item.dose_order_id for item in shipment.items}:
        raise InvalidInput(
            _(
                "The dose scanned is not in shipment %(shipment)s (shipper %(shipper)s).",
                shipment=shipment.id,
                shipper=shipment.shipper_id,
            ),
            errors={"scan": [_("Not this shipment.")]},
        )


def _units(shipment: Shipment) -> list[Unit]:
    return [unit for item in shipment.items for unit in units_of_dose(item.dose_order)]


def _shipment_note(shipment: Shipment) -> str:
    return f"shipment {shipment.id}: shipper {shipment.shipper_id}, logger {shipment.logger_id}"


def _discard_dose(
    session: DbSession, order: DoseOrder, shipment: Shipment, *, user: User, now: dt.datetime
) -> None:
    """A rejected shipment's dose: the order is cancelled and its units discarded."""
    reason = f"shipment {shipment.id} rejected by QA: {shipment.decision_reason}"
    if not update_if(
        session,
        order,
        DoseOrder.status == DoseStatus.PREPARED.value,
        status=DoseStatus.CANCELLED.value,
    ):
        raise Conflict(f"Dose order {order.id} changed a moment ago; reload and decide again.")
    for unit in units_of_dose(order):
        if unit.status == UnitStatus.DISPENSED.value:
            chain.change_status(
                session, unit, UnitStatus.DISCARDED, actor=user, now=now, reason=reason
            )
    audit.record(
        session,
        actor=user,
        at=now,
        action="dose.cancelled",
        entity_type="dose_order",
        entity_id=order.id,
        changes={"status": (DoseStatus.PREPARED.value, DoseStatus.CANCELLED.value)},
        reason=reason,
    )


# --- the list (issue 21) ----------------------------------------------------------------------


def _shipment_search(text: str) -> ColumnElement[bool]:
    """A shipment matches a search text in its shipper or logger ID, its destination or the
    study ID of a patient whose dose it carries."""
    pattern = "%" + listing.like_escaped(text) + "%"
    return or_(
        Shipment.shipper_id.ilike(pattern, escape="\\"),
        Shipment.logger_id.ilike(pattern, escape="\\"),
        Shipment.destination.ilike(pattern, escape="\\"),
        Shipment.items.any(
            ShipmentItem.dose_order.has(
                DoseOrder.patient.has(Patient.study_id.ilike(pattern, escape="\\"))
            )
        ),
    )


#: The shipments list: newest first, 100 a page (what the list showed before).
SHIPMENT_LIST = listing.ListSpec(
    sorts={
        "dispatched": Shipment.id,
        "status": Shipment.status,
        "received": Shipment.received_at,
        "shipper": Shipment.shipper_id,
    },
    default_sort="dispatched",
    tiebreaker=Shipment.id,
    search=_shipment_search,
    default_page_size=100,
)


def shipments_page(
    session: DbSession, request: listing.PageRequest, *, status: ShipmentStatus | None = None
) -> listing.Page[Shipment]:
    """A page of the shipments with their doses and patients, read once for the page."""
    query = select(Shipment).options(
        selectinload(Shipment.items)
        .selectinload(ShipmentItem.dose_order)
        .selectinload(DoseOrder.patient)
    )
    if status is not None:
        query = query.where(Shipment.status == status.value)
    return listing.fetch_page(session, query, SHIPMENT_LIST, request)
