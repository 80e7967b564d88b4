"""The donation pages: registration, receipt, results, the eligibility determination, the
list, the QA queue and the scan box, posted as a browser posts its forms (CSRF is off in the
test configuration; tests/web/test_api_errors.py covers the token)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from cellchain.core.identifiers import parse_identifier
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.donors.models import Donation, Donor
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD

HOURS = dt.timedelta(hours=1)
DAYS = dt.timedelta(days=1)
COLLECTOR = "Midwife Ngozi O'Hara-Okafor"


# --- helpers --------------------------------------------------------------------------------


def text(response: Any) -> str:
    return response.get_data(as_text=True)


def local(value: dt.datetime) -> str:
    """A datetime-local value as a browser sends it (the site is on UTC in tests)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")


def register_form(**changes: str | None) -> dict[str, str]:
    now = utcnow()
    form: dict[str, str | None] = {
        "donor_code": "",
        "consent_date": (now.date() - 30 * DAYS).isoformat(),
        "consent_form_version": "ICF v3.1",
        "screening_outcome": "acceptable",
        "screening_date": (now.date() - 2 * DAYS).isoformat(),
        "screening_notes": "",
        "umbilical_cord": "on",
        "placenta": "on",
        "delivery_at": local(now - 6 * HOURS),
        "collected_at": local(now - 5 * HOURS),
        "collection_site": "Maternity ward, City Hospital",
        "collector": COLLECTOR,
        "transport_conditions": "2–8 °C validated shipper",
        "reserved_din": "",
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def counts() -> tuple[int, int, int]:
    """(donations, donors, audit entries) as committed."""
    db.session.rollback()
    return (
        db.session.execute(select(func.count(Donation.id))).scalar_one(),
        db.session.execute(select(func.count(Donor.id))).scalar_one(),
        db.session.execute(select(func.count(AuditEntry.seq))).scalar_one(),
    )


def input_value(page: str, name: str) -> str | None:
    tag = re.search(rf'<input[^>]*id="{name}"[^>]*>', page)
    assert tag, f"no input #{name} in the page"
    value = re.search(r'value="([^"]*)"', tag.group(0))
    return value.group(1) if value else None


def shown_din(din: str) -> str:
    """How a page shows a DIN: the body, then the check character in its box."""
    return f'{din[:-1]}<span class="k">{din[-1]}</span>'


def path_of(response: Any) -> str:
    assert response.status_code == 302, text(response)
    return urlsplit(response.location).path


def fresh(donation: Donation) -> Donation:
    db.session.rollback()
    found = db.session.get(Donation, donation.id)
    assert found is not None
    return found


@pytest.fixture
def tech_web(lab: Any, clients: Any) -> Any:
    return clients.web(lab.tech)


@pytest.fixture
def qc_web(lab: Any, clients: Any) -> Any:
    return clients.web(lab.qc)


@pytest.fixture
def qa_web(lab: Any, clients: Any) -> Any:
    return clients.web(lab.qa)


# --- registration ---------------------------------------------------------------------------


def test_the_registration_form_is_offered(tech_web):
    response = tech_web.get("/donations/new")

    assert response.status_code == 200
    page = text(response)
    assert 'id="register-form"' in page
    for name in ("consent_date", "delivery_at", "collected_at", "collector", "reserved_din"):
        assert f'name="{name}"' in page
    assert re.search(r'id="umbilical_cord"[^>]*checked', page)


def test_a_future_collection_is_shown_again_with_the_message_and_the_typing(tech_web):
    before = counts()
    future = utcnow() + 3 * HOURS

    response = tech_web.post(
        "/donations/new", data=register_form(collected_at=local(future), placenta=None)
    )

    assert response.status_code == 422
    page = text(response)
    assert 'id="form-error"' in page
    assert "The collection cannot be in the future." in page
    assert input_value(page, "collector") == str(escape(COLLECTOR))
    assert input_value(page, "collected_at") == local(future)
    assert input_value(page, "consent_form_version") == "ICF v3.1"
    assert re.search(r'id="umbilical_cord"[^>]*checked', page)
    assert not re.search(r'id="placenta"[^>]*checked', page)  # unticked stays unticked
    assert counts() == before


def test_missing_consent_is_named_on_the_form(tech_web):
    before = counts()

    response = tech_web.post("/donations/new", data=register_form(consent_date=""))

    assert response.status_code == 422
    page = text(response)
    assert "Some fields need attention." in page
    assert "Required for a new donor." in page
    assert input_value(page, "collector") == str(escape(COLLECTOR))
    assert counts() == before


def test_a_valid_registration_opens_the_donation_page_in_quarantine(lab, tech_web):
    response = tech_web.post("/donations/new", data=register_form())

    path = path_of(response)
    match = re.fullmatch(r"/donations/(\d+)", path)
    assert match, path
    donation = fresh(db.session.get(Donation, int(match.group(1))))
    assert donation.collector == COLLECTOR and donation.registered_by_id == lab.tech.id
    assert donation.tissues == ["umbilical cord", "placenta"]
    page = tech_web.get(response.location)
    assert page.status_code == 200
    body = text(page)
    assert shown_din(donation.din) in body
    assert f"Donation registered with DIN {donation.din}" in body  # the flash message
    assert "QUARANTINE" in body
    assert str(escape(COLLECTOR)) in body
    assert 'id="receipt-form"' in body  # the technician receives it next
    for unit in donation.units:
        assert shown_din(unit.code) in body


def test_the_registration_form_is_not_for_qc(qc_web):
    assert qc_web.get("/donations/new").status_code == 403
    assert qc_web.post("/donations/new", data=register_form()).status_code == 403
    assert counts()[0] == 0


# --- receipt and results --------------------------------------------------------------------


def test_the_receipt_form_accepts_the_donation(lab, tech_web):
    donation = lab.register()
    form = {
        "received_at": local(utcnow() - HOURS),
        "temperature_c": "5.5",
        "condition": "intact",
        "decision": "accept",
        "note": "",
    }

    response = tech_web.post(f"/donations/{donation.id}/receipt", data=form)

    assert path_of(response) == f"/donations/{donation.id}"
    assert urlsplit(response.location).fragment == "receipt"
    found = fresh(donation)
    assert found.status == "received" and found.arrival_temperature_c == 5.5
    page = text(tech_web.get(response.location))
    assert "Receipt recorded: donation accepted." in page
    assert "5.5 °C" in page and 'id="receipt-form"' not in page
    assert 'id="start-processing"' in page


def test_a_refused_receipt_keeps_the_form_and_saves_nothing(lab, tech_web):
    donation = lab.register()

    response = tech_web.post(
        f"/donations/{donation.id}/receipt",
        data={
            "received_at": local(utcnow() - HOURS),
            "temperature_c": "3.0",
            "condition": "leaking",
            "decision": "reject",
            "note": "",
        },
    )

    assert response.status_code == 422
    page = text(response)
    assert "Not saved:" in page and "Say why the donation is rejected." in page
    assert input_value(page, "temperature_c") == "3.0"
    assert re.search(r'id="decision-reject"[^>]*checked', page)
    assert fresh(donation).status == "registered"


def test_the_result_form_records_a_result(lab, qc_web):
    donation = lab.receive(lab.register())
    specimen = donation.collected_at.date().isoformat()

    response = qc_web.post(
        f"/donations/{donation.id}/results",
        data={
            "test_code": "HBSAG",
            "result": "non_reactive",
            "specimen_date": specimen,
            "method": "Lab X",
        },
    )

    assert path_of(response) == f"/donations/{donation.id}"
    [result] = fresh(donation).results
    assert (result.test_code, result.result, result.recorded_by_id) == (
        "HBSAG",
        "non_reactive",
        lab.qc.id,
    )
    page = text(qc_web.get(response.location))
    assert "Result for HBSAG recorded." in page
    assert 'data-test="HBSAG"' in page
    # the form now offers only the tests still missing
    form = page[page.index('id="result-form"') :]
    assert 'value="HBSAG"' not in form and 'value="SYPHILIS"' in form


def test_a_result_outside_the_window_is_shown_with_the_reason(lab, qc_web):
    donation = lab.register()
    too_early = (donation.collected_at.date() - 8 * DAYS).isoformat()

    response = qc_web.post(
        f"/donations/{donation.id}/results",
        data={"test_code": "HIV1-AB", "result": "non_reactive", "specimen_date": too_early},
    )

    assert response.status_code == 422
    page = text(response)
    assert "within 7 days before or after recovery" in page
    assert input_value(page, "specimen_date") == too_early
    assert fresh(donation).results == []


# --- eligibility ----------------------------------------------------------------------------


def test_the_eligibility_page_shows_the_checks_and_what_is_missing(lab, qa_web):
    donation = lab.register()
    lab.full_panel(donation, skip=("SYPHILIS",))

    page = text(qa_web.get(f"/donations/{donation.id}/eligibility"))

    assert 'id="checks"' in page and "Donor screening" in page
    assert "Anti-HIV-1 antibody" in page and "no result yet" in page
    assert 'id="not-ready"' in page and 'Missing: <span translate="no">SYPHILIS</span>.' in page
    assert 'id="determination-form"' not in page


def test_qa_is_offered_the_signing_form_once_the_panel_is_complete(lab, qa_web):
    donation = lab.receive(lab.register())
    lab.full_panel(donation)

    response = qa_web.get(f"/donations/{donation.id}/eligibility")

    assert response.status_code == 200, text(response)
    page = text(response)
    assert 'id="checks"' in page and "Every check passes" in page
    assert 'id="determination-form"' in page and 'id="outcome-eligible"' in page
    assert "Signing as <strong>Alex Tester</strong>" in page
    assert "responsibility: donor eligibility determination" in page
    assert 'name="password"' in page


def test_qa_signs_the_determination_on_the_page(lab, qa_web):
    donation = lab.receive(lab.register())
    lab.full_panel(donation)

    response = qa_web.post(
        f"/donations/{donation.id}/eligibility",
        data={"outcome": "eligible", "reason": "", "password": TEST_PASSWORD},
    )

    assert path_of(response) == f"/donations/{donation.id}"
    assert fresh(donation).eligibility == "eligible"
    shown = text(qa_web.get(response.location))
    assert "Signed: donor determined eligible." in shown
    assert '<span class="tag ok">eligible</span>' in shown
    assert "QUARANTINE" not in shown
    assert "Signed by <strong>Alex Tester</strong>" in shown
    assert "responsibility: donor eligibility determination: eligible" in shown
    again = text(qa_web.get(f"/donations/{donation.id}/eligibility"))
    assert 'id="determination-form"' not in again and 'id="determination"' in again
    assert "Signed by <strong>Alex Tester</strong>" in again


def test_an_ineligible_determination_on_the_page_needs_a_reason(lab, qa_web):
    donation = lab.register()
    lab.full_panel(donation)

    qa_web.post(
        f"/donations/{donation.id}/eligibility",
        data={"outcome": "ineligible", "reason": "", "password": TEST_PASSWORD},
    )
    assert fresh(donation).eligibility == "pending"
    response = qa_web.post(
        f"/donations/{donation.id}/eligibility",
        data={"outcome": "ineligible", "reason": "travel history", "password": TEST_PASSWORD},
    )

    assert path_of(response) == f"/donations/{donation.id}"
    assert fresh(donation).eligibility == "ineligible"
    page = text(qa_web.get(response.location))
    assert "INELIGIBLE DONOR" in page and "travel history" in page


def test_a_wrong_password_on_the_page_signs_nothing(lab, qa_web):
    donation = lab.register()
    lab.full_panel(donation)

    response = qa_web.post(
        f"/donations/{donation.id}/eligibility",
        data={"outcome": "eligible", "reason": "looks fine", "password": "not my password"},
    )

    assert response.status_code != 302
    assert "not my password" not in text(response)
    assert fresh(donation).eligibility == "pending"
    assert fresh(donation).determination is None


def test_a_wrong_password_shows_the_form_again_with_the_message(lab, qa_web):
    donation = lab.register()
    lab.full_panel(donation)

    response = qa_web.post(
        f"/donations/{donation.id}/eligibility",
        data={"outcome": "eligible", "reason": "looks fine", "password": "not my password"},
    )

    assert response.status_code == 401, text(response)
    page = text(response)
    assert "Not signed:" in page and 'id="determination-form"' in page
    assert "looks fine" in page  # the reason typed is kept
    assert "not my password" not in page


def test_technicians_see_the_checks_but_no_signing_form(lab, tech_web):
    donation = lab.register()
    lab.full_panel(donation)

    page = text(tech_web.get(f"/donations/{donation.id}/eligibility"))

    assert 'id="checks"' in page and 'id="determination-form"' not in page
    refused = tech_web.post(
        f"/donations/{donation.id}/eligibility",
        data={"outcome": "eligible", "password": TEST_PASSWORD},
    )
    assert refused.status_code == 403
    assert fresh(donation).eligibility == "pending"


# --- lists, queue and scan ------------------------------------------------------------------


def test_the_list_filters_by_eligibility(lab, tech_web):
    pending = lab.register()
    eligible = lab.eligible_donation()

    everything = text(tech_web.get("/donations"))
    only_eligible = tech_web.get("/donations", query_string={"eligibility": "eligible"})
    only_pending = text(tech_web.get("/donations?eligibility=pending&status="))

    assert shown_din(pending.din) in everything and shown_din(eligible.din) in everything
    assert "2 donations" in everything
    assert only_eligible.status_code == 200
    assert shown_din(eligible.din) in text(only_eligible)
    assert shown_din(pending.din) not in text(only_eligible)
    assert "1 donation," in text(only_eligible)
    assert shown_din(pending.din) in only_pending and shown_din(eligible.din) not in only_pending


def test_a_bad_filter_is_ignored_with_a_message(lab, tech_web):
    donation = lab.register()

    response = tech_web.get("/donations?status=bogus")

    assert response.status_code == 200
    page = text(response)
    assert "Filter ignored" in page and shown_din(donation.din) in page


def test_the_queue_lists_pending_donations(lab, qa_web):
    pending = lab.register()
    ready = lab.register()
    lab.full_panel(ready)
    eligible = lab.eligible_donation()
    rejected = lab.receive(lab.register(), accept=False, note="leaking")

    page = text(qa_web.get("/eligibility"))

    assert shown_din(pending.din) in page and shown_din(ready.din) in page
    assert shown_din(eligible.din) not in page and shown_din(rejected.din) not in page
    assert "waiting for results" in page and "may be eligible" in page
    assert page.index(pending.din[:-1]) < page.index(ready.din[:-1])  # oldest first
    assert f'href="/donations/{ready.id}/eligibility"' in page


@pytest.mark.parametrize(
    "typing",
    [
        lambda din: din,
        lambda din: din.lower(),
        lambda din: parse_identifier(din).display,
        lambda din: f"CC1.{din}",
    ],
    ids=["canonical", "lower", "display", "payload"],
)
def test_scanning_a_din_opens_its_donation(lab, tech_web, typing):
    donation = lab.register()

    response = tech_web.get("/scan", query_string={"code": typing(donation.din)})

    assert path_of(response) == f"/donations/{donation.id}"
    assert shown_din(donation.din) in text(tech_web.get(response.location))


def test_scanning_a_container_opens_its_unit(lab, tech_web):
    donation = lab.register()
    unit = donation.units[0]

    response = tech_web.get("/scan", query_string={"code": unit.code})

    assert response.status_code == 302
    assert text(tech_web.get(response.location)).count(shown_din(unit.code)) >= 1


def test_every_id_on_the_donation_page_is_unique_so_labels_find_their_fields(lab, qc_web):
    donation = lab.register()
    lab.full_panel(donation, skip=("SYPHILIS",))
    page = text(qc_web.get(f"/donations/{donation.id}"))
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert "result-form" in ids and len(ids) > 20
    assert sorted(i for i in set(ids) if ids.count(i) > 1) == []
    for target in re.findall(r'<label for="([^"]+)"', page):
        assert target in ids, target
