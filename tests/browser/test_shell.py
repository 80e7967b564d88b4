"""The application shell in a real browser: login, role navigation, the scan box, logout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cellchain.core.identifiers import ALPHABET, make_din, parse_identifier
from cellchain.core.roles import Role, has_permission
from cellchain.core.types import utcnow
from cellchain.demo import DEMO_USERS, DemoUser
from cellchain.web.navigation import NAV_ITEMS
from tests.browser.pages import demo_user, log_in, log_out, main_nav, scan

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser


# --- helpers -----------------------------------------------------------------------------


def nav_labels(role: Role) -> tuple[list[str], list[str]]:
    """(labels ``role`` must see, labels it must not see) in the main navigation."""
    shown = [str(item.label) for item in NAV_ITEMS if has_permission({role}, item.permission)]
    hidden = [str(item.label) for item in NAV_ITEMS if str(item.label) not in shown]
    return shown, hidden


def wrong_check_character(code: str) -> str:
    """``code`` (body + K) with its check character replaced by a different valid one."""
    last = code[-1]
    return code[:-1] + next(c for c in ALPHABET[:36] if c != last)


# --- tests -------------------------------------------------------------------------------


def test_technician_logs_in_scans_and_logs_out(
    page: Page, live_server: LiveServer, artifacts: Path
) -> None:
    tech = demo_user(Role.TECHNICIAN)
    log_in(page, live_server, tech.username, tech.password)

    # Home page, with the technician's navigation.
    expect(page).to_have_url(live_server("/"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {tech.full_name}")
    nav = main_nav(page)
    shown, hidden = nav_labels(Role.TECHNICIAN)
    assert "Identifiers" in shown and {"Users", "Audit trail"} <= set(hidden)
    expect(nav.get_by_role("link", name="Identifiers", exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name="Users", exact=True)).to_have_count(0)
    expect(nav.get_by_role("link", name="Audit trail", exact=True)).to_have_count(0)
    expect(page.locator("#scan-box")).to_be_focused()  # autofocus: a scanner can fire at once
    page.screenshot(path=str(artifacts / "home-technician.png"), full_page=True)

    # A reserved DIN → its identifier page.
    din = live_server.reserved_dins[0]
    scan(page, din)
    expect(page).to_have_url(live_server(f"/identifiers/{din}"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(din)
    expect(page.locator("#identifier-display")).to_have_text(parse_identifier(din).display)

    # A mistyped check character → "Invalid code", and the box keeps what was typed.
    bad = wrong_check_character(din)
    scan(page, bad)
    error = page.locator("#scan-error")
    expect(error).to_contain_text("Invalid code")
    expect(error).to_contain_text(re.compile("check character", re.IGNORECASE))
    expect(page.locator("#scan-box")).to_have_value(bad)
    expect(page.locator("#scan-entered")).to_have_text(bad)
    page.screenshot(path=str(artifacts / "scan-error.png"), full_page=True)

    # Well-formed, never issued → "Not found".
    never = make_din(live_server.facility_code, utcnow().year, 999_999).canonical
    assert never not in live_server.reserved_dins
    scan(page, never)
    expect(page.locator("#scan-error")).to_contain_text("Not found")
    expect(page.locator("#scan-box")).to_have_value(never)

    # Log out → login page; the home page now sends you to log in.
    log_out(page, live_server)
    page.goto(live_server("/"))
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")


@pytest.mark.parametrize("user", DEMO_USERS, ids=[u.username for u in DEMO_USERS])
def test_each_role_sees_its_navigation(page: Page, live_server: LiveServer, user: DemoUser) -> None:
    shown, hidden = nav_labels(user.role)
    assert shown, f"{user.role} sees no navigation at all"

    log_in(page, live_server, user.username, user.password)
    expect(page).to_have_url(live_server("/"))
    nav = main_nav(page)
    # Exactly the links of this role, in table order: covers "must see" and "must not see".
    expect(nav.get_by_role("link")).to_have_text(shown)
    # And, spelled out, the most restricted link it holds and every one it lacks.
    expect(nav.get_by_role("link", name=shown[-1], exact=True)).to_be_visible()
    for label in hidden:
        expect(nav.get_by_role("link", name=label, exact=True)).to_have_count(0)
    # The home page lists the same work (below the role's queues), and names the role.
    work = page.locator("#home-nav").get_by_role("link")
    expect(work).to_have_text([label for label in shown if label != "Home"])
    expect(page.locator("main")).to_contain_text(user.role.label)

    log_out(page, live_server)


def test_roles_differ_in_navigation() -> None:
    """Guard for the test above: the table does hide links from some roles."""
    assert any(nav_labels(user.role)[1] for user in DEMO_USERS)


def test_wrong_password_shows_error_and_keeps_username(page: Page, live_server: LiveServer) -> None:
    tech = demo_user(Role.TECHNICIAN)
    log_in(page, live_server, tech.username, tech.password + "-wrong")

    expect(page).to_have_url(re.compile(r"/login(\?|$)"))
    expect(page.get_by_role("alert")).to_have_text("The username or password is not correct.")
    expect(page.locator("#username")).to_have_value(tech.username)
    expect(page.locator("#password")).to_have_value("")
    expect(main_nav(page)).to_have_count(0)


def test_rescan_after_error_replaces_the_old_code(page: Page, live_server: LiveServer) -> None:
    """A keyboard-wedge scanner just types and presses Enter: after an error page, the next
    scan must replace what is in the box, not be glued onto it."""
    tech = demo_user(Role.TECHNICIAN)
    log_in(page, live_server, tech.username, tech.password)
    first, second = live_server.reserved_dins[:2]
    scan(page, wrong_check_character(first))
    expect(page.locator("#scan-error")).to_be_visible()
    expect(page.locator("#scan-box")).to_be_focused()

    page.keyboard.type(second)  # no clearing: the scanner cannot
    page.keyboard.press("Enter")
    expect(page).to_have_url(live_server(f"/identifiers/{second}"), timeout=3_000)
