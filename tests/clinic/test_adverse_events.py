"""Adverse events: recorded with every problem named on its field, the grade, seriousness and
outcome rules (grade 5 ⇔ fatal, grade 4–5 serious), and the outcome updated with a reason."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from cellchain.clinic.follow_up import adverse_events
from cellchain.clinic.follow_up.adverse_events import AdverseEventReport
from cellchain.clinic.models import AdverseEvent, Outcome, Seriousness
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from tests.support.follow_up import back_date, infuse
from tests.support.tamper import outside_the_trail


def report(**changes: Any) -> AdverseEventReport:
    values: dict[str, Any] = {
        "onset_at": utcnow() - dt.timedelta(hours=2),
        "description": "Fever 38.6 °C and chills",
        "grade": 2,
        "seriousness": "non_serious",
        "outcome": "recovering",
        "infusion_id": None,
    }
    values.update(changes)
    if values["seriousness"] == "serious" and "serious_criteria" not in changes:
        criterion = "death" if values["grade"] == 5 else "hospitalisation"
        values["serious_criteria"] = frozenset({criterion})
    return AdverseEventReport(**values)


def record(clinic: Any, patient: Any, **changes: Any) -> AdverseEvent:
    event = adverse_events.record_adverse_event(
        db.session, patient, report(**changes), actor=clinic.clinician, now=utcnow()
    )
    db.session.commit()
    return event


def update(clinic: Any, event: AdverseEvent, outcome: str, reason: str | None) -> AdverseEvent:
    changed = adverse_events.update_outcome(
        db.session, event, outcome=outcome, reason=reason, actor=clinic.investigator, now=utcnow()
    )
    db.session.commit()
    return changed


def count_events() -> int:
    return db.session.scalar(select(func.count()).select_from(AdverseEvent)) or 0


def audit_of(event: AdverseEvent) -> list[AuditEntry]:
    return list(
        db.session.execute(
            select(AuditEntry)
            .where(AuditEntry.entity_type == "adverse_event")
            .where(AuditEntry.entity_id == str(event.id))
            .order_by(AuditEntry.seq)
        ).scalars()
    )


@pytest.fixture
def patient(clinic: Any) -> Any:
    return back_date(clinic.enrol(), 10)


def test_an_adverse_event_is_recorded_and_audited(clinic: Any, patient: Any) -> None:
    infusion = infuse(clinic, patient, "D0", at=utcnow() - dt.timedelta(days=10))
    event = record(
        clinic, patient, description="  Infusion reaction: rigors ", infusion_id=infusion.id
    )
    assert event.description == "Infusion reaction: rigors"
    assert event.infusion.dose_order.visit == "D0" and event.recorded_by_id == clinic.clinician.id
    assert adverse_events.adverse_events_of(db.session, patient) == [event]
    (entry,) = audit_of(event)
    changes = json.loads(entry.changes)
    assert entry.action == "adverse_event.recorded"
    assert changes["patient"] == [None, "AS-001"] and changes["grade"] == [None, 2]
    assert changes["outcome"] == [None, "recovering"] and changes["infusion"] == [None, infusion.id]


@pytest.mark.parametrize(
    ("grade", "seriousness", "outcome"),
    [
        (1, "non_serious", "recovered"),
        (3, "serious", "recovered_with_sequelae"),  # hospitalised: serious at any grade
        (4, "serious", "not_recovered"),
        (5, "serious", "fatal"),
    ],
)
def test_consistent_grades_seriousness_and_outcomes_are_accepted(
    clinic: Any, patient: Any, grade: int, seriousness: str, outcome: str
) -> None:
    event = record(clinic, patient, grade=grade, seriousness=seriousness, outcome=outcome)
    assert (event.grade, event.seriousness, event.outcome) == (grade, seriousness, outcome)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"grade": 5, "seriousness": "serious", "outcome": "recovered"}, "outcome", "grade 5"),
        ({"grade": 3, "seriousness": "serious", "outcome": "fatal"}, "grade", "fatal outcome"),
        ({"grade": 4, "outcome": "recovering"}, "seriousness", "life-threatening"),
        ({"grade": 0}, "grade", "1, 2, 3, 4 or 5"),
        ({"grade": 6}, "grade", "1, 2, 3, 4 or 5"),
        ({"seriousness": "mild"}, "seriousness", "Choose one of"),
        ({"outcome": "better"}, "outcome", "Choose one of"),
        ({"description": "   "}, "description", "Describe the event"),
        ({"onset_at": "future"}, "onset_at", "cannot be in the future"),
        ({"onset_at": "before enrolment"}, "onset_at", "medical history"),
        ({"infusion_id": 999}, "infusion_id", "not one of AS-001's infusions"),
    ],
)
def test_an_adverse_event_is_refused_with_the_reason_on_its_field(
    clinic: Any, patient: Any, changes: dict[str, Any], field: str, message: str
) -> None:
    times = {
        "future": utcnow() + dt.timedelta(hours=1),
        "before enrolment": utcnow() - dt.timedelta(days=11),
    }
    if "onset_at" in changes:
        changes = {"onset_at": times[changes["onset_at"]]}
    with pytest.raises(InvalidInput) as refused:
        record(clinic, patient, **changes)
    assert list(refused.value.errors) == [field], refused.value.errors
    assert message in refused.value.errors[field][0]
    db.session.rollback()
    assert count_events() == 0


def test_a_grade_5_event_that_is_not_fatal_nor_serious_is_refused_on_both(
    clinic: Any, patient: Any
) -> None:
    with pytest.raises(InvalidInput) as refused:
        record(clinic, patient, grade=5, seriousness="non_serious", outcome="recovered")
    errors = refused.value.errors
    assert errors["outcome"] == ["A grade 5 event is a death: its outcome is fatal."]
    assert "a death, which is a seriousness criterion" in errors["seriousness"][0]


def test_another_patients_infusion_or_one_after_the_onset_is_refused(
    clinic: Any, patient: Any
) -> None:
    other = back_date(clinic.enrol(study_id="AS-002"), 10)
    theirs = infuse(clinic, other, "D0", at=utcnow() - dt.timedelta(days=10))
    with pytest.raises(InvalidInput) as refused:
        record(clinic, patient, infusion_id=theirs.id)
    assert "not one of AS-001's infusions" in refused.value.errors["infusion_id"][0]
    db.session.rollback()
    mine = infuse(clinic, patient, "D0", at=utcnow() - dt.timedelta(hours=1))
    with pytest.raises(InvalidInput) as refused:
        record(clinic, patient, infusion_id=mine.id, onset_at=utcnow() - dt.timedelta(hours=3))
    assert "before the infusion it followed started" in refused.value.errors["onset_at"][0]
    db.session.rollback()
    assert count_events() == 0


@given(
    grade=st.integers(1, 5),
    seriousness=st.sampled_from([s.value for s in Seriousness]),
    outcome=st.sampled_from([o.value for o in Outcome]),
)
def test_a_classification_is_accepted_iff_fatal_is_grade_5_and_grade_4_5_serious(
    grade: int, seriousness: str, outcome: str
) -> None:
    errors = adverse_events.classification_errors(grade, seriousness, outcome)
    consistent = (grade == 5) == (outcome == "fatal") and (grade < 4 or seriousness == "serious")
    assert (errors == {}) == consistent
    assert set(errors) <= {"grade", "seriousness", "outcome"}


# --- outcome updates ----------------------------------------------------------------------------


def test_the_outcome_is_updated_with_a_reason_and_the_old_value_kept(
    clinic: Any, patient: Any
) -> None:
    event = record(clinic, patient)
    update(clinic, event, "recovered", "  Afebrile for 48 h at the day 3 call ")
    assert db.session.get(AdverseEvent, event.id).outcome == "recovered"
    _recorded, updated = audit_of(event)
    assert updated.action == "adverse_event.outcome_updated"
    assert json.loads(updated.changes) == {"outcome": ["recovering", "recovered"]}
    assert updated.reason == "Afebrile for 48 h at the day 3 call"
    assert updated.actor_username == "ivan"


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_an_outcome_change_without_a_reason_is_refused(
    clinic: Any, patient: Any, reason: str | None
) -> None:
    event = record(clinic, patient)
    with pytest.raises(InvalidInput) as refused:
        update(clinic, event, "recovered", reason)
    assert list(refused.value.errors) == ["reason"]
    db.session.rollback()
    assert db.session.get(AdverseEvent, event.id).outcome == "recovering"
    assert len(audit_of(event)) == 1


@pytest.mark.parametrize(
    ("grade", "seriousness", "outcome", "new", "message"),
    [
        (2, "non_serious", "recovering", "recovering", "already recovering"),
        (2, "non_serious", "recovering", "cured", "Choose one of"),
        (3, "serious", "not_recovered", "fatal", "record the death as a new grade 5 event"),
        (5, "serious", "fatal", "recovered", "its outcome stays fatal"),
    ],
)
def test_an_outcome_change_that_breaks_a_rule_is_refused(
    clinic: Any, patient: Any, grade: int, seriousness: str, outcome: str, new: str, message: str
) -> None:
    event = record(clinic, patient, grade=grade, seriousness=seriousness, outcome=outcome)
    with pytest.raises(InvalidInput) as refused:
        update(clinic, event, new, "Seen at the clinic")
    assert list(refused.value.errors) == ["outcome"]
    assert message in refused.value.errors["outcome"][0]
    db.session.rollback()
    assert db.session.get(AdverseEvent, event.id).outcome == outcome


def test_an_outcome_changed_meanwhile_is_a_conflict(clinic: Any, patient: Any) -> None:
    event = record(clinic, patient)
    assert event.outcome == "recovering"  # read by this user
    # someone else's change lands between this user's read and write
    db.session.execute(
        outside_the_trail(
            AdverseEvent.__table__.update()
            .where(AdverseEvent.id == event.id)
            .values(outcome="not_recovered")
        )
    )
    with pytest.raises(Conflict, match="changed by someone else"):
        update(clinic, event, "recovered", "Seen at the clinic")
    db.session.rollback()


@pytest.mark.postgres_only
def test_two_outcome_changes_at_once_end_with_one(app: Any, clinic: Any, patient: Any) -> None:
    from cellchain.core.models import User
    from tests.conftest import at_once

    event_id = record(clinic, patient).id
    people = [(clinic.clinician.id, "recovered"), (clinic.investigator.id, "not_recovered")]
    both_read = threading.Barrier(len(people), timeout=30)  # both saw the event before a write

    def changing(user_id: int, outcome: str):
        def job() -> str:
            try:
                event = db.session.get(AdverseEvent, event_id)
                both_read.wait()
                adverse_events.update_outcome(
                    db.session,
                    event,
                    outcome=outcome,
                    reason="Seen at the clinic",
                    actor=db.session.get(User, user_id),
                    now=utcnow(),
                )
                db.session.commit()
                return "won"
            except Conflict:
                db.session.rollback()
                return "refused"

        return job

    assert at_once(app, [changing(*person) for person in people]) == ["refused", "won"]
    db.session.expire_all()
    assert len(audit_of(db.session.get(AdverseEvent, event_id))) == 2
