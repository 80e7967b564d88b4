"""Issue 21's "done when", at the bedside: on a phone, a clinician switches to 中文 and takes
AS-001 from the shipment's receipt through thaw, the bedside check, the two signatures and
the infusion, with every word of every page in Chinese and every time in the site's
+08:00; and a wrong wristband's STOP says why in Chinese."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cellchain.core.roles import Role
from cellchain.demo import DEMO_USERS
from tests.browser.pages import demo_user, flash, login_as
from tests.conftest import DatabaseFactory, SeededDemo, seed_demo_database
from tests.support.untranslated import english_words

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
SITE_ZONE = "Asia/Shanghai"


@pytest.fixture
def live_server_config() -> dict[str, Any]:
    """The first site's zone: every time a person reads is +08:00."""
    return {"SITE_TIMEZONE": SITE_ZONE, "SITE_NAME": "山东大学齐鲁医院"}


@pytest.fixture(scope="module")
def seeded_demo(databases: DatabaseFactory) -> Iterator[SeededDemo]:
    """The demo site seeded on the first site's calendar: its day 0 is today in Shanghai,
    which from 16:00 UTC on is tomorrow in UTC (the shared demo is seeded in UTC)."""
    seeded = seed_demo_database(databases.create(), SITE_TIMEZONE=SITE_ZONE)
    yield seeded
    databases.drop(seeded.url)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, locale="en-US"
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def record_values(server: LiveServer) -> list[str]:
    """Values of the demo's records that a page shows as they are (names, codes)."""
    return [
        *(user.full_name for user in DEMO_USERS),
        *server.patient_cois.values(),
        *server.dose_codes.values(),
        *server.shippers.values(),
        "Clinic — infusion room 1",  # the demo shipment's destination, as typed
    ]


class Reader:
    """Reads each page the clinician sees and keeps its English words, by page."""

    def __init__(self, page: Page, server: LiveServer) -> None:
        self.page = page
        self.data = record_values(server)
        self.english: dict[str, list[str]] = {}

    def read(self, name: str) -> str:
        html = self.page.content()
        words = english_words(html, data=self.data)
        if words:
            self.english[name] = words
        return html


def scan(page: Page, field: str, code: str) -> None:
    page.locator(field).fill(f"CC1.{code}")
    page.locator(field).press("Enter")


def switch_to_chinese(page: Page) -> None:
    page.locator("form.language button[value='zh_Hans']").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")


def test_a_clinician_takes_as_001_through_the_bedside_in_chinese_on_a_phone(
    phone: Page, live_server: LiveServer, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = phone
    from cellchain import http

    real, ahead = http.utcnow, [dt.timedelta()]
    monkeypatch.setattr(http, "utcnow", lambda: real() + ahead[0])
    dose = live_server.dose_codes["AS-001"]
    reader = Reader(page, live_server)
    login_as(page, live_server, Role.CLINICIAN)
    switch_to_chinese(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text("欢迎")
    reader.read("home")

    page.goto(live_server("/clinic"))
    reader.read("clinic")
    page.locator("#moving").get_by_role("row").filter(
        has_text=live_server.shippers["in_transit"]
    ).get_by_role("link").first.click()
    reader.read("shipment")
    page.locator("#receipt-scan").fill(live_server.shippers["in_transit"])
    page.locator("#receipt-temperature").fill("-183")
    page.locator("#receive-button").click()
    expect(flash(page)).to_contain_text("接收")
    reader.read("shipment received")

    page.goto(live_server("/thaw"))
    reader.read("thaw")
    scan(page, "#thaw-scan", dose)
    expect(page.locator("#thaw-result")).to_be_visible()
    assert "+08:00" in reader.read("thaw started")
    ahead[0] += dt.timedelta(minutes=3)
    scan(page, "#thaw-scan", dose)
    reader.read("thaw completed")

    page.goto(live_server("/bedside"))
    reader.read("bedside: wristband")
    scan(page, "#wristband", live_server.patient_cois["AS-001"])
    expect(page.locator("#patient")).to_contain_text("AS-001")
    reader.read("bedside: the bag")
    scan(page, "#label", dose)
    expect(page.locator("#checks li.pass").first).to_be_visible()
    expect(page.locator("#checks li.fail")).to_have_count(0)
    reader.read("bedside: go")
    page.screenshot(path=str(artifacts / "bedside-go-phone-zh.png"), full_page=True)

    page.locator("#password").fill(demo_user(Role.CLINICIAN).password)
    page.locator("#second_username").fill("nurse")
    page.locator("#second_password").fill("nurse-demo-pass")
    page.locator("#sign-button").click()
    reader.read("signed")
    page.locator("#start-button").click()
    expect(page.locator("#end-button")).to_be_visible()
    assert "+08:00" in reader.read("infusion running")
    ahead[0] += dt.timedelta(minutes=13)
    page.locator("#rate_ml_per_h").fill("75")
    page.locator("#end-button").click()
    expect(page.locator("#reaction")).to_be_visible()
    reader.read("infusion ended")
    page.screenshot(path=str(artifacts / "bedside-infused-phone-zh.png"), full_page=True)

    assert reader.english == {}, "English words left on the bedside flow: " + "; ".join(
        f"{name}: {' '.join(words)}" for name, words in reader.english.items()
    )


def test_a_wrong_wristband_is_a_stop_that_says_why_in_chinese(
    phone: Page, live_server: LiveServer
) -> None:
    page = phone
    reader = Reader(page, live_server)
    login_as(page, live_server, Role.CLINICIAN)
    switch_to_chinese(page)
    page.goto(live_server("/bedside"))
    scan(page, "#wristband", live_server.patient_cois["AS-002"])
    scan(page, "#label", live_server.dose_codes["AS-001"])
    expect(page.locator("#checks li[data-check='patient']")).to_contain_text("患者错误")
    expect(page.locator("#sign-form")).to_have_count(0)
    reader.read("bedside: stop")
    assert reader.english == {}, reader.english
