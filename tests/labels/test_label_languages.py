"""Labels in the site's label languages (issue 21): CELLCHAIN_LABEL_LANGUAGES, captions and
markings in each language with the values once, the 21 CFR 312.6 caution in English always,
Chinese drawn in the Chinese font and still scanning, quarantine decided from the status,
ZPL in UTF-8 with the printer's Chinese font (or refused), English alone unchanged."""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cellchain.chain.models import UnitStatus
from cellchain.config import ConfigurationError, load_config
from cellchain.core.i18n import english_of, using_language
from cellchain.core.identifiers import make_din, make_unit_code
from cellchain.core.payload import encode_payload, read_scan
from cellchain.core.pdf import FontMissing, cjk_font_path
from cellchain.extensions import db
from cellchain.labels.content import CAUTION, QUARANTINE, label_for, wristband_for
from cellchain.labels.layout import LabelContent, lay_out, text_width_mm
from cellchain.labels.models import LabelPrint
from cellchain.labels.output import PrinterFontMissing, render_pdf, render_png, render_zpl
from cellchain.labels.templates import FieldLayout, LabelTemplate, load_templates
from tests.support.labels import SETTINGS, print_units, release

zxingcpp = pytest.importorskip("zxingcpp")

BILINGUAL = ("en", "zh_Hans")
TEMPLATES = load_templates()


def _label(unit: Any, languages: tuple[str, ...] | None = None) -> Any:
    return label_for(
        db.session,
        unit,
        templates=SETTINGS.templates,
        zone=SETTINGS.zone,
        isbt=SETTINGS.isbt,
        languages=languages,
    )


def _needs_cjk_font() -> None:
    if not cjk_font_path().is_file():
        if os.environ.get("CELLCHAIN_REQUIRE_BROWSER"):  # CI installs it: missing is a failure
            pytest.fail("the Chinese font (fonts-wqy-microhei) is not installed")
        pytest.skip("the Chinese font (fonts-wqy-microhei) is not installed")


# --- the setting ------------------------------------------------------------------------------


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name, value in env.items():
        monkeypatch.setenv(f"CELLCHAIN_{name}", value)
    return load_config(str(tmp_path), {"ENV_NAME": "testing"})


def test_label_languages_default_to_english_and_read_a_list_first_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CELLCHAIN_LABEL_LANGUAGES", raising=False)
    monkeypatch.delenv("CELLCHAIN_ZPL_CJK_FONT", raising=False)
    default = _config(tmp_path, monkeypatch)
    assert default["LABEL_LANGUAGES"] == ("en",)
    assert default["ZPL_CJK_FONT"] is None
    config = _config(
        tmp_path, monkeypatch, LABEL_LANGUAGES=" zh_Hans, en ", ZPL_CJK_FONT="E:SIMSUN.FNT"
    )
    assert config["LABEL_LANGUAGES"] == ("zh_Hans", "en")
    assert config["ZPL_CJK_FONT"] == "E:SIMSUN.FNT"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("LABEL_LANGUAGES", "en,fr", "'fr'"),
        ("LABEL_LANGUAGES", "en,zh-CN", "'zh-CN'"),
        ("LABEL_LANGUAGES", "en,,zh_Hans", "comma-separated"),
        ("LABEL_LANGUAGES", "zh_Hans,zh_Hans", "twice"),
        ("ZPL_CJK_FONT", "E:SIMSUN.FNT^XZ", "E:SIMSUN.FNT"),
        ("ZPL_CJK_FONT", "SIMSUN", "E:SIMSUN.FNT"),
    ],
)
def test_an_unknown_label_language_or_printer_font_is_refused_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        _config(tmp_path, monkeypatch, **{variable: value})
    assert f"CELLCHAIN_{variable}" in str(refused.value)
    assert named in str(refused.value)


# --- what a label prints ----------------------------------------------------------------------


def test_a_bilingual_bag_label_prints_captions_in_both_languages_and_values_once(
    desk: Any, bags: list[Any]
) -> None:
    english = _label(bags[0], ("en",))
    label = _label(bags[0], BILINGUAL)
    # what the print log records stays the English label
    assert label.content.texts == english.content.texts
    assert english.content.printed is None
    printed = label.content.printed
    lot = desk.lot.lot_number
    assert printed["status"] == "QUARANTINE — NOT FOR CLINICAL USE\n隔离——不得用于临床"
    # the 312.6 caution stays in English, the Chinese investigational-use statement below it
    assert printed["caution"] == f"{CAUTION}\n仅供临床试验使用"
    assert printed["lot"] == f"Lot / 批次 {lot}"
    assert printed["kind"] == "Cryobag / 冻存袋"
    assert (
        printed["storage"]
        == "Store at / 储存于 ≤ −135 °C (liquid nitrogen vapour phase / 液氮气相)"
    )
    assert printed["cells"] == "1.00 × 10⁸ total cells / 总细胞, 93 % viable at fill / 灌装时活率"
    assert printed["concentration"] == "5.00 × 10⁶ total cells/mL / 总细胞/mL"
    when = f"{desk.lot.expires_at:%Y-%m-%d %H:%M} +00:00"
    assert printed["expiry"] == f"EXP / 有效期至 {when}"
    for text in printed.values():  # every value once
        assert text.count(lot) <= 1 and text.count(when) <= 1
    assert printed["identifier"] == english.content.texts["identifier"]
    # Chinese first: its captions first, the caution still in English
    chinese_first = _label(bags[0], ("zh_Hans", "en")).content.printed
    assert chinese_first["lot"] == f"批次 / Lot {lot}"
    assert chinese_first["status"] == "隔离——不得用于临床\nQUARANTINE — NOT FOR CLINICAL USE"
    assert chinese_first["caution"].startswith(CAUTION)


def test_the_site_setting_chooses_the_languages(app: Any, desk: Any, bags: list[Any]) -> None:
    app.config["LABEL_LANGUAGES"] = ("zh_Hans",)
    printed = _label(bags[0]).content.printed
    assert printed["status"] == "隔离——不得用于临床"
    assert printed["caution"] == f"{CAUTION}\n仅供临床试验使用"  # English always
    app.config["LABEL_LANGUAGES"] = ("en",)
    assert _label(bags[0]).content.printed is None


def test_a_bilingual_cryobag_label_prints_whole_and_its_pdf_has_the_chinese_and_scans(
    desk: Any, bags: list[Any]
) -> None:
    _needs_cjk_font()
    pdfium = pytest.importorskip("pypdfium2")
    labels = [_label(bag, BILINGUAL) for bag in bags[:2]]
    drawings = [lay_out(label.template, label.content) for label in labels]
    for drawing in drawings:
        assert drawing.cut == ()  # nothing cut off: shrunk to fit where two languages need it
        template = labels[0].template
        for line in drawing.lines:
            box = next(
                f.box
                for f in template.fields
                if f.box.x_mm <= line.x_mm + 1e-6
                and f.box.y_mm - 1e-6 <= line.y_mm <= f.box.y_mm + f.box.height_mm
            )
            assert line.y_mm + line.size_mm <= box.y_mm + box.height_mm + 1e-6
    document = pdfium.PdfDocument(render_pdf(drawings, title="Cryobag labels"))
    text = "".join(page.get_textpage().get_text_range() for page in document)
    assert "隔离——不得用于临床" in text
    assert "仅供临床试验使用" in text
    assert "批次" in text
    found: list[str] = []
    for page in document:
        image = page.render(scale=300 / 72).to_pil().convert("L")
        found.extend(result.text for result in zxingcpp.read_barcodes(image))
    document.close()
    assert sorted(found) == sorted(label.content.payload for label in labels)


def test_a_bilingual_png_draws_the_chinese_and_still_decodes_to_its_unit(
    desk: Any, bags: list[Any]
) -> None:
    _needs_cjk_font()
    label = _label(bags[0], BILINGUAL)
    png = render_png(lay_out(label.template, label.content))
    english = _label(bags[0], ("en",))
    assert png != render_png(lay_out(english.template, english.content))
    image = Image.open(io.BytesIO(png))
    assert image.mode == "1"
    (decoded,) = zxingcpp.read_barcodes(image)
    assert read_scan(decoded.text).canonical == bags[0].code


def test_the_wristband_and_the_dose_label_print_bilingual_captions(ward: Any) -> None:
    order = ward.prepared(labelled=False)
    patient = order.patient
    english = wristband_for(patient, templates=TEMPLATES, languages=("en",))
    band = wristband_for(patient, templates=TEMPLATES, languages=BILINGUAL)
    assert english.content.texts["patient_study_id"] == f"Study ID {patient.study_id}"
    assert english.content.printed is None
    shown = band.content.printed_texts
    assert shown["patient_study_id"] == f"Study ID / 研究编号 {patient.study_id}"
    assert shown["identifier"].endswith("cell therapy trial subject / 细胞治疗试验受试者")
    dose = _label(order.dose_unit, BILINGUAL)
    printed = dose.content.printed
    assert printed["patient_study_id"] == f"Patient / 患者 {patient.study_id}"
    assert printed["caution"] == f"{CAUTION}\n仅供临床试验使用"
    assert f"{order.volume_ml:.1f} mL" in printed["volume"] and "抽取" in printed["volume"]
    assert dose.content.texts == _label(order.dose_unit, ("en",)).content.texts
    if cjk_font_path().is_file():
        drawing = lay_out(dose.template, dose.content)
        (decoded,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(render_png(drawing))))
        assert decoded.text == dose.content.payload


# --- quarantine from the status ---------------------------------------------------------------


def test_quarantine_is_the_units_status_whatever_language_the_label_prints(
    app: Any, desk: Any, bags: list[Any]
) -> None:
    app.config["LABEL_LANGUAGES"] = ("zh_Hans", "en")
    label = _label(bags[0])
    assert label.quarantine
    assert label.content.printed["status"].startswith("隔离")
    (record,) = print_units([bags[0]], desk.lab.tech, fmt="png").prints
    # the print log: quarantine from the status, the marking in English as label control
    # compares it
    assert record.quarantine is True
    assert record.marking == QUARANTINE
    release(desk)
    available = next(bag for bag in bags if bag.status == UnitStatus.AVAILABLE)
    released = _label(available)
    assert not released.quarantine
    assert released.content.printed["status"] == ""


# --- ZPL ----------------------------------------------------------------------------------------


def test_zpl_with_chinese_labels_is_refused_without_the_printer_font_naming_the_setting(
    app: Any, desk: Any, bags: list[Any]
) -> None:
    app.config["LABEL_LANGUAGES"] = BILINGUAL
    app.config["ZPL_CJK_FONT"] = None
    with pytest.raises(PrinterFontMissing) as refused:
        print_units([bags[0]], desk.lab.tech, fmt="zpl")
    db.session.rollback()
    assert "CELLCHAIN_ZPL_CJK_FONT" in refused.value.detail
    assert refused.value.status == 503
    assert db.session.query(LabelPrint).count() == 0  # nothing logged: nothing was printed
    with using_language("zh_Hans"), pytest.raises(PrinterFontMissing) as in_chinese:
        print_units([bags[0]], desk.lab.tech, fmt="zpl")
    db.session.rollback()
    assert "打印机" in in_chinese.value.detail
    assert "CELLCHAIN_ZPL_CJK_FONT" in english_of(in_chinese.value.detail)
    # PNG and PDF print all the same
    assert print_units([bags[0]], desk.lab.tech, fmt="pdf").data.startswith(b"%PDF")


def test_zpl_with_chinese_labels_is_utf8_in_the_printers_font(
    app: Any, desk: Any, bags: list[Any]
) -> None:
    app.config["LABEL_LANGUAGES"] = BILINGUAL
    app.config["ZPL_CJK_FONT"] = "E:SIMSUN.FNT"
    zpl = print_units([bags[0]], desk.lab.tech, fmt="zpl").data.decode("utf-8")
    assert "^CI28" in zpl and "^CI0" not in zpl
    chinese = [line for line in zpl.splitlines() if "隔离" in line]
    assert chinese and all("^A@N," in line and ",E:SIMSUN.FNT^FH^FD" in line for line in chinese)
    assert "仅供临床试验使用" in zpl
    # the English lines keep the built-in font, transliterated as before
    assert "^A0N," in zpl and "QUARANTINE - NOT FOR CLINICAL USE" in zpl
    payload = _label(bags[0]).content.payload
    assert re.findall(r"\^BQN,2,\d+\^FDMA,([^\^]+)\^FS", zpl) == [payload]


def test_zpl_for_an_english_site_is_ascii_and_needs_no_printer_font(
    app: Any, desk: Any, bags: list[Any]
) -> None:
    app.config["LABEL_LANGUAGES"] = ("en",)
    app.config["ZPL_CJK_FONT"] = None
    zpl = print_units([bags[0]], desk.lab.tech, fmt="zpl").data
    assert zpl.isascii() and b"^CI0" in zpl and b"^CI28" not in zpl


# --- layout: Chinese wraps, shrinks, never prints without its font ------------------------------


def _box(width: float, height: float, text_mm: float) -> LabelTemplate:
    cryobag = TEMPLATES["cryobag"]
    fields = tuple(
        FieldLayout(f.name, f.box.__class__(3, 44, width, height), text_mm, f.bold)
        if f.name == "storage"
        else f
        for f in cryobag.fields
    )
    return LabelTemplate(**{**cryobag.__dict__, "fields": fields})


def _code_content(storage: str) -> LabelContent:
    code = make_unit_code(make_din("X9999", 26, 4).canonical, "C", 7)
    return LabelContent(encode_payload(code), {"identifier": code.display, "storage": storage})


def test_chinese_wraps_between_characters_inside_its_box_never_before_a_closing_mark() -> None:
    _needs_cjk_font()
    text = "供者合格性判定未完成（21 CFR 1271.60），不得放行。隔离——不得用于临床。" * 2
    template = _box(30, 30, 2.5)
    drawing = lay_out(template, _code_content(text))
    lines = [line for line in drawing.lines if line.y_mm >= 44]
    assert len(lines) > 2 and drawing.cut == ()
    assert "".join(line.text for line in lines).replace(" ", "") == text.replace(" ", "")
    for line in lines:
        assert text_width_mm(line.text, line.size_mm, bold=False, mono=False) <= 30 + 1e-6
        assert line.text[0] not in "，。）—"


def test_text_too_big_for_its_box_is_set_smaller_down_to_the_floor() -> None:
    _needs_cjk_font()
    text = "Store at / 储存于 ≤ −135 °C (liquid nitrogen vapour phase / 液氮气相)"
    fitting = lay_out(_box(80, 4, 3), _code_content(text))
    lines = [line for line in fitting.lines if line.y_mm >= 44]
    assert fitting.cut == ()
    assert all(0.65 * 3 - 1e-9 <= line.size_mm < 3 for line in lines)
    too_long = lay_out(_box(80, 4, 3), _code_content(text * 6))
    assert too_long.cut == ("storage",)  # named, as it is cut at the template's size


def test_a_chinese_label_is_refused_when_the_chinese_font_is_missing(
    app: Any, desk: Any, bags: list[Any]
) -> None:
    label = _label(bags[0], BILINGUAL)
    app.config["CJK_FONT"] = "/nonexistent/wqy-microhei.ttc"
    with pytest.raises(FontMissing) as refused:
        lay_out(label.template, label.content)
    assert "fonts-wqy-microhei" in refused.value.detail


# --- English alone: unchanged -----------------------------------------------------------------

#: SHA-256 of the PNG and the ZPL the code before issue 21 rendered for this content (computed
#: with that code at commit 81d0f12): an English-only site prints byte for byte what it did
BEFORE = {
    "cryobag": ("e576de2076d831a2", "497f91b87f146e3b"),
    "wristband": ("b27cd34389591368", "a6cedccab8927935"),
}
ENGLISH_TEXTS = {
    "kind": "Cryobag",
    "product": "UC-MSC v1 — Umbilical cord-derived mesenchymal stromal cells",
    "lot": "Lot X999926000004R-L01",
    "cells": "1.00 × 10⁸ total cells, 93 % viable at fill",
    "volume": "20 mL",
    "concentration": "5.00 × 10⁶ total cells/mL",
    "expiry": "EXP 2026-12-05 17:13 +08:00",
    "storage": "Store at ≤ −135 °C (liquid nitrogen vapour phase)",
    "caution": CAUTION,
    "status": "QUARANTINE — NOT FOR CLINICAL USE",
    "eligibility": "",
}


#: the boxes the cryobag's template had at that commit (version 2), where version 3 has others
#: (a taller status box, the eligibility warning and the caution lower): the code is compared
#: on the same template
CRYOBAG_V2_BOXES = {
    "status": (3, 54, 96, 6),
    "eligibility": (3, 61, 96, 4),
    "caution": (3, 66, 96, 8),
}


def _as_before(template: LabelTemplate) -> LabelTemplate:
    if template.label_type != "cryobag":
        return template
    fields = tuple(
        FieldLayout(f.name, f.box.__class__(*CRYOBAG_V2_BOXES[f.name]), f.text_mm, f.bold)
        if f.name in CRYOBAG_V2_BOXES
        else f
        for f in template.fields
    )
    return LabelTemplate(**{**template.__dict__, "fields": fields})


@pytest.mark.parametrize("label_type", sorted(BEFORE))
def test_an_english_only_label_is_byte_for_byte_what_it_was(label_type: str) -> None:
    code = make_unit_code(make_din("X9999", 26, 4).canonical, "C", 1)
    content = LabelContent(encode_payload(code), {**ENGLISH_TEXTS, "identifier": code.display})
    drawing = lay_out(_as_before(TEMPLATES[label_type]), content)
    png = hashlib.sha256(render_png(drawing)).hexdigest()[:16]
    zpl = hashlib.sha256(render_zpl([drawing], languages=["en"])).hexdigest()[:16]
    assert (png, zpl) == BEFORE[label_type]


def test_the_api_refuses_chinese_zpl_without_the_printer_font_and_records_no_print(
    app: Any, desk: Any, clients: Any, bags: list[Any]
) -> None:
    from cellchain.core.models import AuditEntry

    app.config["LABEL_LANGUAGES"] = BILINGUAL
    app.config["ZPL_CJK_FONT"] = None
    api = clients.api(desk.lab.tech)
    response = api.post(
        f"/api/v1/units/{bags[0].id}/labels",
        json={"format": "zpl"},
        headers={"Accept-Language": "zh-CN"},
    )
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    # in the reader's language, naming the setting to make
    assert "CELLCHAIN_ZPL_CJK_FONT" in problem["detail"] and "打印机" in problem["detail"]
    db.session.expire_all()
    assert db.session.query(LabelPrint).count() == 0
    assert not db.session.query(AuditEntry).filter(AuditEntry.action == "label.printed").count()
    pdf = api.post(f"/api/v1/units/{bags[0].id}/labels", json={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
