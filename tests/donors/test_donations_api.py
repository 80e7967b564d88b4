"""The donations API: status codes and bodies for registration, receipt, processing, donor
tests, the eligibility determination, lists, the QA queue, products and donors.

The rules themselves are tested on the service (test_donation_service.py); here each is
checked once through HTTP: the status, the problem body naming the field, and that a refusal
saved nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cellchain.core.identifiers import parse_identifier
from cellchain.core.types import utcnow
from cellchain.donors.models import Donation
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD, Clients

PROBLEM = "application/problem+json"
HOURS = dt.timedelta(hours=1)
DAYS = dt.timedelta(days=1)
PANEL = ["HIV1-AB", "HIV1-NAT", "HIV2-AB", "HBSAG", "HBC-AB", "HCV-AB", "HCV-NAT", "SYPHILIS"]
#: A fixed offset that is not the site's (UTC in tests), so an offset that is ignored shows.
PLUS_TWO = dt.timezone(dt.timedelta(hours=2))


# --- helpers --------------------------------------------------------------------------------


def problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status and body["detail"]
    return body


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def minutes(value: dt.datetime) -> dt.datetime:
    """Whole minutes, as a person types them: comparisons with what is stored are exact."""
    return value.replace(second=0, microsecond=0)


def donation_body(**changes: Any) -> dict[str, Any]:
    """A complete, valid registration of a new donor's donation (born 6 h ago, collected 5 h)."""
    now = minutes(utcnow()).astimezone(PLUS_TWO)
    today = utcnow().date()
    body: dict[str, Any] = {
        "consent_date": (today - 30 * DAYS).isoformat(),
        "consent_form_version": "ICF v3.1",
        "screening_outcome": "acceptable",
        "screening_date": (today - 2 * DAYS).isoformat(),
        "umbilical_cord": True,
        "placenta": True,
        "delivery_at": (now - 6 * HOURS).isoformat(),
        "collected_at": (now - 5 * HOURS).isoformat(),
        "collection_site": "Maternity ward, City Hospital",
        "collector": "Midwife R. Okafor",
        "transport_conditions": "2–8 °C validated shipper",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def receipt_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "received_at": (utcnow() - HOURS).isoformat(),
        "temperature_c": 4.5,
        "condition": "intact",
        "decision": "accept",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def total(client: Any) -> int:
    return ok(client.get("/api/v1/donations"))["total"]


def stored(donation_id: int) -> Donation:
    """The donation as committed by the requests."""
    db.session.rollback()
    donation = db.session.get(Donation, donation_id)
    assert donation is not None
    return donation


@pytest.fixture
def tech(lab: Any, clients: Clients) -> Any:
    return clients.api(lab.tech)


@pytest.fixture
def qc(lab: Any, clients: Clients) -> Any:
    return clients.api(lab.qc)


@pytest.fixture
def qa(lab: Any, clients: Clients) -> Any:
    return clients.api(lab.qa)


def register(client: Any, **changes: Any) -> dict[str, Any]:
    return ok(client.post("/api/v1/donations", json=donation_body(**changes)), 201)


def receive(client: Any, donation_id: int, **changes: Any) -> dict[str, Any]:
    return ok(client.post(f"/api/v1/donations/{donation_id}/receipt", json=receipt_body(**changes)))


def record(client: Any, donation: dict[str, Any], code: str, **changes: Any) -> Any:
    body = {
        "test_code": code,
        "specimen_date": dt.date.fromisoformat(donation["collected_at"][:10]).isoformat(),
        "result": "non_reactive",
        **changes,
    }
    return client.post(f"/api/v1/donations/{donation['id']}/results", json=body)


def full_panel(client: Any, donation: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    for code in PANEL:
        if code not in skip:
            ok(record(client, donation, code), 201)


def determine(client: Any, donation_id: int, **changes: Any) -> Any:
    body = {"outcome": "eligible", "password": TEST_PASSWORD, **changes}
    return client.post(f"/api/v1/donations/{donation_id}/eligibility", json=body)


# --- registration ---------------------------------------------------------------------------


def test_registration_allocates_a_din_and_starts_in_quarantine(lab, tech):
    collected = minutes(utcnow()) - 5 * HOURS
    body = donation_body(
        delivery_at=(collected - 90 * dt.timedelta(minutes=1)).astimezone(PLUS_TWO).isoformat(),
        collected_at=collected.astimezone(PLUS_TWO).isoformat(),
    )
    assert body["collected_at"].endswith("+02:00")

    created = ok(tech.post("/api/v1/donations", json=body), 201)

    din = parse_identifier(created["din"])
    assert din.kind == "DIN" and din.facility_code == lab.app.config["FACILITY_CODE"]
    assert created["din"] == din.canonical
    assert (created["status"], created["eligibility"], created["in_quarantine"]) == (
        "registered",
        "pending",
        True,
    )
    assert created["tissues"] == ["umbilical cord", "placenta"]
    assert created["product"] == "UC-MSC v1"
    assert created["registered_by"] == "tina"
    assert created["collector"] == "Midwife R. Okafor"
    assert created["donor"]["code"].startswith("DNR")
    assert created["donor"]["consent_form_version"] == "ICF v3.1"
    assert created["donor"]["screening_outcome"] == "acceptable"
    # the offset was honoured: stored as the same instant, in UTC
    assert dt.datetime.fromisoformat(created["collected_at"]) == collected
    assert stored(created["id"]).collected_at == collected
    assert stored(created["id"]).collected_at.utcoffset() == dt.timedelta(0)
    units = created["units"]
    assert len(units) == 2 and len({u["code"] for u in units}) == 2
    for unit in units:
        assert unit["kind"] == "donation_container" and unit["status"] == "quarantine"
        assert unit["din"] == created["din"]
        assert parse_identifier(unit["code"]).din == din.body
    clock = created["processing_clock"]
    assert clock["limit_hours"] == 72
    assert (clock["started"], clock["exceeded"]) == (False, False)
    assert 6.4 < clock["hours_elapsed"] < 6.7
    assert [t["code"] for t in created["panel"]] == PANEL
    assert created["results"] == [] and created["determination"] is None
    shown = ok(tech.get(f"/api/v1/donations/{created['id']}"))
    assert shown.pop("processing_clock")["limit_hours"] == 72  # the clock runs on
    assert shown == {k: v for k, v in created.items() if k != "processing_clock"}


def test_times_without_an_offset_are_read_in_the_site_time_zone(lab, make_app, clients):
    kolkata = make_app(SITE_TIMEZONE="Asia/Kolkata")  # UTC+05:30 all year, no DST
    client = Clients(kolkata, clients.make_user).api(lab.tech)
    wall = minutes(utcnow().astimezone(ZoneInfo("Asia/Kolkata"))) - 5 * HOURS
    naive = wall.replace(tzinfo=None)

    created = ok(
        client.post(
            "/api/v1/donations",
            json=donation_body(
                delivery_at=(naive - HOURS).isoformat(), collected_at=naive.isoformat()
            ),
        ),
        201,
    )

    expected = wall.astimezone(dt.UTC)
    assert stored(created["id"]).collected_at == expected
    assert stored(created["id"]).delivery_at == expected - HOURS
    assert dt.datetime.fromisoformat(created["collected_at"]) == expected
    assert naive - expected.replace(tzinfo=None) == dt.timedelta(hours=5, minutes=30)


def test_times_without_an_offset_are_utc_on_a_utc_site(lab, tech):
    assert lab.app.config["SITE_TIMEZONE"] == "UTC"
    naive = minutes(utcnow()).replace(tzinfo=None) - 5 * HOURS

    created = register(
        tech, delivery_at=(naive - HOURS).isoformat(), collected_at=naive.isoformat()
    )

    assert stored(created["id"]).collected_at == naive.replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param(
            {"collected_at": (utcnow() + 2 * HOURS).isoformat()}, "collected_at", id="future"
        ),
        pytest.param(
            {
                "delivery_at": (utcnow() - 5 * HOURS).isoformat(),
                "collected_at": (utcnow() - 6 * HOURS).isoformat(),
            },
            "collected_at",
            id="collected-before-birth",
        ),
        pytest.param({"umbilical_cord": False, "placenta": False}, "tissues", id="no-tissue"),
        pytest.param({"consent_date": None}, "consent_date", id="no-consent-date"),
        pytest.param({"consent_form_version": None}, "consent_form_version", id="no-consent-form"),
        pytest.param({"screening_outcome": None}, "screening_outcome", id="no-screening"),
        pytest.param({"screening_date": None}, "screening_date", id="no-screening-date"),
        pytest.param({"donor_code": "DNR26-00001"}, "donor_code", id="donor-code-and-consent"),
        pytest.param({"screening_outcome": "fine"}, "screening_outcome", id="unknown-outcome"),
        pytest.param({"collector": None}, "collector", id="no-collector"),
        pytest.param({"patient_name": "Jane Doe"}, "patient_name", id="unknown-field"),
        pytest.param({"delivery_at": "yesterday"}, "delivery_at", id="not-a-time"),
    ],
)
def test_bad_registrations_name_the_field_and_save_nothing(lab, tech, changes, field):
    register(tech)  # a donor DNR26-00001 exists: only the body's shape is wrong
    before = total(tech)

    body = problem(tech.post("/api/v1/donations", json=donation_body(**changes)), 422)

    assert field in body["errors"], body
    assert all(isinstance(m, str) and m for m in body["errors"][field])
    assert total(tech) == before


def test_a_future_collection_says_so(tech):
    body = problem(
        tech.post(
            "/api/v1/donations",
            json=donation_body(collected_at=(utcnow() + 2 * HOURS).isoformat()),
        ),
        422,
    )
    assert "future" in " ".join(body["errors"]["collected_at"])
    assert total(tech) == 0


def test_all_missing_consent_fields_are_named_at_once(tech):
    body = problem(
        tech.post(
            "/api/v1/donations",
            json=donation_body(
                consent_date=None,
                consent_form_version=None,
                screening_outcome=None,
                screening_date=None,
            ),
        ),
        422,
    )
    assert {
        "consent_date",
        "consent_form_version",
        "screening_outcome",
        "screening_date",
    } <= set(body["errors"])
    assert total(tech) == 0


def test_a_second_birth_registers_with_the_donor_code_alone(tech):
    first = register(tech)
    code = first["donor"]["code"]

    second = register(
        tech,
        donor_code=code.lower(),
        consent_date=None,
        consent_form_version=None,
        screening_outcome=None,
        screening_date=None,
    )

    assert second["donor"]["id"] == first["donor"]["id"] and second["din"] != first["din"]
    unknown = problem(
        tech.post(
            "/api/v1/donations",
            json=donation_body(
                donor_code="DNR99-99999",
                consent_date=None,
                consent_form_version=None,
                screening_outcome=None,
                screening_date=None,
            ),
        ),
        404,
    )
    assert "donor_code" in unknown["errors"]
    assert total(tech) == 2


def test_qc_cannot_register_and_nothing_without_a_token(lab, qc, app):
    problem(qc.post("/api/v1/donations", json=donation_body()), 403)
    problem(app.test_client().post("/api/v1/donations", json=donation_body()), 401)
    assert total(qc) == 0


# --- receipt and processing -----------------------------------------------------------------


def test_receipt_accepts_once(tech):
    donation = register(tech)
    url = f"/api/v1/donations/{donation['id']}/receipt"

    received = ok(tech.post(url, json=receipt_body(temperature_c=6.0, note="cool box sealed")))

    assert received["status"] == "received" and received["received_by"] == "tina"
    assert received["arrival_temperature_c"] == 6.0
    assert received["container_condition"] == "intact"
    assert received["receipt_note"] == "cool box sealed"
    assert received["in_quarantine"] is True  # receipt does not lift the hold
    assert {u["location"] for u in received["units"]} == {"Lab receipt"}
    again = problem(tech.post(url, json=receipt_body()), 409)
    assert "received" in again["detail"]
    assert stored(donation["id"]).status == "received"


def test_receipt_before_collection_is_refused(tech):
    donation = register(tech)
    collected = dt.datetime.fromisoformat(donation["collected_at"])

    body = problem(
        tech.post(
            f"/api/v1/donations/{donation['id']}/receipt",
            json=receipt_body(received_at=(collected - HOURS).isoformat()),
        ),
        422,
    )

    assert "before it was collected" in " ".join(body["errors"]["received_at"])
    assert stored(donation["id"]).status == "registered"
    assert stored(donation["id"]).received_at is None


def test_rejection_needs_a_note(tech):
    donation = register(tech)
    url = f"/api/v1/donations/{donation['id']}/receipt"

    body = problem(tech.post(url, json=receipt_body(decision="reject", condition="leaking")), 422)

    assert "note" in body["errors"]
    assert stored(donation["id"]).status == "registered"
    rejected = ok(
        tech.post(url, json=receipt_body(decision="reject", condition="leaking", note="leaking"))
    )
    assert rejected["status"] == "rejected"
    assert {u["status"] for u in rejected["units"]} == {"rejected"}


def test_receipt_body_shape_is_checked(tech):
    donation = register(tech)
    body = problem(
        tech.post(
            f"/api/v1/donations/{donation['id']}/receipt",
            json={"received_at": utcnow().isoformat(), "decision": "maybe"},
        ),
        422,
    )
    assert {"temperature_c", "condition", "decision"} <= set(body["errors"])
    problem(tech.post("/api/v1/donations/999999/receipt", json=receipt_body()), 404)


def test_processing_starts_on_a_received_donation(tech):
    donation = register(tech)
    url = f"/api/v1/donations/{donation['id']}/processing"
    registered_only = problem(tech.post(url), 409)
    assert "registered" in registered_only["detail"]
    receive(tech, donation["id"])

    started = ok(tech.post(url))

    assert started["status"] == "processing"
    assert started["processing_started_at"] is not None
    assert started["processing_clock"]["started"] is True
    assert 5.9 < started["processing_clock"]["hours_elapsed"] < 6.2
    problem(tech.post(url), 409)


def test_processing_past_72_hours_from_birth_is_refused(tech):
    now = utcnow()
    donation = register(
        tech,
        delivery_at=(now - 80 * HOURS).isoformat(),
        collected_at=(now - 79 * HOURS).isoformat(),
    )
    assert donation["processing_clock"]["exceeded"] is True
    receive(tech, donation["id"], received_at=(now - 70 * HOURS).isoformat())

    body = problem(tech.post(f"/api/v1/donations/{donation['id']}/processing"), 409)

    assert "72 h" in body["detail"] and "80." in body["detail"]
    assert stored(donation["id"]).status == "received"
    assert stored(donation["id"]).processing_started_at is None


# --- infectious-disease tests ---------------------------------------------------------------


def test_qc_records_the_full_panel(tech, qc):
    donation = register(tech)

    for code in PANEL:
        result = ok(record(qc, donation, code.lower(), method="Lab X, kit Y"), 201)
        assert (result["test_code"], result["result"], result["recorded_by"]) == (
            code,
            "non_reactive",
            "quinn",
        )
        assert result["superseded_by_id"] is None and result["corrects_id"] is None

    shown = ok(qc.get(f"/api/v1/donations/{donation['id']}"))
    assert sorted(r["test_code"] for r in shown["results"]) == sorted(PANEL)


def test_a_result_not_on_the_panel_is_refused(tech, qc):
    donation = register(tech)

    body = problem(record(qc, donation, "HTLV-AB"), 422)

    assert "not on the panel" in " ".join(body["errors"]["test_code"])
    assert ok(qc.get(f"/api/v1/donations/{donation['id']}"))["results"] == []


def test_a_duplicate_result_is_a_conflict(tech, qc):
    donation = register(tech)
    ok(record(qc, donation, "HBSAG"), 201)

    body = problem(record(qc, donation, "HBSAG", result="reactive"), 409)

    assert "already has a result" in body["detail"]
    results = ok(qc.get(f"/api/v1/donations/{donation['id']}"))["results"]
    assert [(r["test_code"], r["result"]) for r in results] == [("HBSAG", "non_reactive")]


def test_a_specimen_outside_the_window_is_refused(tech, qc):
    donation = register(tech)
    recovery = dt.date.fromisoformat(donation["collected_at"][:10])
    ok(record(qc, donation, "HIV1-AB", specimen_date=(recovery - 7 * DAYS).isoformat()), 201)

    body = problem(
        record(qc, donation, "HIV1-NAT", specimen_date=(recovery - 8 * DAYS).isoformat()), 422
    )

    message = " ".join(body["errors"]["specimen_date"])
    assert "7 days" in message and "8 days away" in message
    results = ok(qc.get(f"/api/v1/donations/{donation['id']}"))["results"]
    assert [r["test_code"] for r in results] == ["HIV1-AB"]


def test_the_technician_may_not_record_results(tech):
    donation = register(tech)
    problem(record(tech, donation, "HBSAG"), 403)


def test_a_correction_needs_a_reason_and_keeps_the_original(tech, qc):
    donation = register(tech)
    original = ok(record(qc, donation, "HCV-AB", result="indeterminate"), 201)
    url = f"/api/v1/donations/{donation['id']}/results/{original['id']}/correction"
    correction = {"specimen_date": original["specimen_date"], "result": "non_reactive"}

    missing = problem(qc.post(url, json=correction), 422)
    blank = problem(qc.post(url, json={**correction, "reason": "   "}), 422)

    assert "reason" in missing["errors"] and "reason" in blank["errors"]
    unchanged = ok(qc.get(f"/api/v1/donations/{donation['id']}"))["results"]
    assert [(r["result"], r["superseded_at"]) for r in unchanged] == [("indeterminate", None)]

    corrected = ok(qc.post(url, json={**correction, "reason": "transcription error"}), 201)

    assert corrected["corrects_id"] == original["id"]
    assert corrected["correction_reason"] == "transcription error"
    results = ok(qc.get(f"/api/v1/donations/{donation['id']}"))["results"]
    by_id = {r["id"]: r for r in results}
    assert set(by_id) == {original["id"], corrected["id"]}
    assert by_id[original["id"]]["result"] == "indeterminate"
    assert by_id[original["id"]]["superseded_by_id"] == corrected["id"]
    assert by_id[original["id"]]["superseded_at"] is not None
    assert by_id[corrected["id"]]["superseded_by_id"] is None
    again = problem(qc.post(url, json={**correction, "reason": "again"}), 409)
    assert "already been corrected" in again["detail"]
    other = register(tech)
    problem(
        qc.post(
            f"/api/v1/donations/{other['id']}/results/{corrected['id']}/correction",
            json={**correction, "reason": "wrong donation"},
        ),
        404,
    )


# --- eligibility ----------------------------------------------------------------------------


def test_the_review_lists_checks_and_missing_tests(tech, qc):
    donation = register(tech)
    full_panel(qc, donation, skip=("SYPHILIS", "HCV-NAT"))

    review = ok(qc.get(f"/api/v1/donations/{donation['id']}/eligibility"))

    assert review["din"] == donation["din"] and review["eligibility"] == "pending"
    assert review["missing_tests"] == ["HCV-NAT", "SYPHILIS"]
    assert (review["complete"], review["eligible_possible"]) == (False, False)
    checks = {c["label"]: c for c in review["checks"]}
    assert len(review["checks"]) == 9  # screening and eight tests
    assert checks["Donor screening"]["ok"] is True
    assert "acceptable" in checks["Donor screening"]["detail"]
    assert checks["Syphilis (Treponema pallidum)"] == {
        "label": "Syphilis (Treponema pallidum)",
        "ok": False,
        "passed": False,
        "state": "NOT YET",
        "detail": "no result yet",
    }
    assert checks["Anti-HIV-1 antibody"]["ok"] is True


def test_qa_determines_eligible_with_a_signature(lab, tech, qc, qa):
    donation = register(tech)
    receive(tech, donation["id"])
    full_panel(qc, donation)
    review = ok(qa.get(f"/api/v1/donations/{donation['id']}/eligibility"))
    assert review["complete"] and review["eligible_possible"] and review["missing_tests"] == []

    determination = ok(determine(qa, donation["id"]), 201)

    assert determination["outcome"] == "eligible" and determination["determined_by"] == "alex"
    assert "password" not in determination
    [signature] = determination["signatures"]
    assert signature["printed_name"] == lab.qa.full_name == "Alex Tester"
    assert signature["username"] == "alex"
    assert signature["meaning"] == "responsibility: donor eligibility determination: eligible"
    assert signature["valid"] is True
    shown = ok(qa.get(f"/api/v1/donations/{donation['id']}"))
    assert (shown["eligibility"], shown["in_quarantine"]) == ("eligible", False)
    assert shown["determination"]["signatures"] == determination["signatures"]
    assert {u["status"] for u in shown["units"]} != {"blocked"}

    second = problem(determine(qa, donation["id"], outcome="ineligible", reason="no"), 409)
    assert "already been determined" in second["detail"]
    assert ok(qa.get(f"/api/v1/donations/{donation['id']}"))["eligibility"] == "eligible"


def test_a_determination_with_a_test_missing_names_it(tech, qc, qa):
    donation = register(tech)
    full_panel(qc, donation, skip=("SYPHILIS",))

    body = problem(determine(qa, donation["id"]), 409)

    assert "SYPHILIS" in body["detail"]
    assert stored(donation["id"]).eligibility == "pending"


def test_a_wrong_password_signs_nothing(lab, tech, qc, qa):
    donation = register(tech)
    full_panel(qc, donation)

    body = problem(determine(qa, donation["id"], password="not the password"), 401)

    assert "not the password" not in str(body)
    found = stored(donation["id"])
    assert found.eligibility == "pending" and found.determination is None
    assert ok(qa.get(f"/api/v1/donations/{donation['id']}"))["determination"] is None


def test_ineligible_needs_a_reason_and_blocks_the_units(tech, qc, qa):
    donation = register(tech)
    full_panel(qc, donation)

    body = problem(determine(qa, donation["id"], outcome="ineligible"), 422)

    assert "reason" in body["errors"]
    assert stored(donation["id"]).eligibility == "pending"
    determination = ok(
        determine(qa, donation["id"], outcome="ineligible", reason="travel history"), 201
    )
    assert determination["reason"] == "travel history"
    assert determination["signatures"][0]["meaning"].endswith(": ineligible")
    shown = ok(qa.get(f"/api/v1/donations/{donation['id']}"))
    assert shown["eligibility"] == "ineligible" and shown["in_quarantine"] is True
    assert {u["status"] for u in shown["units"]} == {"blocked"}


def test_only_qa_determines(tech, qc):
    donation = register(tech)
    full_panel(qc, donation)
    problem(determine(qc, donation["id"]), 403)
    problem(determine(tech, donation["id"]), 403)
    assert stored(donation["id"]).eligibility == "pending"


# --- lists ----------------------------------------------------------------------------------


@pytest.fixture
def four_donations(lab: Any, tech: Any, qc: Any, qa: Any) -> dict[str, dict[str, Any]]:
    """Registered, two received (older and newer), rejected and eligible, in that order."""
    registered = register(tech)
    older = register(tech)
    receive(tech, older["id"])
    rejected = register(tech)
    receive(tech, rejected["id"], decision="reject", note="seal broken", condition="seal_broken")
    newer = register(tech)
    receive(tech, newer["id"])
    eligible = register(tech)
    receive(tech, eligible["id"])
    full_panel(qc, eligible)
    ok(determine(qa, eligible["id"]), 201)
    return {
        "registered": registered,
        "older": older,
        "rejected": rejected,
        "newer": newer,
        "eligible": eligible,
    }


def test_the_list_filters_and_pages(tech, four_donations):
    d = four_donations
    query = "/api/v1/donations?status=received&eligibility=pending&per_page=1"

    first = ok(tech.get(query + "&page=1"))
    second = ok(tech.get(query + "&page=2"))
    beyond = ok(tech.get(query + "&page=3"))

    assert (first["total"], first["pages"], first["page"], first["per_page"]) == (2, 2, 1, 1)
    assert [i["id"] for i in first["items"]] == [d["newer"]["id"]]  # newest first
    assert [i["id"] for i in second["items"]] == [d["older"]["id"]]
    assert beyond["items"] == [] and beyond["total"] == 2
    item = first["items"][0]
    assert (item["status"], item["eligibility"], item["in_quarantine"]) == (
        "received",
        "pending",
        True,
    )
    assert item["din"] == d["newer"]["din"] and item["donor_code"].startswith("DNR")
    everything = ok(tech.get("/api/v1/donations"))
    assert everything["total"] == 5 and everything["pages"] == 1
    assert [i["id"] for i in everything["items"]] == sorted(
        (x["id"] for x in d.values()), reverse=True
    )
    eligible = ok(tech.get("/api/v1/donations?eligibility=eligible"))
    assert [i["id"] for i in eligible["items"]] == [d["eligible"]["id"]]
    rejected = ok(tech.get("/api/v1/donations?status=rejected"))
    assert [i["id"] for i in rejected["items"]] == [d["rejected"]["id"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status"),
        ("eligibility=maybe", "eligibility"),
        ("page=0", "page"),
        ("per_page=101", "per_page"),
        ("per_page=ten", "per_page"),
    ],
)
def test_bad_list_queries_are_refused(tech, query, field):
    body = problem(tech.get(f"/api/v1/donations?{query}"), 422)
    assert field in body["errors"]


def test_the_eligibility_queue_lists_pending_donations_not_rejected(qa, four_donations):
    d = four_donations

    queue = ok(qa.get("/api/v1/donations/eligibility-queue"))

    assert [row["donation_id"] for row in queue] == [
        d["registered"]["id"],
        d["older"]["id"],
        d["newer"]["id"],
    ]
    assert {row["eligibility"] for row in queue} == {"pending"}
    assert queue[0]["din"] == d["registered"]["din"]
    assert queue[0]["missing_tests"] == PANEL and queue[0]["complete"] is False


# --- products and donors --------------------------------------------------------------------


def test_products_list_the_version_in_force_with_its_signature(lab, tech):
    products = ok(tech.get("/api/v1/products"))

    [product] = products
    assert (product["code"], product["version"], product["status"]) == ("UC-MSC", 1, "effective")
    assert product["effective_at"] is not None
    assert product["parameters"]["max_hours_birth_to_processing"] == 72
    # the panel is a controlled document of its own (issue 22): the product names it
    assert product["parameters"]["donor_test_panel_code"] == "UC-MSC"
    [panel] = ok(tech.get("/api/v1/panels"))
    assert [t["code"] for t in panel["parameters"]["tests"]] == PANEL
    [signature] = product["signatures"]
    assert signature["printed_name"] == "Alex Tester" and signature["valid"] is True
    assert ok(tech.get(f"/api/v1/products/{product['id']}")) == product


def test_a_donor_shows_consent_screening_and_dins(tech):
    first = register(tech)
    code = first["donor"]["code"]
    second = register(
        tech,
        donor_code=code,
        consent_date=None,
        consent_form_version=None,
        screening_outcome=None,
        screening_date=None,
    )

    donor = ok(tech.get(f"/api/v1/donors/{first['donor']['id']}"))

    assert donor["code"] == code and donor["donations"] == [first["din"], second["din"]]
    assert donor["consent_form_version"] == "ICF v3.1"
    assert donor["consent_recorded_by"] == "tina"
    assert (donor["screening_outcome"], donor["screening_notes"]) == ("acceptable", None)
    problem(tech.get("/api/v1/donors/999999"), 404)


def test_screening_is_corrected_with_a_reason(tech):
    donation = register(tech)
    url = f"/api/v1/donors/{donation['donor']['id']}/screening"
    correction = {
        "screening_outcome": "not_acceptable",
        "screening_date": utcnow().date().isoformat(),
        "screening_notes": "history review",
    }

    problem(tech.post(url, json=correction), 422)
    blank = problem(tech.post(url, json={**correction, "reason": "  "}), 422)
    assert "reason" in blank["errors"]
    corrected = ok(tech.post(url, json={**correction, "reason": "questionnaire re-read"}))

    assert corrected["screening_outcome"] == "not_acceptable"
    assert corrected["screening_notes"] == "history review"
    assert corrected["donations"] == [donation["din"]]
    review = ok(tech.get(f"/api/v1/donations/{donation['id']}/eligibility"))
    screening = next(c for c in review["checks"] if c["label"] == "Donor screening")
    assert screening["ok"] is False and "not acceptable" in screening["detail"]


def test_screening_is_fixed_once_determined(tech, qc, qa):
    donation = register(tech)
    full_panel(qc, donation)
    ok(determine(qa, donation["id"]), 201)

    body = problem(
        tech.post(
            f"/api/v1/donors/{donation['donor']['id']}/screening",
            json={
                "screening_outcome": "not_acceptable",
                "screening_date": utcnow().date().isoformat(),
                "reason": "late finding",
            },
        ),
        409,
    )

    assert donation["din"] in body["detail"]
    assert ok(tech.get(f"/api/v1/donors/{donation['donor']['id']}"))["screening_outcome"] == (
        "acceptable"
    )


def test_the_panel_these_tests_assume_is_the_products(lab):
    from cellchain.donors import panels

    panel = panels.DONOR_TEST_PANELS.in_force(
        lab.session, panels.panel_code_of(lab.product), at=utcnow()
    )
    assert [t.code for t in panels.tests_of(panel)] == PANEL
