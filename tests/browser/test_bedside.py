"""The bedside on a phone: the clinician receives AS-001's shipment, thaws the dose by
scanning it, scans the wristband and the dose at the bedside, gets a green go with the thaw
countdown, signs with the second clinician, starts and ends the infusion; and a wrong
wristband gets a red stop with nothing to sign."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cellchain.clinic.bedside.bedside import Check
from cellchain.core.roles import Role
from tests.browser.pages import demo_user, flash, login_as

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

#: A phone held in one hand (CSS pixels of a common 6.1" phone).
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def scan(page: Page, field: str, code: str) -> None:
    """What a keyboard-wedge scanner does: type the label's payload and press Enter."""
    page.locator(field).fill(f"CC1.{code}")
    page.locator(field).press("Enter")


def test_receive_thaw_check_sign_and_infuse_on_a_phone(
    phone: Page, live_server: LiveServer, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = phone
    # the live server runs in this process: its request clock is moved on, not waited for
    from cellchain import http

    real, ahead = http.utcnow, [dt.timedelta()]
    monkeypatch.setattr(http, "utcnow", lambda: real() + ahead[0])
    dose = live_server.dose_codes["AS-001"]
    login_as(page, live_server, Role.CLINICIAN)
    page.goto(live_server("/clinic"))
    page.locator("#moving").get_by_role("row").filter(
        has_text=live_server.shippers["in_transit"]
    ).get_by_role("link").click()
    page.locator("#receipt-scan").fill(live_server.shippers["in_transit"])
    page.locator("#receipt-temperature").fill("-183")
    page.locator("#receive-button").click()
    expect(flash(page)).to_contain_text("received at")
    expect(page.locator("#shipment-status")).to_have_text("received")

    page.goto(live_server("/thaw"))
    scan(page, "#thaw-scan", dose)
    expect(page.locator("#thaw-result")).to_contain_text("Thaw started")
    scan(page, "#thaw-scan", dose)  # at once: a double scan, not a thawed bag
    expect(page.locator("body")).to_contain_text("at least 2 min to thaw")
    ahead[0] += dt.timedelta(minutes=3)  # the bag in the 37 °C bath
    scan(page, "#thaw-scan", dose)
    expect(page.locator("#thaw-result")).to_contain_text("Thaw completed")

    page.goto(live_server("/bedside"))
    scan(page, "#wristband", live_server.patient_cois["AS-001"])
    expect(page.locator("#patient")).to_contain_text("AS-001")
    scan(page, "#label", dose)
    expect(page.locator("#verdict")).to_contain_text("GO")
    expect(page.locator("#checks li.pass")).to_have_count(len(Check))  # every check passes
    expect(page.locator("#countdown")).to_contain_text("left to start")
    page.screenshot(path=str(artifacts / "bedside-go-phone.png"), full_page=True)

    page.locator("#password").fill(demo_user(Role.CLINICIAN).password)
    page.locator("#second_username").fill("nurse")
    page.locator("#second_password").fill("nurse-demo-pass")
    page.locator("#sign-button").click()
    expect(flash(page)).to_contain_text("Signed by two clinicians")
    page.locator("#start-button").click()
    expect(flash(page)).to_contain_text("Infusion started")
    expect(page.locator("#infusion-status")).to_have_text("in progress")
    ahead[0] += dt.timedelta(minutes=13)  # about 16 mL at 75 mL/h
    page.locator("#rate_ml_per_h").fill("75")
    page.locator("#end-button").click()
    expect(flash(page)).to_have_text("Infusion ended and recorded.")
    expect(page.locator("#infusion-status")).to_have_text("completed")
    expect(page.locator("#reaction")).to_have_text("none")
    page.screenshot(path=str(artifacts / "bedside-infused-phone.png"), full_page=True)


def test_a_wrong_wristband_is_a_red_stop_with_nothing_to_sign(
    phone: Page, live_server: LiveServer, artifacts: Path
) -> None:
    page = phone
    login_as(page, live_server, Role.CLINICIAN)
    page.goto(live_server("/bedside"))
    scan(page, "#wristband", live_server.patient_cois["AS-002"])
    expect(page.locator("#patient")).to_contain_text("AS-002")
    scan(page, "#label", live_server.dose_codes["AS-001"])
    expect(page.locator("#verdict")).to_contain_text("STOP")
    expect(page.locator("#checks li[data-check='patient']")).to_contain_text("WRONG PATIENT")
    expect(page.locator("#sign-form")).to_have_count(0)
    expect(page.locator("#start-form")).to_have_count(0)
    page.screenshot(path=str(artifacts / "bedside-stop-phone.png"), full_page=True)
