"""An evaluation visit whose efficacy endpoints were assessed took place (issue 19): the
schedule shows it done on the assessment's day, and it is never recorded as missed nor moved
afterwards, whichever page or API call tries."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from cellchain.clinic.models import MissedVisit, VisitReschedule
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.clinic.test_endpoints import values
from tests.support.follow_up import back_date


def _count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def _assessed_at_month_6(clinic: Any, clients: Any) -> Any:
    """A patient of the control arm with day 0 190 days ago (month 6: days 168–196), whose
    month-6 endpoints were assessed 5 days ago."""
    patient = back_date(clinic.enrol(arm="CONTROL"), 190)
    assessed_on = (utcnow().date() - dt.timedelta(days=5)).isoformat()
    recorded = clients.api(clinic.investigator).post(
        f"/api/v1/patients/{patient.id}/endpoints",
        json={"visit": "M6", "assessed_on": assessed_on, **values()},
    )
    assert recorded.status_code == 201, recorded.get_json()
    return patient


def test_a_visit_with_its_endpoints_assessed_is_done_on_that_day(clinic: Any, clients: Any) -> None:
    patient = _assessed_at_month_6(clinic, clients)
    body = clients.api(clinic.clinician).get(f"/api/v1/patients/{patient.id}/follow-up")
    visits = {v["code"]: v for v in body.get_json()}
    assert visits["M6"]["status"] == "done"
    assert visits["M6"]["done_on"] == (utcnow().date() - dt.timedelta(days=5)).isoformat()


def test_an_assessed_visit_is_never_recorded_missed_nor_moved(clinic: Any, clients: Any) -> None:
    patient = _assessed_at_month_6(clinic, clients)
    nurse = clients.api(clinic.clinician)
    missed = nurse.post(
        f"/api/v1/patients/{patient.id}/missed-visits", json={"visit": "M6", "reason": "x"}
    )
    assert missed.status_code in (409, 422), missed.get_json()
    moved = nurse.post(
        f"/api/v1/patients/{patient.id}/visit-reschedules",
        json={"visit": "M6", "planned_on": utcnow().date().isoformat(), "reason": "x"},
    )
    assert moved.status_code in (409, 422), moved.get_json()
    page = clients.web(clinic.clinician).post(
        f"/patients/{patient.id}/missed-visits", data={"visit": "M6", "reason": "x"}
    )
    assert page.status_code in (409, 422)
    assert _count(MissedVisit) == 0 and _count(VisitReschedule) == 0
