"""Acting-user glue of follow-up visits and adverse events, shared by the API and the pages: the
loaded input, the acting user, the time and the site's calendar from the request, then the
service."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cellchain.clinic.follow_up import adverse_events, follow_up
from cellchain.clinic.models import AdverseEvent, FollowUpVisit
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
