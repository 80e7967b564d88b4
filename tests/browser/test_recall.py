"""A recall in the browser: QA scans the dose infused into AS-003 this morning, traces it back
to its donation, traces the donation forward, opens a recall of it with a signature, and sees
AS-003 listed to be notified while AS-001's dose, still on its way, is blocked; a clinician
records the notification, QA closes the recall, and AS-003's chain-of-identity report reads
cleanly from the donor to the infusion."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cellchain.core.roles import Role
from tests.browser.pages import demo_user, flash, log_out, login_as, scan

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser


def test_qa_recalls_the_donation_behind_an_infused_dose_and_sees_the_patient(
    page: Page, live_server: LiveServer, artifacts: Path
) -> None:
    qa = demo_user(Role.QA)
    login_as(page, live_server, Role.QA)

    # the dose infused this morning, back to its donation
    scan(page, live_server.dose_codes["AS-003"])
    expect(page).to_have_url(re.compile(r"/units/\d+$"))
    page.locator("#trace-back-link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Trace back from unit")
    expect(page.locator("#trace-infusion")).to_contain_text("Started")
    page.locator("#trace-donation").get_by_role("link").click()

    # the donation forward: every unit, dose and patient
    page.locator("#trace-forward-link").click()
    patients = page.locator("#trace-patients")
    expect(patients).to_contain_text("AS-003")
    expect(patients).to_contain_text("AS-001")
    page.locator("#recall-link").click()

    # the preview says what the recall will do before anyone signs
    expect(page.locator("#recall-preview")).to_contain_text("AS-003")
    page.locator("#recall-reason").fill("Late donor test: HBV NAT reactive on the retained sample.")
    page.locator("#recall-password").fill("not my password")
    page.get_by_role("button", name="Open the recall and block").click()
    expect(page.locator("#recall-error")).to_be_visible()
    page.locator("#recall-password").fill(qa.password)
    page.get_by_role("button", name="Open the recall and block").click()

    expect(flash(page)).to_contain_text("patient(s) to notify")
    expect(page.locator("#recall-status")).to_have_text("open")
    exposed = page.locator("#exposed-patients")
    expect(exposed).to_contain_text("AS-003")
    expect(exposed).to_contain_text("not yet")
    expect(exposed).not_to_contain_text("AS-001")  # not infused: blocked, not notified
    blocked = page.locator("#blocked-units")
    expect(blocked).to_contain_text(live_server.dose_codes["AS-001"][:-1])
    page.screenshot(path=str(artifacts / "recall-open.png"), full_page=True)
    recall_url = page.url

    # AS-001's dose, on its way to the clinic, is blocked
    scan(page, live_server.dose_codes["AS-001"])
    expect(page.locator("#unit-status")).to_have_text("blocked")
    expect(page.locator("#hold")).to_contain_text("recalled")

    # a clinician records that AS-003 was told; QA closes the recall
    log_out(page, live_server)
    login_as(page, live_server, Role.INVESTIGATOR)
    page.goto(recall_url)
    row = page.locator("#exposed-patients tr[data-patient='AS-003']")
    opened = page.locator("#recall-opened").get_attribute("data-local")
    assert opened
    row.locator("input[name='notified_at']").fill(opened)
    row.get_by_role("button", name="Record notified").click()
    expect(flash(page)).to_contain_text("AS-003 recorded as notified")

    log_out(page, live_server)
    login_as(page, live_server, Role.QA)
    page.goto(recall_url)
    page.locator("#closing-note").fill("AS-003 notified; remaining bags destroyed (DV-12).")
    page.locator("#close-password").fill(qa.password)
    page.get_by_role("button", name="Close the recall").click()
    expect(page.locator("#recall-status")).to_have_text("closed")
    page.screenshot(path=str(artifacts / "recall-closed.png"), full_page=True)

    # AS-003's chain-of-identity report reads from the donor to the infusion, every
    # signature valid
    page.locator("#exposed-patients").get_by_role("link", name="AS-003").click()
    page.locator("#coi-report-link").click()
    expect(page.locator("#coi-summary")).to_contain_text("1 infusion")
    expect(page.locator("#coi-summary")).not_to_contain_text("no longer valid")
    report = page.locator("#coi-report")
    expect(report).to_contain_text(live_server.dose_codes["AS-003"][:-1])
    expect(report).to_contain_text(live_server.dose_codes["AS-003"][:13])  # the DIN it embeds
    page.screenshot(path=str(artifacts / "coi-report.png"), full_page=True)
