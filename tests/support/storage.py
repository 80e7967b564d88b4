"""LN2 storage set-up: a quarantined lot of bags, another tank, a unit stored in a position."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.models import EquipmentKind
from cellchain.manufacturing.processing import processing
from cellchain.manufacturing.storage import storage
from tests.support.equipment import register_in_date


def make_lot(bench: Any, bags: int = 3) -> tuple[Any, list[Any]]:
    """A quarantined lot of ``bags`` small cryobags, made through the batch record."""
    donation = bench.lab.eligible_donation()
    vessels = bench.outputs(bench.isolate(donation, vessels=1, cells=1.0e6))
    lot = bench.fill(vessels, harvested=5.0e6, bags=bags, volume_ml=1, total_cells_per_ml=1e6)
    return lot, processing.bags_of(db.session, lot)


def add_tank(bench: Any, code: str = "LN2-02", *, active: bool = True) -> Any:
    tank = register_in_date(
        db.session,
        code=code,
        kind=EquipmentKind.LN2_TANK,
        name=f"Tank {code}",
        actor=bench.lab.tech,
        now=utcnow(),
    )
    tank.active = active
    db.session.commit()
    return tank


def store(bench: Any, unit: Any, rack: str = "1", box: str = "1", slot: str = "1", **kw: Any):
    kw.setdefault("tank", bench.equipment["LN2-01"])
    now = kw.pop("now", utcnow())
    position = storage.store_unit(
        db.session,
        unit,
        rack=rack,
        box=box,
        slot=slot,
        actor=bench.lab.tech,
        now=now,
        **kw,
        zone=UTC,
    )
    db.session.commit()
    return position
