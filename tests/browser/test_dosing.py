"""Dosing in a real browser: the clinician fills the enrolment checklist of a trial whose
planned enrolment is reached (refused) and records a weight; the technician cancels the dose
made from the old weight, plans and orders the day-0 dose, reading the arithmetic; QA does the
independent second check with a password and prints the dose label, whose QR code scans back
to the prepared dose."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cellchain.core.payload import read_scan
from cellchain.core.roles import Role
from cellchain.dosing.defaults import NCT01420432_PARAMETERS
from tests.browser.pages import demo_user, flash, log_out, login_as, main_nav

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CELLCHAIN_REQUIRE_BROWSER=1)
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser
zxingcpp = pytest.importorskip("zxingcpp")

PATIENT_URL = re.compile(r"/patients/(\d+)$")
DOSE_URL = re.compile(r"/doses/(\d+)$")


def test_enrol_weigh_order_second_check_and_label_a_day_0_dose(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    today = dt.date.today()
    login_as(page, live_server, Role.CLINICIAN)
    main_nav(page).get_by_role("link", name="Patients", exact=True).click()
    expect(page.locator("#patients tbody tr")).to_have_count(10)  # the demo's trial
    page.locator("#enrol-link").click()
    # two protocols are in force in the demo (issue 22): enrol under NCT01420432
    page.locator("#protocol-choices [data-protocol='NCT01420432']").click()
    # the demo's trial is full: 10 planned (1:1), 10 randomized by the statistician's list
    expect(page.locator("#randomization-note")).to_contain_text("Planned enrolment of 10 reached")
    page.locator("#study_id").fill("AS-011")
    page.locator("#date_of_birth").fill(today.replace(year=today.year - 33).isoformat())
    page.locator("#sex").select_option("female")
    page.locator("#day0").fill(today.isoformat())
    for item in NCT01420432_PARAMETERS["inclusion"]:
        if item.get("measure"):
            value = {"ejection_fraction": "58", "ecog": "1"}.get(item["code"], "70")
            page.locator(f"[id='value.{item['code']}']").fill(value)
        else:
            page.locator(f"input[name='answer.{item['code']}'][value='yes']").check()
    for item in NCT01420432_PARAMETERS["exclusion"]:
        page.locator(f"input[name='answer.{item['code']}'][value='no']").check()
    page.locator("#enrol-button").click()
    # a randomization when full: refused, nothing saved, the form kept
    expect(page.locator("#form-error")).to_contain_text("planned enrolment of NCT01420432")
    expect(page.locator("#study_id")).to_have_value("AS-011")
    main_nav(page).get_by_role("link", name="Patients", exact=True).click()
    expect(page.locator("#patients tbody tr")).to_have_count(10)
    # AS-007 (MSC arm), whose day-0 dose is still in the lab, is weighed again
    page.locator("#patients [data-patient='AS-007'] a").first.click()
    expect(page).to_have_url(PATIENT_URL)
    page.locator("#weight_kg").fill("65")
    page.locator("#weight-button").click()
    expect(flash(page)).to_contain_text("Weight 65 kg recorded")
    patient_url = page.url
    log_out(page, live_server)

    # The technician cancels the dose made from the old weight, plans the replacement and
    # reads the working before ordering it.
    login_as(page, live_server, Role.TECHNICIAN)
    page.goto(patient_url)
    page.locator("#visits [data-visit='D0'] a").first.click()
    page.locator("#cancel-reason").fill("AS-007 re-weighed today: dose recomputed")
    page.locator("#cancel-password").fill(demo_user(Role.TECHNICIAN).password)
    page.get_by_role("button", name="Sign and cancel the dose").click()
    expect(flash(page)).to_contain_text("Dose order cancelled")
    page.locator("#replacement-link").click()
    expect(page.locator("#plan-volume")).to_contain_text("mL")
    expect(page.locator("#working li").first).to_contain_text(
        "target cells = 1.00 × 10⁶/kg × 65 kg"
    )
    page.locator("#order-button").click()
    expect(page).to_have_url(DOSE_URL)
    expect(page.locator("#dose-status")).to_have_text("allocated")
    dose_url = page.url
    volume = page.locator("#dose-volume").inner_text().split()[0]
    bags = page.locator("#dose-bags a").all_inner_texts()
    log_out(page, live_server)

    # QA checks it independently: volume, scanned bags, password.
    login_as(page, live_server, Role.QA)
    page.goto(dose_url)
    page.locator("#volume_ml").fill(volume)
    page.locator("#bags").fill("\n".join(code.replace(" ", "") for code in bags))
    page.locator("#sign-password").fill(demo_user(Role.QA).password)
    page.get_by_role("button", name="Sign the second check").click()
    expect(flash(page)).to_contain_text("Second check signed")
    expect(page.locator("#dose-status")).to_have_text("prepared")
    expect(page.locator(".sig")).to_contain_text("verification: dose independently second-checked")
    log_out(page, live_server)

    # The technician prints the dose label; its QR code names the prepared dose.
    login_as(page, live_server, Role.TECHNICIAN)
    page.goto(dose_url)
    dose_code = page.locator("#dose-unit").inner_text().replace(" ", "")
    page.locator("#dose-label-link").click()
    expect(page.locator("#label-fields")).to_contain_text("Patient AS-007")
    page.locator("#format").select_option("png")
    with page.expect_download() as download:
        page.locator("#print-button").click()
    target = tmp_path / download.value.suggested_filename
    download.value.save_as(target)
    from PIL import Image

    (found,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(target.read_bytes())))
    assert read_scan(found.text).canonical == dose_code
