"""Browser fixtures: the app served on a real port with the demo site seeded, and a
headless Chromium page driving it through Playwright's sync API.

Chromium is the system one (``/usr/bin/chromium``); a browser is never downloaded. When
Chromium or Playwright is missing the tests are skipped with the reason, unless
``CELLCHAIN_REQUIRE_BROWSER=1`` (CI), where that is a failure.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from cellchain import create_app
from cellchain.extensions import db
from tests.conftest import DatabaseFactory, SeededDemo, test_config

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

#: The system Chromium (Debian package ``chromium``); CELLCHAIN_CHROMIUM overrides the path.
CHROMIUM = os.environ.get("CELLCHAIN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT = 10.0  # seconds
PAGE_TIMEOUT_MS = 10_000


def browser_required() -> bool:
    return os.environ.get("CELLCHAIN_REQUIRE_BROWSER") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip (visibly) for a missing browser, or fail when CI says the browser is required."""
    if browser_required():
        pytest.fail(f"{reason} (CELLCHAIN_REQUIRE_BROWSER=1, so this is a failure)")
    pytest.skip(f"{reason}; set CELLCHAIN_REQUIRE_BROWSER=1 to make this a failure")


# --- the live server ---------------------------------------------------------------------


@dataclass(frozen=True)
class LiveServer:
    url: str  #: base URL without a trailing slash, e.g. http://127.0.0.1:41234
    reserved_dins: list[str]  #: canonical codes (body + check character) of the demo DINs
    facility_code: str
    #: demo stage ("eligible", "quarantine", "awaiting_receipt") → that donation's DIN
    donation_dins: dict[str, str]
    #: study ID → the patient's COI (what the wristband's QR holds, after ``CC1.``)
    patient_cois: dict[str, str] = field(default_factory=dict)
    #: study ID → the code of the patient's prepared day-0 dose (MSC arm)
    dose_codes: dict[str, str] = field(default_factory=dict)
    #: demo stage ("in_transit", "held", "infused") → that shipment's dry shipper ID
    shippers: dict[str, str] = field(default_factory=dict)

    def __call__(self, path: str = "/") -> str:
        return self.url + path


def _wait_until_serving(host: str, port: int, timeout: float) -> None:
    """Poll until the server answers an HTTP request, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/login", timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as error:  # the app answered, just not with 200
            last_error = error
            if error.code < 500:
                return
        except OSError as error:
            last_error = error
        time.sleep(0.05)
    raise RuntimeError(f"live server on {host}:{port} not ready after {timeout}s: {last_error!r}")


@pytest.fixture
def live_server_config() -> dict[str, Any]:
    """Configuration the live server adds to the tests' (a module overrides this fixture,
    e.g. to serve the site in its own time zone)."""
    return {}


@pytest.fixture
def live_server(
    databases: DatabaseFactory, seeded_demo: SeededDemo, live_server_config: dict[str, Any]
) -> Iterator[LiveServer]:
    """The app on a fresh copy of the demo site, served on 127.0.0.1:<free port>.

    Function-scoped: every test starts from the same demo site (no carried-over logins,
    failed-attempt counts or audit entries).
    """
    url = databases.create(copy_of=seeded_demo.url)
    app = create_app(test_config(url, WTF_CSRF_ENABLED=True, **live_server_config))
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    host, port = server.server_address[:2]
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        _wait_until_serving(str(host), int(port), SERVER_START_TIMEOUT)
        yield LiveServer(
            url=f"http://{host}:{port}",
            reserved_dins=seeded_demo.reserved_dins,
            facility_code=app.config["FACILITY_CODE"],
            donation_dins=seeded_demo.donation_dins,
            patient_cois=seeded_demo.patient_cois,
            dose_codes=seeded_demo.dose_codes,
            shippers=seeded_demo.shippers,
        )
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        databases.drop(url)


# --- the browser -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        unavailable(f"Playwright is not installed ({error})")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    try:
        browser = playwright_instance.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
    except Exception as error:
        unavailable(f"Chromium at {CHROMIUM} did not start under Playwright: {error}")
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies from other tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def artifacts(pytestconfig: pytest.Config) -> Path:
    """``test-artifacts/`` at the repository root (gitignored), for screenshots."""
    path = pytestconfig.rootpath / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
