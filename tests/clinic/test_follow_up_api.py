"""Follow-up and adverse events over HTTP: the API's statuses and bodies, and the pages (the
clinic's due list, the patient's follow-up, its forms' success and refusal)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from cellchain.clinic.models import AdverseEvent, Infusion
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.support.follow_up import back_date, infuse


def today() -> str:
    return utcnow().date().isoformat()


def onset(hours_ago: float = 2) -> str:
    return (utcnow() - dt.timedelta(hours=hours_ago)).isoformat()


def event_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "onset_at": onset(),
        "description": "Headache after the infusion",
        "grade": 1,
        "seriousness": "non_serious",
        "outcome": "recovering",
    }
    body.update(changes)
    return body


@pytest.fixture
def patient(clinic: Any) -> Any:
    """AS-001, day 0 was 182 days ago and infused: M3 is overdue, M6 is due today."""
    enrolled = back_date(clinic.enrol(), 182)
    infuse(clinic, enrolled, "D0", at=utcnow() - dt.timedelta(days=182))
    return enrolled


# --- API ----------------------------------------------------------------------------------------


def test_api_lists_the_schedule_and_the_clinics_due_visits(
    clinic: Any, patient: Any, clients: Any
) -> None:
    reader = clients.api(clinic.lab.tech)  # everyone may read
    schedule = reader.get(f"/api/v1/patients/{patient.id}/follow-up")
    assert schedule.status_code == 200
    body = schedule.get_json()
    assert [(v["code"], v["status"]) for v in body] == [
        ("D0", "done"),
        ("M3", "overdue"),
        ("M6", "due"),
        ("M12", "planned"),
    ]
    m3 = body[1]
    assert m3["infusion"] and m3["window_days"] == 14 and m3["patient"] == "AS-001"
    assert m3["earliest"] < m3["planned_on"] < m3["latest"]
    assert body[0]["done_on"] and body[2]["done_on"] is None
    due = reader.get("/api/v1/follow-up/due").get_json()
    assert [(v["patient"], v["code"], v["status"]) for v in due] == [
        ("AS-001", "M3", "overdue"),
        ("AS-001", "M6", "due"),
    ]
    assert len(reader.get("/api/v1/follow-up/due?coming_up=true").get_json()) == 2


def test_api_records_an_evaluation_once(clinic: Any, patient: Any, clients: Any) -> None:
    nurse = clients.api(clinic.clinician)
    url = f"/api/v1/patients/{patient.id}/follow-up"
    done = nurse.post(url, json={"visit": "M6", "done_on": today(), "note": "BASDAI 2.8"})
    assert done.status_code == 201, done.get_json()
    row = done.get_json()
    assert (row["visit"], row["done_on"], row["note"], row["recorded_by"]) == (
        "M6",
        today(),
        "BASDAI 2.8",
        "cleo",
    )
    again = nurse.post(url, json={"visit": "M6", "done_on": today()})
    assert again.status_code == 409
    assert again.mimetype == "application/problem+json"
    assert "already recorded as done on" in again.get_json()["detail"]
    infusion = nurse.post(url, json={"visit": "M3", "done_on": today()})
    assert infusion.status_code == 422
    assert "done by its infusion" in infusion.get_json()["errors"]["visit"][0]
    shapeless = nurse.post(url, json={"visit": "M12"})
    assert shapeless.status_code == 422 and "done_on" in shapeless.get_json()["errors"]
    statuses = {v["code"]: v["status"] for v in nurse.get(url).get_json()}
    assert statuses["M6"] == "done"


def test_api_answers_404_for_an_unknown_patient_or_event(clinic: Any, clients: Any) -> None:
    nurse = clients.api(clinic.clinician)
    for response in (
        nurse.get("/api/v1/patients/999/follow-up"),
        nurse.post("/api/v1/patients/999/follow-up", json={"visit": "M6", "done_on": today()}),
        nurse.get("/api/v1/patients/999/adverse-events"),
        nurse.post("/api/v1/patients/999/adverse-events", json=event_body()),
        nurse.post(
            "/api/v1/adverse-events/999/outcome", json={"outcome": "recovered", "reason": "x"}
        ),
    ):
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"


def test_api_records_an_adverse_event_and_updates_its_outcome(
    clinic: Any, patient: Any, clients: Any
) -> None:
    doctor = clients.api(clinic.investigator)
    url = f"/api/v1/patients/{patient.id}/adverse-events"
    infusion_id = db.session.execute(select(Infusion.id)).scalar_one()
    created = doctor.post(url, json=event_body(infusion_id=infusion_id))
    assert created.status_code == 201, created.get_json()
    event = created.get_json()
    assert (event["grade"], event["outcome"], event["infusion_visit"]) == (1, "recovering", "D0")
    assert event["patient"] == "AS-001" and event["recorded_by"] == "ivan"
    no_reason = doctor.post(
        f"/api/v1/adverse-events/{event['id']}/outcome", json={"outcome": "recovered"}
    )
    assert no_reason.status_code == 422
    assert no_reason.get_json()["errors"]["reason"] == ["Say why the outcome changed."]
    changed = doctor.post(
        f"/api/v1/adverse-events/{event['id']}/outcome",
        json={"outcome": "recovered", "reason": "Resolved by the day 2 call"},
    )
    assert changed.status_code == 200 and changed.get_json()["outcome"] == "recovered"
    fatal = doctor.post(
        f"/api/v1/adverse-events/{event['id']}/outcome",
        json={"outcome": "fatal", "reason": "Died"},
    )
    assert fatal.status_code == 422 and "new grade 5 event" in fatal.get_json()["detail"]
    listed = clients.api(clinic.lab.qa).get(url).get_json()
    assert [(e["id"], e["outcome"]) for e in listed] == [(event["id"], "recovered")]


def test_api_refuses_an_inconsistent_adverse_event_naming_each_field(
    clinic: Any, patient: Any, clients: Any
) -> None:
    doctor = clients.api(clinic.clinician)
    url = f"/api/v1/patients/{patient.id}/adverse-events"
    refused = doctor.post(url, json=event_body(grade=4, outcome="fatal", onset_at=onset(-5)))
    assert refused.status_code == 422
    problem = refused.get_json()
    assert set(problem["errors"]) == {"grade", "seriousness", "onset_at"}
    assert problem["detail"].startswith("The adverse event was not recorded:")
    shapeless = doctor.post(url, json=event_body(grade=7, outcome="better"))
    assert shapeless.status_code == 422
    assert set(shapeless.get_json()["errors"]) == {"grade", "outcome"}
    assert doctor.get(url).get_json() == []


# --- pages --------------------------------------------------------------------------------------


def test_the_due_page_lists_overdue_first_and_links_to_the_patient(
    clinic: Any, patient: Any, clients: Any
) -> None:
    page = clients.web(clinic.lab.qa).get("/follow-up")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="due-visits"' in html
    assert f'href="/patients/{patient.id}"' in html
    assert html.index('data-visit="M3" data-status="overdue"') < html.index(
        'data-visit="M6" data-status="due"'
    )
    coming = clients.web(clinic.lab.qa).get("/follow-up?coming_up=1").get_data(as_text=True)
    assert "Due and overdue only" in coming


def test_the_patient_page_shows_the_schedule_and_forms_to_clinic_staff_only(
    clinic: Any, patient: Any, clients: Any
) -> None:
    staff = clients.web(clinic.clinician).get(f"/patients/{patient.id}/follow-up")
    assert staff.status_code == 200
    html = staff.get_data(as_text=True)
    for part in (
        'id="schedule"',
        'id="visit-form"',
        'id="adverse-events"',
        'id="adverse-event-form"',
    ):
        assert part in html
    assert 'data-visit="M3" data-status="overdue"' in html
    lab = clients.web(clinic.lab.tech).get(f"/patients/{patient.id}/follow-up")
    assert lab.status_code == 200 and 'id="visit-form"' not in lab.get_data(as_text=True)
    assert clients.web(clinic.lab.tech).get("/patients/999/follow-up").status_code == 404


def test_the_visit_form_records_or_re_renders_with_the_reason_and_what_was_typed(
    clinic: Any, patient: Any, clients: Any
) -> None:
    web = clients.web(clinic.clinician)
    url = f"/patients/{patient.id}/follow-up"
    tomorrow = (utcnow().date() + dt.timedelta(days=1)).isoformat()
    refused = web.post(url, data={"visit": "M6", "done_on": tomorrow, "note": "typed note"})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert 'id="form-error"' in html and "is in the future" in html
    assert f'value="{tomorrow}"' in html and 'value="typed note"' in html
    done = web.post(url, data={"visit": "M6", "done_on": today()})
    assert done.status_code == 302
    page = web.get(done.headers["Location"]).get_data(as_text=True)
    assert f"Visit M6 recorded as done on {today()}." in page
    assert 'data-visit="M6" data-status="done"' in page
    twice = web.post(url, data={"visit": "M6", "done_on": today()})
    assert twice.status_code == 409 and "already recorded" in twice.get_data(as_text=True)


def test_the_adverse_event_forms_record_refuse_and_update_the_outcome(
    clinic: Any, patient: Any, clients: Any
) -> None:
    web = clients.web(clinic.investigator)
    url = f"/patients/{patient.id}/adverse-events"
    typed = {
        "onset_at": (utcnow() - dt.timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"),
        "description": "Anaphylaxis",
        "grade": "4",
        "seriousness": "non_serious",
        "outcome": "recovered",
    }
    refused = web.post(url, data=typed)
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "life-threatening, which is a seriousness criterion" in html
    assert 'value="Anaphylaxis"' in html and '<option value="4" selected>' in html
    created = web.post(
        url, data={**typed, "seriousness": "serious", "serious_criteria": "life_threatening"}
    )
    assert created.status_code == 302
    page = web.get(created.headers["Location"]).get_data(as_text=True)
    assert "(grade 4) recorded." in page and "Anaphylaxis" in page
    event_id = db.session.execute(select(AdverseEvent.id)).scalar_one()
    assert f'id="outcome-form-{event_id}"' in page
    no_reason = web.post(f"/adverse-events/{event_id}/outcome", data={"outcome": "recovered"})
    assert no_reason.status_code == 422
    html = no_reason.get_data(as_text=True)
    assert "Say why the outcome changed." in html
    assert '<option value="recovered" selected>' in html  # kept on the form posted
    updated = web.post(
        f"/adverse-events/{event_id}/outcome",
        data={"outcome": "recovered_with_sequelae", "reason": "Residual urticaria at day 7"},
    )
    assert updated.status_code == 302
    page = web.get(updated.headers["Location"]).get_data(as_text=True)
    assert "is now recovered with sequelae" in page
    assert f'data-event="{event_id}" data-outcome="recovered_with_sequelae"' in page
