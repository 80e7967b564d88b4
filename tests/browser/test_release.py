"""Release testing and QA disposition in a real browser: the QC analyst draws a sample from a
bag of the demo lot awaiting testing and records a full passing panel; QA's wrong password
signs nothing; QA releases the lot with their password and downloads the certificate of
analysis. And the demo's out-of-specification and rejected lots explain themselves."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

import pytest

from cellchain.core.roles import Role
from tests.browser.pages import column, demo_user, flash, log_out, login_as, main_nav

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

TESTING_URL = re.compile(r"/lots/(\d+)/testing$")
REVIEW_URL = re.compile(r"/lots/(\d+)/review$")

#: A passing value for each test of the default UC-MSC specification, and the instrument.
PANEL: dict[str, tuple[str, str]] = {
    "STERILITY": ("no growth", "BACT-01"),
    "MYCOPLASMA": ("negative", "PCR-01"),
    "ENDOTOXIN": ("0.1", "LAL-01"),
    "VIABILITY": ("91.5", "FLOW-01"),
    "VIABLE-CELLS": ("9.8e7", "CNT-01"),
    "CD73": ("98.5", "FLOW-01"),
    "CD90": ("99", "FLOW-01"),
    "CD105": ("96.2", "FLOW-01"),
    "CD34": ("0.5", "FLOW-01"),
    "CD45": ("0.4", "FLOW-01"),
    "CD14": ("0.3", "FLOW-01"),
    "CD19": ("0.1", "FLOW-01"),
    "HLA-DR": ("1.1", "FLOW-01"),
    "KARYOTYPE": ("normal", "CYTO-01"),
    "POTENCY": ("35", "MLR-01"),
}
CATEGORICAL = {"STERILITY", "MYCOPLASMA", "KARYOTYPE"}


def open_lot(page: Page, server: LiveServer, stage_din: str, link: str) -> str:
    """From Manufacturing, open the lot of the donation ``stage_din`` and follow ``link``
    (``testing`` or ``review``); returns the lot number."""
    main_nav(page).get_by_role("link", name="Manufacturing", exact=True).click()
    lot_number = f"{stage_din}-L01"
    row = page.locator("#lots tbody tr").filter(has_text=lot_number)
    expect(row).to_have_count(1)
    row.get_by_role("link", name=link, exact=True).click()
    expect(page).to_have_url(TESTING_URL if link == "testing" else REVIEW_URL)
    expect(page.get_by_role("heading", level=1)).to_contain_text(lot_number)
    return lot_number


def test_analyst_records_a_passing_panel_and_qa_releases_with_a_certificate(
    page: Page, live_server: LiveServer
) -> None:
    din = live_server.donation_dins["eligible"]

    # The QC analyst draws a QC bag's content into a labelled tube.
    login_as(page, live_server, Role.QC_ANALYST)
    lot_number = open_lot(page, live_server, din, "testing")
    bag = page.locator("#lot-bags option").last.get_attribute("value") or ""
    assert bag.startswith(din[:-1]), bag
    page.locator("#sample-bag").fill(bag)
    page.locator("#sample-purpose").fill("release panel")
    page.get_by_role("button", name="Label sample tubes").click()
    expect(flash(page)).to_contain_text("Sample tube(s) labelled")
    expect(page.locator("#samples tbody tr")).to_have_count(1)
    tube = page.locator("#result-sample").input_value()
    assert tube.startswith(din[:-1]) and tube != bag, tube

    # A value of the wrong unit is refused and what was typed stays.
    page.locator("#value-ENDOTOXIN").fill("0.1")
    page.locator("#unit-ENDOTOXIN").fill("EU/kg")
    page.locator("#instrument-ENDOTOXIN").fill("LAL-01")
    page.get_by_role("button", name="Record results").click()
    expect(page.locator("#form-error")).to_contain_text("reported in EU/mL, not 'EU/kg'")
    expect(page.locator("#row-ENDOTOXIN .field-error")).to_contain_text("Must be EU/mL.")
    expect(page.locator("#value-ENDOTOXIN")).to_have_value("0.1")
    expect(page.locator("#results tbody")).to_contain_text("No result recorded yet.")

    # The full panel, every test on one form.
    page.locator("#unit-ENDOTOXIN").fill("EU/mL")
    for code, (value, instrument) in PANEL.items():
        if code in CATEGORICAL:
            page.locator(f"#value-{code}").select_option(value)
        else:
            page.locator(f"#value-{code}").fill(value)
        page.locator(f"#instrument-{code}").fill(instrument)
    page.get_by_role("button", name="Record results").click()
    expect(flash(page)).to_have_text("15 result(s) recorded, all within specification.")
    results = page.locator("#results tbody tr")
    expect(results).to_have_count(15)
    expect(column(results, 5)).to_have_text(["pass"] * 15)
    expect(page.locator("#panel tbody")).to_contain_text("Every test of the specification")
    log_out(page, live_server)

    # QA reviews: every precondition ticked.
    login_as(page, live_server, Role.QA)
    open_lot(page, live_server, din, "review")
    checks = page.locator("#checks tr")
    expect(checks).to_have_count(8)
    expect(column(checks, 1)).to_have_text(["✔ PASSED"] * 8)
    expect(page.locator("#verdict")).to_contain_text("READY")
    expect(page.locator("#release-ready")).to_have_text("Every precondition holds.")

    # A wrong password signs nothing.
    page.locator("#release-password").fill("not my password")
    page.get_by_role("button", name="Release lot").click()
    expect(page.locator("#form-error")).to_contain_text("Not signed")
    expect(page.locator("#disposition")).to_have_count(0)

    # The right one releases the lot; the bags are available.
    qa = demo_user(Role.QA)
    page.locator("#release-password").fill(qa.password)
    page.get_by_role("button", name="Release lot").click()
    expect(flash(page)).to_contain_text("Lot released for clinical use")
    expect(page.locator("#disposition")).to_contain_text("Released for clinical use")
    signature = page.locator(".sig")
    expect(signature).to_contain_text(qa.full_name)
    expect(signature).to_contain_text("approval: release for clinical use")
    expect(page.locator("h1 .tag")).to_have_text("released")

    # The certificate of analysis, downloaded in the same session.
    href = page.locator("#certificate-link").get_attribute("href") or ""
    response = page.request.get(live_server(href))
    assert response.ok and response.headers["content-type"] == "application/pdf"
    from pypdf import PdfReader

    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(response.body())).pages)
    text = " ".join(text.split())
    assert lot_number in text
    assert "RELEASED" in text and qa.full_name in text
    assert "approval: release for clinical use" in text
    assert "Potency" in text and "NOT RELEASED" not in text

    page.goto(live_server(f"/lots/{REVIEW_URL.search(page.url).group(1)}"))
    bags = page.locator("#bags tbody tr")
    expect(column(bags, 7)).to_have_text(["available"] * 9 + ["consumed"])


def test_demo_lots_out_of_specification_and_rejected_explain_themselves(
    page: Page, live_server: LiveServer
) -> None:
    login_as(page, live_server, Role.QA)

    # The QA queue lists the OOS lot in red, and its open investigation.
    main_nav(page).get_by_role("link", name="QA queue", exact=True).click()
    oos_din = live_server.donation_dins["out_of_specification"]
    expect(page.locator("#oos tbody tr")).to_have_count(1)
    expect(page.locator("#oos")).to_contain_text(f"{oos_din}-L01")
    expect(page.locator("#oos")).to_contain_text("Viability: 74 % (criterion ≥ 80 %)")
    expect(page.locator("#open-deviations")).to_contain_text("out of specification")

    # On the manufacturing list too, and its review says why it cannot be released.
    main_nav(page).get_by_role("link", name="Manufacturing", exact=True).click()
    row = page.locator("#lots tbody tr").filter(has_text=f"{oos_din}-L01")
    expect(row.locator(".tag.oos")).to_have_text("OUT OF SPECIFICATION")
    open_lot(page, live_server, oos_din, "review")
    expect(page.locator('#checks tr[data-check="results"]')).to_contain_text(
        "out of specification: Viability 74 %"
    )
    expect(page.locator('#checks tr[data-check="deviations"]')).to_contain_text("open: #")
    expect(page.locator("#release-blocked")).to_contain_text("Release is not possible yet")
    expect(page.locator('#tests tr[data-test="VIABILITY"]')).to_have_class(re.compile("oos"))

    # The rejected lot: the decision, its reason and the signature.
    open_lot(page, live_server, live_server.donation_dins["rejected"], "review")
    expect(page.locator("#disposition")).to_contain_text("Rejected")
    expect(page.locator("#disposition")).to_contain_text("Sterility: growth confirmed")
    expect(page.locator(".sig")).to_contain_text("responsibility: lot rejected")
    expect(page.locator('#checks tr[data-check="lot_in_quarantine"]')).to_contain_text(
        "already rejected"
    )
