"""The certificate of analysis in the reader's language: in Chinese its headings are Chinese,
printed in WenQuanYi Micro Hei embedded as a subset; in English it is printed as before."""

from __future__ import annotations

from typing import Any

from cellchain.core.i18n import using_language
from tests.quality.test_certificate_pdf import release, render
from tests.support.pdf import pages_text, squeeze
from tests.support.pdf_fonts import NO_GLYPH, embeds_wenquanyi, page_fonts


def test_in_chinese_the_certificate_reads_chinese_in_an_embedded_cjk_font(desk: Any) -> None:
    desk.full_panel()
    release(desk)
    with using_language("zh_Hans"):
        pdf = render(desk)
    text = squeeze(" ".join(pages_text(pdf)))
    for heading in (
        "检验报告书(CoA)",
        "放行检测",
        "质量保证(QA)处置决定",
        "电子签名",
        "第 1 页，共",
    ):
        assert heading in text, heading
    assert "已放行，可用于临床" in text and "合格" in text
    # codes are printed as they are; the header's title mixes Chinese and the monospaced font
    assert f"批次 {desk.lot.lot_number}" in text
    assert "Certificate of analysis" not in text and "Release tests" not in text
    assert embeds_wenquanyi(pdf)
    assert NO_GLYPH not in text  # no character printed as an empty box


def test_in_english_the_certificate_has_no_chinese_font(desk: Any) -> None:
    desk.full_panel()
    pdf = render(desk)
    text = squeeze(" ".join(pages_text(pdf)))
    assert "Certificate of analysis" in text and "Release tests" in text and "Page 1 of" in text
    assert not any("WenQuanYi" in name for name in page_fonts(pdf))
