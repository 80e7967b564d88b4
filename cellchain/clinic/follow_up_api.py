"""API of follow-up visits and adverse events: the clinic's due visits, a patient's schedule,
evaluations done, adverse events and their outcome."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_smorest import Blueprint

from cellchain.clinic import adverse_events, follow_up
from cellchain.clinic.follow_up_schemas import (
    AdverseEventIn,
    AdverseEventOut,
    DueQueryIn,
    FollowUpVisitOut,
    OutcomeIn,
    ScheduledVisitOut,
    VisitDoneIn,
)
from cellchain.clinic.models import AdverseEvent, FollowUpVisit
from cellchain.core.roles import Permission
from cellchain.dosing import patients
from cellchain.extensions import DbSession, db
from cellchain.http import acting_user, now, requires, site_zone, unit_of_work
from cellchain.traceability.notices import WithRecalls, recalls_naming

follow_up_api = Blueprint(
    "follow_up_api", __name__, url_prefix="/api/v1", description="Follow-up and adverse events"
)
blueprints = (follow_up_api,)


def site_today() -> dt.date:
    """Today on the site's calendar: the day visit windows are judged on."""
    return now().astimezone(site_zone()).date()


def record_visit_as_user(
    session: DbSession, patient_id: int, data: dict[str, Any]
) -> FollowUpVisit:
    """Record an evaluation done from loaded ``VisitDoneIn`` data (the page and the API)."""
    return follow_up.record_visit_done(
        session,
        patients.get_patient(session, patient_id),
        visit=data["visit"],
        done_on=data["done_on"],
        note=data["note"],
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
    )


def record_event_as_user(session: DbSession, patient_id: int, data: dict[str, Any]) -> AdverseEvent:
    """Record an adverse event from loaded ``AdverseEventIn`` data (the page and the API)."""
    return adverse_events.record_adverse_event(
        session,
        patients.get_patient(session, patient_id),
        adverse_events.AdverseEventReport(
            onset_at=data["onset_at"],
            description=data["description"],
            grade=data["grade"],
            seriousness=data["seriousness"],
            outcome=data["outcome"],
            infusion_id=data["infusion_id"],
        ),
        actor=acting_user(),
        now=now(),
    )


def update_outcome_as_user(session: DbSession, event_id: int, data: dict[str, Any]) -> AdverseEvent:
    """Change an event's outcome from loaded ``OutcomeIn`` data (the page and the API)."""
    return adverse_events.update_outcome(
        session,
        adverse_events.get_adverse_event(session, event_id),
        outcome=data["outcome"],
        reason=data["reason"],
        actor=acting_user(),
        now=now(),
    )


@follow_up_api.get("/follow-up/due")
@requires(Permission.READ_RECORDS)
@follow_up_api.arguments(DueQueryIn, location="query")
@follow_up_api.response(200, ScheduledVisitOut(many=True))
def due_visits(query: dict[str, Any]) -> Any:
    """The due and overdue visits of every enrolled patient (overdue first, then by planned
    day); with ``coming_up`` also those whose window opens within the next 14 days. Each names
    the recalls that name its patient."""
    visits = follow_up.due_visits(
        db.session,
        today=site_today(),
        zone=site_zone(),
        coming_up_days=follow_up.COMING_UP_DAYS if query["coming_up"] else 0,
    )
    named = recalls_naming(db.session, patients=[s.patient.id for s in visits])
    return [WithRecalls(s, named.patient(s.patient.id)) for s in visits]


@follow_up_api.get("/patients/<int:patient_id>/follow-up")
@requires(Permission.READ_RECORDS)
@follow_up_api.response(200, ScheduledVisitOut(many=True))
def patient_follow_up(patient_id: int) -> Any:
    """Every visit of the patient's schedule with its status today (site calendar), and the
    recalls that name the patient."""
    patient = patients.get_patient(db.session, patient_id)
    named = recalls_naming(db.session, patients=[patient.id]).patient(patient.id)
    schedule = follow_up.patient_schedule(db.session, patient, today=site_today(), zone=site_zone())
    return [WithRecalls(s, named) for s in schedule]


@follow_up_api.post("/patients/<int:patient_id>/follow-up")
@requires(Permission.RECORD_FOLLOW_UP)
@follow_up_api.arguments(VisitDoneIn)
@follow_up_api.response(201, FollowUpVisitOut)
def record_visit_done(data: dict[str, Any], patient_id: int) -> Any:
    """Record an evaluation visit (M6, M12) done; an infusion visit is done by its infusion.
    409 if the visit is already recorded."""
    with unit_of_work() as session:
        row = record_visit_as_user(session, patient_id, data)
    return row


@follow_up_api.get("/patients/<int:patient_id>/adverse-events")
@requires(Permission.READ_RECORDS)
@follow_up_api.response(200, AdverseEventOut(many=True))
def list_adverse_events(patient_id: int) -> Any:
    """The patient's adverse events, by onset."""
    patient = patients.get_patient(db.session, patient_id)
    return adverse_events.adverse_events_of(db.session, patient)


@follow_up_api.post("/patients/<int:patient_id>/adverse-events")
@requires(Permission.RECORD_ADVERSE_EVENTS)
@follow_up_api.arguments(AdverseEventIn)
@follow_up_api.response(201, AdverseEventOut)
def record_adverse_event(data: dict[str, Any], patient_id: int) -> Any:
    """Record an adverse event: grade 5 if and only if fatal, grade 4–5 serious."""
    with unit_of_work() as session:
        event = record_event_as_user(session, patient_id, data)
    return event


@follow_up_api.post("/adverse-events/<int:event_id>/outcome")
@requires(Permission.RECORD_ADVERSE_EVENTS)
@follow_up_api.arguments(OutcomeIn)
@follow_up_api.response(200, AdverseEventOut)
def update_outcome(data: dict[str, Any], event_id: int) -> Any:
    """Change the event's outcome, with a reason; the old outcome stays in the audit trail."""
    with unit_of_work() as session:
        event = update_outcome_as_user(session, event_id, data)
    return event
