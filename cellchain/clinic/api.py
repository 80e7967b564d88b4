"""API of the clinic, for bedside devices and clinic systems: shipments, receipt, thaw, the
bedside check and its sign-off, the infusion."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from cellchain.clinic import bedside, infusions, shipments, thaw
from cellchain.clinic.models import BedsideCheck, Infusion, Shipment
from cellchain.clinic.schemas import (
    BedsideCheckOut,
    BedsideIn,
    DecisionIn,
    DispatchIn,
    HandOffIn,
    InfusionDetailOut,
    InfusionEndIn,
    InfusionOut,
    ScanIn,
    ShipmentDetailOut,
    ShipmentOut,
    ShipmentReceiptIn,
    SignOffIn,
    ThawOut,
    TimeFlagAcknowledgementIn,
)
from cellchain.core.identifiers import InvalidIdentifier
from cellchain.core.models import User
from cellchain.core.roles import Permission
from cellchain.dosing import patients
from cellchain.errors import Conflict, NotFound
from cellchain.extensions import DbSession, db
from cellchain.http import AuditedRefusal, acting_user, now, requires, site_zone, unit_of_work
from cellchain.traceability.notices import WithRecalls, recalls_naming

shipments_api = Blueprint(
    "shipments_api", __name__, url_prefix="/api/v1", description="Shipments to the clinic"
)
bedside_api = Blueprint(
    "bedside_api",
    __name__,
    url_prefix="/api/v1",
    description="Thaw, bedside verification, two-person sign-off and infusions",
)
blueprints = (shipments_api, bedside_api)


# --- the use cases as the acting user (shared by the pages) -------------------------------------


def dispatch_as_user(session: DbSession, data: dict[str, Any]) -> Shipment:
    return shipments.dispatch(
        session,
        shipments.Dispatch(
            shipper_id=data["shipper_id"],
            logger_id=data["logger_id"],
            destination=data["destination"],
            courier=data["courier"],
            dose_scans=data["doses"],
        ),
        actor=acting_user(),
        now=now(),
    )


def hand_off_as_user(session: DbSession, shipment_id: int, data: dict[str, Any]) -> Shipment:
    shipment = shipments.get_shipment(session, shipment_id)
    shipments.hand_off(session, shipment, shipments.HandOff(**data), actor=acting_user(), now=now())
    return shipment


def receive_as_user(session: DbSession, shipment_id: int, data: dict[str, Any]) -> Shipment:
    shipment = shipments.get_shipment(session, shipment_id)
    return shipments.receive(
        session,
        shipment,
        shipments.Receipt(**data),
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
    )


def decide_as_user(session: DbSession, shipment_id: int, data: dict[str, Any]) -> Shipment:
    return shipments.decide_hold(
        session,
        shipments.get_shipment(session, shipment_id),
        accept=data["accept"],
        reason=data["reason"],
        user=acting_user(),
        password=data["password"],
        now=now(),
    )


def thaw_as_user(session: DbSession, scan: str) -> dict[str, Any]:
    """Thaw by scan; what it did and the dose's deadline."""
    try:
        step = thaw.scan_thaw(session, scan, actor=acting_user(), now=now())
    except InvalidIdentifier as problem:  # never repeat an unreadable scan (it may be an MRN)
        raise bedside.unreadable(problem, "scan") from problem
    state = thaw.thaw_state(session, step.order)
    return {
        "dose_order_id": step.order.id,
        "started": [t.unit.code for t in step.started],
        "completed": [t.unit.code for t in step.completed],
        "expires_at": state.expires_at,
        "window_minutes": state.window_minutes,
    }


def verify_as_user(session: DbSession, data: dict[str, Any]) -> BedsideCheck:
    return bedside.verify(
        session, data["wristband"], data["label"], actor=acting_user(), now=now(), zone=site_zone()
    )


def sign_as_user(session: DbSession, check_id: int, data: dict[str, Any]) -> BedsideCheck:
    """The acting clinician and a second clinician (by username) sign the check."""
    second = session.execute(
        select(User).where(User.username == data["second_username"].strip())
    ).scalar_one_or_none()
    if second is None:
        raise NotFound(f"There is no user {data['second_username']!r}.")
    return bedside.sign_off(
        session,
        bedside.get_check(session, check_id),
        first=bedside.Signer(acting_user(), data["password"]),
        second=bedside.Signer(second, data["second_password"]),
        now=now(),
    )


def start_as_user(session: DbSession, check_id: int) -> infusions.Started:
    return infusions.start(
        session,
        bedside.get_check(session, check_id),
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
    )


def end_as_user(session: DbSession, infusion_id: int, data: dict[str, Any]) -> Infusion:
    return infusions.end(
        session,
        infusions.get_infusion(session, infusion_id),
        infusions.InfusionEnd(**data),
        actor=acting_user(),
        now=now(),
    )


def acknowledge_as_user(session: DbSession, infusion_id: int, data: dict[str, Any]) -> Infusion:
    """The acting clinician acknowledges an infusion's time flag with their own password."""
    return infusions.acknowledge_time_flag(
        session,
        infusions.get_infusion(session, infusion_id),
        user=acting_user(),
        password=data["password"],
        note=data["note"],
        now=now(),
    )


def refused(action: str, entity_type: str, entity_id: str | int) -> AuditedRefusal:
    """A clinic refusal on the record (the issue's "a clear refusal with an audit entry")."""
    return AuditedRefusal(action=action, entity_type=entity_type, entity_id=entity_id)


# --- shipments ----------------------------------------------------------------------------------


@shipments_api.get("/shipments")
@requires(Permission.READ_RECORDS)
@shipments_api.response(200, ShipmentOut(many=True))
def list_shipments() -> Any:
    """The latest shipments, newest first, each with the recalls that name its doses."""
    found = shipments.list_shipments(db.session)
    named = recalls_naming(db.session, doses=[i.dose_order_id for s in found for i in s.items])
    return [WithRecalls(s, named.of_doses(i.dose_order_id for i in s.items)) for s in found]


@shipments_api.post("/shipments")
@requires(Permission.SHIP_DOSES)
@shipments_api.arguments(DispatchIn)
@shipments_api.response(201, ShipmentOut)
def dispatch(data: dict[str, Any]) -> Any:
    """Dispatch prepared doses (scanned dose labels) in a dry shipper, handed to the courier."""
    with unit_of_work(refused("shipment.dispatch_refused", "shipment", "new")) as session:
        shipment = dispatch_as_user(session, data)
    return shipment


@shipments_api.get("/shipments/<int:shipment_id>")
@requires(Permission.READ_RECORDS)
@shipments_api.response(200, ShipmentDetailOut)
def get_shipment(shipment_id: int) -> Any:
    """One shipment, with the recalls that name its doses."""
    shipment = shipments.get_shipment(db.session, shipment_id)
    doses = [item.dose_order_id for item in shipment.items]
    return WithRecalls(shipment, recalls_naming(db.session, doses=doses).all())


@shipments_api.post("/shipments/<int:shipment_id>/hand-offs")
@requires(Permission.RECORD_CUSTODY)
@shipments_api.arguments(HandOffIn)
@shipments_api.response(201, ShipmentOut)
def hand_off(data: dict[str, Any], shipment_id: int) -> Any:
    """A hand-off on the way: the shipper (or a dose label) scanned, who took custody."""
    with unit_of_work(refused("shipment.hand_off_refused", "shipment", shipment_id)) as session:
        shipment = hand_off_as_user(session, shipment_id, data)
    return shipment


@shipments_api.post("/shipments/<int:shipment_id>/receipt")
@requires(Permission.RECEIVE_SHIPMENTS)
@shipments_api.arguments(ShipmentReceiptIn)
@shipments_api.response(200, ShipmentOut)
def receive(data: dict[str, Any], shipment_id: int) -> Any:
    """Receive at the clinic; an excursion, damage or logger alarm holds it for QA (409 if it
    was already received)."""
    with unit_of_work(refused("shipment.receipt_refused", "shipment", shipment_id)) as session:
        shipment = receive_as_user(session, shipment_id, data)
    return shipment


@shipments_api.post("/shipments/<int:shipment_id>/decision")
@requires(Permission.DECIDE_HOLDS)
@shipments_api.arguments(DecisionIn)
@shipments_api.response(200, ShipmentOut)
def decide(data: dict[str, Any], shipment_id: int) -> Any:
    """QA accepts or rejects a held shipment with an e-signature and a reason."""
    with unit_of_work(refused("shipment.decision_refused", "shipment", shipment_id)) as session:
        shipment = decide_as_user(session, shipment_id, data)
    return shipment


# --- thaw, bedside, infusion --------------------------------------------------------------------


@bedside_api.post("/thaw")
@requires(Permission.THAW_DOSES)
@bedside_api.arguments(ScanIn)
@bedside_api.response(200, ThawOut)
def thaw_scan(data: dict[str, Any]) -> Any:
    """Scan a bag (or the dose label for every bag): starts its thaw, or completes it."""
    with unit_of_work(refused("thaw.refused", "scan", "thaw")) as session:
        result = thaw_as_user(session, data["scan"])
    return result


@bedside_api.post("/bedside/checks")
@requires(Permission.ADMINISTER_DOSES)
@bedside_api.arguments(BedsideIn)
@bedside_api.response(201, BedsideCheckOut)
def verify(data: dict[str, Any]) -> Any:
    """Wristband and label scanned together: the verdict (go/stop) and every check. A stop is
    recorded like a go; 201 either way — read ``verdict``."""
    with unit_of_work(refused("bedside.scan_refused", "bedside_check", "new")) as session:
        check = verify_as_user(session, data)
    return bedside.summary(db.session, check, now=now())


@bedside_api.get("/bedside/checks/<int:check_id>")
@requires(Permission.READ_RECORDS)
@bedside_api.response(200, BedsideCheckOut)
def get_check(check_id: int) -> Any:
    return bedside.summary(db.session, bedside.get_check(db.session, check_id), now=now())


@bedside_api.post("/bedside/checks/<int:check_id>/signatures")
@requires(Permission.ADMINISTER_DOSES)
@bedside_api.arguments(SignOffIn)
@bedside_api.response(200, BedsideCheckOut)
def sign(data: dict[str, Any], check_id: int) -> Any:
    """Two clinicians sign a go: the acting one and a second one, each with their password."""
    with unit_of_work(refused("bedside.sign_refused", "bedside_check", check_id)) as session:
        check = sign_as_user(session, check_id, data)
    return bedside.summary(db.session, check, now=now())


@bedside_api.post("/bedside/checks/<int:check_id>/start")
@requires(Permission.ADMINISTER_DOSES)
@bedside_api.response(201, InfusionOut)
def start(check_id: int) -> Any:
    """Start the infusion from a go signed by two clinicians. Every check is made again now;
    if one fails a stop is recorded and the answer is 409 naming it."""
    with unit_of_work(refused("infusion.start_refused", "bedside_check", check_id)) as session:
        started = start_as_user(session, check_id)
    if started.stop is not None:
        raise Conflict(
            f"Stopped: bedside check {started.stop.id} failed "
            + "; ".join(f"{c['title']}: {c['detail']}" for c in started.stop.failed),
            title="Stopped at the start",
        )
    return started.infusion


@bedside_api.get("/infusions/<int:infusion_id>")
@requires(Permission.READ_RECORDS)
@bedside_api.response(200, InfusionDetailOut)
def get_infusion(infusion_id: int) -> Any:
    """One infusion, with the recalls that name its dose."""
    infusion = infusions.get_infusion(db.session, infusion_id)
    found = recalls_naming(db.session, doses=[infusion.dose_order_id])
    return WithRecalls(infusion, found.dose(infusion.dose_order_id))


@bedside_api.post("/infusions/<int:infusion_id>/end")
@requires(Permission.ADMINISTER_DOSES)
@bedside_api.arguments(InfusionEndIn)
@bedside_api.response(200, InfusionOut)
def end(data: dict[str, Any], infusion_id: int) -> Any:
    """The end: time, volume infused, rate, any reaction (stopped early needs the reason)."""
    with unit_of_work(refused("infusion.end_refused", "infusion", infusion_id)) as session:
        infusion = end_as_user(session, infusion_id, data)
    return infusion


@bedside_api.post("/infusions/<int:infusion_id>/acknowledge")
@requires(Permission.ADMINISTER_DOSES)
@bedside_api.arguments(TimeFlagAcknowledgementIn)
@bedside_api.response(200, InfusionOut)
def acknowledge(data: dict[str, Any], infusion_id: int) -> Any:
    """A second clinician (not whoever recorded the end) confirms flagged times as recorded,
    with a note and their own password; until then the patient's next dose is not ordered."""
    with unit_of_work(refused("infusion.acknowledge_refused", "infusion", infusion_id)) as session:
        infusion = acknowledge_as_user(session, infusion_id, data)
    return infusion


@bedside_api.get("/patients/<int:patient_id>/infusions")
@requires(Permission.READ_RECORDS)
@bedside_api.response(200, InfusionOut(many=True))
def patient_infusions(patient_id: int) -> Any:
    return infusions.infusions_of(db.session, patients.get_patient(db.session, patient_id))
