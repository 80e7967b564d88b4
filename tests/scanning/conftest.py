"""A site with one record of every kind the scan box reads (issue 21)."""

from __future__ import annotations

from typing import Any

from cellchain.extensions import db
from tests.support.scenes import scene


@scene
def scan_site(ward: Any, released: Any, bench: Any) -> dict[str, Any]:
    """A patient AS-001 whose dose travelled in shipper DS-0104, the released lot, the bench's
    material lots (MEDIUM-001, …) and equipment (BSC-01, …): each kind's code and record id."""
    patient = ward.patient()
    order = ward.prepared(patient)
    shipment = ward.ship(order, shipper="DS-0104")
    medium = bench.materials["medium"]
    cabinet = bench.equipment["BSC-01"]
    db.session.commit()
    return {
        "din": released.lot_number[:14],
        "donation_id": released.donation_id,
        "unit": order.bags[0].unit.code,
        "unit_id": order.bags[0].unit.id,
        "lot": released.lot_number,
        "lot_id": released.id,
        "patient": patient.study_id,
        "patient_id": patient.id,
        "coi": patient.coi,
        "shipper": shipment.shipper_id,
        "shipment_id": shipment.id,
        "material": medium.lot_number,
        "material_id": medium.id,
        "equipment": cabinet.code,
        "equipment_id": cabinet.id,
    }
