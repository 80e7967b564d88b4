"""Material stock (issue 22): quantities received, used per step (from the step's own
figures or entered), adjusted, remaining; refusals, nothing saved; the time of use."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing.models import (
    MaterialCategory,
    ProcessingStep,
    StepKind,
    StepMaterial,
    StockAdjustmentKind,
    StockUnit,
)
from cellchain.manufacturing.processing import processing, resources
from cellchain.manufacturing.stock import service as stock
from cellchain.traceability.models import RecallTarget
from cellchain.traceability.recalls import recalls
from tests.conftest import TEST_PASSWORD


def remaining(lot: Any) -> float | None:
    return stock.remaining_of(db.session, [lot.id])[lot.id]


def steps() -> int:
    return db.session.scalar(select(func.count()).select_from(ProcessingStep))


def uses_of(lot: Any) -> list[StepMaterial]:
    return list(
        db.session.scalars(select(StepMaterial).where(StepMaterial.material_lot_id == lot.id))
    )


def test_a_receipt_keeps_its_quantity_and_unit_and_all_of_it_remains(stocked: Any) -> None:
    medium = stocked.lots["medium"]
    assert (medium.quantity_received, medium.unit) == (1000, "mL")
    assert remaining(medium) == 1000
    entry = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "material_lot.received", AuditEntry.entity_id == str(medium.id)
        )
    ).one()
    assert json.loads(entry.changes)["quantity_received"] == [None, "1000 mL"]


@pytest.mark.parametrize(
    ("quantity", "unit"),
    [(0.0, StockUnit.ML), (-5.0, StockUnit.G), (10.0, None), (None, StockUnit.G)],
)
def test_a_receipt_without_a_positive_quantity_and_its_unit_is_refused(
    bench: Any, quantity: Any, unit: Any
) -> None:
    entry = resources.MaterialLotInput(
        "X", MaterialCategory.OTHER, "S", "Q-1", utcnow().date(), quantity, unit
    )
    if quantity is None and unit is None:
        return
    with pytest.raises(InvalidInput):
        resources.receive_material_lot(db.session, entry, actor=bench.lab.tech, now=utcnow())


def test_an_entered_use_is_counted_and_a_missing_one_is_refused_nothing_saved(
    stocked: Any,
) -> None:
    before = steps()
    with pytest.raises(InvalidInput, match="Enter the quantity of α-MEM") as refused:
        stocked.isolate("medium", "hpl", quantities={"hpl": 6})
    assert "material_quantities" in refused.value.errors
    db.session.rollback()
    assert steps() == before and remaining(stocked.lots["hpl"]) == 100

    step = stocked.isolate("medium", "hpl", quantities={"medium": 60, "hpl": 6})
    assert remaining(stocked.lots["medium"]) == 940 and remaining(stocked.lots["hpl"]) == 94
    (use,) = uses_of(stocked.lots["medium"])
    assert (use.step_id, use.quantity, use.quantity_source) == (step.id, 60, "entered")
    audited = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "step.isolation", AuditEntry.entity_id == str(step.id)
        )
    ).one()
    assert (
        "α-MEM lot MEDIUM-S1 (Stock Supplier): 60 mL (entered)"
        in json.loads(audited.changes)["material_uses"][1]
    )


def test_the_fills_dmso_and_albumin_default_from_its_figures_and_can_be_entered(
    stocked: Any,
) -> None:
    stocked.fill("dmso", "albumin", "bags")
    # 4 bags × 20 mL = 80 mL at 10 % DMSO: 8 mL DMSO, 72 mL albumin; 4 cryobags
    assert remaining(stocked.lots["dmso"]) == 92
    assert remaining(stocked.lots["albumin"]) == 928
    assert remaining(stocked.lots["bags"]) == 46
    assert {use.quantity_source for use in uses_of(stocked.lots["dmso"])} == {"step"}
    stocked.fill("dmso", quantities={"dmso": 9.5})
    assert remaining(stocked.lots["dmso"]) == 82.5
    assert [use.quantity_source for use in uses_of(stocked.lots["dmso"])].count("entered") == 1


def test_the_freezing_of_a_lot_defaults_its_dmso_from_the_lots_bags(stocked: Any) -> None:
    lot = stocked.fill()
    processing.freeze_lot(
        db.session,
        lot,
        context=stocked.bench.context(
            material_lot_ids=(stocked.lots["dmso"].id,),
            equipment_ids=(stocked.bench.equipment["CRF-01"].id,),
        ),
        actor=stocked.tech,
        now=utcnow(),
    )
    db.session.commit()
    assert remaining(stocked.lots["dmso"]) == 92  # 4 bags × 20 mL × 10 %


def test_using_more_than_remains_is_refused_nothing_saved(stocked: Any) -> None:
    before = steps()
    with pytest.raises(Conflict, match=r"1000\.5 mL used is more than the 1000 mL that remains"):
        stocked.isolate("medium", quantities={"medium": 1000.5})
    db.session.rollback()
    assert steps() == before and remaining(stocked.lots["medium"]) == 1000
    stocked.isolate("medium", quantities={"medium": 1000})  # the last drop may be used
    assert remaining(stocked.lots["medium"]) == 0


def test_a_quantity_for_a_lot_the_step_does_not_use_is_refused(stocked: Any) -> None:
    with pytest.raises(InvalidInput, match="which this step does not use"):
        stocked.isolate("medium", quantities={"medium": 10, "hpl": 1})


def test_a_lot_not_counted_is_used_as_before(bench: Any) -> None:
    """The bench's lots were received without a quantity (as lots on file before 0041)."""
    step = bench.isolate(bench.lab.eligible_donation())
    assert {(use.quantity, use.quantity_source) for use in step.materials} == {(None, None)}
    assert remaining(bench.materials["medium"]) is None


def test_default_use_only_where_the_step_has_the_figure_and_no_other_lot_shares_it(
    stocked: Any,
) -> None:
    lots = stocked.lots
    fill_figures = stock.StepFigures(StepKind.FILL, containers=4, volume_ml=80, dmso_percent=10)
    assert stock.default_use(lots["dmso"], fill_figures, [lots["dmso"]]) == 8
    assert stock.default_use(lots["albumin"], fill_figures, [lots["albumin"]]) == 72
    assert stock.default_use(lots["bags"], fill_figures, [lots["bags"]]) == 4
    assert stock.default_use(lots["medium"], fill_figures, [lots["medium"]]) is None
    second = stocked.receive("dmso2", "DMSO 2", MaterialCategory.CRYOPROTECTANT, 10, StockUnit.ML)
    assert stock.default_use(lots["dmso"], fill_figures, [lots["dmso"], second]) is None
    passage = stock.StepFigures(StepKind.PASSAGE, containers=6)
    assert stock.default_use(lots["dmso"], passage, [lots["dmso"]]) is None
    assert stock.default_use(lots["bags"], passage, [lots["bags"]]) == 6


# --- adjustments -------------------------------------------------------------------------------


def adjust(stocked: Any, key: str, kind: StockAdjustmentKind, quantity: float, reason: str):
    done = stock.adjust_stock(
        db.session,
        stocked.lots[key],
        stock.AdjustmentInput(kind, quantity, reason),
        actor=stocked.tech,
        now=utcnow(),
    )
    db.session.commit()
    return done


def test_write_off_spillage_and_count_correction_change_what_remains_audited(
    stocked: Any,
) -> None:
    adjust(stocked, "medium", StockAdjustmentKind.SPILLAGE, 25, "Bottle tipped over in the BSC")
    adjust(stocked, "medium", StockAdjustmentKind.WRITE_OFF, 75, "Cap seal broken on receipt")
    assert remaining(stocked.lots["medium"]) == 900
    corrected = adjust(
        stocked, "medium", StockAdjustmentKind.COUNT_CORRECTION, 910, "Monthly count"
    )
    assert corrected.quantity == 10 and remaining(stocked.lots["medium"]) == 910
    trail = db.session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.entity_type == "material_lot",
            AuditEntry.entity_id == str(stocked.lots["medium"].id),
        )
        .order_by(AuditEntry.seq)
    ).all()
    actions = [(e.action, e.reason) for e in trail if e.action != "records.state"]
    assert (
        ("material_lot.spillage", "Bottle tipped over in the BSC") in actions
        and ("material_lot.write_off", "Cap seal broken on receipt") in actions
        and ("material_lot.count_correction", "Monthly count") in actions
    )
    last = next(e for e in trail if e.action == "material_lot.count_correction")
    assert json.loads(last.changes)["remaining"] == [900, 910]


def test_adjustments_are_refused_beyond_what_remains_without_reason_or_uncounted(
    stocked: Any,
) -> None:
    with pytest.raises(Conflict, match="more than the 1000 mL that remains"):
        adjust(stocked, "medium", StockAdjustmentKind.WRITE_OFF, 1001, "Expired")
    db.session.rollback()
    with pytest.raises(InvalidInput, match="reason"):
        adjust(stocked, "medium", StockAdjustmentKind.SPILLAGE, 1, "   ")
    db.session.rollback()
    with pytest.raises(Conflict, match="already says"):
        adjust(stocked, "medium", StockAdjustmentKind.COUNT_CORRECTION, 1000, "Count")
    db.session.rollback()
    with pytest.raises(Conflict, match="not counted"):
        stock.adjust_stock(
            db.session,
            stocked.bench.materials["medium"],
            stock.AdjustmentInput(StockAdjustmentKind.WRITE_OFF, 1, "Expired"),
            actor=stocked.tech,
            now=utcnow(),
        )
    db.session.rollback()
    assert remaining(stocked.lots["medium"]) == 1000


# --- the time of use ---------------------------------------------------------------------------


def test_a_lot_released_after_the_steps_time_is_refused(stocked: Any) -> None:
    later = stocked.receive(
        "late",
        "α-MEM",
        MaterialCategory.MEDIUM,
        500,
        StockUnit.ML,
        released_at=utcnow() + dt.timedelta(minutes=30),
    )
    before = steps()
    with pytest.raises(Conflict, match="after this step's time") as refused:
        stocked.isolate("late", quantities={"late": 10})
    assert refused.value.title == "Material not released"
    db.session.rollback()
    assert steps() == before and remaining(later) == 500


def _zone_not_on_utcs_day(now: dt.datetime) -> tuple[ZoneInfo, int]:
    """A zone whose calendar day differs from UTC's at ``now``, and by how many days."""
    if now.hour >= 10:
        return ZoneInfo("Pacific/Kiritimati"), 1  # UTC+14
    return ZoneInfo("Etc/GMT+12"), -1  # UTC-12


def test_expiry_is_read_on_the_sites_calendar_at_the_steps_time(stocked: Any) -> None:
    now = utcnow()
    zone, shift = _zone_not_on_utcs_day(now)
    local_day = now.astimezone(zone).date()
    assert local_day == now.date() + dt.timedelta(days=shift)
    # expires the day before the site's day: refused, whatever UTC's day says
    stocked.receive(
        "old",
        "α-MEM",
        MaterialCategory.MEDIUM,
        500,
        StockUnit.ML,
        expiry=local_day - dt.timedelta(days=1),
        released_at=now - dt.timedelta(days=2),  # released while in date, on any calendar
        zone=zone,
    )
    # expires on the site's day: still usable that day (and released on it, whatever UTC's
    # day says: before 10:00 UTC the site's day is UTC's yesterday)
    stocked.receive(
        "today", "α-MEM", MaterialCategory.MEDIUM, 500, StockUnit.ML, expiry=local_day, zone=zone
    )
    with pytest.raises(Conflict, match="expired on") as refused:
        stocked.isolate("old", quantities={"old": 10}, zone=zone)
    assert refused.value.title == "Material expired"
    db.session.rollback()
    stocked.isolate("today", quantities={"today": 10}, zone=zone)
    assert remaining(stocked.lots["today"]) == 490


def test_a_recalled_lot_is_refused(stocked: Any) -> None:
    lot = stocked.lots["medium"]
    recalls.open_recall(
        db.session,
        target=RecallTarget.MATERIAL_LOT,
        target_id=lot.id,
        reason="Endotoxin above the supplier's limit",
        user=stocked.bench.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    before = steps()
    with pytest.raises(Conflict, match="recalled"):
        stocked.isolate("medium", quantities={"medium": 10})
    db.session.rollback()
    assert steps() == before and remaining(lot) == 1000


# --- the list, the queue -------------------------------------------------------------------------


def test_warnings_count_expiring_expired_in_stock_and_low(stocked: Any) -> None:
    today = utcnow().date()
    counted = stock.count_warnings(db.session, today=today, within_days=30)
    assert counted == stock.StockWarnings(expiring=0, expired_in_stock=0, low=0)
    stocked.receive(
        "soon",
        "TrypLE",
        MaterialCategory.ENZYME,
        100,
        StockUnit.ML,
        expiry=today + dt.timedelta(days=20),
    )
    stocked.receive(
        "gone",
        "TrypLE",
        MaterialCategory.ENZYME,
        100,
        StockUnit.ML,
        expiry=today - dt.timedelta(days=1),
        release=False,
    )
    stock.set_reorder_level(
        db.session,
        material="α-MEM",
        unit=StockUnit.ML,
        level=1500,
        actor=stocked.tech,
        now=utcnow(),
    )
    db.session.commit()
    counted = stock.count_warnings(db.session, today=today, within_days=30)
    assert counted == stock.StockWarnings(expiring=1, expired_in_stock=1, low=1)
    assert stock.count_warnings(db.session, today=today, within_days=10).expiring == 0
    # the expired lot written off: no longer in stock; α-MEM above its level again
    adjust(stocked, "gone", StockAdjustmentKind.WRITE_OFF, 100, "Expired")
    stock.set_reorder_level(
        db.session, material="α-MEM", unit=StockUnit.ML, level=500, actor=stocked.tech, now=utcnow()
    )
    db.session.commit()
    counted = stock.count_warnings(db.session, today=today, within_days=30)
    assert counted == stock.StockWarnings(expiring=1, expired_in_stock=0, low=0)


def test_the_stock_list_pages_sorts_by_remaining_and_filters(stocked: Any) -> None:
    from cellchain.core.listing import Direction, PageRequest

    stocked.isolate("medium", quantities={"medium": 990})
    page = stock.stock_page(
        db.session,
        PageRequest(sort="remaining", direction=Direction.ASC, page_size=2, search="S1"),
        today=utcnow().date(),
    )
    assert page.total == 5 and page.pages == 3
    assert [(row.lot.lot_number, row.remaining) for row in page.items] == [
        ("MEDIUM-S1", 10),
        ("BAGS-S1", 50),
    ]
    stock.set_reorder_level(
        db.session, material="α-MEM", unit=StockUnit.ML, level=100, actor=stocked.tech, now=utcnow()
    )
    low = stock.stock_page(
        db.session, PageRequest(), today=utcnow().date(), state=stock.StockState.LOW
    )
    assert {row.lot.material for row in low.items} == {"α-MEM"}


def test_a_lot_is_released_on_the_sites_calendar(stocked: Any) -> None:
    """At 00:30 UTC on 8 December it is still 7 December at a site on UTC−12: a lot expiring
    on the 7th may be released there, and not at a site on UTC."""
    lot = stocked.receive(
        "edge",
        "α-MEM",
        MaterialCategory.MEDIUM,
        500,
        StockUnit.ML,
        expiry=dt.date(2026, 12, 7),
        release=False,
    )
    at = dt.datetime(2026, 12, 8, 0, 30, tzinfo=dt.UTC)
    with pytest.raises(Conflict, match="expired on 2026-12-07"):
        resources.release_material_lot(db.session, lot, actor=stocked.bench.lab.qa, now=at)
    resources.release_material_lot(
        db.session, lot, actor=stocked.bench.lab.qa, now=at, zone=ZoneInfo("Etc/GMT+12")
    )
    assert lot.released_at == at
