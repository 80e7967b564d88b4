"""Manufacturing at the bench in a real browser: the technician scans a donation under
quarantine, isolates its cord into P0 vessels, passages twice and fills a lot of cryobags,
adding the other vessels harvested by typing their codes into the form as a scanner does;
and refusals that keep what was typed."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

import pytest

from cellchain.core.roles import Role
from tests.browser.pages import DONATION_URL, UNIT_URL, column, flash, login_as, open_by_scan

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

STEP_FORM_URL = re.compile(r"/steps/(isolation|passage|fill)/new\?units=")
STEP_URL = re.compile(r"/steps/(\d+)$")
LOT_URL = re.compile(r"/lots/(\d+)$")


# --- helpers -----------------------------------------------------------------------------


def tick(page: Page, *labels: str) -> None:
    """Tick the material lots and equipment whose label starts with each of ``labels``; a
    counted material lot's quantity used is typed (0.1 of its unit: the medium and enzyme
    have no figure of the step to default from)."""
    for label in labels:
        labelled = page.locator("#step-form").get_by_label(re.compile("^" + re.escape(label)))
        # the lots a step may not use are listed too, disabled with why (labforms)
        box = labelled.and_(page.locator("input:enabled")).first
        box.check()
        quantity = box.locator("xpath=..").locator("input.quantity")
        if quantity.count():
            quantity.fill("0.1")


def figure(page: Page, label: str) -> Locator:
    """The value shown next to ``label`` in a step page's figures."""
    return page.locator(f'.step-figures > div:text-is("{label}") + div')


def outputs(page: Page, count: int) -> list[str]:
    """On a step page: the codes of the ``count`` units it made."""
    codes = page.locator("#step-outputs > li > a > .code")
    expect(codes).to_have_count(count)
    return codes.all_text_contents()


def scan_in(vessels: Locator, *codes: str) -> None:
    """Scan further labels into a step form's list: each code entered at the caret (where
    the scanner's keystrokes land), then Enter. The code goes in as one insertion: per-key
    emulation on a loaded CI machine once doubled a keystroke ('XX99…'), a flake of the
    emulation, not of the page (its script never touches keystrokes)."""
    for code in codes:
        expect(vessels).to_be_focused()
        vessels.page.keyboard.insert_text(code)
        vessels.press("Enter")


def open_quarantine_container(page: Page, server: LiveServer) -> tuple[str, str]:
    """As the technician: scan the quarantine donation's DIN, then its first container's code.
    Returns (DIN, container code); ends on the container's unit page."""
    din = server.donation_dins["quarantine"]
    login_as(page, server, Role.TECHNICIAN)
    open_by_scan(page, server, din, DONATION_URL)
    expect(page.locator("#hold")).to_contain_text("QUARANTINE")
    units = page.locator("#units tbody tr")
    expect(units).to_have_count(2)
    expect(column(units, 2)).to_have_text(["donation container", "donation container"])
    container = column(units, 1).first.locator(":scope > a > .code").text_content() or ""
    assert container.startswith(din[:-1]), (container, din)
    open_by_scan(page, server, container, UNIT_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Donation container {container}")
    expect(page.locator("#hold")).to_contain_text("QUARANTINE")
    return din, container


def isolate(page: Page, container: str) -> list[str]:
    """From the container's unit page: enzymatic isolation into 2 T175 seeded with 1e6 each.
    Returns the P0 vessel codes; ends on the step page."""
    page.locator("#next-step").get_by_role("link", name="Isolate", exact=True).click()
    expect(page).to_have_url(STEP_FORM_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text("Record: isolation")
    expect(page.locator("#tissue")).to_have_value(container + "\n")
    page.locator("#method-enzymatic").check()
    page.locator("#vessel_count").fill("2")
    page.locator("#vessel_format").select_option("T175")
    page.locator("#cells_per_vessel").fill("1e6")
    tick(page, "Collagenase NB6", "α-MEM", "BSC-01", "INC-01")
    page.get_by_role("button", name="Record isolation").click()

    expect(page).to_have_url(STEP_URL)
    expect(flash(page)).to_have_text("Recorded: isolation.")
    expect(figure(page, "Method")).to_have_text("enzymatic")
    expect(figure(page, "Passage of what it made")).to_have_text("P0")
    expect(page.locator("#step-inputs")).to_contain_text(container)
    vessels = outputs(page, 2)
    for item in page.locator("#step-outputs > li").all():
        expect(item).to_contain_text("culture vessel · P0 · T175 · 1.00 × 10⁶ viable cells")
    return vessels


def start_from_vessel(page: Page, server: LiveServer, code: str, button: str) -> Locator:
    """Scan a culture vessel's label, click ``button`` in its next step: the step form opens
    with that vessel in the list, the cursor after it. Returns the list (#vessels_in)."""
    open_by_scan(page, server, code, UNIT_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Culture vessel {code}")
    page.locator("#next-step").get_by_role("link", name=button, exact=True).click()
    expect(page).to_have_url(STEP_FORM_URL)
    vessels = page.locator("#vessels_in")
    expect(vessels).to_have_value(code + "\n")
    expect(vessels).to_be_focused()  # autofocus: the scanner can go on at once
    return vessels


def fill_harvest(page: Page, *, cells: str, viability: str) -> None:
    page.locator("#cells_harvested").fill(cells)
    page.locator("#viability_percent").fill(viability)


def fill_new_vessels(page: Page, *, count: int, vessel_format: str, cells: str) -> None:
    page.locator("#vessel_count").fill(str(count))
    page.locator("#vessel_format").select_option(vessel_format)
    page.locator("#cells_per_vessel").fill(cells)


def passage(
    page: Page,
    server: LiveServer,
    vessels_in: list[str],
    *,
    harvested: str,
    count: int,
    vessel_format: str,
    seeded: str,
) -> list[str]:
    """Scan the first vessel, Passage, scan in the others, record; ends on the step page.
    Returns the codes of the new vessels."""
    first, *others = vessels_in
    vessels = start_from_vessel(page, server, first, "Passage")
    expect(page.get_by_role("heading", level=1)).to_have_text("Record: passage")
    scan_in(vessels, *others)
    expect(vessels).to_have_value("".join(code + "\n" for code in vessels_in))
    fill_harvest(page, cells=harvested, viability="95")
    fill_new_vessels(page, count=count, vessel_format=vessel_format, cells=seeded)
    tick(page, "TrypLE Select", "α-MEM", "BSC-01", "INC-01")
    page.get_by_role("button", name="Record passage").click()

    expect(page).to_have_url(STEP_URL)
    expect(flash(page)).to_have_text("Recorded: passage.")
    inputs = page.locator("#step-inputs > li > a > .code")
    expect(inputs).to_have_text(vessels_in)
    return outputs(page, count)


# --- tests -------------------------------------------------------------------------------


def test_isolate_passage_twice_and_fill_a_lot_under_quarantine(
    page: Page, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The live server runs in this process: its request clock moves on while the cells grow
    # (a harvest at the moment of seeding, or faster than MSC double, is refused). By then the
    # idle session has expired, so the technician logs in again.
    from cellchain import http

    real, ahead = http.utcnow, [dt.timedelta()]
    monkeypatch.setattr(http, "utcnow", lambda: real() + ahead[0])

    def days_later(days: float) -> None:
        ahead[0] += dt.timedelta(days=days)
        login_as(page, live_server, Role.TECHNICIAN)

    din, container = open_quarantine_container(page, live_server)

    # Isolation: the cord into 2 P0 T175 flasks.
    p0 = isolate(page, container)
    assert all(code.startswith(din[:-1]) for code in p0), p0
    assert container not in p0

    # P1: 2 × 1e6 seeded, 8e6 harvested → 2 doublings; 4 T175 of 1e6.
    days_later(3)
    p1 = passage(
        page, live_server, p0, harvested="8e6", count=4, vessel_format="T175", seeded="1e6"
    )
    expect(figure(page, "Passage of what it made")).to_have_text("P1")
    expect(figure(page, "Seeded before")).to_have_text("2.00 × 10⁶")
    expect(figure(page, "Population doublings")).to_have_text("2.00")
    expect(figure(page, "Cumulative PD")).to_have_text("2.00")
    expect(figure(page, "Harvested")).to_contain_text("8.00 × 10⁶ viable cells, 95.0 % viable")
    expect(page.locator("#step-outputs > li").first).to_contain_text(
        "P1 · T175 · 1.00 × 10⁶ viable cells"
    )

    # The P0 flasks are used up: scanned, they offer no next step.
    open_by_scan(page, live_server, p0[0], UNIT_URL)
    expect(page.locator("#unit-status")).to_have_text("consumed")
    expect(page.locator("#next-step")).to_have_count(0)

    # P2: 4 × 1e6 seeded, 1.6e7 harvested → 2 doublings; 4 CellSTACK-1 of 2e6.
    days_later(3)
    p2 = passage(
        page, live_server, p1, harvested="1.6e7", count=4, vessel_format="CS1", seeded="2e6"
    )
    expect(figure(page, "Passage of what it made")).to_have_text("P2")
    expect(figure(page, "Population doublings")).to_have_text("2.00")
    expect(figure(page, "Cumulative PD")).to_have_text("4.00")
    expect(page.locator("#step-outputs > li").first).to_contain_text(
        "P2 · CS1 · 2.00 × 10⁶ viable cells"
    )

    # Final harvest and fill: 6e7 harvested; 10 bags × 20 mL × 2.5e5/mL = 5e7 filled.
    days_later(3)
    vessels = start_from_vessel(page, live_server, p2[0], "Final harvest and fill")
    expect(page.get_by_role("heading", level=1)).to_have_text("Record: fill")
    scan_in(vessels, *p2[1:])
    expect(vessels).to_have_value("".join(code + "\n" for code in p2))
    fill_harvest(page, cells="6e7", viability="93")
    page.locator("#bag_count").fill("10")
    page.locator("#volume_ml").fill("20")
    page.locator("#total_cells_per_ml").fill("2.5e5")
    page.locator("#dmso_percent").fill("10")
    tick(page, "TrypLE Select", "DMSO (Ph. Eur.)", "Human albumin", "BSC-01")
    page.get_by_role("button", name="Record fill").click()

    # The lot's batch record, in quarantine: the donor's eligibility is still pending.
    expect(page).to_have_url(LOT_URL)
    expect(flash(page)).to_have_text("Recorded: fill.")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Batch record — lot {din}-L01")
    hold = page.locator("#hold")
    expect(hold).to_have_class("quarantine")
    expect(hold).to_contain_text("QUARANTINE — NOT FOR CLINICAL USE")
    expect(page.locator("#summary")).to_contain_text("quarantine — eligibility pending")
    expect(page.get_by_role("alert")).to_have_count(0)  # no limit exceeded, no deviation

    steps = page.locator("#tree li.step")
    expect(steps).to_have_count(4)
    kinds = steps.evaluate_all("items => items.map(item => item.dataset.step)")
    assert kinds == ["isolation", "passage", "passage", "fill"], kinds
    # Each step is nested in the one that made its vessels.
    expect(page.locator("#tree li.step li.step li.step li.step")).to_have_count(1)
    expect(steps.nth(1)).to_contain_text("→ P1 · PD 2.00 · CPD 2.00")
    expect(steps.nth(2)).to_contain_text("→ P2 · PD 2.00 · CPD 4.00")

    bags = page.locator("#bags tbody tr")
    expect(bags).to_have_count(10)
    codes = column(bags, 1).locator(":scope > a > .code").all_text_contents()
    assert len(codes) == 10 and len(set(codes)) == 10, codes
    assert all(code.startswith(din[:-1]) for code in codes), (din, codes)
    expect(column(bags, 2)).to_have_text(["20.0 mL"] * 10)
    # total cells per mL and per bag as filled; viable = total × the harvest's 93 %, once
    expect(page.locator("#bags thead")).to_contain_text("Total cells/mL")
    expect(column(bags, 3)).to_have_text(["2.50 × 10⁵"] * 10)
    expect(column(bags, 4)).to_have_text(["5.00 × 10⁶"] * 10)
    expect(column(bags, 6)).to_have_text(["4.65 × 10⁶"] * 10)


def test_refused_steps_keep_what_was_typed(
    page: Page, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cellchain import http

    real = http.utcnow
    _din, container = open_quarantine_container(page, live_server)
    p0 = isolate(page, container)
    scanned = "".join(code + "\n" for code in p0)
    # three days in the incubator (the request clock moves on), then a new session
    monkeypatch.setattr(http, "utcnow", lambda: real() + dt.timedelta(days=3))
    login_as(page, live_server, Role.TECHNICIAN)

    vessels = start_from_vessel(page, live_server, p0[0], "Passage")
    scan_in(vessels, p0[1])
    fill_harvest(page, cells="8e6", viability="150")
    fill_new_vessels(page, count=4, vessel_format="T175", cells="1e6")
    tick(page, "α-MEM", "BSC-01")
    form_url = page.url
    record = page.get_by_role("button", name="Record passage")
    posted: list[str] = []
    page.on(
        "request", lambda request: posted.append(request.url) if request.method == "POST" else None
    )

    # The browser itself stops 150 % (max="100"): nothing is sent.
    record.click()
    viability = page.locator("#viability_percent")
    assert viability.evaluate("input => input.validity.rangeOverflow")
    assert viability.evaluate("input => input.validationMessage")
    expect(page).to_have_url(form_url)
    expect(page.locator("#form-error")).to_have_count(0)

    # The server refuses it too (as for any client that does not check), and the form
    # comes back with what was typed and scanned.
    page.locator("#step-form").evaluate("form => { form.noValidate = true; }")
    record.click()
    error = page.locator("#form-error")
    expect(error).to_have_text(
        "Not recorded: Viability is a percentage between 0 and 100; 150 is not."
    )
    expect(page.locator("#viability_percent + .field-error")).to_have_text("Between 0 and 100.")
    assert len(posted) == 1, posted  # only the second click was sent
    expect(page.locator("#vessels_in")).to_have_value(scanned)
    expect(page.locator("#cells_harvested")).to_have_value("8e6")
    expect(page.locator("#viability_percent")).to_have_value("150")
    expect(page.locator("#vessel_count")).to_have_value("4")
    expect(page.locator("#vessel_format")).to_have_value("T175")
    expect(page.locator("#cells_per_vessel")).to_have_value("1e6")
    expect(page.get_by_label(re.compile("^α-MEM"))).to_be_checked()
    expect(page.get_by_label(re.compile("^BSC-01"))).to_be_checked()
    expect(page.get_by_label(re.compile("^INC-01"))).not_to_be_checked()

    # A refusal the browser cannot see: more seeded than harvested (4 × 3e6 > 8e6).
    page.locator("#viability_percent").fill("95")
    page.locator("#cells_per_vessel").fill("3e6")
    page.get_by_role("button", name="Record passage").click()
    expect(page.locator("#form-error")).to_have_text(
        "Not recorded: 1.20 × 10⁷ cells seeded is more than the 8.00 × 10⁶ harvested."
    )
    expect(page.locator("#vessels_in")).to_have_value(scanned)
    expect(page.locator("#cells_harvested")).to_have_value("8e6")
    expect(page.locator("#viability_percent")).to_have_value("95")

    # Corrected, it is refused for want of its incubator (issue 22: a passage needs a
    # biosafety cabinet and an incubator), the cabinet still ticked
    page.locator("#cells_per_vessel").fill("1e6")
    expect(page.locator("#equipment-needed")).to_have_text(
        "Needed: biosafety cabinet, incubator (one of each at least)."
    )
    page.get_by_role("button", name="Record passage").click()
    expect(page.locator("#form-error")).to_have_text(
        "Not recorded: Record the equipment this passage used: it needs biosafety cabinet, "
        "incubator; missing: incubator."
    )
    expect(page.get_by_label(re.compile("^BSC-01"))).to_be_checked()
    expect(page.locator("#cells_per_vessel")).to_have_value("1e6")

    # With it, it is recorded, from the codes kept in the list.
    tick(page, "INC-01")
    page.get_by_role("button", name="Record passage").click()
    expect(page).to_have_url(STEP_URL)
    expect(figure(page, "Population doublings")).to_have_text("2.00")
    expect(page.locator("#step-inputs > li > a > .code")).to_have_text(p0)
    p1 = outputs(page, 4)

    # A P0 flask scanned again, now used up, is refused by name; the list is kept.
    vessels = start_from_vessel(page, live_server, p1[0], "Passage")
    scan_in(vessels, p0[0])
    fill_harvest(page, cells="4e6", viability="95")
    fill_new_vessels(page, count=2, vessel_format="T175", cells="1e6")
    tick(page, "BSC-01", "INC-01")
    page.get_by_role("button", name="Record passage").click()
    error = page.locator("#form-error")
    expect(error).to_contain_text("consumed")
    expect(error).to_contain_text(p0[0])
    expect(page.locator("#vessels_in")).to_have_value(f"{p1[0]}\n{p0[0]}\n")
    expect(page.locator("#cells_harvested")).to_have_value("4e6")

    # Nothing was half done: the P1 flask is still there to passage.
    open_by_scan(page, live_server, p1[0], UNIT_URL)
    expect(page.locator("#unit-status")).not_to_have_text("consumed")
    expect(page.locator("#do-passage")).to_be_visible()
    expect(page.locator("#children li")).to_have_text(["Nothing yet."])
