"""A destroyed (or cancelled) dose's units never come back (issue 19): whatever the order of
events — destroyed in transit, after receipt before the thaw, after the thaw before the bedside
check — its bags are not received as usable, not thawed, do not pass a bedside check and are not
infused, through the API; and the replacement dose for the visit is then ordered and infused."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from cellchain.chain.models import Unit
from cellchain.core.models import AuditEntry
from cellchain.dosing.models import DoseOrder
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.ward import payload


def _destroy(client: Any, order_id: int) -> Any:
    return client.post(
        f"/api/v1/doses/{order_id}/destroy",
        json={
            "reason": "bag dropped, outer bag cracked",
            "password": TEST_PASSWORD,
            "witness": "nina",
            "witness_password": TEST_PASSWORD,
        },
    )


def _destroyed(ward: Any, clients: Any, order: Any) -> None:
    done = _destroy(clients.api(ward.clinic.clinician), order.id)
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["status"] == "cancelled"


def _unit_statuses(order: Any) -> set[str]:
    db.session.expire_all()
    fresh = db.session.get(DoseOrder, order.id)
    assert fresh is not None
    unit_ids = [bag.unit_id for bag in fresh.bags] + [fresh.dose_unit_id]
    return {db.session.get(Unit, unit_id).status for unit_id in unit_ids}  # type: ignore[union-attr]


def _receive(client: Any, shipment: Any) -> Any:
    return client.post(
        f"/api/v1/shipments/{shipment.id}/receipt",
        json={
            "scan": shipment.shipper_id,
            "temperature_c": -185.0,
            "condition": "intact",
            "logger_excursion": False,
        },
    )


def _thaw(client: Any, order: Any) -> Any:
    return client.post("/api/v1/thaw", json={"scan": payload(order.dose_unit.code)})


def _check(client: Any, order: Any) -> Any:
    return client.post(
        "/api/v1/bedside/checks",
        json={"wristband": payload(order.patient.coi), "label": payload(order.dose_unit.code)},
    )


def _refused_downstream(clinician: Any, order: Any) -> None:
    """No thaw and no go at the bedside for the destroyed dose; its units stay discarded."""
    thawed = _thaw(clinician, order)
    assert thawed.status_code == 409 and "cancelled" in thawed.get_json()["detail"]
    check = _check(clinician, order)
    assert check.status_code == 201, check.get_json()
    verdict = check.get_json()
    assert verdict["verdict"] != "go", verdict
    assert {c["code"] for c in verdict["checks"] if not c["passed"]} >= {"prepared"}
    started = clinician.post(f"/api/v1/bedside/checks/{verdict['id']}/start")
    assert started.status_code == 409, started.get_json()
    assert _unit_statuses(order) == {"discarded"}


def test_destroyed_in_transit_its_shipment_is_received_without_making_it_usable(
    ward: Any, clients: Any
) -> None:
    # two doses in one shipper; one is destroyed on the way (bag dropped at a hand-off)
    order, other = ward.prepared(), ward.prepared()
    shipment = ward.ship(order, other)
    _destroyed(ward, clients, order)
    clinician = clients.api(ward.clinic.clinician)
    received = _receive(clinician, shipment)
    # the receipt is recorded for the live dose; the destroyed one's bags stay discarded
    assert received.status_code == 200, received.get_json()
    assert received.get_json()["status"] == "received"
    assert _unit_statuses(order) == {"discarded"}
    entry = db.session.execute(
        select(AuditEntry).where(
            AuditEntry.entity_type == "shipment",
            AuditEntry.entity_id == str(shipment.id),
            AuditEntry.action == "shipment.received",
        )
    ).scalar_one()
    named = json.dumps(entry.changes)
    assert order.dose_unit.code in named and other.dose_unit.code not in named
    _refused_downstream(clinician, order)
    # the other dose of the shipper goes on: thawed
    assert _thaw(clinician, other).status_code == 200


def test_destroyed_in_transit_then_held_and_rejected_by_qa(ward: Any, clients: Any) -> None:
    order = ward.prepared()
    shipment = ward.ship(order)
    _destroyed(ward, clients, order)
    clinician = clients.api(ward.clinic.clinician)
    held = clinician.post(
        f"/api/v1/shipments/{shipment.id}/receipt",
        json={
            "scan": shipment.shipper_id,
            "temperature_c": -185.0,
            "condition": "damaged",
            "logger_excursion": False,
        },
    )
    assert held.status_code == 200 and held.get_json()["status"] == "held", held.get_json()
    rejected = clients.api(ward.lab.qa).post(
        f"/api/v1/shipments/{shipment.id}/decision",
        json={"accept": False, "reason": "shipper damaged", "password": TEST_PASSWORD},
    )
    assert rejected.status_code == 200, rejected.get_json()
    assert rejected.get_json()["status"] == "rejected"
    assert _unit_statuses(order) == {"discarded"}
    _refused_downstream(clinician, order)


def test_destroyed_after_receipt_before_the_thaw(ward: Any, clients: Any) -> None:
    order = ward.prepared()
    ward.receive(ward.ship(order))
    _destroyed(ward, clients, order)
    _refused_downstream(clients.api(ward.clinic.clinician), order)


def test_destroyed_after_the_thaw_before_the_bedside_check(ward: Any, clients: Any) -> None:
    _patient, order = ward.at_bedside()
    _destroyed(ward, clients, order)
    _refused_downstream(clients.api(ward.clinic.clinician), order)


def test_cancelled_in_the_lab_its_dose_label_is_refused_downstream(ward: Any, clients: Any) -> None:
    order = ward.prepared()
    cancelled = clients.api(ward.lab.tech).post(
        f"/api/v1/doses/{order.id}/cancel",
        json={"reason": "patient unwell today", "password": TEST_PASSWORD},
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    clinician = clients.api(ward.clinic.clinician)
    assert _thaw(clinician, order).status_code == 409
    check = _check(clinician, order)
    assert check.status_code == 201 and check.get_json()["verdict"] != "go", check.get_json()


def test_after_a_destroyed_dose_the_replacement_is_ordered_and_infused(
    ward: Any, clients: Any
) -> None:
    patient, order = ward.at_bedside()
    _destroyed(ward, clients, order)
    _p, replacement = ward.at_bedside(patient)
    assert replacement.id != order.id and replacement.visit == order.visit
    clinician = clients.api(ward.clinic.clinician)
    check = _check(clinician, replacement)
    assert check.status_code == 201 and check.get_json()["verdict"] == "go", check.get_json()
    signed = clinician.post(
        f"/api/v1/bedside/checks/{check.get_json()['id']}/signatures",
        json={
            "password": TEST_PASSWORD,
            "second_username": "nina",
            "second_password": TEST_PASSWORD,
        },
    )
    assert signed.status_code == 200, signed.get_json()
    started = clinician.post(f"/api/v1/bedside/checks/{check.get_json()['id']}/start")
    assert started.status_code == 201, started.get_json()
    db.session.expire_all()
    assert db.session.get(DoseOrder, replacement.id).status == "infused"  # type: ignore[union-attr]
    assert _unit_statuses(order) == {"discarded"}


def test_the_receipt_page_names_the_dose_destroyed_in_transit(ward: Any, clients: Any) -> None:
    order, other = ward.prepared(), ward.prepared()
    shipment = ward.ship(order, other)
    _destroyed(ward, clients, order)
    web = clients.web(ward.clinic.clinician)
    form = {"scan": shipment.shipper_id, "temperature_c": "-185", "condition": "intact"}
    posted = web.post(f"/shipments/{shipment.id}/receipt", data=form)
    assert posted.status_code == 302, posted.get_data(as_text=True)
    page = web.get(f"/shipments/{shipment.id}").get_data(as_text=True)
    assert "Destroyed before arrival" in page and order.dose_unit.code in page
    assert _unit_statuses(order) == {"discarded"}
