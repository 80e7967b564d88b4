"""The DSMB summary in the reader's language: in Chinese its headings are Chinese, printed in
WenQuanYi Micro Hei embedded as a subset."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from cellchain.core.i18n import using_language
from cellchain.core.pdf import FontMissing
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.trial_data import dsmb
from cellchain.trial_data.dsmb_pdf import render_dsmb_pdf
from tests.support.pdf import pages_text, squeeze
from tests.support.pdf_fonts import NO_GLYPH, embeds_wenquanyi, page_fonts
from tests.support.zones import ZURICH


def render(clinic: Any, site_name: str = "Cell Therapy Unit, City Hospital") -> bytes:
    return render_dsmb_pdf(
        dsmb.trial_summary(db.session, protocol_code=clinic.protocol.code, now=utcnow()),
        site_name=site_name,
        zone=ZURICH,
        generated_at=dt.datetime(2026, 3, 4, 13, 5, tzinfo=dt.UTC),
        generated_by="Alex Tester",
    )


def test_in_chinese_the_dsmb_summary_reads_chinese_in_an_embedded_cjk_font(clinic: Any) -> None:
    clinic.enrol(study_id="AS-201", arm="MSC")
    with using_language("zh_Hans"):
        pdf = render(clinic)
    text = squeeze(" ".join(pages_text(pdf)))
    for heading in ("DSMB 汇总", "非盲：按组计数", "计划入组", "已入组", "第 1 页，共"):
        assert heading in text, heading
    assert clinic.protocol.code in text
    assert "Planned enrolment" not in text
    assert embeds_wenquanyi(pdf)
    assert NO_GLYPH not in text  # no character printed as an empty box


def test_in_english_the_dsmb_summary_has_no_chinese_font(clinic: Any) -> None:
    clinic.enrol(study_id="AS-201", arm="MSC")
    pdf = render(clinic)
    text = squeeze(" ".join(pages_text(pdf)))
    assert "DSMB summary" in text and "Planned enrolment" in text
    assert not any("WenQuanYi" in name for name in page_fonts(pdf))


def test_without_the_cjk_font_the_chinese_summary_is_refused_not_printed_as_boxes(
    clinic: Any, app: Any, tmp_path: Path
) -> None:
    app.config["CJK_FONT"] = str(tmp_path / "missing.ttc")
    with using_language("zh_Hans"), pytest.raises(FontMissing) as refused:
        render(clinic)
    assert "fonts-wqy-microhei" in refused.value.detail
    assert render(clinic).startswith(b"%PDF")  # English still prints


def test_a_site_named_in_chinese_prints_in_the_cjk_font_in_an_english_summary(
    clinic: Any,
) -> None:
    pdf = render(clinic, site_name="山东大学齐鲁医院 Cell Therapy Unit")
    text = squeeze(" ".join(pages_text(pdf)))
    assert "山东大学齐鲁医院 Cell Therapy Unit" in text and "DSMB summary" in text
    assert embeds_wenquanyi(pdf)
