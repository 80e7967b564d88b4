"""Acting-user glue of follow-up visits and adverse events, shared by the API and the pages: the
loaded input, the acting user, the time and the site's calendar from the request, then the
service."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app

from cellchain.clinic.follow_up import adverse_events, follow_up, reporting, scheduling
from cellchain.clinic.models import AdverseEvent, FollowUpVisit, MissedVisit, VisitReschedule
from cellchain.core.models import Signature
from cellchain.dosing import patients
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone


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


def reschedule_as_user(
    session: DbSession, patient_id: int, data: dict[str, Any]
) -> VisitReschedule:
    """Move a visit from loaded ``RescheduleIn`` data (the page and the API)."""
    return scheduling.reschedule_visit(
        session,
        patients.get_patient(session, patient_id),
        visit=data["visit"],
        planned_on=data["planned_on"],
        reason=data["reason"],
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
    )


def sign_deviation_as_user(
    session: DbSession, reschedule_id: int, data: dict[str, Any]
) -> tuple[VisitReschedule, Signature]:
    """The acting investigator signs a move's protocol deviation (``DeviationSignIn``)."""
    row = scheduling.get_reschedule(session, reschedule_id)
    signature = scheduling.sign_deviation(
        session, row, investigator=acting_user(), password=data["password"], now=now()
    )
    return row, signature


def record_missed_as_user(session: DbSession, patient_id: int, data: dict[str, Any]) -> MissedVisit:
    """Record a visit missed from loaded ``MissedIn`` data (the page and the API)."""
    return scheduling.record_missed(
        session,
        patients.get_patient(session, patient_id),
        visit=data["visit"],
        reason=data["reason"],
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
            serious_criteria=frozenset(data.get("serious_criteria", ())),
            aware_at=data.get("aware_at"),
            term=data.get("term"),
            term_code=data.get("term_code"),
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


def follow_up_report_days() -> int:
    """The site's days from awareness to the follow-up report (``AE_FOLLOW_UP_REPORT_DAYS``)."""
    return int(current_app.config.get("AE_FOLLOW_UP_REPORT_DAYS", reporting.FOLLOW_UP_REPORT_DAYS))


def reports_due_now(session: DbSession) -> list[reporting.ReportingClock]:
    """The serious events with a sponsor report still to make, now."""
    return reporting.reports_due(session, now=now(), follow_up_days=follow_up_report_days())


def assess_as_user(session: DbSession, event_id: int, data: dict[str, Any]) -> AdverseEvent:
    """The investigator's signed causality and expectedness from loaded ``AssessmentIn``."""
    return reporting.assess(
        session,
        adverse_events.get_adverse_event(session, event_id),
        causality=data["causality"],
        expected=data["expected"],
        actor=acting_user(),
        password=data["password"],
        now=now(),
        zone=site_zone(),
    )


def record_report_as_user(session: DbSession, event_id: int, data: dict[str, Any]) -> AdverseEvent:
    """A sponsor report sent, from loaded ``ReportIn`` data."""
    return reporting.record_report(
        session,
        adverse_events.get_adverse_event(session, event_id),
        kind=data["kind"],
        reported_at=data["reported_at"],
        reference=data["reference"],
        actor=acting_user(),
        now=now(),
    )
