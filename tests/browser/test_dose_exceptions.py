"""A bedside stop, then destroy and a replacement dose the same day, in a real browser (issue 19).

The clinician receives AS-001's shipment and thaws the dose, but the infusion does not start
within the thaw window: at the bedside the check is a red STOP (thaw window exceeded). The
stopped check leads to the dose's page, which offers the destroy; the clinician destroys the dose
with a reason, their e-signature and the nurse's as witness. The technician then plans and
orders a replacement dose for the same visit from the destroyed dose's page, QA second-checks
it, the technician prints and applies its labels and dispatches it; the clinician receives and
thaws it, the bedside check is a green GO, both clinicians sign and the infusion starts, all on
day 0.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from cellchain.core.roles import Role
from tests.browser.pages import demo_user, flash, log_out, login_as

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

DOSE_URL = re.compile(r"/doses/(\d+)$")
#: How far the test moves the server's clock on: past the 60-min thaw window, two thaws.
CLOCK_MOVES = dt.timedelta(minutes=61 + 3 + 3)


def scan(page: Page, field: str, code: str) -> None:
    """What a keyboard-wedge scanner does: type the label's payload and press Enter."""
    page.locator(field).fill(f"CC1.{code}")
    page.locator(field).press("Enter")


def thaw(page: Page, server: LiveServer, code: str, ahead: list[dt.timedelta]) -> None:
    """Put the bag in the bath (scan), move the clock past the minimum thaw, scan it out."""
    page.goto(server("/thaw"))
    scan(page, "#thaw-scan", code)
    expect(page.locator("#thaw-result")).to_contain_text("Thaw started")
    ahead[0] += dt.timedelta(minutes=3)
    scan(page, "#thaw-scan", code)
    expect(page.locator("#thaw-result")).to_contain_text("Thaw completed")


def receive(page: Page, server: LiveServer, shipper: str) -> None:
    page.goto(server("/clinic"))
    page.locator("#moving").get_by_role("row").filter(has_text=shipper).get_by_role(
        "link"
    ).first.click()
    page.locator("#receipt-scan").fill(shipper)
    page.locator("#receipt-temperature").fill("-183")
    page.locator("#receive-button").click()
    expect(flash(page)).to_contain_text("received at")
    expect(page.locator("#shipment-status")).to_have_text("received")


def print_and_apply(page: Page, reason: str) -> None:
    """On a unit's label page: print its label (the file downloads), then scan the label on
    the unit (its QR payload, as the page shows it) to record it applied."""
    reason_box = page.locator("#reason")
    if reason_box.get_attribute("required") is not None:
        reason_box.fill(reason)
    with page.expect_download():
        page.locator("#print-button").click()
    payload = page.locator("#label-payload").inner_text()
    page.locator("#apply-code").fill(payload)
    page.locator("#apply-button").click()
    expect(flash(page)).to_contain_text("applied")


def test_a_bedside_stop_is_destroyed_witnessed_and_replaced_and_infused_the_same_day(
    page: Page, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the live server runs in this process: its request clock is moved on, not waited for
    from cellchain import http

    real, ahead = http.utcnow, [dt.timedelta()]
    start, zone = real(), ZoneInfo(os.environ.get("CELLCHAIN_TIMEZONE") or "UTC")
    if (start + CLOCK_MOVES).astimezone(zone).date() != start.astimezone(zone).date():
        pytest.skip("day 0 would end while the clock is moved on: run again after midnight")
    monkeypatch.setattr(http, "utcnow", lambda: real() + ahead[0])
    dose = live_server.dose_codes["AS-001"]
    wristband = live_server.patient_cois["AS-001"]

    # The clinician receives the shipment and thaws the dose; the infusion is not started in
    # time: the thaw window (60 min from the thaw start) closes.
    login_as(page, live_server, Role.CLINICIAN)
    receive(page, live_server, live_server.shippers["in_transit"])
    thaw(page, live_server, dose, ahead)
    ahead[0] += dt.timedelta(minutes=61)
    # an hour later the idle session has ended: the clinician logs in again at the bedside
    login_as(page, live_server, Role.CLINICIAN)
    page.goto(live_server("/bedside"))
    scan(page, "#wristband", wristband)
    expect(page.locator("#patient")).to_contain_text("AS-001")
    scan(page, "#label", dose)
    expect(page.locator("#verdict")).to_contain_text("STOP")
    expect(page.locator("#checks li[data-check='thaw']")).to_contain_text("FAILED")
    expect(page.locator("#verdict")).to_contain_text("1 check(s) failed")
    expect(page.locator("#sign-form")).to_have_count(0)
    expect(page.locator("#start-form")).to_have_count(0)

    # The stop leads to the dose's page: destroy is offered (cancel is not: it left the lab).
    page.locator("#dose-next-steps").click()
    expect(page).to_have_url(DOSE_URL)
    stopped_dose_url = page.url
    expect(page.locator("#dose-status")).to_have_text("prepared")
    expect(page.locator("#bedside-checks")).to_contain_text("STOP")
    expect(page.locator("#cancel-form")).to_have_count(0)
    form = page.locator("#destroy-form")
    form.locator("#destroy-reason").fill("thaw window exceeded at the bedside")
    form.locator("#destroy-witness").fill("nurse")
    form.locator("#destroy-witness-password").fill("nurse-demo-pass")
    form.locator("#destroy-password").fill(demo_user(Role.CLINICIAN).password)
    form.get_by_role("button", name="Sign and destroy the dose").click()
    expect(flash(page)).to_contain_text("Dose destroyed")
    expect(page.locator("#dose-status")).to_have_text("cancelled")
    expect(page.locator("#destroy-form")).to_have_count(0)
    signed = page.locator(".sig")
    expect(signed.filter(has_text="approval: dose destroyed")).to_contain_text("Casey Clinician")
    expect(signed.filter(has_text="witness: dose destroyed")).to_contain_text("Nico Nurse")
    expect(page.locator("#dose-bags")).to_contain_text("discarded")
    log_out(page, live_server)

    # The technician orders the replacement for the same visit from the destroyed dose's page.
    login_as(page, live_server, Role.TECHNICIAN)
    page.goto(stopped_dose_url)
    page.locator("#replacement-link").click()
    expect(page.locator("#refused")).to_have_count(0)
    expect(page.locator("#plan-volume")).to_contain_text("mL")
    page.locator("#order-button").click()
    expect(page).to_have_url(DOSE_URL)
    assert page.url != stopped_dose_url
    expect(page.locator("#dose-status")).to_have_text("allocated")
    replacement_url = page.url
    volume = page.locator("#dose-volume").inner_text().split()[0]
    bags = page.locator("#dose-bags a").all_inner_texts()
    log_out(page, live_server)

    # QA checks it independently.
    login_as(page, live_server, Role.QA)
    page.goto(replacement_url)
    page.locator("#volume_ml").fill(volume)
    page.locator("#bags").fill("\n".join(code.replace(" ", "") for code in bags))
    page.locator("#sign-password").fill(demo_user(Role.QA).password)
    page.get_by_role("button", name="Sign the second check").click()
    expect(flash(page)).to_contain_text("Second check signed")
    expect(page.locator("#dose-status")).to_have_text("prepared")
    log_out(page, live_server)

    # The technician labels the dose and its bag (the released label replaces the quarantine
    # one) and dispatches it.
    login_as(page, live_server, Role.TECHNICIAN)
    page.goto(replacement_url)
    replacement = page.locator("#dose-unit").inner_text().replace(" ", "")
    page.locator("#dose-label-link").click()
    print_and_apply(page, "dose label")
    page.goto(live_server("/shipments"))
    ready = page.locator("#ready li").filter(has_text=replacement)
    missing = [
        live_server(link.get_attribute("href") or "")
        for link in ready.locator(".labels-missing a").all()
    ]
    assert missing, "the replacement's bag still carries its quarantine label"
    for label_page in missing:
        page.goto(label_page)
        print_and_apply(page, "released label replaces the quarantine label")
    page.goto(live_server("/shipments"))
    expect(page.locator("#ready li").filter(has_text=replacement)).to_contain_text("labelled")
    page.locator("#doses").fill(f"CC1.{replacement}")
    page.locator("#shipper_id").fill("DS-201")
    page.locator("#logger_id").fill("TL-201")
    page.locator("#courier").fill("courier: R. Runner (demo)")
    site = page.locator("#site_id option", has_text="SITE-1").get_attribute("value") or ""
    page.locator("#site_id").select_option(site)  # the demo has two clinical sites
    page.locator("#dispatch-button").click()
    expect(flash(page)).to_contain_text("dispatched")
    log_out(page, live_server)

    # The clinician receives and thaws the replacement: a green GO, signed by two, started.
    login_as(page, live_server, Role.CLINICIAN)
    receive(page, live_server, "DS-201")
    thaw(page, live_server, replacement, ahead)
    page.goto(live_server("/bedside"))
    scan(page, "#wristband", wristband)
    scan(page, "#label", replacement)
    expect(page.locator("#verdict")).to_contain_text("GO")
    expect(page.locator("#checks li.fail")).to_have_count(0)
    page.locator("#password").fill(demo_user(Role.CLINICIAN).password)
    page.locator("#second_username").fill("nurse")
    page.locator("#second_password").fill("nurse-demo-pass")
    page.locator("#sign-button").click()
    expect(flash(page)).to_contain_text("Signed by two clinicians")
    page.locator("#start-button").click()
    expect(flash(page)).to_contain_text("Infusion started")
    expect(page.locator("#infusion-status")).to_have_text("in progress")

    # Both doses on the patient's day 0: the destroyed one and the infused replacement.
    page.goto(replacement_url)
    expect(page.locator("#dose-status")).to_have_text("infused")
    page.goto(stopped_dose_url)
    expect(page.locator("#dose-status")).to_have_text("cancelled")
