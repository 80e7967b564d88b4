"""The Content-Security-Policy (docs/security.md) breaks no page in a real browser: Chromium
reports no violation on the shell, a scan result, the chain-of-identity report, the bedside
pages and the API docs, and the behaviours moved out of inline handlers into app.js work."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from cellchain.core.roles import Role
from tests.browser.pages import login_as

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture
def violations(page: Page) -> Iterator[list[str]]:
    """The console messages and page errors of the test: each is a CSP refusal or a script
    that failed; the test fails if any is left at its end."""
    seen: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        text = message.text
        refused = "Content Security Policy" in text
        # a missing favicon is a 404 "Failed to load resource", not a broken page
        if refused or (message.type == "error" and "Failed to load resource" not in text):
            seen.append(text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.append(f"page error: {error}"))
    yield seen
    assert seen == [], f"the browser reported: {seen}"


def test_the_shell_a_scan_and_the_coi_report_run_under_the_policy(
    page: Page, live_server: LiveServer, violations: list[str]
) -> None:
    login_as(page, live_server, Role.QA)
    # the scan box selects its text on focus (app.js), so the next scan replaces it
    box = page.locator("#scan-box")
    box.fill(live_server.patient_cois["AS-001"])
    box.evaluate("el => { el.setSelectionRange(0, 0); el.blur(); }")
    box.focus()
    selected = box.evaluate("el => [el.selectionStart, el.selectionEnd, el.value.length]")
    assert selected[0] == 0 and selected[1] == selected[2] > 0

    page.goto(live_server("/patients/1/coi-report"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Chain-of-identity report")
    # its Print button (was an onclick) and its stylesheet (was a <style> block) are there
    assert page.locator("#coi-report .no-print [data-print]").count() == 1
    assert page.evaluate(
        "[...document.styleSheets].some(s => (s.href || '').endsWith('/static/coi_report.css'))"
    )


def test_the_api_docs_render_under_their_policy(
    page: Page, live_server: LiveServer, violations: list[str]
) -> None:
    login_as(page, live_server, Role.QA)
    page.goto(live_server("/api/v1/docs"))
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("cellchain")


def test_the_bedside_pages_run_under_the_policy(
    page: Page, live_server: LiveServer, violations: list[str]
) -> None:
    login_as(page, live_server, Role.CLINICIAN)
    page.goto(live_server("/bedside"))
    expect(page).to_have_url(re.compile(r"/bedside"))
