"""WCAG 2.1 AA in a real browser (issue 21): axe-core, vendored in ``tests/browser/vendor/``,
runs on every page each role reaches from its navigation, on one page of each kind of
record those pages link to (a donation, a lot, a unit, a dose, a patient, a shipment, …),
and on the login, scan, error and bedside pages; no violation of impact serious or
critical may be left.

Time: one browser and one live server; one context per role, logged in once; each kind
of record page is opened once per role (the first link to it found), not every record. A
page is fetched first (no rendering) and opened and checked only if its ``main`` differs
from every page checked before, once the user's name and the minute are taken out (see
``Audit``): of the 344 pages the seven roles reach, about a third are checked by axe.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import pytest

from cellchain.core.roles import Role
from cellchain.demo import DEMO_USERS
from tests.browser.pages import login_as

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
AXE_VERSION = "4.14.1"
#: WCAG 2.0 and 2.1, levels A and AA (axe's tags).
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
FAILING = {"serious", "critical"}

#: The app's own pages of records, each kind checked once per role: a link found on a page
#: already checked whose path matches is followed (the first one). Downloads (PDF, CSV) and
#: JSON answers are no pages.
RECORD_PAGES: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern)
    for name, pattern in {
        "donation": r"/donations/\d+",
        "eligibility": r"/donations/\d+/eligibility",
        "new donation": r"/donations/new",
        "donor": r"/donors/\d+",
        "lot": r"/lots/\d+",
        "lot testing": r"/lots/\d+/testing",
        "lot review": r"/lots/\d+/review",
        "lot labels": r"/lots/\d+/labels",
        "step": r"/steps/\d+",
        "new step": r"/steps/[a-z_]+/new",
        "unit": r"/units/\d+",
        "unit labels": r"/units/\d+/labels",
        "dose": r"/doses/\d+",
        "post-thaw count": r"/doses/\d+/post-thaw-count",
        "patient": r"/patients/\d+",
        "dose plan": r"/patients/\d+/doses/[^/]+",
        "coi report": r"/patients/\d+/coi-report",
        "endpoints": r"/patients/\d+/endpoints",
        "patient follow-up": r"/patients/\d+/follow-up",
        "patient labels": r"/patients/\d+/labels",
        "rechecks": r"/patients/\d+/rechecks",
        "enrol": r"/patients/enrol",
        "shipment": r"/shipments/\d+",
        "deviation": r"/deviations/\d+",
        "recall": r"/recalls/\d+",
        "new recall": r"/recalls/new",
        "tank": r"/storage/tanks/\d+",
        "product": r"/products/\d+",
        "specification": r"/specifications/\d+",
        "protocol": r"/protocols/\d+",
        "identifier": r"/identifiers/[0-9A-Z*]+",
        "user": r"/users/\d+",
        "new user": r"/users/new",
        "materials": r"/materials",
        "material lot": r"/materials/\d+",
        "equipment": r"/equipment",
        "trace back": r"/trace/back/[a-z_]+/\d+",
        "trace forward": r"/trace/forward/[a-z_]+/\d+",
        "export": r"/trial-data/exports/\d+",
        "dsmb": r"/trial-data/dsmb",
        "bedside start": r"/bedside",
        "thaw": r"/thaw",
        "infusion": r"/bedside/infusions/\d+",
        "bedside check": r"/bedside/checks/\d+",
    }.items()
}
#: Not the app's own markup: Swagger UI's page (the API docs) is a third party's.
NOT_CHECKED = re.compile(r"^/api/")

#: Each role once (the nurse is a second clinician).
ROLES = list(dict.fromkeys(user.role for user in DEMO_USERS))


#: A page's ``main`` as the server sent it, and the session's CSRF token in it.
MAIN = re.compile(r"<main\b.*</main>", re.DOTALL)
CSRF_VALUE = re.compile(r'(name="csrf_token" value=")[^"]*"')
#: What differs between two roles' copies of a page without changing its markup: who is
#: logged in (a report's "printed by", the account page) and the minute it was made.
PERSONAL = re.compile(
    "|".join(
        [re.escape(user.full_name) for user in DEMO_USERS]
        + [rf"\({re.escape(role.value)}\)|{re.escape(role.label)}" for role in Role]
        + [r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?"]
    )
)

AXE_RUN = """async (tags) => {
    const result = await axe.run(document, {
        runOnly: {type: 'tag', values: tags}, resultTypes: ['violations'],
    });
    return result.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help, count: v.nodes.length,
        targets: v.nodes.slice(0, 3).map(n => n.target.join(' ')),
    }));
}"""


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


@dataclass
class Audit:
    """What axe found on the pages checked so far (by any role), and what was checked.

    A page is first fetched with the browser context's cookies (no rendering); one whose
    ``main`` has the markup of a page checked before (a list another role sees the same)
    is not opened again. Each role's header is checked on its home page, and what differs
    by role inside ``main`` (a form, a button) makes the markup differ.
    """

    server: LiveServer
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    skipped: int = 0
    seen: set[str] = field(default_factory=set)  #: markups of ``main`` checked

    def visit(
        self, page: Page, path: str, status: int | None = 200, force: bool = False
    ) -> list[str]:
        """Check the page at ``path`` (unless its ``main`` was checked and not ``force``);
        return the app's pages it links to."""
        response = page.request.get(self.server(path))
        if status is not None:
            assert response.status == status, f"{path}: HTTP {response.status}"
        html = response.text()
        main = MAIN.search(html)
        markup = PERSONAL.sub("", CSRF_VALUE.sub(r'\1"', main.group() if main else html))
        if markup in self.seen and not force:
            self.skipped += 1
        else:
            self.seen.add(markup)
            page.goto(self.server(path))
            self.check(page, path)
        links = _Links()
        links.feed(html)
        here = urlsplit(self.server.url).netloc
        return [
            parts.path + (f"?{parts.query}" if parts.query else "")
            for parts in (urlsplit(urljoin(self.server(path), href)) for href in links.hrefs)
            if parts.netloc == here
        ]

    def check(self, page: Page, label: str) -> None:
        """Run axe on ``page`` as it is now; note its serious and critical violations."""
        self.checked.append(label)
        for v in page.evaluate(AXE_RUN, WCAG_21_AA):
            if v["impact"] in FAILING:
                self.problems.append(
                    f"{label}: {v['id']} ({v['impact']}, {v['count']}×: {v['help']}) "
                    f"at {', '.join(v['targets'])}"
                )

    def verdict(self) -> None:
        if self.problems:
            pytest.fail(
                f"axe-core {AXE_VERSION}: {len(self.problems)} serious or critical WCAG 2.1 AA "
                f"violations on {len(self.checked)} pages checked:\n  "
                + "\n  ".join(self.problems),
                pytrace=False,
            )


def visit_role(audit: Audit, page: Page, role: Role) -> None:
    """The role's home page, every page of its navigation, and one page of each kind of
    record those pages link to (following links from those too, until no kind is new)."""
    login_as(page, audit.server, role)
    links = audit.visit(page, "/", force=True)  # the role's header, checked once
    nav = [
        urlsplit(h).path for h in page.locator("nav.main a").evaluate_all("a => a.map(x => x.href)")
    ]
    assert len(nav) > 1, f"{role} has no navigation"
    visited = {"/"}
    for path in nav:
        if path not in visited and not NOT_CHECKED.match(path):
            visited.add(path)
            links += audit.visit(page, path)
    kinds = set(RECORD_PAGES)
    while True:
        found = {
            kind: next(
                (p for p in links if pattern.fullmatch(urlsplit(p).path) and p not in visited), None
            )
            for kind, pattern in RECORD_PAGES.items()
            if kind in kinds
        }
        found = {kind: path for kind, path in found.items() if path is not None}
        if not found:
            break
        for kind, path in found.items():
            kinds.discard(kind)
            visited.add(path)
            links += audit.visit(page, path)


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    """A page in a new browser context each call (one per role), with axe loaded into every
    document it opens; the contexts are closed at the end."""
    contexts: list[BrowserContext] = []

    def make() -> Page:
        # bypass_csp: the policy (docs/security.md) would refuse the injected script
        context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
        context.set_default_timeout(10_000)
        context.add_init_script(path=AXE)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def test_every_page_of_every_role_passes_axe(
    new_page: Callable[[], Page], live_server: LiveServer
) -> None:
    audit = Audit(live_server)
    for role in ROLES:
        page = new_page()
        visit_role(audit, page, role)
        page.context.close()
    print(
        f"axe checked {len(audit.checked)} pages, {audit.skipped} more had a main already checked"
    )
    audit.verdict()


def test_the_login_scan_error_and_bedside_pages_pass_axe(
    new_page: Callable[[], Page], live_server: LiveServer
) -> None:
    audit = Audit(live_server)
    page = new_page()
    audit.visit(page, "/login", force=True)
    # a failed login: the form again, with its error
    page.locator("#username").fill("clinician")
    page.locator("#password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    audit.check(page, "/login (wrong password)")

    login_as(page, live_server, Role.CLINICIAN)
    audit.visit(page, "/donations/999999", status=404)  # the error page
    din = live_server.reserved_dins[0]
    wrong = din[:-1] + ("0" if din[-1] != "0" else "1")  # a wrong check character
    audit.visit(page, f"/scan?code={wrong}", status=None)
    audit.visit(page, "/scan?code=nothing-like-a-code", status=None)
    # the bedside check: a wristband, then another patient's dose: a red STOP
    audit.visit(page, "/bedside", force=True)
    page.locator("#wristband").fill(f"CC1.{live_server.patient_cois['AS-002']}")
    page.locator("#wristband").press("Enter")
    expect(page.locator("#patient")).to_contain_text("AS-002")
    audit.check(page, "/bedside (wristband scanned)")
    page.locator("#label").fill(f"CC1.{live_server.dose_codes['AS-001']}")
    page.locator("#label").press("Enter")
    expect(page.locator("#verdict")).to_contain_text("STOP")
    audit.check(page, urlsplit(page.url).path + " (STOP)")
    audit.verdict()


def test_the_skip_link_comes_first_and_the_favicon_is_served(
    new_page: Callable[[], Page], live_server: LiveServer
) -> None:
    page = new_page()
    login_as(page, live_server, Role.TECHNICIAN)
    skip = page.get_by_role("link", name="Skip to main content")
    first = page.evaluate(
        """() => document.querySelector(
            'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]'
        ).outerHTML"""
    )
    assert "Skip to main content" in first, f"the first thing to tab to is {first}"
    assert (skip.bounding_box() or {"y": 0})["y"] < 0, "the skip link shows before focus"
    skip.focus()
    box = skip.bounding_box()
    assert box is not None and box["y"] >= 0, "the skip link stays off screen when focused"
    page.keyboard.press("Enter")
    expect(page).to_have_url(live_server("/#main"))
    expect(page.locator("main#main")).to_be_focused()
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon is not None
    response = page.request.get(live_server(icon))
    assert response.status == 200 and response.headers["content-type"].startswith("image/svg")


def test_the_vendored_axe_is_the_version_named() -> None:
    assert AXE.read_text(encoding="utf-8").startswith(f"/*! axe v{AXE_VERSION}")
