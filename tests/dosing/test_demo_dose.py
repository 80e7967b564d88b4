"""The demo's AS-001 dose, on a copy of the demo site: its bags hold 5.0 × 10⁶ TOTAL cells per
mL, the release viability is applied to that once, and the deviation the order states is the
one the syringe delivers (issue 16 item 1: it used to read +0.2 % for a true +8 %)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cellchain.dosing.models import DoseOrder, Patient
from cellchain.extensions import db
from cellchain.manufacturing.models import CellRecord
from cellchain.quality.models import QcResult, ResultStatus


@pytest.fixture
def database_url(demo_database_url: str) -> str:
    """This test's database: a copy of the demo site as ``cellchain demo`` seeds it."""
    return demo_database_url


def test_as_001_is_dosed_from_total_cells_times_the_release_viability_once(
    app: Any, clients: Any, make_user: Any
) -> None:
    patient = db.session.execute(select(Patient).where(Patient.study_id == "AS-001")).scalar_one()
    (order,) = db.session.execute(
        select(DoseOrder).where(DoseOrder.patient_id == patient.id)
    ).scalars()
    (bag,) = order.bags
    record = db.session.get(CellRecord, bag.unit_id)
    viability = db.session.execute(
        select(QcResult.value_number).where(
            QcResult.lot_id == record.lot_id,
            QcResult.test_code == "VIABILITY",
            QcResult.status == ResultStatus.VALID.value,
        )
    ).scalar_one()
    assert record.total_cells_per_ml == 5.0e6 and viability == 92.4
    viable_per_ml = record.total_cells_per_ml * viability / 100  # once
    assert order.weight.weight_kg == 72.4 and order.volume_ml == 15.7
    assert order.delivered_cells == pytest.approx(order.volume_ml * viable_per_ml)
    target = 1.0e6 * order.weight.weight_kg
    assert order.deviation_percent == pytest.approx((order.delivered_cells - target) / target * 100)
    assert order.deviation_percent == pytest.approx(0.185, abs=1e-3)
    dose = clients.api(make_user("reader", "qa")).get(f"/api/v1/doses/{order.id}").get_json()
    assert any(
        "5.00 × 10⁶ total cells/mL × 92.4 % viable = 4.62 × 10⁶ viable" in w
        for w in dose["working"]
    )
