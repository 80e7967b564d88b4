"""The demo's stock (issue 22), on a copy of the demo site: every counted lot's receipt, uses
and adjustments add up to what remains, every use of a counted lot has its quantity, and
the technician's queue shows the demo's warnings."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.models import MaterialLot, StepMaterial, StockAdjustment
from cellchain.manufacturing.stock import service as stock


@pytest.fixture
def database_url(demo_database_url: str) -> str:
    return demo_database_url


def test_the_demos_quantities_received_used_and_adjusted_add_up(app: Any) -> None:
    lots = db.session.scalars(select(MaterialLot).order_by(MaterialLot.id)).all()
    assert lots and all(lot.quantity_received is not None for lot in lots)
    left = stock.remaining_of(db.session, [lot.id for lot in lots])
    for lot in lots:
        uses = db.session.scalars(
            select(StepMaterial).where(StepMaterial.material_lot_id == lot.id)
        ).all()
        adjusted = db.session.scalars(
            select(StockAdjustment.quantity).where(StockAdjustment.material_lot_id == lot.id)
        ).all()
        assert all(use.quantity is not None and use.quantity > 0 for use in uses), lot.label
        expected = lot.quantity_received - sum(use.quantity for use in uses) + sum(adjusted)
        assert left[lot.id] == pytest.approx(expected) and left[lot.id] >= 0, lot.label
    by_number = {lot.lot_number: left[lot.id] for lot in lots}
    # five expansions: 14 800 mL of α-MEM used, 500 mL spilt; the fill's DMSO from its
    # figures (10 bags × 20 mL × 10 % each time); 0.5 g of collagenase
    assert by_number["MEDIUM-24117"] == pytest.approx(20000 - 14800 - 500)
    assert by_number["DMSO-24117"] == pytest.approx(250 - 5 * 20)
    assert by_number["ALBUMIN-24117"] == pytest.approx(1000 - 5 * 180)
    assert by_number["ENZYME-24117"] == pytest.approx(0.5)


def test_the_demos_warnings_are_in_the_technicians_queue(app: Any, clients: Any) -> None:
    from cellchain.core.models import User

    tech = db.session.scalars(select(User).where(User.username == "tech")).one()
    counted = stock.count_warnings(db.session, today=utcnow().date(), within_days=30)
    assert counted == stock.StockWarnings(expiring=1, expired_in_stock=1, low=1)
    body = clients.api(tech).get("/api/v1/worklist").get_json()
    items = {item["key"]: item["count"] for queue in body["queues"] for item in queue["items"]}
    assert (
        items["materials_expiring"],
        items["materials_expired_in_stock"],
        items["materials_low"],
    ) == (1, 1, 1)
