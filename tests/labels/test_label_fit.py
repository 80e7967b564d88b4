"""Every label prints whole (DOMAIN.md §9; issue 21: "units never cut off"): for each label
template and each status marking a unit of its kind can carry, with the longest realistic
values, in English and in English and Chinese (``CELLCHAIN_LABEL_LANGUAGES=en,zh_Hans``), the
laid-out label cuts nothing (``Drawing.cut`` is empty), sets no text below the 1.2 mm floor,
keeps every line inside its box, and its PNG and PDF still decode to the unit.

The texts are those ``content.py`` composes: a unit's label goes through ``content._label``
with its records (the unit, its donation, lot, product, cell record, QC sample) held in plain
objects carrying the longest values they take, so no database is needed; a prepared dose's
label is the ward's dose printed through ``content.label_for`` with each marking in turn, and
the wristband a patient with the longest study ID and protocol code.

Free text written by a person: a donation's collection site fits even at its longest (120
characters); a QC sample's purpose (up to 200 characters) fits at realistic lengths, and one
longer than the tube holds is cut and named in ``Drawing.cut``, never silently, and only that
field (``test_free_text_longer_than_its_box_is_cut_and_named``).
"""

from __future__ import annotations

import io
import os
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from cellchain.chain.models import UnitKind, UnitStatus
from cellchain.core.identifiers import make_unit_code
from cellchain.core.pdf import cjk_font_path
from cellchain.extensions import db
from cellchain.labels import content
from cellchain.labels.content import IsbtSettings, label_for, wristband_for
from cellchain.labels.layout import MIN_TEXT_MM, MONO_FIELDS, Drawing, lay_out, text_width_mm
from cellchain.labels.output import render_pdf, render_png
from cellchain.labels.template_documents import fit
from cellchain.labels.template_documents.fit import (
    BILINGUAL,
    COI,
    DIN,
    ENGLISH,
    LOT_NUMBER,
    PROTOCOL_CODE,
    STUDY_ID,
    WHEN,
    ZONE,
)
from cellchain.labels.templates import LabelTemplate, load_templates
from cellchain.manufacturing.defaults import UC_MSC_TITLE

zxingcpp = pytest.importorskip("zxingcpp")

TEMPLATES = load_templates()
LANGUAGES = {"en": ENGLISH, "en,zh_Hans": BILINGUAL}

#: the longest records (``fit``'s, which the template check lays out too) and every marking a
#: unit can carry, each with the eligibility warning it goes with
Status = fit._Status
STATUSES = list(fit.STATUSES)


#: the label types of units, by the kind they label (the dose's is tested on the ward's dose)
UNIT_TEMPLATES = {
    label_type: template.unit_kinds[0]
    for label_type, template in TEMPLATES.items()
    if template.unit_kinds and template.unit_kinds[0] != UnitKind.PREPARED_DOSE
}


def _needs_cjk_font(languages: tuple[str, ...]) -> None:
    if languages != ENGLISH and not cjk_font_path().is_file():
        if os.environ.get("CELLCHAIN_REQUIRE_BROWSER"):  # CI installs it: missing is a failure
            pytest.fail("the Chinese font (fonts-wqy-microhei) is not installed")
        pytest.skip("the Chinese font (fonts-wqy-microhei) is not installed")


def _records(
    kind: str, status: Status, *, purpose: str | None = None, site: str | None = None
) -> tuple[Any, Any]:
    """A unit of ``kind`` with ``status`` and the records its label prints, at their longest."""
    product = SimpleNamespace(
        code="UC-MSC",
        version=12,
        title=UC_MSC_TITLE,
        parameters={"storage_max_temperature_c": -135},
    )
    donation = SimpleNamespace(
        din=DIN.canonical,
        eligibility=status.eligibility,
        product_definition=product,
        collected_at=WHEN,
        # a hospital's delivery suite, as a collection site is written
        collection_site=site or "Shanghai First Maternity and Infant Hospital, L&D 3",
    )
    code = make_unit_code(DIN.canonical, UnitKind(kind).letter, 9999)
    unit = SimpleNamespace(
        id=1,
        code=code.canonical,
        kind=kind,
        kind_label=UnitKind(kind).label,
        status=status.unit_status,
        donation=donation,
    )
    lot: Any = SimpleNamespace(
        id=7, lot_number=LOT_NUMBER, expires_at=WHEN, product_definition=product
    )
    cell_records: dict[int, Any] = {}
    samples: dict[int, Any] = {}
    if kind in {UnitKind.BANK_VIAL, UnitKind.CULTURE_VESSEL, UnitKind.CRYOBAG}:
        bag = kind == UnitKind.CRYOBAG
        cell_records[1] = SimpleNamespace(
            passage=12,
            made_at=WHEN,
            cells=9.99e8 if bag else 1.0e8,  # 9.99 × 10⁸: as wide as a count prints
            total_cells_per_ml=4.99999e6 if bag else None,  # six figures, as recorded
            viability_percent=93.5 if bag else None,
            volume_ml=20.0 if bag else 1.8,
            lot_id=lot.id if kind != UnitKind.CULTURE_VESSEL else None,
        )
    if kind == UnitKind.SAMPLE_TUBE:
        samples[1] = SimpleNamespace(purpose=purpose, lot_id=lot.id)
    records = content._Records(
        cell_records=cell_records,
        samples=samples,
        lots={lot.id: lot},
        markings={1: status.marking()},
        loaded=(),
    )
    return unit, records


def _unit_label(
    label_type: str, status: Status, languages: tuple[str, ...], **free_text: str | None
) -> Any:
    unit, records = _records(UNIT_TEMPLATES[label_type], status, **free_text)
    return content._label(
        None,  # type: ignore[arg-type]  # read only for a prepared dose
        unit,
        records,
        TEMPLATES,
        ZONE,
        IsbtSettings({}),
        languages,
    )


def _assert_prints_whole(template: LabelTemplate, drawing: Drawing, payload: str) -> None:
    """Nothing cut, no text below the floor, every line inside a box of its field, and the
    PNG and the PDF decode to the payload."""
    assert drawing.cut == (), f"{template.label_type} v{template.version} cuts {drawing.cut}"
    for line in drawing.lines:
        assert line.size_mm >= MIN_TEXT_MM - 1e-9, f"{line.text!r} below the floor"
        right = line.x_mm + text_width_mm(line.text, line.size_mm, bold=line.bold, mono=line.mono)
        assert any(
            f.box.x_mm - 1e-6 <= line.x_mm
            and right <= f.box.x_mm + f.box.width_mm + 1e-6
            and f.box.y_mm - 1e-6 <= line.y_mm
            and line.y_mm + line.size_mm <= f.box.y_mm + f.box.height_mm + 1e-6
            for f in template.fields
        ), f"{line.text!r} runs out of its box"
    for frame in drawing.frames:  # the check character's frame inside the identifier's box
        box = frame.box
        assert any(
            f.box.x_mm <= box.x_mm and box.x_mm + box.width_mm <= f.box.x_mm + f.box.width_mm + 1e-6
            for f in template.fields
            if f.name in MONO_FIELDS
        )
    (decoded,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(render_png(drawing))))
    assert decoded.text == payload
    pdfium = pytest.importorskip("pypdfium2")
    document = pdfium.PdfDocument(render_pdf([drawing], title="Labels"))
    try:
        (page,) = list(document)
        image = page.render(scale=300 / 72).to_pil().convert("L")
        assert [result.text for result in zxingcpp.read_barcodes(image)] == [payload]
    finally:
        document.close()


# --- every unit's label, every marking ----------------------------------------------------------


@pytest.mark.parametrize("languages", sorted(LANGUAGES))
@pytest.mark.parametrize("status", STATUSES, ids=[str(status.name) for status in STATUSES])
@pytest.mark.parametrize("label_type", sorted(UNIT_TEMPLATES))
def test_a_units_label_prints_whole_whatever_its_status(
    label_type: str, status: Status, languages: str
) -> None:
    chosen = LANGUAGES[languages]
    _needs_cjk_font(chosen)
    label = _unit_label(label_type, status, chosen)
    printed = label.content.printed_texts
    if status.unit_status != UnitStatus.AVAILABLE:
        assert printed["status"]  # the marking is there to be printed …
    drawing = lay_out(label.template, label.content)
    _assert_prints_whole(label.template, drawing, label.content.payload)  # … and prints whole
    # every character of it printed, in order (lines break at spaces and between Chinese
    # characters): the marking whole, the storage line with its unit
    shown = "".join("".join(line.text for line in drawing.lines).split())
    for layout in label.template.fields:
        if layout.name in {"status", "eligibility", "storage"}:
            assert "".join(printed.get(layout.name, "").split()) in shown, layout.name


def test_the_bank_vial_prints_its_marking_and_its_storage_unit_whole() -> None:
    """What was cut before version 2: "QUARANTINE —" alone, "Store at ≤ −135" without °C."""
    status = STATUSES[1]
    label = _unit_label("bank_vial", status, ENGLISH)
    drawing = lay_out(label.template, label.content)
    assert label.template.version >= 2
    assert drawing.cut == ()
    shown = " ".join(line.text for line in drawing.lines)
    assert "QUARANTINE — NOT FOR CLINICAL USE" in shown
    assert "°C" in shown


# --- free text ----------------------------------------------------------------------------------


@pytest.mark.parametrize("languages", sorted(LANGUAGES))
def test_free_text_fits_at_realistic_lengths_and_a_collection_site_at_its_longest(
    languages: str,
) -> None:
    chosen = LANGUAGES[languages]
    _needs_cjk_font(chosen)
    quarantine = STATUSES[2]
    tube = _unit_label(
        "sample_tube", quarantine, chosen, purpose="mycoplasma (PCR) retest after OOS"
    )
    drawing = lay_out(tube.template, tube.content)
    _assert_prints_whole(tube.template, drawing, tube.content.payload)
    site = ("Shanghai First Maternity and Infant Hospital, Labour and Delivery Suite 3 " * 2)[:120]
    container = _unit_label("donation_container", quarantine, chosen, site=site)
    drawing = lay_out(container.template, container.content)
    _assert_prints_whole(container.template, drawing, container.content.payload)


@pytest.mark.parametrize("languages", sorted(LANGUAGES))
def test_free_text_longer_than_its_box_is_cut_and_named(languages: str) -> None:
    """A QC sample's purpose may be 200 characters; a tube's two lines hold about 40 beside
    "QC sample / 质控样品: " (about 55 in English alone). What does not fit is cut at the last
    whole line and named in ``Drawing.cut``: only that field, never the marking (the purpose is
    on the sample's record, read with the QR code)."""
    chosen = LANGUAGES[languages]
    _needs_cjk_font(chosen)
    purpose = "sterility (BacT/ALERT), endotoxin (LAL) and mycoplasma (PCR) " * 4
    label = _unit_label("sample_tube", STATUSES[7], chosen, purpose=purpose[:200])
    drawing = lay_out(label.template, label.content)
    assert drawing.cut == ("test",)
    shown = " ".join(" ".join(line.text for line in drawing.lines).split())
    for field in ("status", "eligibility"):  # whole, as wrapped into lines
        assert " ".join(label.content.printed_texts[field].split()) in shown
    assert "QC sample" in shown  # the purpose's first line


# --- the prepared dose and the wristband --------------------------------------------------------


@pytest.mark.parametrize("languages", sorted(LANGUAGES))
def test_the_dose_label_prints_whole_with_every_marking(
    ward: Any, monkeypatch: pytest.MonkeyPatch, languages: str
) -> None:
    chosen = LANGUAGES[languages]
    _needs_cjk_font(chosen)
    order = ward.prepared(labelled=False)
    order.patient.study_id = STUDY_ID  # the longest a study ID is (not committed)
    dose = order.dose_unit
    for status in STATUSES:
        marking = status.marking()
        monkeypatch.setattr(
            content,
            "_status_markings",
            lambda _s, units, m=marking: {unit.id: m for unit in units},
        )
        dose.donation.eligibility = status.eligibility
        label = label_for(
            db.session,
            dose,
            templates=TEMPLATES,
            zone=ZONE,
            isbt=IsbtSettings({}),
            languages=chosen,
        )
        assert STUDY_ID in label.content.printed_texts["patient_study_id"]
        drawing = lay_out(label.template, label.content)
        _assert_prints_whole(label.template, drawing, label.content.payload)
    db.session.rollback()


@pytest.mark.parametrize("languages", sorted(LANGUAGES))
def test_the_wristband_prints_the_longest_study_id_whole(languages: str) -> None:
    chosen = LANGUAGES[languages]
    _needs_cjk_font(chosen)
    patient = SimpleNamespace(
        status="enrolled",
        study_id=STUDY_ID,
        coi=COI.canonical,
        protocol=SimpleNamespace(code=PROTOCOL_CODE),
    )
    band = wristband_for(patient, templates=TEMPLATES, languages=chosen)  # type: ignore[arg-type]
    drawing = lay_out(band.template, band.content)
    _assert_prints_whole(band.template, drawing, band.content.payload)
    shown = " ".join(line.text for line in drawing.lines)
    assert STUDY_ID in shown and PROTOCOL_CODE in shown


def test_the_labels_keep_their_stock_and_a_qr_code_a_scanner_reads() -> None:
    """Version 2 of the vial and the tube made room by a smaller QR code: never below 12 mm
    (it still decodes: the tests above read every label's PNG and PDF)."""
    sizes = {name: (t.width_mm, t.height_mm) for name, t in TEMPLATES.items()}
    assert sizes["bank_vial"] == sizes["sample_tube"] == (38, 19)
    assert sizes["culture_vessel"] == (51, 25) and sizes["donation_container"] == (76, 51)
    assert sizes["cryobag"] == sizes["prepared_dose"] == (102, 76)
    assert all(template.qr.width_mm >= 12 for template in TEMPLATES.values())
