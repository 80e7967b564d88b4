"""What the browser tests do on a page, shared by them: log in and out as a demo user, the main
navigation, the scan box, the success flash and a table column."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cellchain.core.roles import Role
from cellchain.demo import DEMO_USERS, DemoUser

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from tests.browser.conftest import LiveServer

DONATION_URL = re.compile(r"/donations/(\d+)$")
UNIT_URL = re.compile(r"/units/(\d+)$")


def demo_user(role: Role) -> DemoUser:
    return next(user for user in DEMO_USERS if user.role is role)


def log_in(page: Page, server: LiveServer, username: str, password: str) -> None:
    page.goto(server("/login"))
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Log in").click()


def log_out(page: Page, server: LiveServer) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login(\?|$)"))
    expect(page.get_by_role("status")).to_contain_text("You are logged out.")
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)


def main_nav(page: Page):  # -> Locator
    return page.get_by_role("navigation", name="Main")


def scan(page: Page, code: str) -> None:
    """Enter a code into the scan box as a keyboard-wedge scanner does (the code at the
    caret, then Enter). One insertion, not per-key emulation, which on a loaded CI machine
    once doubled a keystroke (see test_manufacturing.scan_in)."""
    box = page.locator("#scan-box")
    box.fill("")
    box.focus()
    page.keyboard.insert_text(code)
    box.press("Enter")


def login_as(page: Page, server: LiveServer, role: Role) -> None:
    user = demo_user(role)
    log_in(page, server, user.username, user.password)
    expect(page).to_have_url(server("/"))
    # the monitor reads every name as a role and a pseudonym, its own too (issue 22)
    shown = re.compile(r"Welcome, Monitor \(sponsor\) U\d+") if role is Role.MONITOR else None
    expect(page.get_by_role("heading", level=1)).to_have_text(shown or f"Welcome, {user.full_name}")


def flash(page: Page) -> Locator:
    return page.locator(".flash.success")


def column(rows: Locator, index: int) -> Locator:
    """The ``index``-th (1-based) cell of every row."""
    return rows.locator(f":scope > td:nth-child({index})")


def open_by_scan(page: Page, server: LiveServer, code: str, url: re.Pattern[str]) -> None:
    scan(page, code)
    expect(page).to_have_url(url)
    expect(page.get_by_role("heading", level=1)).to_contain_text(code)
