"""The certificate of analysis PDF: read back as text, it carries the lot, its DIN, every test
with its verdict, invalidated results with their reasons and the disposition's signature."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any
from zoneinfo import ZoneInfo

from pypdf import PdfReader
from sqlalchemy import update

from cellchain.core import pdf as core_pdf
from cellchain.core.identifiers import parse_identifier
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.quality import disposition, results
from cellchain.quality.certificate_pdf import render_certificate_pdf
from cellchain.quality.defaults import UC_MSC_TESTS
from cellchain.quality.models import QcResult
from tests.conftest import TEST_PASSWORD
from tests.support.tamper import outside_the_trail

ZURICH = ZoneInfo("Europe/Zurich")
SITE = "Cell Therapy Unit, City Hospital"


def render(desk: Any) -> bytes:
    return render_certificate_pdf(
        disposition.review(db.session, desk.lot, now=utcnow()),
        site_name=SITE,
        zone=ZURICH,
        generated_at=dt.datetime(2026, 3, 4, 13, 5, tzinfo=dt.UTC),
        generated_by="Alex Tester",
    )


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def squeeze(text: str) -> str:
    """Whitespace as one plain space: table cells and non-breaking spaces read alike."""
    return re.sub(r"\s+", " ", text.replace("\u00a0", " "))


def text_of(desk: Any) -> str:
    return squeeze(" ".join(pages_text(render(desk))))


def release(desk: Any) -> Any:
    decided = disposition.release_lot(
        db.session, desk.lot, user=desk.lab.qa, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
    return decided


def test_a_released_lot_names_product_lot_din_every_test_and_the_signature(desk: Any) -> None:
    desk.full_panel()
    release(desk)
    pdf = render(desk)
    assert pdf.startswith(b"%PDF")
    text = squeeze(" ".join(pages_text(pdf)))
    lot = desk.lot
    din = disposition.review(db.session, lot, now=utcnow()).donation.din

    assert "Certificate of analysis" in text and SITE in text
    assert lot.lot_number in text
    product = lot.product_definition
    assert f"{product.code} v{product.version}" in text
    assert parse_identifier(din).display in text  # the check character boxed: "[K]"
    assert re.search(r"Specification UC-MSC v\d+", text)
    for test in UC_MSC_TESTS:
        assert test["name"] in text
    assert "USP <71>" in text  # what a method says is printed, not read as markup
    assert text.count("Pass") >= len(UC_MSC_TESTS)
    assert "FAIL" not in text and "Not tested" not in text
    assert "NOT RELEASED" not in text
    assert "RELEASED for clinical use" in text
    qa = desk.lab.qa
    assert qa.full_name in text and qa.username in text
    assert "approval: release for clinical use" in text
    assert "VALID" in text and "NO LONGER VALID" not in text
    # the site's zone is named and times are shown in it
    assert "Europe/Zurich" in text and "2026-03-04 14:05 +01:00 by Alex Tester" in text
    assert "Expiry" in text and "10 filled" in text


def test_an_oos_result_fails_and_an_invalidated_one_stays_visible_with_its_reason(
    desk: Any,
) -> None:
    (first,) = desk.record(desk.entry("ENDOTOXIN", 0.9))
    results.invalidate_result(
        db.session,
        first,
        reason="LAL reader calibration lapsed",
        user=desk.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    desk.record(desk.entry("ENDOTOXIN", 0.1))
    desk.record(desk.entry("VIABILITY", 61.0))
    text = text_of(desk)

    assert "61 %" in text and "≥ 80 %" in text
    assert "FAIL – out of specification" in text
    assert text.count("FAIL") == 1  # the invalidated OOS endotoxin does not count
    assert "invalidated: LAL reader calibration lapsed" in text
    assert f"earlier result #{first.id}, does not count" in text
    assert "0.9 EU/mL" in text and "0.1 EU/mL" in text
    assert text.count("Not tested") == len(UC_MSC_TESTS) - 2
    assert "NOT RELEASED" in text


def test_a_lot_without_disposition_prints_as_a_draft_not_released(desk: Any) -> None:
    pages = [squeeze(page) for page in pages_text(render(desk))]
    text = " ".join(pages)
    assert "NOT RELEASED — NO QA DISPOSITION; NOT FOR CLINICAL USE" in text
    assert "QUARANTINE" in text
    assert "approval: release for clinical use" not in text
    assert "Expiry" in text
    for number, page in enumerate(pages, start=1):
        assert SITE in page and desk.lot.lot_number in page
        assert "Status: QUARANTINE" in page
        assert f"Page {number} of {len(pages)}" in page
        assert "Generated 2026-03-04 14:05 +01:00 by Alex Tester" in page


def test_a_rejected_lot_shows_the_reason_and_the_meaning_of_the_signature(desk: Any) -> None:
    desk.record(desk.entry("MYCOPLASMA", "positive"))
    disposition.reject_lot(
        db.session,
        desk.lot,
        reason="Mycoplasma <positive> & confirmed",
        user=desk.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    text = text_of(desk)
    assert "REJECTED" in text and "RELEASED for clinical use" not in text
    assert "Mycoplasma <positive> & confirmed" in text
    assert "responsibility: lot rejected" in text
    assert "NOT RELEASED" not in text


def test_the_signature_reads_no_longer_valid_after_a_result_is_altered(desk: Any) -> None:
    desk.full_panel()
    release(desk)
    assert "NO LONGER VALID" not in text_of(desk)
    db.session.execute(
        outside_the_trail(
            update(QcResult)
            .where(QcResult.lot_id == desk.lot.id, QcResult.test_code == "VIABILITY")
            .values(value_number=60.0)
        )
    )
    db.session.commit()
    db.session.expire_all()
    text = text_of(desk)
    assert "NO LONGER VALID — signed content changed" in text
    assert desk.lab.qa.full_name in text and "approval: release for clinical use" in text


def test_without_dejavu_the_built_in_fonts_print_the_same_certificate(
    desk: Any, monkeypatch: Any
) -> None:
    desk.record(desk.entry("VIABILITY", 91.0))
    monkeypatch.setattr(core_pdf, "DEJAVU_DIRS", ())
    core_pdf.load_fonts.cache_clear()
    try:
        pdf = render(desk)
    finally:
        core_pdf.load_fonts.cache_clear()
    assert b"DejaVu" not in pdf and b"/Helvetica" in pdf
    text = squeeze(" ".join(pages_text(pdf)))
    assert ">= 80 %" in text  # no ≥ in the built-in fonts
    assert desk.lot.lot_number in text and "Page 1 of" in text
