"""Every label type drawn to PNG at 300 dpi at its exact size; its QR code decodes (zxing-cpp)
to the payload, which reads back to the same identifier."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from cellchain.core.identifiers import make_din, make_unit_code
from cellchain.core.payload import encode_payload, read_scan
from cellchain.labels.render import LabelContent, render_png
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


@pytest.mark.parametrize("label_type", sorted(TEMPLATES))
def test_each_label_type_renders_and_its_qr_code_decodes_to_the_unit(label_type: str) -> None:
    template = TEMPLATES[label_type]
    code = make_unit_code(make_din("X9999", 26, 4).canonical, "C", 17)
    content = LabelContent(
        payload=encode_payload(code), texts={**TEXTS, "identifier": code.display}
    )
    png = render_png(template, content)
    image = Image.open(io.BytesIO(png))
    assert image.size == (
        round(template.width_mm / 25.4 * 300),
        round(template.height_mm / 25.4 * 300),
    )
    assert round(image.info["dpi"][0]) == 300  # PNG stores pixels per metre
    (decoded,) = zxingcpp.read_barcodes(image)
    assert decoded.format == zxingcpp.BarcodeFormat.QRCode
    assert decoded.text == content.payload
    assert read_scan(decoded.text) == code


def test_an_empty_field_stays_blank_and_the_label_still_decodes() -> None:
    template = TEMPLATES["sample_tube"]
    code = make_unit_code(make_din("X9999", 26, 4).canonical, "S", 1)
    png = render_png(template, LabelContent(payload=encode_payload(code)))
    (decoded,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert read_scan(decoded.text) == code
