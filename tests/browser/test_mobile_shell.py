"""The phone and tablet shell (issue 21): on a phone (390×844) and a tablet (820×1180) the main
navigation folds behind a Menu button that opens and closes with a mouse, a finger or the
keyboard, the scan box is the first field and above the fold, a wide table shows each row as
a card with its column names, and no main page scrolls sideways. The bedside pages keep their
own layout (no menu, no cards)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cellchain.core.roles import Role
from tests.browser.pages import login_as

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
TABLET = {"width": 820, "height": 1180}
DEVICES = {"phone": PHONE, "tablet": TABLET}


@pytest.fixture(params=sorted(DEVICES))
def device(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    """A page on a phone or a tablet (touch, mobile viewport)."""
    context = browser.new_context(viewport=DEVICES[request.param], is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def sideways_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the window (0: no horizontal scrolling)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def test_the_menu_is_folded_and_opens_with_a_finger_and_the_keyboard(
    device: Page, live_server: LiveServer, artifacts: Path
) -> None:
    page = device
    login_as(page, live_server, Role.QA)
    menu = page.get_by_role("button", name="Menu")
    nav = page.locator("#main-nav")
    expect(menu).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_have_attribute("aria-controls", "main-nav who")
    expect(nav).to_be_hidden()
    expect(page.get_by_role("button", name="Log out")).to_be_hidden()
    width = page.viewport_size["width"] if page.viewport_size else 0
    page.screenshot(path=str(artifacts / f"shell-{width}-folded.png"))

    # the scan box: the first field of the page, above the fold, and focused
    box = page.locator("#scan-box")
    expect(box).to_be_focused()
    first_field = page.evaluate(
        "document.querySelector('input:not([type=hidden]):not([hidden]), select, textarea').id"
    )
    assert first_field == "scan-box"
    where = box.bounding_box()
    height = page.viewport_size["height"] if page.viewport_size else 0
    assert where is not None and where["y"] + where["height"] <= height / 4

    # a finger opens the menu; its links are there, then the box is still on the screen
    menu.tap()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav.get_by_role("link", name="Donations", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    page.screenshot(path=str(artifacts / f"shell-{width}-open.png"))
    menu.tap()
    expect(nav).to_be_hidden()

    # the keyboard: Enter opens, Tab reaches the first link, Escape closes and returns
    menu.focus()
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Tab")
    expect(nav.get_by_role("link").first).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()
    expect(nav).to_be_hidden()

    # a link of the menu leads to its page
    menu.tap()
    nav.get_by_role("link", name="Donations", exact=True).tap()
    expect(page).to_have_url(live_server("/donations"))
    expect(page.get_by_role("button", name="Menu")).to_have_attribute("aria-expanded", "false")


def test_a_wide_table_is_a_set_of_cards_named_by_its_columns(
    device: Page, live_server: LiveServer, artifacts: Path
) -> None:
    page = device
    login_as(page, live_server, Role.QA)
    page.goto(live_server("/lots/1/labels"))
    log = page.locator("#print-log")
    expect(log).to_have_class(re.compile(r"\bas-cards\b"))
    headers = [t.strip() for t in log.locator("thead th").all_inner_texts()]
    assert len(headers) >= 6
    row = log.locator("tbody tr[data-print]").first
    cells = row.locator(":scope > td")
    assert cells.count() == len(headers)
    for index, header in enumerate(headers):
        cell = cells.nth(index)
        expect(cell).to_have_attribute("data-label", header)
        shown = cell.evaluate("td => getComputedStyle(td, '::before').content")
        assert shown == f'"{header}"'
    # one card per print: each row is a block as wide as the page, not a table row
    assert row.evaluate("tr => getComputedStyle(tr).display") == "block"
    box = row.bounding_box()
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    assert sideways_overflow(page) == 0
    page.screenshot(path=str(artifacts / f"cards-{width}.png"), full_page=True)


def test_no_main_page_scrolls_sideways(device: Page, live_server: LiveServer) -> None:
    page = device
    login_as(page, live_server, Role.TECHNICIAN)
    links = page.eval_on_selector_all(
        "#main-nav a", "links => links.map(a => a.getAttribute('href'))"
    )
    assert len(links) >= 8
    wide: dict[str, int] = {}
    for href in [*links, "/lots/1/labels", "/units/1", "/lots/1"]:
        response = page.goto(live_server(href))
        assert response is not None and response.status == 200, href
        overflow = sideways_overflow(page)
        if overflow > 0:
            wide[href] = overflow
    assert wide == {}, f"pages wider than the screen (px): {wide}"


def test_the_bedside_pages_keep_their_own_layout(browser: Browser, live_server: LiveServer) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        login_as(page, live_server, Role.CLINICIAN)
        for path, field_id in (("/bedside", "#wristband"), ("/thaw", "#thaw-scan")):
            page.goto(live_server(path))
            expect(page.locator("body.bedside")).to_have_count(1)
            expect(page.get_by_role("button", name="Menu")).to_have_count(0)
            expect(page.locator("main td[data-label]")).to_have_count(0)
            field = page.locator(field_id)
            expect(field).to_be_focused()
            box = field.bounding_box()
            assert box is not None and box["width"] >= PHONE["width"] * 0.8  # full width
            assert sideways_overflow(page) == 0
    finally:
        context.close()


def test_the_phone_shell_passes_axe(browser: Browser, live_server: LiveServer) -> None:
    """axe-core (WCAG 2.1 AA) on a phone: the folded and the open menu, and a table as cards."""
    from tests.browser.test_accessibility import AXE, AXE_RUN, FAILING, WCAG_21_AA

    # bypass_csp: the policy would refuse the injected axe script (as test_accessibility)
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, bypass_csp=True)
    context.set_default_timeout(10_000)
    context.add_init_script(path=AXE)
    page = context.new_page()
    found: dict[str, list[str]] = {}

    def check(name: str) -> None:
        violations = page.evaluate(AXE_RUN, WCAG_21_AA)
        bad = [f"{v['id']} ({v['impact']}) at {v['targets']}" for v in violations]
        if any(v["impact"] in FAILING for v in violations):
            found[name] = bad

    try:
        login_as(page, live_server, Role.QA)
        check("home, menu folded")
        page.get_by_role("button", name="Menu").tap()
        expect(page.locator("#main-nav")).to_be_visible()
        check("home, menu open")
        page.goto(live_server("/lots/1/labels"))
        expect(page.locator("#print-log")).to_have_class(re.compile(r"\bas-cards\b"))
        check("a lot's labels, print log as cards")
    finally:
        context.close()
    assert found == {}, f"serious or critical WCAG 2.1 AA violations: {found}"
