"""The chain-of-identity report in the reader's language: in Chinese its headings are
Chinese, printed in WenQuanYi Micro Hei embedded as a subset."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cellchain.core.i18n import using_language
from cellchain.extensions import db
from cellchain.traceability.coi import coi
from cellchain.traceability.coi.coi_pdf import render_coi_report_pdf
from tests.support.pdf import pages_text, squeeze
from tests.support.pdf_fonts import NO_GLYPH, embeds_wenquanyi, page_fonts
from tests.support.zones import ZURICH


def render(patient: Any) -> bytes:
    return render_coi_report_pdf(
        coi.patient_report(db.session, patient, zone=ZURICH),
        site_name="Cell Therapy Unit, City Hospital",
        zone=ZURICH,
        generated_at=dt.datetime(2026, 3, 4, 13, 5, tzinfo=dt.UTC),
        generated_by="Alex Tester",
    )


def test_in_chinese_the_report_reads_chinese_in_an_embedded_cjk_font(ward, infused) -> None:
    infusion, _waiting = infused
    with using_language("zh_Hans"):
        pdf = render(infusion.patient)
    text = squeeze(" ".join(pages_text(pdf)))
    for heading in (
        "身份链 (COI) 报告",
        "剂量单位与袋",
        "捐献与供者合格性",
        "剂量计算与二次核对",
        "床旁核对",
        "输注记录",
        "第 1 页，共",
    ):
        assert heading in text, heading
    assert infusion.patient.study_id in text
    assert "Dose unit and bags" not in text and "Infusion record" not in text
    assert embeds_wenquanyi(pdf)
    assert NO_GLYPH not in text  # no character printed as an empty box


def test_in_english_the_report_has_no_chinese_font(ward, infused) -> None:
    infusion, _waiting = infused
    pdf = render(infusion.patient)
    text = squeeze(" ".join(pages_text(pdf)))
    assert "Chain-of-identity report" in text and "Infusion record" in text
    assert not any("WenQuanYi" in name for name in page_fonts(pdf))


def test_the_pdf_is_served_in_the_language_of_the_request(ward, infused, clients) -> None:
    infusion, _waiting = infused
    web = clients.web(ward.lab.tech)
    url = f"/patients/{infusion.patient_id}/coi-report.pdf"
    chinese = web.get(url, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert chinese.status_code == 200 and chinese.mimetype == "application/pdf"
    assert "身份链 (COI) 报告" in squeeze(" ".join(pages_text(chinese.data)))
    assert embeds_wenquanyi(chinese.data)
    english = web.get(url)
    assert "Chain-of-identity report" in squeeze(" ".join(pages_text(english.data)))
    assert not any("WenQuanYi" in name for name in page_fonts(english.data))
