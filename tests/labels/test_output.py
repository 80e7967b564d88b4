"""Every label type laid out once and written as PNG, PDF and ZPL: the PNG, 1 bit per pixel at
300 dpi at its exact size, decodes (zxing-cpp) to the payload and is pixel for pixel the label
drawn module by module and line by line; the PDF sheet, rasterised, holds the same payloads;
the ZPL holds them in its ``^BQ`` fields."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image, ImageDraw

from cellchain.core.identifiers import make_din, make_unit_code
from cellchain.core.payload import encode_payload, read_scan
from cellchain.labels.layout import Drawing, LabelContent, lay_out, pillow_font
from cellchain.labels.output import render_pdf, render_png, render_zpl, text_mask, zpl_text
from cellchain.labels.templates import load_templates

zxingcpp = pytest.importorskip("zxingcpp")

TEMPLATES = load_templates()
TEXTS = {
    "kind": "Cryobag",
    "product": "UC-MSC v1 — Umbilical cord / placenta-derived mesenchymal stromal cells",
    "lot": "Lot X999926000004R-L01",
    "cells": "1.00 × 10⁸ viable cells",
    "volume": "20 mL",
    "concentration": "5.0 × 10⁶ cells/mL",
    "expiry": "EXP 2027-10-10 02:19 UTC",
    "storage": "Store ≤ −135 °C (LN2 vapour)",
    "caution": "Caution: New Drug—Limited by Federal law to investigational use.",
    "status": "QUARANTINE — NOT FOR CLINICAL USE",
    "eligibility": "",
    "collected": "Collected 2026-10-01 City Hospital",
    "passage": "P3 2026-10-20",
    "test": "Release panel",
    "patient_study_id": "NCT01420432-007",
    "coi": "CHX9999 26 000007 [K]",
    "visit": "Day 0",
}


def _content(sequence: int) -> tuple[LabelContent, object]:
    code = make_unit_code(make_din("X9999", 26, 4).canonical, "C", sequence)
    texts = {**TEXTS, "identifier": code.display}
    return LabelContent(payload=encode_payload(code), texts=texts), code


@pytest.mark.parametrize("label_type", sorted(TEMPLATES))
def test_each_label_type_renders_and_its_qr_code_decodes_to_the_unit(label_type: str) -> None:
    template = TEMPLATES[label_type]
    content, code = _content(17)
    png = render_png(lay_out(template, content))
    image = Image.open(io.BytesIO(png))
    assert image.size == (
        round(template.width_mm / 25.4 * 300),
        round(template.height_mm / 25.4 * 300),
    )
    assert round(image.info["dpi"][0]) == 300  # PNG stores pixels per metre
    assert image.mode == "1"  # black or white, as a label printer prints
    (decoded,) = zxingcpp.read_barcodes(image)
    assert decoded.format == zxingcpp.BarcodeFormat.QRCode
    assert decoded.text == content.payload
    assert read_scan(decoded.text) == code


def dots(mm: float) -> int:
    return round(mm / 25.4 * 300)


def _drawn_directly(drawing: Drawing) -> Image.Image:
    """The label drawn the plain way on a 1-bit image: a square per dark module, each text
    line drawn where it goes, the frames."""
    image = Image.new("1", (dots(drawing.width_mm), dots(drawing.height_mm)), 255)
    draw = ImageDraw.Draw(image)
    for symbol in drawing.symbols:
        side, count = dots(symbol.box.width_mm), len(symbol.modules)
        module = side // count
        left = dots(symbol.box.x_mm) + (side - module * count) // 2
        top = dots(symbol.box.y_mm) + (side - module * count) // 2
        for y, row in enumerate(symbol.modules):
            for x, dark in enumerate(row):
                if dark:
                    x0, y0 = left + x * module, top + y * module
                    draw.rectangle((x0, y0, x0 + module - 1, y0 + module - 1), fill=0)
    for line in drawing.lines:
        font = pillow_font(dots(line.size_mm), bold=line.bold, mono=line.mono)
        draw.text((dots(line.x_mm), dots(line.y_mm)), line.text, font=font, fill=0)
    for frame in drawing.frames:
        box = frame.box
        draw.rectangle(
            (
                dots(box.x_mm),
                dots(box.y_mm),
                dots(box.x_mm + box.width_mm),
                dots(box.y_mm + box.height_mm),
            ),
            outline=0,
            width=max(1, dots(frame.line_mm)),
        )
    return image


@pytest.mark.parametrize("label_type", sorted(TEMPLATES))
def test_the_png_is_exactly_the_label_drawn_module_by_module_and_line_by_line(
    label_type: str,
) -> None:
    """The PNG writer pastes the symbols scaled up and text lines rendered once (cached); the
    pixels are those of drawing every module and every line where they go."""
    content, _code = _content(29)
    drawing = lay_out(TEMPLATES[label_type], content)
    text_mask.cache_clear()
    first = Image.open(io.BytesIO(render_png(drawing)))
    again = Image.open(io.BytesIO(render_png(drawing)))  # every line from the cache now
    expected = _drawn_directly(drawing)
    assert first.tobytes() == expected.tobytes()
    assert again.tobytes() == expected.tobytes()


def test_an_empty_field_stays_blank_and_the_label_still_decodes() -> None:
    template = TEMPLATES["sample_tube"]
    code = make_unit_code(make_din("X9999", 26, 4).canonical, "S", 1)
    png = render_png(lay_out(template, LabelContent(payload=encode_payload(code))))
    (decoded,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert read_scan(decoded.text) == code


def test_the_check_character_is_framed_after_the_code() -> None:
    content, code = _content(3)
    drawing = lay_out(TEMPLATES["cryobag"], content)
    (frame,) = drawing.frames
    check_line = next(line for line in drawing.lines if line.text == code.check)
    assert frame.box.x_mm < check_line.x_mm < frame.box.x_mm + frame.box.width_mm
    body_line = next(line for line in drawing.lines if line.text.startswith("X9999"))
    assert body_line.x_mm < check_line.x_mm


def test_text_wraps_inside_its_box_and_is_cut_at_the_last_whole_line() -> None:
    content, _code = _content(5)
    template = TEMPLATES["cryobag"]
    drawing = lay_out(template, LabelContent(content.payload, {"caution": "word " * 400}))
    caution = next(f for f in template.fields if f.name == "caution")
    lines = [line for line in drawing.lines if line.x_mm == caution.box.x_mm]
    assert 1 < len(lines) <= caution.box.height_mm / caution.text_mm
    assert all(
        line.y_mm + line.size_mm <= caution.box.y_mm + caution.box.height_mm + 1e-6
        for line in lines
    )


def test_the_pdf_sheet_holds_every_label_and_each_decodes_to_its_payload() -> None:
    pdfium = pytest.importorskip("pypdfium2")
    contents = [_content(sequence)[0] for sequence in range(1, 8)]
    drawings = [lay_out(TEMPLATES["cryobag"], content) for content in contents]
    pdf = render_pdf(drawings, title="Cryobag labels")
    document = pdfium.PdfDocument(pdf)
    found: list[str] = []
    for page in document:
        image = page.render(scale=300 / 72).to_pil().convert("L")
        found.extend(result.text for result in zxingcpp.read_barcodes(image))
    assert sorted(found) == sorted(content.payload for content in contents)
    assert len(document) == 2  # 4 cryobag labels (102 × 76 mm) fit on an A4 page, landscape
    assert document[0].get_size() == pytest.approx((842, 595), abs=1)
    text = "".join(page.get_textpage().get_text_range() for page in document)
    assert "QUARANTINE — NOT FOR CLINICAL USE" in text
    assert contents[0].texts["identifier"].split("[")[0].strip() in text
    document.close()


def test_the_zpl_holds_the_same_payloads_in_qr_fields_and_ascii_text() -> None:
    contents = [_content(sequence)[0] for sequence in range(1, 4)]
    zpl = render_zpl(lay_out(TEMPLATES["cryobag"], content) for content in contents).decode()
    assert zpl.count("^XA") == zpl.count("^XZ") == 3
    assert re.findall(r"\^BQN,2,\d+\^FDMA,([^\^]+)\^FS", zpl) == [c.payload for c in contents]
    assert zpl_text("QUARANTINE — NOT FOR CLINICAL USE") in zpl
    assert zpl.isascii()


def test_zpl_text_cannot_start_a_printer_command() -> None:
    assert zpl_text("a^XZ~JR_b") == "a_5EXZ_7EJR_5Fb"
    # ^ is written as its hex escape, which ^FH prints as ^
    assert zpl_text("≤ −135 °C, 1.0 × 10⁶") == "<= -135 degC, 1.0 x 10_5E6"
