"""The print log updates after printing without a reload (issue 21): the print form is posted
by app.js, the file downloads, and the log and the reconciliation show the new prints on the
same page; a refused print shows the page with its reason, as a plain post would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cellchain.core.roles import Role
from tests.browser.pages import login_as, main_nav

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

#: set on the page before printing: still there afterwards only if the page was not reloaded
MARK = "window.__not_reloaded = true"
NOT_RELOADED = "window.__not_reloaded === true"


def open_lot_labels(page: Page, server: LiveServer) -> str:
    lot_number = server.donation_dins["released"] + "-L01"
    login_as(page, server, Role.TECHNICIAN)
    main_nav(page).get_by_role("link", name="Manufacturing", exact=True).click()
    page.get_by_role("link", name=lot_number).click()
    page.locator("#labels-link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(lot_number)
    return lot_number


def test_a_print_shows_in_the_log_without_a_reload(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    open_lot_labels(page, live_server)
    issued = int(page.locator("#issued").inner_text())
    rows = page.locator("#print-log tbody tr[data-print]")
    before = rows.count()
    page.evaluate(MARK)

    page.locator("#format").select_option("zpl")
    page.locator("#reason").fill("second set for the Zebra printer")
    with (
        page.expect_download() as download,
        page.expect_response(
            lambda r: r.request.method == "POST" and r.url.endswith("/labels")
        ) as answer,
    ):
        page.locator("#print-button").click()

    printed = [int(i) for i in answer.value.headers["x-label-print-ids"].split(",")]
    assert printed
    assert download.value.suggested_filename.endswith(".zpl")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.read_text().startswith("^XA")

    # the new prints are in the log, newest or not, on the same page
    for print_id in printed:
        expect(page.locator(f"#print-log tr[data-print='{print_id}']")).to_have_count(1)
    expect(rows).to_have_count(before + len(printed))
    expect(page.locator("#issued")).not_to_have_text(str(issued))
    assert int(page.locator("#issued").inner_text()) > issued
    assert page.evaluate(NOT_RELOADED)
    # the refreshed log still shows as cards where it would (its cells are named again)
    first = page.locator(f"#print-log tr[data-print='{printed[0]}'] > td").first
    expect(first).to_have_attribute("data-label", "#")
    expect(page.locator("#print-button")).to_be_enabled()


def test_a_refused_print_shows_why_and_logs_nothing(page: Page, live_server: LiveServer) -> None:
    open_lot_labels(page, live_server)
    before = page.locator("#print-log tbody tr[data-print]").count()
    # a reprint needs its reason: the browser would ask for it, the server refuses without
    page.locator("#reason").evaluate("el => { el.required = false; el.value = ''; }")
    page.locator("#print-button").click()

    expect(page.locator("#form-error")).to_contain_text(re.compile("reason", re.IGNORECASE))
    expect(page.locator("#print-log tbody tr[data-print]")).to_have_count(before)
