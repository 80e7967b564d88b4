"""Labels in a real browser: the technician opens the labels of the demo's released lot, sees
the reconciliation and the quarantine labels still to replace, prints the released labels as
a PDF sheet and ZPL, prints one bag's label as PNG, uploads that PNG as a photo in the scan
box and lands on the bag's page. A photo without a label gets a clear message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cellchain.core.payload import read_scan
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
zxingcpp = pytest.importorskip("zxingcpp")

UNIT_URL = re.compile(r"/units/(\d+)$")


def _download(page: Page, button: str, tmp_path: Path) -> Path:
    """Click ``button`` and wait for the file it downloads."""
    with page.expect_download() as download:
        page.locator(button).click()
    target = tmp_path / download.value.suggested_filename
    download.value.save_as(target)
    return target


def test_print_released_bag_labels_and_open_a_bag_from_a_photo_of_its_label(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    lot_number = live_server.donation_dins["released"] + "-L01"
    login_as(page, live_server, Role.TECHNICIAN)
    main_nav(page).get_by_role("link", name="Manufacturing", exact=True).click()
    page.get_by_role("link", name=lot_number).click()
    page.locator("#labels-link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(lot_number)

    # At fill each bag got its quarantine label, applied; the spare was destroyed.
    expect(page.locator("#outstanding")).to_have_text("0")
    expect(page.locator("#destroyed")).to_have_text("1")
    expect(page.locator("#to-replace")).to_contain_text("still carry a quarantine label")

    # Replace them now that the lot is released: a PDF sheet, then the same as ZPL.
    sheet = _download(page, "#replace-button", tmp_path)
    assert sheet.suffix == ".pdf" and sheet.read_bytes().startswith(b"%PDF")
    page.reload()
    expect(page.locator("#to-replace")).to_have_count(0)
    page.locator("#format").select_option("zpl")
    page.locator("#reason").fill("second set for the Zebra printer")
    zpl = _download(page, "#print-button", tmp_path).read_text()
    payloads = re.findall(r"\^FDMA,(CC1\.[A-Z0-9*]+)\^FS", zpl)
    assert payloads and all(read_scan(p).canonical.startswith(lot_number[:13]) for p in payloads)
    assert "QUARANTINE" not in zpl

    # One bag's label as PNG, from its own label page.
    page.reload()
    page.locator("#print-log tbody tr").first.get_by_role("link").click()
    expect(page).to_have_url(UNIT_URL)
    bag_url, bag_heading = page.url, page.get_by_role("heading", level=1).inner_text()
    page.locator("#labels-link").click()
    expect(page.locator("#label-fields")).to_contain_text("Store at")
    page.locator("#format").select_option("png")
    page.locator("#reason").fill("label for the photo test")
    png = _download(page, "#print-button", tmp_path)
    assert png.suffix == ".png"

    # The PNG as a phone photo, through the scan box's Photo button: the bag's page opens.
    page.goto(live_server("/"))
    page.locator("#scan-photo").set_input_files(str(png))
    expect(page).to_have_url(bag_url)
    expect(page.get_by_role("heading", level=1)).to_have_text(bag_heading)

    # A picture without any label says so, on the scan page.
    from PIL import Image

    blank = tmp_path / "bench.jpg"
    Image.new("RGB", (640, 480), (190, 190, 185)).save(blank, format="JPEG")
    page.goto(live_server("/scan"))
    page.locator("#photo").set_input_files(str(blank))
    page.locator("#photo-button").click()
    expect(page.locator("#scan-error")).to_contain_text("No label could be read in the photo")
