"""Adverse events for regulators, through the API: seriousness criteria (serious iff any),
awareness time and the sponsor-report clock (initial 24 h, follow-up after the configured
days), reports recorded with time and reference, the investigator's e-signed causality and
expectedness, MedDRA-style term, and the line listings."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from cellchain.clinic.follow_up import reporting
from cellchain.clinic.models import AdverseEvent
from cellchain.core.display import local_time
from cellchain.core.models import Signature
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.follow_up import back_date

AWARE_HOURS_AGO = 30


def at(hours_ago: float) -> str:
    return (utcnow() - dt.timedelta(hours=hours_ago)).isoformat()


def body(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "onset_at": at(40),
        "aware_at": at(AWARE_HOURS_AGO),
        "description": "Pneumonia, admitted to the ward",
        "term": "Pneumonia",
        "term_code": "10035664",
        "grade": 3,
        "seriousness": "serious",
        "serious_criteria": ["hospitalisation"],
        "outcome": "recovering",
    }
    values.update(changes)
    return values


def count_events() -> int:
    return db.session.scalar(select(func.count()).select_from(AdverseEvent)) or 0


@pytest.fixture
def patient(clinic: Any) -> Any:
    return back_date(clinic.enrol(), 10)


@pytest.fixture
def doctor(clinic: Any, clients: Any) -> Any:
    return clients.api(clinic.investigator)


def create(doctor: Any, patient: Any, **changes: Any) -> dict[str, Any]:
    response = doctor.post(f"/api/v1/patients/{patient.id}/adverse-events", json=body(**changes))
    assert response.status_code == 201, response.get_json()
    result: dict[str, Any] = response.get_json()
    return result


def test_a_serious_event_is_recorded_with_criteria_awareness_and_term(
    doctor: Any, patient: Any
) -> None:
    event = create(doctor, patient)
    assert event["serious_criteria"] == ["hospitalisation"]
    assert (event["term"], event["term_code"]) == ("Pneumonia", "10035664")
    assert event["aware_at"] is not None and event["causality"] is None
    assert event["initial_reported_at"] is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"serious_criteria": []}, "serious_criteria"),  # serious without a criterion
        ({"seriousness": "non_serious"}, "serious_criteria"),  # criterion but not serious
        ({"grade": 5, "outcome": "fatal"}, "serious_criteria"),  # death not named
        ({"serious_criteria": ["bad_luck"]}, "serious_criteria"),
        ({"grade": 6}, "grade"),  # CTCAE has no grade 6
        ({"aware_at": at(50)}, "aware_at"),  # aware before the onset
        ({"aware_at": at(-3)}, "aware_at"),  # aware in the future
        ({"term": None}, "term"),  # a code with no term
    ],
)
def test_bad_input_is_refused_on_its_field_with_nothing_saved(
    doctor: Any, patient: Any, changes: dict[str, Any], field: str
) -> None:
    response = doctor.post(f"/api/v1/patients/{patient.id}/adverse-events", json=body(**changes))
    assert response.status_code == 422
    assert any(name.split(".")[0] == field for name in response.get_json()["errors"])
    assert count_events() == 0


def test_a_grade_5_event_naming_death_is_accepted(doctor: Any, patient: Any) -> None:
    event = create(doctor, patient, grade=5, outcome="fatal", serious_criteria=["death"])
    assert event["serious_criteria"] == ["death"]


def test_a_serious_event_is_listed_with_its_deadlines_until_both_reports_are_made(
    doctor: Any, patient: Any
) -> None:
    serious = create(doctor, patient)
    create(doctor, patient, seriousness="non_serious", serious_criteria=[], grade=1)
    due = doctor.get("/api/v1/adverse-events/reports-due").get_json()
    assert [d["event"]["id"] for d in due] == [serious["id"]]
    aware = dt.datetime.fromisoformat(due[0]["aware_at"])
    assert dt.datetime.fromisoformat(due[0]["initial_due"]) == aware + dt.timedelta(hours=24)
    assert dt.datetime.fromisoformat(due[0]["follow_up_due"]) == aware + dt.timedelta(
        days=reporting.FOLLOW_UP_REPORT_DAYS
    )
    assert due[0]["initial_overdue"] is True and due[0]["overdue"] is True
    assert due[0]["follow_up_overdue"] is False

    url = f"/api/v1/adverse-events/{serious['id']}/reports"
    early = doctor.post(url, json={"kind": "follow_up", "reported_at": at(1), "reference": "F"})
    assert early.status_code == 409
    no_ref = doctor.post(url, json={"kind": "initial", "reported_at": at(1), "reference": " "})
    assert no_ref.status_code == 422 and "reference" in no_ref.get_json()["errors"]
    before = doctor.post(url, json={"kind": "initial", "reported_at": at(35), "reference": "S-1"})
    assert before.status_code == 422 and "reported_at" in before.get_json()["errors"]
    assert db.session.get(AdverseEvent, serious["id"]).initial_reported_at is None  # type: ignore[union-attr]

    initial = doctor.post(url, json={"kind": "initial", "reported_at": at(1), "reference": "S-1"})
    assert initial.status_code == 200, initial.get_json()
    assert initial.get_json()["initial_report_ref"] == "S-1"
    again = doctor.post(url, json={"kind": "initial", "reported_at": at(1), "reference": "S-2"})
    assert again.status_code == 409
    due = doctor.get("/api/v1/adverse-events/reports-due").get_json()
    assert [(d["event"]["id"], d["initial_overdue"]) for d in due] == [(serious["id"], False)]
    assert due[0]["next_due"] == due[0]["follow_up_due"]

    follow = doctor.post(
        url, json={"kind": "follow_up", "reported_at": at(0), "reference": "S-1/1"}
    )
    assert follow.status_code == 200
    assert doctor.get("/api/v1/adverse-events/reports-due").get_json() == []


def test_a_non_serious_event_has_no_report(doctor: Any, patient: Any) -> None:
    event = create(doctor, patient, seriousness="non_serious", serious_criteria=[], grade=1)
    response = doctor.post(
        f"/api/v1/adverse-events/{event['id']}/reports",
        json={"kind": "initial", "reported_at": at(1), "reference": "S-1"},
    )
    assert response.status_code == 409
    assert db.session.get(AdverseEvent, event["id"]).initial_reported_at is None  # type: ignore[union-attr]


def test_the_follow_up_deadline_is_the_sites_setting(
    app: Any, doctor: Any, patient: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "AE_FOLLOW_UP_REPORT_DAYS", 7)
    create(doctor, patient)
    (due,) = doctor.get("/api/v1/adverse-events/reports-due").get_json()
    aware = dt.datetime.fromisoformat(due["aware_at"])
    assert dt.datetime.fromisoformat(due["follow_up_due"]) == aware + dt.timedelta(days=7)


def signatures_of(event_id: int) -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Signature)
            .where(Signature.entity_type == "adverse_event", Signature.entity_id == str(event_id))
        )
        or 0
    )


def test_causality_is_assessed_only_by_an_investigator_with_a_signature(
    clinic: Any, clients: Any, doctor: Any, patient: Any
) -> None:
    event = create(doctor, patient)
    url = f"/api/v1/adverse-events/{event['id']}/assessment"
    # the patient was not infused yet: related to the DMARDs (related to the MSC is refused,
    # test_adverse_event_causality.py)
    assessment = {"causality": "related_dmard", "expected": False, "password": TEST_PASSWORD}
    nurse = clients.api(clinic.clinician)
    refused = nurse.post(url, json=assessment)
    assert refused.status_code == 403
    wrong = doctor.post(url, json={**assessment, "password": "not the password"})
    assert wrong.status_code in (401, 403, 422)
    unknown = doctor.post(url, json={**assessment, "causality": "the weather"})
    assert unknown.status_code == 422
    db.session.expire_all()
    assert db.session.get(AdverseEvent, event["id"]).causality is None  # type: ignore[union-attr]
    assert signatures_of(event["id"]) == 0

    signed = doctor.post(url, json=assessment)
    assert signed.status_code == 200, signed.get_json()
    result = signed.get_json()
    assert (result["causality"], result["expected"], result["assessed_by"]) == (
        "related_dmard",
        False,
        "ivan",
    )
    assert signatures_of(event["id"]) == 1
    again = doctor.post(url, json={**assessment, "causality": "unrelated"})
    assert again.status_code == 409


def test_the_line_listings_per_patient_and_for_the_trial(
    clinic: Any, doctor: Any, patient: Any
) -> None:
    other = back_date(clinic.enrol(study_id="AS-002"), 10)
    first = create(doctor, patient, onset_at=at(45))
    second = create(doctor, patient, seriousness="non_serious", serious_criteria=[], grade=1)
    third = create(doctor, other)
    listed = doctor.get("/api/v1/adverse-events").get_json()
    # by patient, then onset: the first event began before the second
    assert [e["id"] for e in listed] == [first["id"], second["id"], third["id"]]
    per_patient = doctor.get(f"/api/v1/patients/{other.id}/adverse-events").get_json()
    assert [e["id"] for e in per_patient] == [third["id"]]
    assert {"term", "serious_criteria", "causality", "expected"} <= set(listed[0])


def test_the_adverse_events_page_flags_an_overdue_report_and_the_csv_lists_every_event(
    clinic: Any, clients: Any, doctor: Any, patient: Any
) -> None:
    serious = create(doctor, patient)
    minor = create(doctor, patient, seriousness="non_serious", serious_criteria=[], grade=1)
    web = clients.web(clinic.clinician)
    page = web.get("/adverse-events").get_data(as_text=True)
    assert f'<tr data-event="{serious["id"]}" data-overdue="yes">' in page
    assert f'data-event="{minor["id"]}" data-overdue' not in page
    csv_text = web.get("/adverse-events.csv").get_data(as_text=True)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("event_id,patient,onset_at,aware_at,term")
    assert [line.split(",")[0] for line in lines[1:]] == [str(serious["id"]), str(minor["id"])]
    assert "Pneumonia,10035664" in lines[1] and "hospitalisation" in lines[1]


def test_recording_a_serious_event_on_the_page_shows_its_reporting_deadline(
    app: Any, clinic: Any, clients: Any, patient: Any
) -> None:
    web = clients.web(clinic.investigator)
    zone = ZoneInfo(app.config["SITE_TIMEZONE"])
    aware = utcnow().replace(second=0, microsecond=0) - dt.timedelta(hours=1)

    def wall(moment: dt.datetime) -> str:  # a datetime-local field: the site's wall clock
        return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M")

    form = {
        "onset_at": wall(aware - dt.timedelta(hours=2)),
        "aware_at": wall(aware),
        "description": "Chest pain, admitted",
        "grade": "3",
        "seriousness": "serious",
        "outcome": "recovering",
    }
    refused = web.post(f"/patients/{patient.id}/adverse-events", data=form)
    assert refused.status_code == 422 and count_events() == 0
    created = web.post(
        f"/patients/{patient.id}/adverse-events",
        data={**form, "serious_criteria": "hospitalisation"},
        follow_redirects=True,
    )
    due = aware + dt.timedelta(hours=24)
    assert f"initial sponsor report due {local_time(due, zone)} " in created.get_data(as_text=True)
