"""The batch record in the reader's language: in Chinese its headings are Chinese, printed in
WenQuanYi Micro Hei embedded as a subset, counts still with their superscript powers."""

from __future__ import annotations

from typing import Any

from cellchain.core.i18n import using_language
from tests.manufacturing.test_batch_record_pdf import expanded_lot, render
from tests.support.pdf import pages_text, squeeze
from tests.support.pdf_fonts import NO_GLYPH, embeds_wenquanyi, glyph_fonts, page_fonts


def test_in_chinese_the_batch_record_reads_chinese_in_an_embedded_cjk_font(bench: Any) -> None:
    lot = expanded_lot(bench, bags=3)
    with using_language("zh_Hans"):
        pdf = render(lot)
    text = squeeze(" ".join(pages_text(pdf)))
    for heading in (
        "批记录",
        "加工步骤",
        "步骤 1 ·",
        "袋（3）",
        "偏差（0）",
        "审核与放行",
        "第 1 页，共",
    ):
        assert heading in text, heading
    assert lot.lot_number in text
    assert "状态：隔离" in text  # every page's header: the lot's status in words
    assert "× 培养容器" in text  # the compact unit lists name the kind in Chinese
    assert "Processing steps" not in text and "Review and release" not in text
    # the superscripts WenQuanYi lacks are printed in DejaVu Sans: no empty box
    assert "× 10⁸" in text or "× 10⁹" in text
    assert embeds_wenquanyi(pdf)
    assert NO_GLYPH not in text  # no character printed as an empty box
    assert any("DejaVuSans" in name for name in glyph_fonts(pdf)["⁸"])


def test_in_english_the_batch_record_has_no_chinese_font(bench: Any) -> None:
    pdf = render(expanded_lot(bench, bags=3))
    text = squeeze(" ".join(pages_text(pdf)))
    assert "Processing steps" in text and "Review and release" in text
    assert not any("WenQuanYi" in name for name in page_fonts(pdf))
