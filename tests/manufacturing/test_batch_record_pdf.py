"""The batch record PDF: read back as text, it carries every step, lot, code and flag."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from cellchain.core import pdf as core_pdf
from cellchain.core.identifiers import parse_identifier
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.models import Deviation, Lot, StepKind
from cellchain.manufacturing.processing import processing
from cellchain.manufacturing.processing.batch_record import batch_record
from cellchain.manufacturing.processing.batch_record_pdf import render_batch_record_pdf
from tests.support.pdf import pages_text, squeeze

ZURICH = ZoneInfo("Europe/Zurich")


def expanded_lot(bench: Any, bags: int = 10, **fill: Any) -> Lot:
    """Isolation into P0, three passages to P3, a fill, and the controlled-rate freezing."""
    donation = bench.lab.eligible_donation()
    vessels = bench.outputs(bench.isolate(donation, vessels=2, cells=1.0e6))
    vessels = bench.outputs(bench.passage(vessels, harvested=8.0e6, seed=[1.0e6] * 4))
    vessels = bench.outputs(bench.passage(vessels, harvested=3.2e7, seed=[2.0e6] * 8))
    vessels = bench.outputs(bench.passage(vessels, harvested=1.2e8, seed=[1.0e7] * 8, fmt="CS2"))
    lot = bench.fill(vessels, harvested=1.0e9, bags=bags, **fill)
    processing.freeze_lot(
        db.session,
        lot,
        context=bench.context(equipment_ids=(bench.equipment["CRF-01"].id,)),
        actor=bench.lab.tech,
        now=utcnow(),
    )
    db.session.commit()
    return lot


def render(lot: Lot) -> bytes:
    return render_batch_record_pdf(
        batch_record(db.session, lot),
        site_name="Cell Therapy Unit, City Hospital",
        zone=ZURICH,
        generated_at=dt.datetime(2026, 3, 4, 13, 5, tzinfo=dt.UTC),
        generated_by="Alex Tester",
    )


def test_the_record_of_a_p3_lot_names_every_step_material_machine_and_bag(bench):
    lot = expanded_lot(bench)
    pdf = render(lot)
    assert pdf.startswith(b"%PDF")
    text = squeeze(" ".join(pages_text(pdf)))
    record = batch_record(db.session, lot)

    assert lot.lot_number in text
    assert parse_identifier(record.donation.din).display in text
    assert record.donation.donor.code in text
    assert "QUARANTINE" in text
    assert "Limit flags none" in text
    for kind in ("isolation", "passage", "fill", "freezing"):
        assert StepKind(kind).label.capitalize() in text
    assert {step.kind for step in record.steps} == {"isolation", "passage", "fill", "freezing"}
    assert text.count("· Passage") == 3
    assert bench.materials["medium"].lot_number in text
    assert bench.materials["dmso"].lot_number in text
    assert "α-MEM" in text
    assert "CRF-01" in text and "INC-01" in text
    assert "Tina Tester (tina)" in text
    assert len(record.bags) == 10
    for bag, _cell in record.bags:
        assert parse_identifier(bag.code).display in text
    # counts in one notation; PD to two decimals (2e6 seeded → 8e6 harvested is 2 doublings)
    assert "1.00 × 10" in text and "2.00" in text
    # the site's zone is named and times are shown in it
    assert "Europe/Zurich" in text and "2026-03-04 14:05 +01:00" in text
    assert "Page 1 of" in text
    # no signature is invented: the release signatures are left to QA
    assert "none on this document" in text


def test_the_steps_read_in_tree_order(bench):
    lot = expanded_lot(bench)
    text = squeeze(" ".join(pages_text(render(lot))))
    headings = re.findall(r"Step (\d+) · (\w+)", text)
    assert headings == [
        ("1", "Isolation"),
        ("2", "Passage"),
        ("3", "Passage"),
        ("4", "Passage"),
        ("5", "Fill"),
        ("6", "Freezing"),
    ]
    assert "Fill · from step 4" in text


def test_a_harvest_pooling_two_branches_is_read_after_both(bench):
    donation = bench.lab.eligible_donation()
    p0 = bench.outputs(bench.isolate(donation, vessels=1, cells=1.0e6))
    first, second = bench.outputs(bench.passage(p0, harvested=4.0e6, seed=[1.0e6, 1.0e6]))
    left = bench.outputs(bench.passage([first], harvested=4.0e6, seed=[1.0e6]))
    right = bench.outputs(bench.passage([second], harvested=4.0e6, seed=[1.0e6]))
    lot = bench.fill(left + right, harvested=8.0e6, bags=1, volume_ml=1, total_cells_per_ml=1e6)
    text = squeeze(" ".join(pages_text(render(lot))))
    headings = re.findall(r"Step (\d+) · (\w+) · from (steps? \d+(?:, \d+)*)", text)
    assert headings == [
        ("2", "Passage", "step 1"),
        ("3", "Passage", "step 2"),
        ("4", "Passage", "step 2"),
        ("5", "Fill", "steps 3, 4"),
    ]


def test_without_dejavu_the_built_in_fonts_print_the_same_record(bench, monkeypatch):
    lot = expanded_lot(bench, bags=2)
    monkeypatch.setattr(core_pdf, "DEJAVU_DIRS", ())
    core_pdf.load_fonts.cache_clear()
    try:
        pdf = render(lot)
    finally:
        core_pdf.load_fonts.cache_clear()
    assert b"DejaVu" not in pdf and b"/Courier" in pdf
    text = squeeze(" ".join(pages_text(pdf)))
    assert parse_identifier(lot.lot_number[:14]).display in text
    assert "1.00 × 10^6" in text  # no superscript digits in the built-in fonts
    assert "Page 1 of" in text


def test_limit_flags_are_shown(bench):
    donation = bench.lab.eligible_donation()
    deviation = bench.authorised_excursion(donation, max_passage=6)
    vessels = bench.outputs(
        bench.passage(bench.p5(donation), harvested=4.0e5, seed=[1.0e5], deviation_id=deviation.id)
    )
    lot = bench.fill(
        vessels,
        harvested=4.0e5,
        bags=1,
        volume_ml=0.01,
        dmso_percent=12,
        deviation_id=deviation.id,
    )
    assert lot.limit_flags
    text = squeeze(" ".join(pages_text(render(lot))))
    assert "release is blocked" in text
    for flag in lot.limit_flags:
        assert flag in text
    assert "Limit flags none" not in text
    assert f"under deviation #{deviation.id} (open), authorised up to P6 by" in text
    assert "signature VALID" in text


def test_deviations_are_listed_with_what_people_typed_kept_as_text(bench):
    lot = expanded_lot(bench, bags=2)
    now = utcnow()
    db.session.add_all(
        [
            Deviation(
                lot_id=lot.id,
                category="storage_excursion",
                description="LN2-01 read -120 °C for 14 min <alarm> & refill",
                status="open",
                opened_at=now,
                opened_by_id=bench.lab.tech.id,
            ),
            Deviation(
                lot_id=lot.id,
                category="documentation",
                description="Incubator ID missing on the P2 sheet",
                status="closed",
                opened_at=now,
                opened_by_id=bench.lab.tech.id,
                closed_at=now,
                closed_by_id=bench.lab.qa.id,
                resolution="Entered from the incubator log",
            ),
        ]
    )
    db.session.commit()
    text = squeeze(" ".join(pages_text(render(lot))))
    assert "storage excursion" in text and "OPEN" in text and "CLOSED" in text
    assert "<alarm> & refill" in text
    assert "Entered from the incubator log" in text
    assert "2 recorded, 1 open" in text


def test_a_lot_of_sixty_bags_runs_over_pages_each_with_the_header(bench):
    lot = expanded_lot(bench, bags=60, total_cells_per_ml=5.0e5)
    record = batch_record(db.session, lot)
    pages = [squeeze(page) for page in pages_text(render(lot))]
    assert len(pages) > 1
    for number, page in enumerate(pages, start=1):
        assert lot.lot_number in page
        assert "Cell Therapy Unit, City Hospital" in page
        assert f"Page {number} of {len(pages)}" in page
        assert "Generated 2026-03-04 14:05 +01:00 by Alex Tester" in page
    text = " ".join(pages)
    for bag, _cell in record.bags:
        assert parse_identifier(bag.code).display in text
    # the table's header row is repeated on the page the bags run onto
    assert sum("Volume (mL)" in page for page in pages) >= 2
    # sixty outputs of the fill are listed compactly: the DIN once, then each bag
    assert "60 × cryobag of" in text
