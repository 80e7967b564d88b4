"""Shipments and thaw: doses leave the lab once, every hand-off is a scanned custody event,
a receipt with an excursion holds the dose for QA, a shipment is received once; a bag is
thawed by two scans and only after receipt."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from cellchain.chain.models import UnitEvent
from cellchain.clinic.bedside import thaw
from cellchain.clinic.shipments import shipments
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput, StateConflict
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.ward import Ward, payload


def events(unit: Any, kind: str) -> list[UnitEvent]:
    return list(
        db.session.execute(
            select(UnitEvent).where(UnitEvent.unit_id == unit.id, UnitEvent.event_type == kind)
        ).scalars()
    )


def test_dispatch_moves_the_dose_and_its_bags_to_dispensed_handed_to_the_courier(
    ward: Ward,
) -> None:
    order = ward.prepared()
    shipment = ward.ship(order)
    assert shipment.status == "in_transit" and [i.dose_order_id for i in shipment.items] == [
        order.id
    ]
    for unit in [order.dose_unit, *(b.unit for b in order.bags)]:
        assert unit.status == "dispensed"
        (handed,) = events(unit, "handed_off")
        assert handed.counterparty == "courier: J. Doe" and "DS-0001" in handed.note
    assert shipments.ready_to_ship(db.session) == []


def test_a_dose_ships_once_and_only_when_prepared(ward: Ward) -> None:
    order = ward.prepared()
    ward.ship(order)
    with pytest.raises(InvalidInput, match="already left the lab"):
        ward.ship(order)
    db.session.rollback()
    patient = ward.patient()
    from cellchain.dosing import orders
    from tests.support.clinic import UTC

    allocated = orders.order_dose(
        db.session, patient, "D0", actor=ward.lab.tech, now=utcnow(), zone=UTC
    )
    db.session.commit()
    with pytest.raises(InvalidInput, match="not second-checked yet"):
        shipments.dispatch(
            db.session,
            shipments.Dispatch(
                "DS-2", "TL-2", "Clinic", "courier", [payload(allocated.bags[0].unit.code)]
            ),
            actor=ward.lab.tech,
            now=utcnow(),
        )


def test_a_dispatch_names_every_missing_field_and_unreadable_scan(ward: Ward) -> None:
    with pytest.raises(InvalidInput) as refused:
        shipments.dispatch(
            db.session,
            shipments.Dispatch("", "", "", "", ["CC1.NOPE"]),
            actor=ward.lab.tech,
            now=utcnow(),
        )
    # the destination is the clinical site (the only one here); where at the site is optional
    assert set(refused.value.errors) == {"shipper_id", "logger_id", "courier", "doses"}


def test_a_hand_off_is_scanned_and_recorded_on_every_unit(ward: Ward) -> None:
    order = ward.prepared()
    shipment = ward.ship(order)
    shipments.hand_off(
        db.session,
        shipment,
        shipments.HandOff(
            scan="DS-0001", counterparty="clinic porter: A. Smith", temperature_c=-190
        ),
        actor=ward.clinic.clinician,
        now=utcnow(),
    )
    db.session.commit()
    assert len(events(order.bags[0].unit, "handed_off")) == 2
    with pytest.raises(InvalidInput, match="neither shipper"):
        shipments.hand_off(
            db.session,
            shipment,
            shipments.HandOff(scan="DS-9999", counterparty="someone"),
            actor=ward.clinic.clinician,
            now=utcnow(),
        )


def test_receipt_records_time_temperature_and_condition_at_the_clinic(ward: Ward) -> None:
    order = ward.prepared()
    shipment = ward.receive(ward.ship(order), temperature_c=-182.5)
    assert shipment.status == "received" and shipment.hold_reason is None
    (received,) = events(order.dose_unit, "received")
    assert received.temperature_c == -182.5 and received.location == "Clinic — infusion room 2"
    assert order.dose_unit.location == "Clinic — infusion room 2"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"temperature_c": -120.0}, "above the storage limit of -135"),
        ({"condition": "damaged"}, "damaged"),
        ({"logger_excursion": True}, "logger"),
    ],
)
def test_an_excursion_or_damage_on_arrival_holds_the_dose_for_qa(
    ward: Ward, changes: dict[str, Any], reason: str
) -> None:
    order = ward.prepared()
    shipment = ward.receive(ward.ship(order), **changes)
    assert shipment.status == "held" and reason in shipment.hold_reason
    with pytest.raises(Conflict, match="on hold"):
        thaw.scan_thaw(
            db.session, payload(order.dose_unit.code), actor=ward.clinic.clinician, now=utcnow()
        )
    db.session.rollback()
    check = ward.verify(order.patient, order)
    assert "not_recalled" in {c["code"] for c in check.failed}


def test_qa_accepts_a_held_shipment_with_a_signature_and_the_dose_can_be_used(ward: Ward) -> None:
    order = ward.prepared()
    shipment = ward.receive(ward.ship(order), logger_excursion=True)
    shipments.decide_hold(
        db.session,
        shipment,
        accept=True,
        reason="Logger spike of 2 min to −150 °C: within the validated stability.",
        user=ward.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    assert shipment.status == "received" and shipment.decided_by.username == ward.lab.qa.username
    ward.thaw(order)
    assert ward.verify(order.patient, order).verdict == "go"


def test_qa_rejecting_a_held_shipment_cancels_its_doses_and_discards_their_units(
    ward: Ward,
) -> None:
    order = ward.prepared()
    shipment = ward.receive(ward.ship(order), temperature_c=-60.0)
    shipments.decide_hold(
        db.session,
        shipment,
        accept=False,
        reason="Thawed in transit.",
        user=ward.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    assert shipment.status == "rejected" and order.status == "cancelled"
    assert {u.status for u in [order.dose_unit, *(b.unit for b in order.bags)]} == {"discarded"}
    with pytest.raises(StateConflict):
        shipments.decide_hold(
            db.session,
            shipment,
            accept=True,
            reason="again",
            user=ward.lab.qa,
            password=TEST_PASSWORD,
            now=utcnow(),
        )


def test_a_shipment_received_twice_is_refused_with_who_received_it(ward: Ward) -> None:
    shipment = ward.receive(ward.ship(ward.prepared()))
    with pytest.raises(Conflict, match="already received"):
        ward.receive(shipment)


def test_a_receipt_without_a_temperature_or_a_wrong_scan_is_refused(ward: Ward) -> None:
    shipment = ward.ship(ward.prepared())
    with pytest.raises(InvalidInput) as refused:
        ward.receive(shipment, temperature_c=None)
    assert "temperature_c" in refused.value.errors
    db.session.rollback()
    with pytest.raises(InvalidInput, match="neither shipper"):
        ward.receive(shipment, scan="DS-0002")


def test_the_thaw_starts_and_completes_by_scanning_and_a_bag_thaws_once(ward: Ward) -> None:
    order = ward.prepared()
    ward.receive(ward.ship(order))
    bag = payload(order.bags[0].unit.code)
    step = thaw.scan_thaw(db.session, bag, actor=ward.clinic.clinician, now=utcnow())
    db.session.commit()
    assert len(step.started) == 1 and step.completed == []
    state = thaw.thaw_state(db.session, order)
    started_at = step.started[0].started_at
    assert not state.complete  # the clock runs from the start of the thaw
    assert state.expires_at == started_at + dt.timedelta(minutes=60)
    for seconds in (0, 119):  # a double scan, a bag taken out still frozen: not thawed
        with pytest.raises(Conflict, match="at least 2 min to thaw"):
            thaw.scan_thaw(
                db.session,
                bag,
                actor=ward.clinic.clinician,
                now=started_at + dt.timedelta(seconds=seconds),
            )
        db.session.rollback()
    step = thaw.scan_thaw(
        db.session, bag, actor=ward.clinic.clinician, now=started_at + dt.timedelta(minutes=2)
    )
    db.session.commit()
    assert len(step.completed) == 1
    state = thaw.thaw_state(db.session, order)
    assert state.complete and state.window_minutes == 60
    assert state.expires_at == started_at + dt.timedelta(minutes=60)
    with pytest.raises(Conflict, match="already thawed"):
        thaw.scan_thaw(
            db.session, bag, actor=ward.clinic.clinician, now=utcnow() + dt.timedelta(minutes=3)
        )


def test_a_dose_still_in_the_lab_is_not_thawed(ward: Ward) -> None:
    order = ward.prepared()
    with pytest.raises(Conflict, match="has not left the lab"):
        thaw.scan_thaw(
            db.session, payload(order.dose_unit.code), actor=ward.clinic.clinician, now=utcnow()
        )


@pytest.mark.postgres_only
def test_a_dose_dispatched_twice_at_once_leaves_once(app: Any, ward: Ward) -> None:
    from sqlalchemy import func

    from cellchain.clinic.models import ShipmentItem
    from tests.conftest import at_once

    order = ward.prepared()
    label, tech_id = payload(order.dose_unit.code), ward.lab.tech.id

    def dispatching(shipper: str):
        def job() -> str:
            from cellchain.core.models import User

            try:
                shipments.dispatch(
                    db.session,
                    shipments.Dispatch(shipper, "TL-1", "Clinic", "courier", [label]),
                    actor=db.session.get(User, tech_id),
                    now=utcnow(),
                )
                db.session.commit()
                return "dispatched"
            except (Conflict, InvalidInput):
                db.session.rollback()
                return "refused"

        return job

    assert at_once(app, [dispatching("DS-A"), dispatching("DS-B")]) == ["dispatched", "refused"]
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(ShipmentItem)).scalar_one() == 1


def test_a_dose_whose_bag_went_back_to_quarantine_does_not_leave_the_lab(ward: Ward) -> None:
    from cellchain.chain import service as chain
    from cellchain.chain.models import UnitStatus

    order = ward.prepared()
    chain.change_status(
        db.session,
        order.bags[0].unit,
        UnitStatus.QUARANTINE,
        actor=ward.lab.qa,
        now=utcnow(),
        reason="held while a deviation is investigated",
    )
    db.session.commit()
    with pytest.raises(InvalidInput, match="cannot be dispensed") as refused:
        ward.ship(order)
    assert "quarantine" in refused.value.detail
