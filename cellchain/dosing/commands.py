"""Acting-user glue of patients, weights and dose orders, shared by the API and the pages: the
loaded input, the acting user, the time and the site's zone from the request, the records
loaded (or 404), then the service. No rules here."""

from __future__ import annotations

from typing import Any

from cellchain.core import accounts
from cellchain.dosing import exceptions, orders, patients, randomization
from cellchain.dosing.models import DoseOrder, Patient, RandomizationSchedule, Weight
from cellchain.extensions import DbSession
from cellchain.http import AuditedRefusal, acting_user, facility_code, now, site_zone


def enrolment_of(data: dict[str, Any]) -> patients.Enrolment:
    """Loaded ``EnrolIn`` data as the service's enrolment."""
    return patients.Enrolment(
        study_id=data["study_id"],
        date_of_birth=data["date_of_birth"],
        sex=data["sex"],
        day0=data["day0"],
        answers={
            code: patients.ChecklistAnswer(item.get("answer"), item.get("value"))
            for code, item in data["answers"].items()
        },
    )


def override_of(session: DbSession, data: dict[str, Any] | None) -> orders.Override | None:
    """The override in loaded ``OverrideIn`` data, with the investigator it names loaded by
    username (404 when there is no such user)."""
    if not data:
        return None
    investigator = accounts.user_named(session, data["investigator"])
    return orders.Override(investigator, data["password"], data["reason"])


def enrol_as_user(session: DbSession, data: dict[str, Any]) -> Patient:
    """Enrol from loaded ``EnrolIn`` data as the acting user (the page and the API)."""
    return patients.enrol(
        session,
        patients.chosen_protocol(session, data.get("protocol"), at=now()),
        enrolment_of(data),
        facility_code=facility_code(),
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
        site_id=data.get("site_id"),
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
        override=override_of(session, override),
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


def cancel_as_user(session: DbSession, order_id: int, data: dict[str, Any]) -> DoseOrder:
    """The acting user's cancellation of a dose order from loaded ``DoseCancelIn`` data."""
    return exceptions.cancel_dose(
        session,
        orders.get_order(session, order_id),
        actor=acting_user(),
        password=data["password"],
        reason=data["reason"],
        now=now(),
    )


def destroy_as_user(session: DbSession, order_id: int, data: dict[str, Any]) -> DoseOrder:
    """The acting user's destruction of a dose, witnessed, from loaded ``DoseDestroyIn`` data."""
    return exceptions.destroy_dose(
        session,
        orders.get_order(session, order_id),
        actor=acting_user(),
        password=data["password"],
        witness=accounts.user_named(session, data["witness"], strip=True),
        witness_password=data["witness_password"],
        reason=data["reason"],
        now=now(),
    )


def generate_schedule_as_user(session: DbSession, data: dict[str, Any]) -> RandomizationSchedule:
    """The acting statistician's permuted-block schedule from loaded ``PermutedBlockIn``."""
    return randomization.generate(
        session,
        patients.randomized_protocol(session, data.get("protocol"), at=now()),
        seed=data["seed"],
        block_sizes=data["block_sizes"],
        user=acting_user(),
        password=data["password"],
        now=now(),
    )


def import_schedule_as_user(session: DbSession, data: dict[str, Any]) -> RandomizationSchedule:
    """The acting statistician's imported list from loaded ``RandomizationListIn``."""
    return randomization.import_list(
        session,
        patients.randomized_protocol(session, data.get("protocol"), at=now()),
        text=data["csv"],
        user=acting_user(),
        password=data["password"],
        now=now(),
    )
