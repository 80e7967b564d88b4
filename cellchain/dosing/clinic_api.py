"""API of patients, weights and dose orders: enrol, weigh, plan and order a dose, second check."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from cellchain.core.models import User
from cellchain.core.roles import Permission
from cellchain.dosing import orders, patients
from cellchain.dosing.models import DoseOrder, Patient, Weight
from cellchain.dosing.schemas import (
    DoseDetailOut,
    DoseOrderIn,
    DoseOrderOut,
    DosePlanOut,
    EnrolIn,
    PatientDetailOut,
    PatientOut,
    SecondCheckIn,
    WeightConfirmIn,
    WeightIn,
    WeightOut,
)
from cellchain.errors import NotFound
from cellchain.extensions import DbSession, db
from cellchain.http import (
    AuditedRefusal,
    acting_user,
    facility_code,
    now,
    requires,
    site_zone,
    unit_of_work,
)
from cellchain.traceability.notices import WithRecalls, recalls_naming

patients_api = Blueprint(
    "patients_api", __name__, url_prefix="/api/v1", description="Patients and dose orders"
)
blueprints = (patients_api,)


def enrolment_of(data: dict[str, Any]) -> patients.Enrolment:
    """Loaded ``EnrolIn`` data as the service's enrolment."""
    return patients.Enrolment(
        study_id=data["study_id"],
        date_of_birth=data["date_of_birth"],
        sex=data["sex"],
        arm=data["arm"],
        randomization_number=data["randomization_number"],
        day0=data["day0"],
        answers={
            code: patients.ChecklistAnswer(item.get("answer"), item.get("value"))
            for code, item in data["answers"].items()
        },
    )


def override_of(data: dict[str, Any] | None) -> orders.Override | None:
    """The investigator named in an override, by username."""
    if not data:
        return None
    investigator = db.session.execute(
        select(User).where(User.username == data["investigator"])
    ).scalar_one_or_none()
    if investigator is None:
        raise NotFound(f"There is no user {data['investigator']!r}.")
    return orders.Override(investigator, data["password"], data["reason"])


def enrol_as_user(session: DbSession, data: dict[str, Any]) -> Patient:
    """Enrol from loaded ``EnrolIn`` data as the acting user (the page and the API)."""
    return patients.enrol(
        session,
        patients.protocol_in_force(session),
        enrolment_of(data),
        facility_code=facility_code(),
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
    )


def weigh_as_user(session: DbSession, patient_id: int, data: dict[str, Any]) -> Weight:
    """Record a weight from loaded ``WeightIn`` data (measured now unless said otherwise)."""
    return patients.record_weight(
        session,
        patients.get_patient(session, patient_id),
        weight_kg=data["weight_kg"],
        measured_at=data["measured_at"] or now(),
        source=data["source"],
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
    )


def confirm_weight_as_user(
    session: DbSession, patient_id: int, weight_id: int, data: dict[str, Any]
) -> Weight:
    """The acting user countersigns a weight that changed, with their own password."""
    patient = patients.get_patient(session, patient_id)
    return patients.confirm_weight(
        session,
        patients.get_weight(session, patient, weight_id),
        user=acting_user(),
        password=data["password"],
        now=now(),
    )


def weight_refused(patient_id: int) -> AuditedRefusal:
    """A weight refused (implausible, misdated) or a confirmation refused, on the record."""
    return AuditedRefusal(action="weight.refused", entity_type="patient", entity_id=patient_id)


def order_as_user(
    session: DbSession, patient_id: int, visit: str, override: dict[str, Any] | None
) -> DoseOrder:
    """Order the visit's dose as the acting user, with an investigator's override if given."""
    return orders.order_dose(
        session,
        patients.get_patient(session, patient_id),
        visit,
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
        override=override_of(override),
    )


def check_as_user(session: DbSession, order_id: int, data: dict[str, Any]) -> DoseOrder:
    """The acting user's second check from loaded ``SecondCheckIn`` data."""
    return orders.second_check(
        session,
        orders.get_order(session, order_id),
        checker=acting_user(),
        password=data["password"],
        volume_ml=data["volume_ml"],
        bag_codes=data["bags"],
        now=now(),
    )


@patients_api.get("/patients")
@requires(Permission.READ_RECORDS)
@patients_api.response(200, PatientOut(many=True))
def list_patients() -> Any:
    """Every patient by study ID (no names, no record numbers), each with the recalls that
    name them."""
    found = patients.list_patients(db.session)
    named = recalls_naming(db.session, patients=[p.id for p in found])
    return [WithRecalls(p, named.patient(p.id)) for p in found]


@patients_api.post("/patients")
@requires(Permission.ENROL_PATIENTS)
@patients_api.arguments(EnrolIn)
@patients_api.response(201, PatientDetailOut)
def enrol(data: dict[str, Any]) -> Any:
    """Enrol a patient under the protocol in force: age and checklist checked, COI allocated."""
    with unit_of_work() as session:
        patient = enrol_as_user(session, data)
    return patient


@patients_api.get("/patients/<int:patient_id>")
@requires(Permission.READ_RECORDS)
@patients_api.response(200, PatientDetailOut)
def get_patient(patient_id: int) -> Any:
    """A patient with weights and the visit schedule, and the recalls that name them (a
    lookback listing them, or a dose of theirs withdrawn)."""
    patient = patients.get_patient(db.session, patient_id)
    return WithRecalls(patient, recalls_naming(db.session, patients=[patient.id]).all())


@patients_api.post("/patients/<int:patient_id>/weights")
@requires(Permission.RECORD_WEIGHTS)
@patients_api.arguments(WeightIn)
@patients_api.response(201, WeightOut)
def record_weight(data: dict[str, Any], patient_id: int) -> Any:
    """A body weight (measured now unless said otherwise). Refused outside the protocol's
    plausible bounds, in the future, before birth or before enrolment; recorded unconfirmed
    (``needs_confirmation``) when it changed by the protocol's flag."""
    with unit_of_work(weight_refused(patient_id)) as session:
        weight = weigh_as_user(session, patient_id, data)
    return weight


@patients_api.post("/patients/<int:patient_id>/weights/<int:weight_id>/confirm")
@requires(Permission.RECORD_WEIGHTS)
@patients_api.arguments(WeightConfirmIn)
@patients_api.response(200, WeightOut)
def confirm_weight(data: dict[str, Any], patient_id: int, weight_id: int) -> Any:
    """A second person (not whoever recorded it) countersigns a weight that changed by the
    protocol's flag, with their own password; a dose can then be computed from it."""
    with unit_of_work(weight_refused(patient_id)) as session:
        weight = confirm_weight_as_user(session, patient_id, weight_id, data)
    return weight


@patients_api.get("/patients/<int:patient_id>/doses")
@requires(Permission.READ_RECORDS)
@patients_api.response(200, DoseOrderOut(many=True))
def list_doses(patient_id: int) -> Any:
    return orders.orders_of(db.session, patients.get_patient(db.session, patient_id))


@patients_api.get("/patients/<int:patient_id>/doses/<visit>/plan")
@requires(Permission.READ_RECORDS)
@patients_api.response(200, DosePlanOut)
def plan(patient_id: int, visit: str) -> Any:
    """What a dose for this visit would be now, with the working; refused with every reason."""
    patient = patients.get_patient(db.session, patient_id)
    return orders.plan_dose(db.session, patient, visit, now=now(), zone=site_zone())


@patients_api.post("/patients/<int:patient_id>/doses")
@requires(Permission.PREPARE_DOSES)
@patients_api.arguments(DoseOrderIn)
@patients_api.response(201, DoseOrderOut)
def order_dose(data: dict[str, Any], patient_id: int) -> Any:
    """Order the visit's dose and allocate its bags (409 if a bag was taken meanwhile)."""
    with unit_of_work() as session:
        order = order_as_user(session, patient_id, data["visit"], data["override"])
    return order


@patients_api.get("/doses/<int:order_id>")
@requires(Permission.READ_RECORDS)
@patients_api.response(200, DoseDetailOut)
def get_dose(order_id: int) -> Any:
    """One dose order, with the recalls that name it."""
    order = orders.get_order(db.session, order_id)
    return WithRecalls(order, recalls_naming(db.session, doses=[order.id]).dose(order.id))


@patients_api.post("/doses/<int:order_id>/check")
@requires(Permission.CHECK_DOSES)
@patients_api.arguments(SecondCheckIn)
@patients_api.response(200, DoseOrderOut)
def second_check(data: dict[str, Any], order_id: int) -> Any:
    """The independent second check: re-entered volume, scanned bags, password signature."""
    with unit_of_work() as session:
        order = check_as_user(session, order_id, data)
    return order
