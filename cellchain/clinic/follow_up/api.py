"""API of follow-up visits and adverse events: the clinic's due visits, a patient's schedule,
evaluations done, adverse events and their outcome."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.clinic.follow_up import adverse_events, follow_up, reporting, scheduling
from cellchain.clinic.follow_up.commands import (
    assess_as_user,
    record_event_as_user,
    record_missed_as_user,
    record_report_as_user,
    record_visit_as_user,
    reports_due_now,
    reschedule_as_user,
    sign_deviation_as_user,
    site_today,
    update_outcome_as_user,
)
from cellchain.clinic.follow_up.schemas import (
    AdverseEventIn,
    AdverseEventOut,
    AssessmentIn,
    DeviationSignIn,
    DueQueryIn,
    FollowUpVisitOut,
    MissedIn,
    MissedVisitOut,
    OutcomeIn,
    ReportIn,
    ReportingClockOut,
    RescheduleIn,
    ScheduledVisitOut,
    VisitDoneIn,
    VisitRescheduleOut,
)
from cellchain.core.roles import Permission
from cellchain.dosing import patients
from cellchain.extensions import db
from cellchain.http import requires, site_zone, unit_of_work
from cellchain.traceability.notices import WithRecalls, recalls_naming

follow_up_api = Blueprint(
    "follow_up_api", __name__, url_prefix="/api/v1", description="Follow-up and adverse events"
)
blueprints = (follow_up_api,)


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


@follow_up_api.get("/patients/<int:patient_id>/visit-reschedules")
@requires(Permission.READ_RECORDS)
@follow_up_api.response(200, VisitRescheduleOut(many=True))
def list_reschedules(patient_id: int) -> Any:
    """Every move of the patient's visits, latest first, with its protocol deviation if any."""
    patient = patients.get_patient(db.session, patient_id)
    return scheduling.reschedules_of(db.session, patient)


@follow_up_api.post("/patients/<int:patient_id>/visit-reschedules")
@requires(Permission.RECORD_FOLLOW_UP)
@follow_up_api.arguments(RescheduleIn)
@follow_up_api.response(201, VisitRescheduleOut)
def reschedule_visit(data: dict[str, Any], patient_id: int) -> Any:
    """Move a visit not done nor missed to today or a later day, with a reason; never into the
    past (422). Day 0 moves the scheduled day 0; months 3, 6 and 12 move once the first
    infusion has started (409 before). A day outside the protocol window opens a protocol
    deviation (``outside_protocol``): the visit is usable on its new day once an investigator
    signs it."""
    with unit_of_work() as session:
        row = reschedule_as_user(session, patient_id, data)
    return row


@follow_up_api.post("/visit-reschedules/<int:reschedule_id>/deviation-signature")
@requires(Permission.RECORD_FOLLOW_UP)
@follow_up_api.arguments(DeviationSignIn)
@follow_up_api.response(200, VisitRescheduleOut)
def sign_deviation(data: dict[str, Any], reschedule_id: int) -> Any:
    """The investigator's e-signature (password re-entered) on a visit moved outside the
    protocol; investigators only (403), once (409)."""
    with unit_of_work() as session:
        row, _ = sign_deviation_as_user(session, reschedule_id, data)
    return row


@follow_up_api.post("/patients/<int:patient_id>/missed-visits")
@requires(Permission.RECORD_FOLLOW_UP)
@follow_up_api.arguments(MissedIn)
@follow_up_api.response(201, MissedVisitOut)
def record_missed(data: dict[str, Any], patient_id: int) -> Any:
    """Record an overdue visit (its window closed, not done) as missed, once, with a reason;
    day 0 of an arm receiving cells is rescheduled instead (422)."""
    with unit_of_work() as session:
        row = record_missed_as_user(session, patient_id, data)
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


@follow_up_api.get("/adverse-events")
@requires(Permission.READ_RECORDS)
@follow_up_api.response(200, AdverseEventOut(many=True))
def trial_adverse_events() -> Any:
    """The trial's line listing: every adverse event, by patient then onset."""
    return reporting.trial_listing(db.session)


@follow_up_api.get("/adverse-events/reports-due")
@requires(Permission.READ_RECORDS)
@follow_up_api.response(200, ReportingClockOut(many=True))
def adverse_event_reports_due() -> Any:
    """Serious events with a sponsor report not yet made (initial due 24 h after the site
    became aware, follow-up after the configured days), next deadline first, overdue flagged."""
    return reports_due_now(db.session)


@follow_up_api.post("/adverse-events/<int:event_id>/assessment")
@requires(Permission.RECORD_ADVERSE_EVENTS)
@follow_up_api.arguments(AssessmentIn)
@follow_up_api.response(200, AdverseEventOut)
def assess_adverse_event(data: dict[str, Any], event_id: int) -> Any:
    """The investigator's causality and expectedness, e-signed (investigators only)."""
    with unit_of_work() as session:
        event = assess_as_user(session, event_id, data)
    return event


@follow_up_api.post("/adverse-events/<int:event_id>/reports")
@requires(Permission.RECORD_ADVERSE_EVENTS)
@follow_up_api.arguments(ReportIn)
@follow_up_api.response(200, AdverseEventOut)
def record_adverse_event_report(data: dict[str, Any], event_id: int) -> Any:
    """Record a serious event's initial or follow-up sponsor report: when, and its reference."""
    with unit_of_work() as session:
        event = record_report_as_user(session, event_id, data)
    return event
