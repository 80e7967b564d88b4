"""Enrolment, arm assignment, weights and the visit schedule (DOMAIN.md §7).

A patient is enrolled under the protocol version in force: age at enrolment within the
protocol's range, every inclusion item met (numeric items checked against the entered value),
no exclusion item present. The arm comes from the trial's randomization; the chain-of-identity
identifier is allocated at enrolment. Names and record numbers never enter this system.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from cellchain.core import audit, numbering, versioning
from cellchain.core.models import User
from cellchain.core.types import canonical_json
from cellchain.dosing.defaults import NCT01420432_CODE
from cellchain.dosing.models import ArmSource, Patient, PatientStatus, Protocol, Sex, Weight
from cellchain.errors import Conflict, InvalidInput, NotFound

#: No adult weighs this much; a heavier entry is a typing error (grams, pounds).
MAX_PLAUSIBLE_WEIGHT_KG = 250.0
#: A weight measured this long before enrolment still counts as a baseline.
_OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class ChecklistAnswer:
    """One checklist item as answered: yes/no, and the measured value for numeric items."""

    answer: bool | None
    value: float | None = None


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment form sends."""

    study_id: str
    date_of_birth: dt.date
    sex: str
    arm: str
    randomization_number: str | None
    day0: dt.date
    answers: Mapping[str, ChecklistAnswer]


@dataclass(frozen=True)
class Visit:
    """A scheduled visit: an infusion (with its window) or a follow-up evaluation."""

    code: str
    name: str
    day: int
    planned_on: dt.date
    window_days: int
    infusion: bool

    @property
    def earliest(self) -> dt.date:
        return self.planned_on - dt.timedelta(days=self.window_days)

    @property
    def latest(self) -> dt.date:
        return self.planned_on + dt.timedelta(days=self.window_days)

    def open_on(self, day: dt.date) -> bool:
        return self.earliest <= day <= self.latest


def protocol_in_force(session: Session, code: str = NCT01420432_CODE) -> Protocol:
    protocol = versioning.in_force(session, Protocol, code)
    if protocol is None:
        raise Conflict(f"No version of protocol {code} is in force; QA must approve one first.")
    return protocol


def age_on(date_of_birth: dt.date, day: dt.date) -> int:
    """Completed years on ``day``."""
    years = day.year - date_of_birth.year
    if (day.month, day.day) < (date_of_birth.month, date_of_birth.day):
        years -= 1
    return years


def enrol(
    session: Session,
    protocol: Protocol,
    form: Enrolment,
    *,
    facility_code: str,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
) -> Patient:
    """Enrol a patient, or refuse with every problem named by field; nothing is saved then."""
    parameters = protocol.parameters
    today = now.astimezone(zone).date()
    errors = _enrolment_errors(parameters, form, today)
    study_id = form.study_id.strip().upper()
    if study_id and session.execute(select(Patient.id).where(Patient.study_id == study_id)).first():
        errors["study_id"] = [f"{study_id} is already enrolled."]
    if errors:
        raise InvalidInput("The patient cannot be enrolled: " + summarize(errors), errors=errors)
    patient = Patient(
        study_id=study_id,
        coi="",
        protocol_id=protocol.id,
        date_of_birth=form.date_of_birth,
        sex=form.sex,
        arm=form.arm,
        arm_source=ArmSource.TRIAL_RANDOMIZATION,
        randomization_number=(form.randomization_number or "").strip() or None,
        checklist_json=canonical_json(
            {code: {"answer": a.answer, "value": a.value} for code, a in form.answers.items()}
        ),
        day0=form.day0,
        enrolled_at=now,
        enrolled_by_id=actor.id,
        status=PatientStatus.ENROLLED,
    )
    session.add(patient)
    session.flush()
    issued = numbering.allocate_coi(
        session,
        facility_code=facility_code,
        actor=actor,
        now=now,
        purpose=f"chain of identity of {study_id}",
        entity_type="patient",
        entity_id=str(patient.id),
    )
    patient.coi = issued.code
    audit.record(
        session,
        actor=actor,
        at=now,
        action="patient.enrolled",
        entity_type="patient",
        entity_id=patient.id,
        changes={
            "study_id": (None, study_id),
            "coi": (None, issued.code),
            "arm": (None, form.arm),
            "protocol": (None, f"{protocol.code} v{protocol.version}"),
            "day0": (None, form.day0),
        },
    )
    return patient


def receives_cells(patient: Patient) -> bool:
    """Whether the patient's arm receives cells (the control arm never does)."""
    for arm in patient.protocol.parameters["arms"]:
        if arm["code"] == patient.arm:
            return bool(arm["receives_cells"])
    return False


def arm_name(patient: Patient) -> str:
    for arm in patient.protocol.parameters["arms"]:
        if arm["code"] == patient.arm:
            return str(arm["name"])
    return patient.arm


def record_weight(
    session: Session,
    patient: Patient,
    *,
    weight_kg: float,
    measured_at: dt.datetime,
    source: str,
    actor: User,
    now: dt.datetime,
) -> Weight:
    """A body weight with when and how it was measured; refused if implausible or future."""
    errors: dict[str, list[str]] = {}
    if not weight_kg > 0:
        errors["weight_kg"] = ["A weight is more than 0 kg."]
    elif weight_kg > MAX_PLAUSIBLE_WEIGHT_KG:
        errors["weight_kg"] = [
            f"{weight_kg:g} kg is above {MAX_PLAUSIBLE_WEIGHT_KG:g} kg; was it typed in grams "
            "or pounds?"
        ]
    if measured_at > now + dt.timedelta(minutes=5):
        errors["measured_at"] = ["A weight cannot be measured in the future."]
    if not source.strip():
        errors["source"] = ["Say how it was measured (e.g. calibrated clinic scale)."]
    if errors:
        raise InvalidInput("The weight was not recorded: " + summarize(errors), errors=errors)
    weight = Weight(
        patient_id=patient.id,
        weight_kg=weight_kg,
        measured_at=measured_at,
        source=source.strip(),
        recorded_at=now,
        recorded_by_id=actor.id,
    )
    session.add(weight)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="weight.recorded",
        entity_type="patient",
        entity_id=patient.id,
        changes={"weight_kg": (None, weight_kg), "measured_at": (None, measured_at)},
    )
    return weight


def latest_weight(session: Session, patient: Patient) -> Weight | None:
    return session.execute(
        select(Weight)
        .where(Weight.patient_id == patient.id)
        .order_by(Weight.measured_at.desc(), Weight.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def schedule(patient: Patient) -> list[Visit]:
    """The infusions and follow-up visits, planned from day 0."""
    parameters = patient.protocol.parameters
    visits = [
        Visit(
            code=item["code"],
            name=item["name"],
            day=int(item["day"]),
            planned_on=patient.day0 + dt.timedelta(days=int(item["day"])),
            window_days=int(item.get("window_days", 0)),
            infusion=True,
        )
        for item in parameters["infusions"]
    ]
    visits += [
        Visit(
            code=item["code"],
            name=item["name"],
            day=int(item["day"]),
            planned_on=patient.day0 + dt.timedelta(days=int(item["day"])),
            window_days=int(item.get("window_days", 0)),
            infusion=False,
        )
        for item in parameters.get("follow_up", [])
    ]
    return sorted(visits, key=lambda visit: visit.day)


def visit_of(patient: Patient, code: str) -> Visit:
    for visit in schedule(patient):
        if visit.code == code and visit.infusion:
            return visit
    raise NotFound(f"Protocol {patient.protocol.code} has no infusion visit {code!r}.")


def list_patients(session: Session) -> list[Patient]:
    return list(session.execute(select(Patient).order_by(Patient.study_id)).scalars())


def get_patient(session: Session, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound(f"There is no patient {patient_id}.")
    return patient


# --- checks -------------------------------------------------------------------------------------


def _enrolment_errors(
    parameters: Mapping[str, Any], form: Enrolment, today: dt.date
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not form.study_id.strip():
        errors["study_id"] = ["The study subject ID is required."]
    ages = parameters["age_years"]
    age = age_on(form.date_of_birth, today)
    if form.date_of_birth > today:
        errors["date_of_birth"] = ["The date of birth is in the future."]
    elif not ages["min"] <= age <= ages["max"]:
        errors["date_of_birth"] = [
            f"Age {age} at enrolment is outside {ages['min']}–{ages['max']} years."
        ]
    if form.sex not in {member.value for member in Sex}:
        errors["sex"] = ["Choose female, male or other."]
    arms = {arm["code"] for arm in parameters["arms"]}
    if form.arm not in arms:
        errors["arm"] = [f"Choose the arm from the randomization: {', '.join(sorted(arms))}."]
    if form.day0 < today:
        errors["day0"] = ["Day 0 (the first infusion) cannot be before enrolment."]
    for item in parameters["inclusion"]:
        problem = _inclusion_problem(item, form.answers.get(item["code"]))
        if problem:
            errors[f"inclusion.{item['code']}"] = [problem]
    for item in parameters["exclusion"]:
        answer = form.answers.get(item["code"])
        if answer is None or answer.answer is None:
            errors[f"exclusion.{item['code']}"] = ["Answer yes or no."]
        elif answer.answer:
            errors[f"exclusion.{item['code']}"] = [f"Excluded: {item['text']}."]
    return errors


def _inclusion_problem(item: Mapping[str, Any], answer: ChecklistAnswer | None) -> str | None:
    measure = item.get("measure")
    if measure:
        if answer is None or answer.value is None:
            return f"Enter the measured value ({measure['unit']})."
        if not _OPERATORS[measure["operator"]](answer.value, measure["limit"]):
            return (
                f"{answer.value:g} {measure['unit']} does not meet "
                f"{measure['operator']} {measure['limit']:g} {measure['unit']}."
            )
        return None
    if answer is None or answer.answer is None:
        return "Answer yes or no."
    if not answer.answer:
        return f"Not met: {item['text']}."
    return None


def summarize(errors: Mapping[str, list[str]]) -> str:
    """Every field's messages as one sentence, for the problem's detail."""
    return " ".join(message for messages in errors.values() for message in messages)
