"""Scanning with the camera in the browser (issue 21): the Camera button beside the scan box,
and on the bedside wristband page, opens the camera, reads the label's QR code from the live
picture with the vendored zxing-wasm (Chromium on Linux has no BarcodeDetector), fills the
field and submits it. Chromium's fake camera plays a Y4M file made here from the QR code the
app draws on its labels (``labels.qr``). Cancel stops the camera; a refused camera is said in
words and the photo upload is still there."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cellchain.core.identifiers import parse_identifier
from cellchain.core.payload import encode_payload
from cellchain.core.roles import Role
from cellchain.labels.qr import qr_matrix
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, unavailable
from tests.browser.pages import login_as

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 640, 480
#: pixels per QR module in the fake camera's picture, and the quiet zone in modules
MODULE, QUIET = 8, 4
#: every MediaStream the page opens, so a test can see that the camera was stopped
RECORD_STREAMS = """
window.__streams = [];
if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) =>
    original(constraints).then((stream) => { window.__streams.push(stream); return stream; });
}
"""
ALL_STOPPED = (
    "window.__streams.length > 0 && "
    "window.__streams.every(s => s.getTracks().every(t => t.readyState === 'ended'))"
)


def y4m(path: Path, payload: str | None, frames: int = 3) -> Path:
    """A Y4M video (4:2:0, full range) of ``payload``'s QR code, black on white in the middle
    of the picture; a white picture when ``payload`` is None."""
    luma = bytearray(b"\xff" * (WIDTH * HEIGHT))
    if payload is not None:
        modules = qr_matrix(payload)
        size = (len(modules) + 2 * QUIET) * MODULE
        assert size <= HEIGHT, "the QR code does not fit the picture"
        left, top = (WIDTH - size) // 2 + QUIET * MODULE, (HEIGHT - size) // 2 + QUIET * MODULE
        for row, cells in enumerate(modules):
            for column, dark in enumerate(cells):
                if not dark:
                    continue
                for y in range(top + row * MODULE, top + (row + 1) * MODULE):
                    start = y * WIDTH + left + column * MODULE
                    luma[start : start + MODULE] = b"\x00" * MODULE
    chroma = b"\x80" * ((WIDTH // 2) * (HEIGHT // 2))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n")
            out.write(bytes(luma))
            out.write(chroma)
            out.write(chroma)
    return path


@pytest.fixture
def camera_browser(
    playwright_instance: Playwright, tmp_path: Path
) -> Iterator[Callable[[str | None], Browser]]:
    """Chromium whose camera plays the QR code of a payload (or a blank picture): its own
    launch, since the fake camera's file is a command-line switch."""
    launched: list[Browser] = []

    def launch(payload: str | None) -> Browser:
        video = y4m(tmp_path / f"camera-{len(launched)}.y4m", payload)
        try:
            browser = playwright_instance.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    *CHROMIUM_ARGS,
                    "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-video-capture={video}",
                ],
                timeout=60_000,
            )
        except Exception as error:
            unavailable(f"Chromium at {CHROMIUM} did not start with a fake camera: {error}")
        launched.append(browser)
        return browser

    yield launch
    for browser in launched:
        browser.close()


def camera_page(browser: Browser, server: LiveServer) -> Page:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(20_000)  # the reader's .wasm is compiled on first use
    context.grant_permissions(["camera"], origin=server.url)
    context.add_init_script(RECORD_STREAMS)
    return context.new_page()


def test_the_camera_reads_a_label_into_the_scan_box_and_opens_its_record(
    camera_browser: Callable[[str | None], Browser], live_server: LiveServer
) -> None:
    din = live_server.donation_dins["eligible"]
    page = camera_page(camera_browser(encode_payload(parse_identifier(din))), live_server)
    wasm_requests: list[str] = []
    page.on("request", lambda r: wasm_requests.append(r.url) if ".wasm" in r.url else None)
    login_as(page, live_server, Role.TECHNICIAN)

    page.get_by_role("button", name="Camera").click()
    # the dialog opens and, the label read, closes as the box is submitted: on a quick machine
    # before an assertion could see it, so the test waits for where the scan leads (the
    # reader's .wasm compiled on first use, polled up to the deadline)

    # it read the label, filled the box and submitted it: the donation's page
    expect(page.get_by_role("heading", level=1)).to_contain_text(din, timeout=30_000)
    assert "/donations/" in page.url
    # the reader's WebAssembly came from this site's static folder, nothing else
    assert wasm_requests == [live_server("/static/vendor/zxing-wasm/zxing_reader.wasm")]


def test_the_camera_reads_the_wristband_at_the_bedside(
    camera_browser: Callable[[str | None], Browser], live_server: LiveServer
) -> None:
    coi = live_server.patient_cois["AS-001"]
    page = camera_page(camera_browser(f"CC1.{coi}"), live_server)
    login_as(page, live_server, Role.CLINICIAN)
    page.goto(live_server("/bedside"))

    page.get_by_role("button", name="Camera").click()

    # step 2 of the bedside check: the patient's banner, and the bag to scan next
    expect(page.locator("#patient")).to_contain_text("AS-001")
    expect(page.locator("#label")).to_be_visible()


def test_cancel_stops_the_camera_and_leaves_the_box_as_it_was(
    camera_browser: Callable[[str | None], Browser], live_server: LiveServer
) -> None:
    page = camera_page(camera_browser(None), live_server)  # no label in front of it
    login_as(page, live_server, Role.TECHNICIAN)

    page.get_by_role("button", name="Camera").click()
    dialog = page.get_by_role("dialog", name="Scan with the camera")
    expect(dialog.get_by_role("status")).to_have_text(
        "Hold the label's QR code in front of the camera.", timeout=30_000
    )  # the camera is on and frames are being read (the .wasm compiled on first use)
    dialog.get_by_role("button", name="Cancel").click()

    expect(dialog).to_be_hidden()
    page.wait_for_function(ALL_STOPPED)
    expect(page.locator("#scan-box")).to_have_value("")
    assert page.url == live_server("/")


def test_a_refused_camera_is_said_and_the_photo_is_still_there(
    browser: Browser, live_server: LiveServer
) -> None:
    """The shared browser has no fake camera and grants nothing: the camera is refused."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        login_as(page, live_server, Role.TECHNICIAN)
        page.get_by_role("button", name="Camera").click()
        message = page.locator("#scan-box-camera-message")
        expect(message).to_have_text(
            {
                "NotAllowedError": "The camera may not be used here (permission denied): "
                "allow it in the browser, or scan or type the code instead.",
                "NotFoundError": "No camera was found on this device: "
                "scan or type the code instead.",
            }[
                page.evaluate(
                    "navigator.mediaDevices.getUserMedia({video: true})"
                    ".then(() => 'none', e => e.name)"
                )
            ]
        )
        expect(page.get_by_role("dialog", name="Scan with the camera")).to_be_hidden()
        # the photo upload is the fallback, still on the page
        expect(page.locator("#scan-photo")).to_have_attribute("accept", "image/*")
        expect(page.locator("label[for=scan-photo]")).to_be_visible()
    finally:
        context.close()
