"""Donations in a real browser: registration, receipt, donor tests, QA's signed eligibility
determination, refusals that keep what was typed, and the demo's donation and unit pages."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

import tests.conftest as base
from cellchain.config import load_config
from cellchain.core.identifiers import parse_identifier
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.donors.service import DETERMINATION_MEANING
from cellchain.manufacturing.defaults import DEFAULT_DONOR_TEST_PANEL
from tests.browser.pages import (
    DONATION_URL,
    UNIT_URL,
    column,
    demo_user,
    flash,
    log_out,
    login_as,
    main_nav,
    open_by_scan,
)

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

#: Every test on the UC-MSC panel, as the result form's test select offers them.
PANEL = [(test["code"], test["name"]) for test in DEFAULT_DONOR_TEST_PANEL]
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"  # what an <input type="datetime-local"> holds
SHOWN_TIME = "%Y-%m-%d %H:%M:%S"  # the start of a time shown with seconds ("… %Z")


# --- helpers -----------------------------------------------------------------------------


def site_zone() -> ZoneInfo:
    """The site time zone the live server runs with (test_config, then CELLCHAIN_TIMEZONE)."""
    return ZoneInfo(load_config("", base.test_config("sqlite://"))["SITE_TIMEZONE"])


def local(hours_from_now: float) -> dt.datetime:
    """Now ± some hours on the site's wall clock."""
    return (utcnow() + dt.timedelta(hours=hours_from_now)).astimezone(site_zone())


def fill_registration(
    page: Page, *, birth: dt.datetime, collection: dt.datetime, collector: str
) -> None:
    today = local(0).date()
    page.locator("#consent_date").fill((today - dt.timedelta(days=20)).isoformat())
    page.locator("#consent_form_version").fill("ICF v3.1")
    page.locator("#screening_outcome").select_option("acceptable")
    page.locator("#screening_date").fill((today - dt.timedelta(days=1)).isoformat())
    page.locator("#umbilical_cord").check()
    page.locator("#placenta").check()
    page.locator("#delivery_at").fill(birth.strftime(DATETIME_LOCAL))
    page.locator("#collected_at").fill(collection.strftime(DATETIME_LOCAL))
    page.locator("#collection_site").fill("Maternity ward C, City Hospital")
    page.locator("#collector").fill(collector)
    page.locator("#transport_conditions").fill("2–8 °C validated shipper")
    page.locator("#product-UC-MSC").check()  # the demo holds two products: UC-MSC, PL-MSC


def record_missing_results(page: Page, specimen: dt.date) -> list[str]:
    """As QC, on a donation page: record every test still missing as non-reactive, one at a
    time through the result form, checking the test select only offers what is missing."""
    form = page.locator("#result-form")
    offered = form.locator("#test_code option")
    expect(form).to_be_visible()
    has_result = page.locator("#results-table tbody tr[data-test]").evaluate_all(
        "rows => rows.map(r => r.dataset.test)"
    )
    missing = [code for code, _ in PANEL if code not in has_result]
    assert missing, "every test already has a result"
    for done, code in enumerate(missing):
        remaining = missing[done:]
        # Only the tests still missing, in panel order.
        expect(offered).to_have_text([f"{c} — {n}" for c, n in PANEL if c in remaining])
        form.locator("#test_code").select_option(code)
        form.locator("#result").select_option("non_reactive")
        form.locator("#specimen_date").fill(specimen.isoformat())
        form.locator("#method").fill("Central lab")
        form.get_by_role("button", name="Record result").click()
        expect(flash(page)).to_have_text(f"Result for {code} recorded.")
        row = page.locator(f'#results-table tbody tr[data-test="{code}"]')
        expect(row).to_have_count(1)
        expect(row).to_contain_text("non-reactive")
        expect(row).to_contain_text(specimen.isoformat())
    expect(page.locator("#result-form")).to_have_count(0)  # nothing left to record
    return missing


def open_from_queue(page: Page, din: str) -> Locator:
    """As QA: Eligibility queue → the donation's row → its determination page."""
    main_nav(page).get_by_role("link", name="Eligibility queue", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Awaiting donor eligibility determination"
    )
    row = page.locator("#queue tbody tr").filter(has_text=din)
    expect(row).to_have_count(1)
    expect(row).to_contain_text(f"all {len(PANEL)} in")
    expect(row).to_contain_text("may be eligible")
    row.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/donations/\d+/eligibility$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(din)
    checks = page.locator("#checks tr")
    expect(checks).to_have_count(1 + len(PANEL))
    expect(checks.locator("th")).to_have_text(["Donor screening", *(n for _, n in PANEL)])
    expect(page.locator('#checks tr[data-state="PASSED"]')).to_have_count(1 + len(PANEL))
    expect(page.locator("#checks tr.bad")).to_have_count(0)
    return page.locator("#determination-form")


def sign_eligible(page: Page, password: str) -> None:
    form = page.locator("#determination-form")
    form.locator("#outcome-eligible").check()
    form.locator("#sign-password").fill(password)
    form.get_by_role("button", name="Sign determination").click()


def expect_signed_eligible(page: Page, donation_url: str) -> None:
    qa = demo_user(Role.QA)
    expect(page).to_have_url(donation_url)
    expect(flash(page)).to_have_text("Signed: donor determined eligible.")
    expect(page.locator("#donation-eligibility")).to_have_text("eligible")
    expect(page.locator("#hold")).to_have_count(0)
    expect(page.locator("main")).not_to_contain_text("QUARANTINE")  # (case-sensitive)
    signature = page.locator("#eligibility .sig")
    expect(signature).to_have_count(1)
    expect(signature.locator("strong").first).to_have_text(qa.full_name)
    expect(signature).to_contain_text(f"({qa.username})")
    expect(signature.locator("strong").nth(1)).to_have_text(f"{DETERMINATION_MEANING}: eligible")
    expect(signature).not_to_contain_text("NOT VALID")
    expect(page.locator("#eligibility-link")).to_have_text("Determination")


# --- tests -------------------------------------------------------------------------------


def test_register_receive_test_and_determine_eligible(page: Page, live_server: LiveServer) -> None:
    """Technician registers and receives, QC records the panel, QA signs eligible."""
    tech = demo_user(Role.TECHNICIAN)
    birth, collection, receipt = local(-5), local(-4), local(-1)

    # --- the technician registers the donation ---
    login_as(page, live_server, Role.TECHNICIAN)
    main_nav(page).get_by_role("link", name="Donations", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Donations")
    page.locator("#register-donation").click()
    expect(page).to_have_url(live_server("/donations/new"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Register a donation")
    fill_registration(page, birth=birth, collection=collection, collector="Midwife R. Lee")
    expect(page.locator("#umbilical_cord")).to_be_checked()
    expect(page.locator("#placenta")).to_be_checked()
    page.get_by_role("button", name="Register").click()

    expect(page).to_have_url(DONATION_URL)
    donation_url = page.url
    expect(flash(page)).to_contain_text("Donation registered with DIN")
    found = re.search(r"DIN (\S+);", flash(page).text_content() or "")
    assert found, flash(page).text_content()
    din = found.group(1)
    assert parse_identifier(din).kind == "DIN"
    assert din not in live_server.donation_dins.values()
    assert din not in live_server.reserved_dins
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Donation {din}")
    expect(page.locator("#hold")).to_contain_text("QUARANTINE")
    expect(page.locator("#donation-status")).to_have_text("registered")
    expect(page.locator("#donation-eligibility")).to_have_text("quarantine — eligibility pending")
    expect(page.locator("#summary")).to_contain_text("umbilical cord, placenta")
    expect(page.locator("#summary")).to_contain_text("by Midwife R. Lee")
    expect(page.locator("#summary")).to_contain_text(birth.strftime("%Y-%m-%d %H:%M"))
    expect(page.locator("#summary")).to_contain_text(f"by {tech.full_name}")
    units = page.locator("#units tbody tr")
    expect(units).to_have_count(2)  # one container per tissue
    expect(column(units, 2)).to_have_text(["donation container", "donation container"])
    expect(column(units, 1).first).to_contain_text(din[:-1])

    # --- … and records its receipt ---
    receipt_form = page.locator("#receipt-form")
    receipt_form.locator("#received_at").fill(receipt.strftime(DATETIME_LOCAL))
    receipt_form.locator("#temperature_c").fill("5.4")
    receipt_form.locator("#condition").select_option("intact")
    receipt_form.locator("#decision-accept").check()
    receipt_form.get_by_role("button", name="Record receipt").click()
    expect(flash(page)).to_have_text("Receipt recorded: donation accepted.")
    expect(page).to_have_url(donation_url + "#receipt")
    expect(page.locator("#donation-status")).to_have_text("received")
    expect(page.locator("#receipt-form")).to_have_count(0)
    expect(page.locator("#receipt")).to_contain_text("5.4 °C")
    expect(page.locator("#receipt")).to_contain_text("accepted")
    expect(page.locator("#hold")).to_contain_text("QUARANTINE")  # still, until QA decides
    log_out(page, live_server)

    # --- QC scans the DIN and records the whole panel ---
    login_as(page, live_server, Role.QC_ANALYST)
    open_by_scan(page, live_server, din, DONATION_URL)
    assert page.url == donation_url
    expect(page.locator("#results-table tbody")).to_contain_text("No results yet.")
    recorded = record_missing_results(page, specimen=collection.date())
    assert recorded == [code for code, _ in PANEL]
    expect(page.locator("#results-table tbody tr")).to_have_count(len(PANEL))
    expect(page.locator("#hold")).to_contain_text("QUARANTINE")  # QC does not decide
    log_out(page, live_server)

    # --- QA reviews and signs ---
    qa = demo_user(Role.QA)
    login_as(page, live_server, Role.QA)
    form = open_from_queue(page, din)
    expect(form).to_contain_text(f"Signing as {qa.full_name}")
    expect(form).to_contain_text(DETERMINATION_MEANING)
    sign_eligible(page, qa.password)
    expect_signed_eligible(page, donation_url)
    audit_actions = column(page.locator("#audit table.audit tbody tr"), 3)
    expect(audit_actions.filter(has_text="donation.eligibility_determined")).to_have_count(1)
    expect(audit_actions.filter(has_text="donor_test.recorded")).to_have_count(len(PANEL))

    # It has left the queue.
    main_nav(page).get_by_role("link", name="Eligibility queue", exact=True).click()
    expect(page.locator("#queue tbody")).not_to_contain_text(din)
    expect(page.locator("#queue tbody")).to_contain_text(live_server.donation_dins["quarantine"])


def test_wrong_password_does_not_sign_the_determination(
    page: Page, live_server: LiveServer
) -> None:
    din = live_server.donation_dins["quarantine"]
    # QC completes the demo donation's panel so that it can be determined.
    login_as(page, live_server, Role.QC_ANALYST)
    open_by_scan(page, live_server, din, DONATION_URL)
    donation_url = page.url
    recorded = record_missing_results(page, specimen=local(0).date())
    assert 0 < len(recorded) < len(PANEL)
    log_out(page, live_server)

    qa = demo_user(Role.QA)
    login_as(page, live_server, Role.QA)
    open_from_queue(page, din)
    eligibility_url = page.url
    sign_eligible(page, qa.password + "-wrong")

    error = page.get_by_role("alert")
    expect(error).to_have_text("Not signed: The password is not correct.")
    expect(page).to_have_url(eligibility_url)
    expect(page.locator("main")).to_contain_text("quarantine — eligibility pending")
    expect(page.locator("#determination")).to_have_count(0)
    expect(page.locator(".sig")).to_have_count(0)
    form = page.locator("#determination-form")
    expect(form.locator("#outcome-eligible")).to_be_checked()  # the choice is kept …
    expect(form.locator("#sign-password")).to_have_value("")  # … the password is not

    # The donation is still pending, in quarantine and unsigned.
    page.get_by_role("heading", level=1).get_by_role("link").click()
    expect(page).to_have_url(donation_url)
    expect(page.locator("#hold")).to_contain_text("QUARANTINE")
    expect(page.locator("#donation-eligibility")).to_have_text("quarantine — eligibility pending")
    expect(page.locator("#eligibility .sig")).to_have_count(0)
    expect(page.locator("#eligibility-link")).to_have_text("Review and determine")
    audit_actions = column(page.locator("#audit table.audit tbody tr"), 3)
    expect(audit_actions.filter(has_text="donor_test.recorded")).to_have_count(len(PANEL))
    expect(audit_actions.filter(has_text="donation.eligibility_determined")).to_have_count(0)

    # Nothing half-done was left behind: the right password then signs, once.
    page.locator("#eligibility-link").click()
    expect(page).to_have_url(eligibility_url)
    sign_eligible(page, qa.password)
    expect_signed_eligible(page, donation_url)


def test_future_collection_is_refused_and_the_form_keeps_what_was_typed(
    page: Page, live_server: LiveServer
) -> None:
    login_as(page, live_server, Role.TECHNICIAN)
    page.goto(live_server("/donations/new"))
    collection = local(48)
    fill_registration(page, birth=local(-3), collection=collection, collector="Midwife K. Osei")
    page.get_by_role("button", name="Register").click()

    expect(page.get_by_role("alert")).to_have_text("The collection cannot be in the future.")
    expect(page.locator("#collected_at + .field-error")).to_have_text(
        "The collection cannot be in the future."
    )
    expect(page.locator(".field-error")).to_have_count(1)  # only the collection is wrong
    expect(page.get_by_role("heading", level=1)).to_have_text("Register a donation")
    # What was typed is still there.
    expect(page.locator("#collector")).to_have_value("Midwife K. Osei")
    expect(page.locator("#collected_at")).to_have_value(collection.strftime(DATETIME_LOCAL))
    expect(page.locator("#collection_site")).to_have_value("Maternity ward C, City Hospital")
    expect(page.locator("#consent_form_version")).to_have_value("ICF v3.1")
    expect(page.locator("#screening_outcome")).to_have_value("acceptable")
    expect(page.locator("#umbilical_cord")).to_be_checked()
    expect(page.locator("#placenta")).to_be_checked()

    # Nothing was registered.
    main_nav(page).get_by_role("link", name="Donations", exact=True).click()
    rows = page.locator("#donations tbody tr")
    expect(rows).to_have_count(len(live_server.donation_dins))
    expect(page.locator("#donations")).not_to_contain_text("Midwife K. Osei")


def test_scanning_a_unit_code_opens_its_history_and_trace(
    page: Page, live_server: LiveServer
) -> None:
    din = live_server.donation_dins["eligible"]
    login_as(page, live_server, Role.TECHNICIAN)
    open_by_scan(page, live_server, din, DONATION_URL)

    # Two containers; the cord isolated into 2 P0 vessels, passaged to 4, 6 and 4 vessels,
    # then filled into 10 cryobags (cellchain/demo.py).
    units = page.locator("#units tbody tr")
    expect(units).to_have_count(28)
    kinds = column(units, 2).all_text_contents()
    assert [kinds.count(k) for k in ("donation container", "culture vessel", "cryobag")] == [
        2,
        16,
        10,
    ], kinds
    codes = column(units, 1).locator(":scope > a > .code").all_text_contents()
    assert all(code.startswith(din[:-1]) for code in codes), codes
    assert len(set(codes)) == 28
    container, vessels = codes[0], codes[2:4]
    expect(column(units, 3).first).to_have_text("consumed")

    # The container's code, scanned, opens its unit page.
    open_by_scan(page, live_server, container, UNIT_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Donation container {container}")
    expect(page.locator("#unit-status")).to_have_text("consumed")

    # History: created at collection, received at the lab, then used up; oldest first.
    history = page.locator("table.events tbody tr")
    expect(column(history, 2)).to_have_text(["created", "received", "status changed"])
    expect(history.nth(1)).to_contain_text("Lab receipt")
    expect(history.nth(1)).to_contain_text("5.2 °C")
    expect(history.nth(2)).to_contain_text("consumed")
    shown = [
        dt.datetime.strptime(text.strip()[: len("2000-01-01 00:00:00")], SHOWN_TIME)
        for text in column(history, 1).all_text_contents()
    ]
    assert shown == sorted(shown), shown
    assert shown[0] < shown[1] < shown[2], shown

    # Trace: it is where the chain starts; everything made from it follows, nearest first.
    expect(page.locator("#trace-back")).to_have_text("It is a donation container.")
    forward = page.locator("#trace-forward > div")
    expect(forward).to_have_count(26)
    expect(forward.locator(".code").nth(0)).to_have_text(vessels[0])
    expect(forward.locator(".code").nth(1)).to_have_text(vessels[1])
    for step in forward.all()[:2]:
        expect(step).to_contain_text("1 →")
        expect(step).to_contain_text("culture vessel")
    expect(forward.filter(has_text="cryobag")).to_have_count(10)
    expect(page.locator("#children li")).to_have_count(2)
    expect(page.locator("#parents")).to_contain_text("Nothing: labelled at collection.")

    # And from a culture vessel the trace leads back to the container.
    forward.first.get_by_role("link").click()
    expect(page).to_have_url(UNIT_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Culture vessel {vessels[0]}")
    back = page.locator("#trace-back > div")
    expect(back).to_have_count(1)
    expect(back).to_contain_text(f"1 ← {container}")
    expect(page.locator("#trace-forward > div").filter(has_text="cryobag")).to_have_count(10)
    expect(column(page.locator("table.events tbody tr"), 2)).to_have_text(
        ["created", "status changed"]
    )


def test_demo_donation_pages_show_history_audit_and_quarantine(
    page: Page, live_server: LiveServer
) -> None:
    login_as(page, live_server, Role.QA)

    # The eligible donation: no hold, its units' history and its audit trail.
    open_by_scan(page, live_server, live_server.donation_dins["eligible"], DONATION_URL)
    expect(page.locator("#hold")).to_have_count(0)
    expect(page.locator("#donation-eligibility")).to_have_text("eligible")
    unit_codes = page.locator("#units tbody tr > td:first-child .code").all_text_contents()
    assert len(unit_codes) == 28, unit_codes

    history = page.locator("#history table.events tbody tr")
    expect(history.first).not_to_contain_text("No events.")
    events = column(history, 3)
    expect(events.filter(has_text="created")).to_have_count(len(unit_codes))
    expect(events.filter(has_text="received")).to_have_count(2)
    # used up: the cord container, then 2 + 4 + 6 + 4 vessels (cellchain/demo.py)
    expect(events.filter(has_text="status changed")).to_have_count(17)
    shown_units = set(column(history, 2).all_text_contents())
    assert shown_units == set(unit_codes), (shown_units, unit_codes)
    shown = [
        dt.datetime.strptime(text.strip()[: len("2000-01-01 00:00:00")], SHOWN_TIME)
        for text in column(history, 1).all_text_contents()
    ]
    assert shown == sorted(shown), shown

    audit = page.locator("#audit table.audit tbody tr")
    expect(audit.first).not_to_contain_text("No entries.")
    actions = column(audit, 3)
    for action, count in [
        ("donation.registered", 1),
        ("donation.received", 1),
        ("donor_test.recorded", len(PANEL)),
        ("donation.eligibility_determined", 1),
        ("donation.processing_started", 1),
    ]:
        expect(actions.filter(has_text=action)).to_have_count(count)
    who = set(column(audit, 2).all_text_contents())
    assert {"tech", "qc", "qa"} <= who, who
    expect(page.locator("#eligibility .sig")).to_contain_text(demo_user(Role.QA).full_name)

    # The donation still in quarantine says so, before anything else.
    open_by_scan(page, live_server, live_server.donation_dins["quarantine"], DONATION_URL)
    hold = page.locator("#hold")
    expect(hold).to_have_class("quarantine")
    expect(hold).to_contain_text("QUARANTINE — donor eligibility not yet determined.")
    expect(page.locator("#donation-eligibility")).to_have_text("quarantine — eligibility pending")
    expect(page.locator("#results-table tbody tr")).to_have_count(5)
    expect(page.locator("#eligibility-link")).to_have_text("Review and determine")
