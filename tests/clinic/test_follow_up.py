"""The follow-up schedule: each visit's status on a day, the clinic's due and overdue list, and
evaluations recorded as done (once, on a real day, never for an infusion visit)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from cellchain.clinic.follow_up import follow_up
from cellchain.clinic.follow_up.follow_up import VisitStatus
from cellchain.clinic.models import FollowUpVisit
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.dosing import patients
from cellchain.dosing.models import PatientStatus
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from tests.support.follow_up import back_date, infuse, today

UTC = ZoneInfo("UTC")


def statuses(patient: Any, on: dt.date | None = None) -> dict[str, str]:
    schedule = follow_up.patient_schedule(db.session, patient, today=on or today(), zone=UTC)
    return {item.visit.code: item.status.value for item in schedule}


def record(clinic: Any, patient: Any, visit: str = "M6", **changes: Any) -> FollowUpVisit:
    values: dict[str, Any] = {
        "visit": visit,
        "done_on": today(),
        "note": None,
        "actor": clinic.clinician,
        "now": utcnow(),
        "zone": UTC,
    }
    values.update(changes)
    row = follow_up.record_visit_done(db.session, patient, **values)
    db.session.commit()
    return row


# --- statuses -----------------------------------------------------------------------------------


def test_a_new_patient_has_day_0_due_and_every_later_visit_upcoming(clinic: Any) -> None:
    patient = clinic.enrol()
    assert statuses(patient) == {"D0": "due", "M3": "planned", "M6": "planned", "M12": "planned"}


def test_a_missed_infusion_is_overdue_and_the_open_window_due(clinic: Any) -> None:
    patient = back_date(clinic.enrol(), 100)  # M3: day 91 ± 14 → open on day 100
    assert statuses(patient) == {"D0": "overdue", "M3": "due", "M6": "planned", "M12": "planned"}


@pytest.mark.parametrize("status", ["in_progress", "completed", "stopped"])
def test_an_infusion_visit_is_done_by_its_infusion(clinic: Any, status: str) -> None:
    patient = back_date(clinic.enrol(), 100)
    started = utcnow() - dt.timedelta(days=100)
    infuse(clinic, patient, "D0", status=status, at=started)
    schedule = follow_up.patient_schedule(db.session, patient, today=today(), zone=UTC)
    day0 = schedule[0]
    assert (day0.visit.code, day0.status) == ("D0", VisitStatus.DONE)
    assert day0.done_on == started.date() and not day0.outside_window
    assert schedule[1].status == VisitStatus.DUE  # M3 still to do


def test_the_control_arms_infusion_visits_do_not_apply(clinic: Any) -> None:
    patient = back_date(clinic.enrol(arm="CONTROL"), 200)
    assert statuses(patient) == {
        "D0": "not_applicable",
        "M3": "not_applicable",
        "M6": "overdue",
        "M12": "planned",
    }


def test_an_evaluation_is_due_within_its_protocol_window(clinic: Any) -> None:
    patient = clinic.enrol()
    m6 = patient.day0 + dt.timedelta(days=182)  # ± 14 days (the site's protocol parameter)
    assert statuses(patient, m6 - dt.timedelta(days=15))["M6"] == "planned"
    assert statuses(patient, m6 - dt.timedelta(days=14))["M6"] == "due"
    assert statuses(patient, m6 + dt.timedelta(days=14))["M6"] == "due"
    assert statuses(patient, m6 + dt.timedelta(days=15))["M6"] == "overdue"


def test_an_evaluation_recorded_is_done_and_a_late_one_is_flagged(clinic: Any) -> None:
    patient = back_date(clinic.enrol(), 200)
    record(clinic, patient, "M6", done_on=today(), note="  DAS28 and BASDAI taken ")
    (m6,) = [
        s
        for s in follow_up.patient_schedule(db.session, patient, today=today(), zone=UTC)
        if s.visit.code == "M6"
    ]
    assert m6.status == VisitStatus.DONE and m6.done_on == today()
    assert m6.note == "DAS28 and BASDAI taken"
    assert m6.outside_window  # day 200, the window is day 182 ± 14


visits = st.builds(
    patients.Visit,
    code=st.just("V"),
    name=st.just("Visit"),
    day=st.integers(0, 400),
    planned_on=st.dates(dt.date(2020, 1, 1), dt.date(2030, 12, 31)),
    window_days=st.integers(0, 30),
    infusion=st.booleans(),
)


@given(
    visit=visits,
    offset=st.integers(-60, 60),
    done=st.booleans(),
    applicable=st.booleans(),
)
def test_a_visit_has_exactly_one_status_and_is_due_iff_open_and_not_done(
    visit: patients.Visit, offset: int, done: bool, applicable: bool
) -> None:
    day = visit.planned_on + dt.timedelta(days=offset)
    status = follow_up.visit_status(visit, today=day, done=done, applicable=applicable)
    assert status in set(VisitStatus)
    assert (status == VisitStatus.DONE) == done
    assert (status == VisitStatus.NOT_APPLICABLE) == (not done and not applicable)
    assert (status == VisitStatus.DUE) == (applicable and not done and visit.open_on(day))
    assert (status == VisitStatus.PLANNED) == (applicable and not done and day < visit.earliest)
    assert (status == VisitStatus.OVERDUE) == (applicable and not done and day > visit.latest)


# --- the clinic's list --------------------------------------------------------------------------


def test_the_clinic_list_puts_overdue_first_then_by_planned_day(clinic: Any) -> None:
    clinic.randomize("MSC", "MSC", "CONTROL")  # AS-SIX is the control patient
    new = clinic.enrol(study_id="AS-NEW")  # D0 due today
    late = back_date(clinic.enrol(study_id="AS-LATE"), 100)  # D0 overdue, M3 due
    six = back_date(clinic.enrol(study_id="AS-SIX", arm="CONTROL"), 182)  # M6 due today
    done = back_date(clinic.enrol(study_id="AS-DONE"), 182)
    infuse(clinic, done, "D0", at=utcnow() - dt.timedelta(days=182))
    infuse(clinic, done, "M3", at=utcnow() - dt.timedelta(days=91))
    record(clinic, done, "M6")
    gone = clinic.enrol(study_id="AS-GONE")
    gone.status = PatientStatus.WITHDRAWN.value
    db.session.commit()
    listed = follow_up.due_visits(db.session, today=today(), zone=UTC)
    assert [(s.patient.study_id, s.visit.code, s.status.value) for s in listed] == [
        ("AS-LATE", "D0", "overdue"),  # overdue first
        ("AS-LATE", "M3", "due"),  # planned 9 days ago
        ("AS-NEW", "D0", "due"),  # planned today
        ("AS-SIX", "M6", "due"),  # planned today (its infusions: control arm, not applicable)
    ]
    assert {s.patient.id for s in listed} == {new.id, late.id, six.id}


def test_the_clinic_list_can_show_what_comes_up_in_the_next_14_days(clinic: Any) -> None:
    # M6 is day 182 ± 14: its window opens in 14 days, and in 15 days
    clinic.randomize("CONTROL", "CONTROL")
    back_date(clinic.enrol(study_id="AS-SOON", arm="CONTROL"), 182 - 14 - 14)
    back_date(clinic.enrol(study_id="AS-LATER", arm="CONTROL"), 182 - 14 - 15)
    assert follow_up.due_visits(db.session, today=today(), zone=UTC) == []
    coming = follow_up.due_visits(
        db.session, today=today(), zone=UTC, coming_up_days=follow_up.COMING_UP_DAYS
    )
    assert [(s.patient.study_id, s.visit.code, s.status.value) for s in coming] == [
        ("AS-SOON", "M6", "planned")
    ]


# --- recording an evaluation --------------------------------------------------------------------


def test_an_evaluation_done_is_recorded_once_and_audited(clinic: Any) -> None:
    patient = back_date(clinic.enrol(), 182)
    row = record(clinic, patient, "m6", note="BASDAI 3.1")
    assert (row.visit, row.done_on, row.note) == ("M6", today(), "BASDAI 3.1")
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "follow_up.recorded")
    ).scalar_one()
    assert (entry.entity_type, entry.entity_id) == ("patient", str(patient.id))
    assert json.loads(entry.changes) == {
        "visit": [None, "M6"],
        "done_on": [None, today().isoformat()],
        "note": [None, "BASDAI 3.1"],
    }
    with pytest.raises(Conflict, match=r"Month 6 evaluation \(M6\) of AS-001 is already recorded"):
        record(clinic, patient, "M6", done_on=today() - dt.timedelta(days=1))
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(FollowUpVisit)) == 1


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"visit": "M9"}, "visit", "has no visit 'M9'; its evaluation visits are M6, M12"),
        ({"visit": "D0"}, "visit", "is an infusion visit: it is done by its infusion"),
        ({"visit": "M3"}, "visit", "is an infusion visit"),
        ({"done_on": "tomorrow"}, "done_on", "is in the future"),
        ({"done_on": "before enrolment"}, "done_on", "before AS-001 was enrolled"),
    ],
)
def test_an_evaluation_is_refused_with_the_reason_on_its_field(
    clinic: Any, changes: dict[str, Any], field: str, message: str
) -> None:
    patient = back_date(clinic.enrol(), 30)
    days = {"tomorrow": 1, "before enrolment": -31}
    if "done_on" in changes:
        changes = {"done_on": today() + dt.timedelta(days=days[changes["done_on"]])}
    with pytest.raises(InvalidInput) as refused:
        record(clinic, patient, **changes)
    assert list(refused.value.errors) == [field]
    assert message in refused.value.errors[field][0] and message in refused.value.detail
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(FollowUpVisit)) == 0
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "follow_up.recorded")
        )
        == 0
    )


def test_every_problem_of_an_evaluation_is_named_at_once(clinic: Any) -> None:
    patient = clinic.enrol()
    with pytest.raises(InvalidInput) as refused:
        record(clinic, patient, "D0", done_on=today() + dt.timedelta(days=3))
    assert set(refused.value.errors) == {"visit", "done_on"}


def test_the_day_is_judged_on_the_site_calendar(clinic: Any) -> None:
    # 23:30 UTC is already tomorrow in Kolkata (UTC+05:30): that day is not in the future there.
    patient = back_date(clinic.enrol(), 182)
    late_evening = dt.datetime.combine(today(), dt.time(23, 30), tzinfo=dt.UTC)
    tomorrow = today() + dt.timedelta(days=1)
    with pytest.raises(InvalidInput, match="in the future"):
        record(clinic, patient, done_on=tomorrow, now=late_evening)
    db.session.rollback()
    row = record(clinic, patient, done_on=tomorrow, now=late_evening, zone=ZoneInfo("Asia/Kolkata"))
    assert row.done_on == tomorrow


@pytest.mark.postgres_only
def test_two_people_recording_the_same_visit_at_once_record_it_once(app: Any, clinic: Any) -> None:
    from cellchain.core.models import User
    from cellchain.dosing.models import Patient
    from tests.conftest import at_once

    patient_id = back_date(clinic.enrol(), 182).id
    people = [clinic.clinician.id, clinic.investigator.id]

    def recording(user_id: int):
        def job() -> str:
            try:
                follow_up.record_visit_done(
                    db.session,
                    db.session.get(Patient, patient_id),
                    visit="M6",
                    done_on=today(),
                    note=None,
                    actor=db.session.get(User, user_id),
                    now=utcnow(),
                    zone=UTC,
                )
                db.session.commit()
                return "won"
            except Conflict:
                db.session.rollback()
                return "refused"

        return job

    assert at_once(app, [recording(user_id) for user_id in people]) == ["refused", "won"]
    assert db.session.scalar(select(func.count()).select_from(FollowUpVisit)) == 1
