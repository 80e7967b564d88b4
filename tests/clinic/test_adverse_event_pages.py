"""The patient's follow-up page shows each adverse event's regulatory fields and offers, where
the reporting rules allow, the investigator's signed assessment and the sponsor reports."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from cellchain.clinic.models import AdverseEvent
from cellchain.core.models import Signature
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.follow_up import back_date


def at(hours_ago: float) -> str:
    return (utcnow() - dt.timedelta(hours=hours_ago)).isoformat()


@pytest.fixture
def patient(clinic: Any) -> Any:
    return back_date(clinic.enrol(), 10)


@pytest.fixture
def event_id(clinic: Any, clients: Any, patient: Any) -> int:
    response = clients.api(clinic.investigator).post(
        f"/api/v1/patients/{patient.id}/adverse-events",
        json={
            "onset_at": at(40),
            "aware_at": at(30),
            "description": "Pneumonia, admitted to the ward",
            "term": "Pneumonia",
            "term_code": "10035664",
            "grade": 3,
            "seriousness": "serious",
            "serious_criteria": ["hospitalisation"],
            "outcome": "recovering",
        },
    )
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def page(web: Any, patient: Any) -> str:
    response = web.get(f"/patients/{patient.id}/follow-up")
    assert response.status_code == 200
    text: str = response.get_data(as_text=True)
    return text


def signatures() -> int:
    return db.session.scalar(select(func.count()).select_from(Signature)) or 0


def test_the_page_shows_the_regulatory_fields_and_links(
    clinic: Any, clients: Any, patient: Any, event_id: int
) -> None:
    html = page(clients.web(clinic.lab.qa), patient)
    for part in (
        "Pneumonia",
        "10035664",
        "Site aware",
        "hospitalisation",
        "Causality not assessed yet.",
        'data-report="initial">Initial report: due',
        'data-report="follow_up">Follow-up report: due',
        "overdue",  # aware 30 h ago: the initial report was due 6 h ago
        f'href="/patients/{patient.id}/endpoints"',
        'href="/adverse-events"',
    ):
        assert part in html, part
    assert f'id="assess-form-{event_id}"' not in html  # QA records no adverse events
    assert f'id="report-form-{event_id}"' not in html


def test_only_an_investigator_is_offered_the_assessment(
    clinic: Any, clients: Any, patient: Any, event_id: int
) -> None:
    clinician = page(clients.web(clinic.clinician), patient)
    assert f'id="assess-form-{event_id}"' not in clinician
    assert f'id="report-form-{event_id}"' in clinician
    assert f'id="assess-form-{event_id}"' in page(clients.web(clinic.investigator), patient)


def test_an_investigator_signs_the_assessment_and_a_wrong_password_saves_nothing(
    clinic: Any, clients: Any, patient: Any, event_id: int
) -> None:
    web = clients.web(clinic.investigator)
    url = f"/adverse-events/{event_id}/assessment"
    before = signatures()
    typed = {"causality": "related_dmard", "expected": "false", "password": "not-it"}
    refused = web.post(url, data=typed)
    assert refused.status_code in (401, 403, 422)
    html = refused.get_data(as_text=True)
    assert 'id="form-error"' in html
    assert '<option value="related_dmard" selected>' in html  # kept
    assert 'value="not-it"' not in html  # the password is not echoed
    db.session.expire_all()
    assert db.session.get(AdverseEvent, event_id).causality is None
    assert signatures() == before
    done = web.post(url, data={**typed, "password": TEST_PASSWORD})
    assert done.status_code == 302
    html = web.get(done.headers["Location"]).get_data(as_text=True)
    assert f"Adverse event {event_id} assessed" in html
    assert "unexpected" in html and f'id="assess-form-{event_id}"' not in html
    db.session.expire_all()
    event = db.session.get(AdverseEvent, event_id)
    assert (event.causality, event.expected) == ("related_dmard", False)
    assert signatures() == before + 1


def test_a_clinician_records_the_initial_then_the_follow_up_report(
    clinic: Any, clients: Any, patient: Any, event_id: int, app: Any
) -> None:
    web = clients.web(clinic.clinician)
    url = f"/adverse-events/{event_id}/reports"
    zone = ZoneInfo(app.config["SITE_TIMEZONE"])
    sent = (utcnow() - dt.timedelta(hours=2)).astimezone(zone).strftime("%Y-%m-%dT%H:%M")
    missing = web.post(url, data={"kind": "initial", "reported_at": sent, "reference": ""})
    assert missing.status_code == 422
    html = missing.get_data(as_text=True)
    assert 'id="form-error"' in html and f'value="{sent}"' in html
    done = web.post(url, data={"kind": "initial", "reported_at": sent, "reference": "SP-001"})
    assert done.status_code == 302
    html = web.get(done.headers["Location"]).get_data(as_text=True)
    assert "SP-001" in html and 'data-report="initial">Initial report: sent' in html
    assert '<option value="follow_up" selected>' in html  # only the follow-up is left
    db.session.expire_all()
    assert db.session.get(AdverseEvent, event_id).initial_report_ref == "SP-001"
