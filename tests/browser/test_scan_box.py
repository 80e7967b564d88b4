"""The scan box reads more than DINs (issue 21): a technician types a lot number or a shipper ID
into the box on the home page and lands on the lot or the shipment."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from cellchain.core.roles import Role
from tests.browser.conftest import LiveServer
from tests.browser.pages import login_as, scan


def test_a_lot_number_typed_into_the_home_pages_scan_box_opens_the_lot(
    page: Page, live_server: LiveServer
) -> None:
    login_as(page, live_server, Role.TECHNICIAN)
    page.goto(live_server("/manufacturing"))
    first = page.locator("#lots tbody a.code").first
    lot_number = first.inner_text().strip()
    lot_path = first.get_attribute("href")
    assert lot_number and lot_path

    page.goto(live_server("/"))
    expect(page.locator("#scan-box")).to_be_focused()
    scan(page, lot_number.lower())  # a scanner in lower case: read all the same

    expect(page).to_have_url(live_server(lot_path))
    expect(page.get_by_role("heading", level=1)).to_contain_text(lot_number)


def test_a_shipper_id_opens_its_shipment_and_an_unknown_lot_is_named(
    page: Page, live_server: LiveServer
) -> None:
    login_as(page, live_server, Role.TECHNICIAN)
    shipper = live_server.shippers["in_transit"]

    scan(page, shipper)

    expect(page).to_have_url(re.compile(r"/shipments/\d+$"))
    expect(page.locator("main")).to_contain_text(shipper)

    unknown = f"{live_server.reserved_dins[0]}-L99"
    scan(page, unknown)
    expect(page.locator("#scan-error")).to_contain_text(
        f"This looks like a lot number, but no lot {unknown} exists."
    )
    expect(page.locator("#scan-box")).to_have_value(unknown)
