"""Enrolment checks age and the checklist and allocates a COI identifier; weights are checked;
visits are planned from day 0."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from cellchain.core.audit import AuditEntry
from cellchain.core.identifiers import parse_identifier
from cellchain.core.types import utcnow
from cellchain.dosing import patients
from cellchain.dosing.models import Patient
from cellchain.errors import InvalidInput
from cellchain.extensions import db
from tests.support.clinic import all_met

Answer = patients.ChecklistAnswer


def test_an_eligible_patient_is_enrolled_with_a_coi_identifier_and_audited(clinic: Any) -> None:
    patient = clinic.enrol()
    coi = parse_identifier(patient.coi)
    assert coi.kind == "COI" and patient.coi == coi.canonical
    assert patient.study_id == "AS-001" and patient.arm == "MSC"
    assert patient.protocol_id == clinic.protocol.id
    assert patients.receives_cells(patient)
    assert patient.checklist["ejection_fraction"] == {"answer": True, "value": 55.0}
    action = db.session.execute(
        select(AuditEntry.action).where(AuditEntry.entity_type == "patient")
    ).scalar_one()
    assert action == "patient.enrolled"


def test_the_control_arm_never_receives_cells(clinic: Any) -> None:
    patient = clinic.enrol(arm="CONTROL")
    assert not patients.receives_cells(patient)
    assert patients.arm_name(patient) == "DMARDs only"


@pytest.mark.parametrize(("years", "ok"), [(17, False), (18, True), (60, True), (61, False)])
def test_age_at_enrolment_must_be_18_to_60(clinic: Any, years: int, ok: bool) -> None:
    today = utcnow().date()
    born = today.replace(year=today.year - years)
    if ok:
        assert clinic.enrol(date_of_birth=born).id
        return
    with pytest.raises(InvalidInput, match=f"Age {years} at enrolment") as refused:
        clinic.enrol(date_of_birth=born)
    assert "date_of_birth" in refused.value.errors


@pytest.mark.parametrize(
    ("answers", "field", "message"),
    [
        (all_met(ejection_fraction=Answer(True, 45.0)), "inclusion.ejection_fraction", "> 45"),
        (all_met(creatinine=Answer(True, 176.0)), "inclusion.creatinine", "< 176"),
        (all_met(creatinine=Answer(True, None)), "inclusion.creatinine", "Enter the measured"),
        (all_met(written_consent=Answer(False)), "inclusion.written_consent", "Not met"),
        (all_met(ecog=Answer(None)), "inclusion.ecog", "Enter the measured value (ECOG"),
        (all_met(ecog=Answer(True, 3.0)), "inclusion.ecog", "3 ECOG score does not meet <= 2"),
        (all_met(ecog=Answer(True, 6.0)), "inclusion.ecog", "Invalid ECOG score: 6"),
        (all_met(ecog=Answer(True, -1.0)), "inclusion.ecog", "Invalid ECOG score: -1"),
        (all_met(ecog=Answer(True, 1.5)), "inclusion.ecog", "1.5 is not a whole number"),
        (all_met(pregnancy=Answer(True)), "exclusion.pregnancy", "Excluded"),
        (all_met(other_trial=Answer(None)), "exclusion.other_trial", "Answer yes or no"),
    ],
)
def test_each_unmet_or_missing_checklist_item_refuses_enrolment_with_nothing_saved(
    clinic: Any, answers: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        clinic.enrol(answers=answers)
    assert message in refused.value.errors[field][0]
    db.session.rollback()
    assert db.session.execute(select(Patient)).first() is None


def test_a_study_id_is_enrolled_once(clinic: Any) -> None:
    clinic.enrol(study_id="as-007")
    with pytest.raises(InvalidInput, match="AS-007 is already enrolled"):
        clinic.enrol(study_id="AS-007")


@pytest.mark.parametrize(
    ("weight", "field", "message"),
    [
        (0.0, "weight_kg", "more than 0"),
        (-70.0, "weight_kg", "more than 0"),
        (700.0, "weight_kg", "grams or pounds"),
    ],
)
def test_an_implausible_weight_is_refused(
    clinic: Any, weight: float, field: str, message: str
) -> None:
    patient = clinic.enrol()
    with pytest.raises(InvalidInput) as refused:
        clinic.weigh(patient, weight)
    assert message in refused.value.errors[field][0]


def test_a_weight_from_the_future_is_refused(clinic: Any) -> None:
    patient = clinic.enrol()
    with pytest.raises(InvalidInput, match="future"):
        clinic.weigh(patient, 70.0, hours_ago=-2)


def test_visits_are_planned_from_day_0_with_their_windows(clinic: Any) -> None:
    day0 = utcnow().date() + dt.timedelta(days=3)
    patient = clinic.enrol(day0=day0)
    # before the first infusion, provisionally from the scheduled day 0
    visits = {
        visit.code: visit for visit in patients.schedule_of(db.session, patient, ZoneInfo("UTC"))
    }
    assert visits["D0"].planned_on == day0 and visits["D0"].window_days == 0
    month3 = visits["M3"]
    assert month3.planned_on == day0 + dt.timedelta(days=91)
    assert (month3.earliest, month3.latest) == (
        day0 + dt.timedelta(days=77),
        day0 + dt.timedelta(days=105),
    )
    assert not visits["M6"].infusion and visits["M12"].planned_on == day0 + dt.timedelta(365)
