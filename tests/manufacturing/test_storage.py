"""LN2 storage: positions, moves, removals, tank readings and the excursions they open."""

from __future__ import annotations

import datetime as dt
import math
from datetime import UTC
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.chain import service as chain
from cellchain.chain.models import EventType, UnitStatus
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput, NotFound
from cellchain.extensions import db
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import (
    Deviation,
    StoragePosition,
    TankReading,
)
from cellchain.manufacturing.processing import processing
from cellchain.manufacturing.storage import storage
from tests.conftest import at_once
from tests.support.storage import add_tank, make_lot, store

SECOND = dt.timedelta(seconds=1)


# --- helpers (make_lot, add_tank and store: tests/support/storage.py) -----------------------------


def make_vials(bench: Any, count: int = 2) -> list[Any]:
    donation = bench.lab.eligible_donation()
    vessels = bench.outputs(bench.isolate(donation, vessels=1, cells=1.0e6))
    step = processing.bank_freeze(
        db.session,
        vessels_in=vessels,
        harvest=processing.Harvest(cells=5.0e6, viability_percent=95.0),
        vial_count=count,
        cells_per_vial=1.0e6,
        volume_ml=1.0,
        context=bench.context(),
        actor=bench.lab.tech,
        now=utcnow(),
    )
    db.session.commit()
    return bench.outputs(step)


def read(bench: Any, temperature: float, *, tank: Any = None, at=None, now=None) -> Any:
    outcome = storage.record_tank_reading(
        db.session,
        tank or bench.equipment["LN2-01"],
        temperature_c=temperature,
        at=at,
        actor=bench.lab.tech,
        now=now or utcnow(),
        zone=UTC,
    )
    db.session.commit()
    return outcome


def count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# --- storing ------------------------------------------------------------------------------------


def test_a_bag_is_stored_its_location_and_history_say_where(bench):
    _lot, bags = make_lot(bench, bags=1)
    [bag] = bags
    position = store(bench, bag, rack="2", box="3", slot="14")
    label = "LN2-01 / rack 2 / box 3 / slot 14"
    assert position.label == label and position.unit_id == bag.id and position.since
    assert storage.position_of(db.session, bag).id == position.id
    assert chain.get_unit(db.session, bag.id).location == label
    last = chain.history(db.session, bag)[-1]
    assert last.event_type == EventType.MOVED.value and last.location == label
    assert last.actor_id == bench.lab.tech.id
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "storage.stored")
    ).scalar_one()
    assert entry.entity_id == str(position.id) and bag.code in entry.changes
    assert [p.id for p in storage.tank_contents(db.session, bench.equipment["LN2-01"])] == [
        position.id
    ]


def test_a_cell_bank_vial_can_be_stored_and_coordinates_have_one_spelling(bench):
    vial, other = make_vials(bench)
    position = store(bench, vial, rack=" 02 ", box="b", slot="007")
    assert (position.rack, position.box, position.slot) == ("2", "B", "7")
    with pytest.raises(Conflict, match=vial.code):
        storage.store_unit(
            db.session,
            other,
            tank=bench.equipment["LN2-01"],
            rack="2",
            box="B",
            slot="7",
            actor=bench.lab.tech,
            now=utcnow(),
            zone=UTC,
        )
    db.session.rollback()


def test_an_occupied_slot_is_refused_naming_the_unit_in_it_and_nothing_is_saved(bench):
    _lot, [first, second] = make_lot(bench, bags=2)
    store(bench, first, "1", "1", "5")
    events_before = len(chain.history(db.session, second))
    audit_before = count(AuditEntry)
    with pytest.raises(Conflict) as refused:
        store(bench, second, "1", "1", "5")
    assert first.code in refused.value.detail and "occupied" in refused.value.detail
    assert refused.value.errors == {"slot": [f"Occupied by {first.code}."]}
    db.session.rollback()
    assert storage.position_of(db.session, second) is None
    assert len(chain.history(db.session, second)) == events_before
    assert count(AuditEntry) == audit_before
    assert count(StoragePosition) == 1


def test_storing_a_stored_unit_elsewhere_moves_it_and_frees_the_old_slot(bench):
    _lot, [bag, other] = make_lot(bench, bags=2)
    old = store(bench, bag, "1", "1", "1")
    new = store(bench, bag, "4", "2", "9")
    db.session.expire_all()
    assert db.session.get(StoragePosition, old.id).unit_id is None
    assert db.session.get(StoragePosition, new.id).unit_id == bag.id
    move = chain.history(db.session, bag)[-1]
    assert move.from_location == old.label and move.location == new.label
    actions = db.session.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.entity_type == "storage_position")
        .order_by(AuditEntry.seq)  # the trail's order; rows come back in no order without it
    ).all()
    assert actions == ["storage.stored", "storage.emptied", "storage.stored"]
    # the freed slot takes another unit; the same unit into its own slot is refused
    assert store(bench, other, "1", "1", "1").unit_id == other.id
    with pytest.raises(Conflict, match="already in"):
        store(bench, bag, "4", "2", "9")
    db.session.rollback()


def test_only_bags_and_vials_that_still_exist_go_into_a_tank_in_service(bench):
    lab = bench.lab
    donation = lab.eligible_donation()
    vessel = bench.outputs(bench.isolate(donation, vessels=1))[0]
    with pytest.raises(InvalidInput, match="only cryobags and cell-bank vials"):
        store(bench, vessel)
    db.session.rollback()
    _lot, [bag, kept] = make_lot(bench, bags=2)
    chain.change_status(
        db.session, bag, UnitStatus.DISCARDED, actor=lab.tech, now=utcnow(), reason="broken"
    )
    db.session.commit()
    with pytest.raises(Conflict, match="discarded"):
        store(bench, bag)
    db.session.rollback()
    with pytest.raises(InvalidInput, match="not an LN2 tank"):
        store(bench, kept, tank=bench.equipment["CRF-01"])
    db.session.rollback()
    with pytest.raises(Conflict, match="out of service"):
        store(bench, kept, tank=add_tank(bench, "LN2-09", active=False))
    db.session.rollback()
    assert count(StoragePosition) == 0


@pytest.mark.parametrize(
    ("rack", "box", "slot", "field"),
    [
        ("", "1", "1", "rack"),
        ("1", "  ", "1", "box"),
        ("1", "1", "A/1", "slot"),
        ("1", "1", "12345678901", "slot"),
    ],
)
def test_bad_coordinates_are_refused(bench, rack, box, slot, field):
    _lot, [bag] = make_lot(bench, bags=1)
    with pytest.raises(InvalidInput) as refused:
        store(bench, bag, rack, box, slot)
    assert field in refused.value.errors
    db.session.rollback()


def test_placement_times_must_be_possible(bench):
    _lot, [bag] = make_lot(bench, bags=1)
    now = utcnow()
    with pytest.raises(InvalidInput, match="future"):
        store(bench, bag, at=now + dt.timedelta(minutes=5), now=now)
    db.session.rollback()
    with pytest.raises(InvalidInput, match="did not exist yet"):
        store(bench, bag, at=bag.created_at - dt.timedelta(hours=1), now=now)
    db.session.rollback()
    store(bench, bag, "1", "1", "1", now=now + 10 * SECOND)
    with pytest.raises(InvalidInput, match="cannot be dated before"):
        store(bench, bag, "1", "1", "2", at=now + 5 * SECOND, now=now + 20 * SECOND)
    db.session.rollback()


def test_a_unit_taken_out_frees_its_slot_and_is_moved_to_where_it_went(bench):
    _lot, [bag, other] = make_lot(bench, bags=2)
    position = store(bench, bag, "3", "3", "3")
    removed = storage.remove_unit(
        db.session, bag, location="Dispensing bench", actor=bench.lab.tech, now=utcnow(), zone=UTC
    )
    db.session.commit()
    assert removed.id == position.id and removed.unit_id is None
    assert storage.position_of(db.session, bag) is None
    assert chain.get_unit(db.session, bag.id).location == "Dispensing bench"
    last = chain.history(db.session, bag)[-1]
    assert (last.event_type, last.from_location) == ("moved", position.label)
    with pytest.raises(Conflict, match="not in LN2 storage"):
        storage.remove_unit(
            db.session, bag, location="x", actor=bench.lab.tech, now=utcnow(), zone=UTC
        )
    db.session.rollback()
    # a unit gone while in the tank can still be taken off the slot (recorded as a scan)
    store(bench, other, "3", "3", "3")
    chain.change_status(
        db.session, other, UnitStatus.DISCARDED, actor=bench.lab.tech, now=utcnow(), reason="x"
    )
    db.session.commit()
    with pytest.raises(Conflict, match="take it off the position first"):
        store(bench, bag, "3", "3", "3")
    db.session.rollback()
    storage.remove_unit(
        db.session, other, location="Waste", actor=bench.lab.tech, now=utcnow(), zone=UTC
    )
    db.session.commit()
    assert chain.history(db.session, other)[-1].event_type == "scanned"
    assert store(bench, bag, "3", "3", "3").unit_id == bag.id


def test_tanks_are_listed_with_their_occupied_slots_and_last_reading(bench):
    second = add_tank(bench, "LN2-02")
    _lot, bags = make_lot(bench, bags=3)
    for number, bag in enumerate(bags[:2], start=1):
        store(bench, bag, "1", "1", str(number))
    store(bench, bags[2], tank=second)
    read(bench, -190.0)
    summaries = {s.tank.code: s for s in storage.list_tanks(db.session)}
    assert set(summaries) == {"LN2-01", "LN2-02"}
    assert summaries["LN2-01"].occupied == 2 and summaries["LN2-02"].occupied == 1
    assert summaries["LN2-01"].last_reading.temperature_c == -190.0
    assert summaries["LN2-02"].last_reading is None
    with pytest.raises(NotFound):
        storage.get_tank(db.session, bench.equipment["CRF-01"].id)


def test_tank_contents_are_in_natural_order(bench):
    _lot, bags = make_lot(bench, bags=3)
    for slot, bag in zip(("10", "2", "A"), bags, strict=True):
        store(bench, bag, "1", "1", slot)
    slots = [p.slot for p in storage.tank_contents(db.session, bench.equipment["LN2-01"])]
    assert slots == ["2", "10", "A"]


# --- readings -----------------------------------------------------------------------------------


def test_a_reading_within_the_limit_opens_nothing(bench):
    _lot, [bag] = make_lot(bench, bags=1)
    store(bench, bag)
    for temperature in (-196.0, -150.5, -135.0):
        outcome = read(bench, temperature)
        assert outcome.deviations == []
    assert count(TankReading) == 3 and count(Deviation) == 0


def test_an_excursion_opens_one_deviation_per_lot_in_the_tank_at_that_time(bench):
    other_tank = add_tank(bench, "LN2-02")
    in_tank, in_tank_bags = make_lot(bench, bags=2)
    elsewhere, [elsewhere_bag] = make_lot(bench, bags=1)
    later, [later_bag] = make_lot(bench, bags=1)
    moved_out, [moved_bag] = make_lot(bench, bags=1)
    base = utcnow()
    for slot, bag in enumerate(in_tank_bags, start=1):
        store(bench, bag, "1", "1", str(slot), now=base + SECOND)
    store(bench, moved_bag, "1", "1", "9", now=base + SECOND)
    store(bench, elsewhere_bag, tank=other_tank, now=base + SECOND)
    # after the reading (which is entered later, back-dated): one bag arrives, one leaves
    store(bench, later_bag, "2", "1", "1", now=base + 5 * SECOND)
    store(bench, moved_bag, "1", "1", "2", tank=other_tank, now=base + 6 * SECOND)

    outcome = read(bench, -120.0, at=base + 3 * SECOND, now=base + 10 * SECOND)
    affected = {d.lot_id: d for d in outcome.deviations}
    assert set(affected) == {in_tank.id, moved_out.id}
    assert len(outcome.deviations) == 2  # one per lot, though one lot has two bags there
    deviation = affected[in_tank.id]
    assert deviation.category == "storage_excursion" and deviation.status == "open"
    assert deviation.donation_id == in_tank.donation_id
    for words in ("LN2-01", "-120 °C", "-135 °C", in_tank.lot_number, in_tank_bags[1].code):
        assert words in deviation.description
    assert deviations.has_open_deviation(db.session, in_tank)
    assert not deviations.has_open_deviation(db.session, elsewhere)
    assert not deviations.has_open_deviation(db.session, later)
    # another excursion is another deviation; the other tank sees its own lots only
    assert len(read(bench, -100.0, at=base + 4 * SECOND, now=base + 10 * SECOND).deviations) == 2
    now_in_other = read(
        bench, -125.0, tank=other_tank, at=base + 7 * SECOND, now=base + 10 * SECOND
    )
    assert {d.lot_id for d in now_in_other.deviations} == {elsewhere.id, moved_out.id}
    assert count(Deviation) == 6


def test_an_excursion_with_only_vials_or_nothing_in_the_tank_opens_nothing(bench):
    [vial, _other] = make_vials(bench)
    store(bench, vial)
    assert read(bench, -20.0).deviations == []
    assert count(TankReading) == 1


@pytest.mark.parametrize("temperature", [math.nan, math.inf, -math.inf, -273.16, 100.5, -1000.0])
def test_impossible_temperatures_are_refused(bench, temperature):
    with pytest.raises(InvalidInput) as refused:
        read(bench, temperature)
    assert "temperature_c" in refused.value.errors
    db.session.rollback()
    assert count(TankReading) == 0


def test_readings_in_the_future_or_of_other_equipment_are_refused(bench):
    now = utcnow()
    with pytest.raises(InvalidInput, match="future"):
        read(bench, -190.0, at=now + dt.timedelta(minutes=1), now=now)
    db.session.rollback()
    with pytest.raises(InvalidInput, match="not an LN2 tank"):
        read(bench, -190.0, tank=bench.equipment["INC-01"])
    db.session.rollback()
    assert count(TankReading) == 0
    readings = [
        read(bench, t, at=now - k * SECOND, now=now).reading for k, t in ((2, -190), (1, -191))
    ]
    assert storage.readings_of(db.session, bench.equipment["LN2-01"]) == readings[::-1]


# --- two technicians, one slot (PostgreSQL) -----------------------------------------------------


@pytest.mark.postgres_only
@pytest.mark.parametrize("slot_known", [False, True], ids=["new-slot", "emptied-slot"])
def test_two_technicians_filling_one_slot_end_with_one_placement(app, bench, slot_known):
    workers = 4
    _lot, bags = make_lot(bench, bags=workers + 1)
    tank_id, tech_id = bench.equipment["LN2-01"].id, bench.lab.tech.id
    if slot_known:  # the slot's row exists and is empty: the conditional UPDATE decides
        store(bench, bags[-1], "7", "7", "7")
        storage.remove_unit(
            db.session, bags[-1], location="Bench", actor=bench.lab.tech, now=utcnow(), zone=UTC
        )
        db.session.commit()
    # some of the units are moving from another slot, so audit writes come into play too
    for number, bag in enumerate(bags[:2], start=1):
        store(bench, bag, "8", "8", str(number))
    bag_ids = [bag.id for bag in bags[:workers]]

    def place(bag_id: int):
        def job() -> str:
            try:
                storage.store_unit(
                    db.session,
                    chain.get_unit(db.session, bag_id),
                    tank=db.session.get(type(bench.equipment["LN2-01"]), tank_id),
                    rack="7",
                    box="7",
                    slot="7",
                    actor=db.session.get(type(bench.lab.tech), tech_id),
                    now=utcnow(),
                    zone=UTC,
                )
                db.session.commit()
                return f"{bag_id}:stored"
            except Conflict as refused:
                db.session.rollback()
                return f"{bag_id}:refused: {refused.detail}"

        return job

    results = at_once(app, [place(bag_id) for bag_id in bag_ids])
    outcomes = [(int(text.split(":", 1)[0]), text.split(":", 1)[1]) for text in results]
    winners = [bag_id for bag_id, result in outcomes if result == "stored"]
    assert len(outcomes) == workers and len(winners) == 1
    winner = chain.get_unit(db.session, winners[0])
    for _bag_id, result in outcomes:
        if result != "stored":
            assert f"occupied by {winner.code}" in result
    db.session.expire_all()
    slot = db.session.execute(
        select(StoragePosition).where(
            StoragePosition.tank_id == tank_id,
            StoragePosition.rack == "7",
            StoragePosition.box == "7",
            StoragePosition.slot == "7",
        )
    ).scalar_one()
    assert slot.unit_id == winner.id
    # the losers that were stored elsewhere are still there
    for number, bag_id in enumerate(bag_ids[:2], start=1):
        if bag_id != winner.id:
            assert storage.position_of(db.session, chain.get_unit(db.session, bag_id)).slot == str(
                number
            )
    assert winner.location == slot.label == chain.history(db.session, winner)[-1].location
