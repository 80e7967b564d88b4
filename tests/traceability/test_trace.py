"""Trace forward and back: the right sets on a real chain (donation → lot → doses → infusion)
and on generated trees of many branches, in a number of queries that does not grow."""

from __future__ import annotations

import random
from typing import Any

import pytest

from cellchain.chain import service as chain
from cellchain.chain.models import LineageEdge, Unit, UnitKind
from cellchain.errors import InvalidInput, NotFound
from cellchain.extensions import db
from cellchain.manufacturing.models import CellRecord
from cellchain.manufacturing.processing import processing
from cellchain.traceability.trace import trace
from cellchain.traceability.trace.trace import TraceFrom
from tests.support.chain import grow
from tests.support.recalls import infuse
from tests.support.statements import counting_statements


def test_forward_from_the_donation_reaches_every_unit_dose_infusion_and_patient(ward, infused):
    infusion, waiting = infused
    donation = infusion.dose_order.dose_unit.donation
    forward = trace.trace_forward(db.session, TraceFrom.DONATION, donation.id)

    every_unit = {unit.id for unit in chain.units_of_donation(db.session, donation.id)}
    assert {t.unit.id for t in forward.units} == every_unit
    assert {o.id for o in forward.dose_orders} == {infusion.dose_order_id, waiting.id}
    assert [i.id for i in forward.infusions] == [infusion.id]
    by_patient = {p.patient.study_id: p for p in forward.patients}
    assert by_patient[infusion.patient.study_id].infused
    assert not by_patient[waiting.patient.study_id].infused
    assert [p.patient.id for p in trace.infused_patients(forward)] == [infusion.patient_id]
    assert forward.start.label == f"donation {donation.din}"


def test_forward_from_the_lot_reaches_its_bags_and_their_doses_not_the_vessels(
    ward, infused, released
):
    infusion, waiting = infused
    forward = trace.trace_forward(db.session, TraceFrom.LOT, released.id)
    found = {t.unit.id for t in forward.units}

    bags = {bag.id for bag in processing.bags_of(db.session, released)}
    assert bags <= found
    doses = {infusion.dose_order.dose_unit_id, waiting.dose_unit_id}
    assert doses <= found
    kinds = {t.unit.kind for t in forward.units}
    assert UnitKind.CULTURE_VESSEL.value not in kinds
    assert UnitKind.DONATION_CONTAINER.value not in kinds
    assert {p.patient.id for p in forward.patients} == {infusion.patient_id, waiting.patient_id}
    # every traced bag carries its lot number
    assert {t.lot_number for t in forward.units if t.unit.id in bags} == {released.lot_number}


def test_forward_from_a_material_lot_follows_the_steps_that_used_it(ward, infused, bench):
    infusion, _ = infused
    dmso = bench.materials["dmso"]  # used at the fill only
    medium = bench.materials["medium"]  # used from isolation on

    from_dmso = trace.trace_forward(db.session, TraceFrom.MATERIAL_LOT, dmso.id)
    from_medium = trace.trace_forward(db.session, TraceFrom.MATERIAL_LOT, medium.id)

    dmso_kinds = {t.unit.kind for t in from_dmso.units}
    assert UnitKind.CULTURE_VESSEL.value not in dmso_kinds
    assert UnitKind.CRYOBAG.value in dmso_kinds
    assert {t.unit.id for t in from_dmso.units} < {t.unit.id for t in from_medium.units}
    assert infusion.id in {i.id for i in from_medium.infusions}
    assert infusion.id in {i.id for i in from_dmso.infusions}


def test_forward_from_equipment_finds_what_was_made_with_it(ward, infused, bench):
    infusion, _ = infused
    cabinet = bench.equipment["BSC-01"]
    forward = trace.trace_forward(db.session, TraceFrom.EQUIPMENT, cabinet.id)
    assert infusion.patient_id in {p.patient.id for p in forward.patients}
    assert forward.start.label.startswith("equipment BSC-01 (")
    assert (forward.start.word, forward.start.named.split()[0]) == ("equipment", "BSC-01")


def test_back_from_an_infusion_reaches_the_donor_with_every_record_and_signature(
    ward, infused, released
):
    infusion, _ = infused
    back = trace.trace_back(db.session, TraceFrom.INFUSION, infusion.id)
    order = infusion.dose_order

    assert back.donation.id == order.dose_unit.donation_id
    assert back.units[-1].unit.id == order.dose_unit_id  # nearest last: the path reads down
    assert back.units[0].unit.kind == UnitKind.DONATION_CONTAINER.value
    assert back.eligibility is not None and back.eligibility.signatures
    assert all(s.valid for s in back.eligibility.signatures)
    assert {step.kind for step in back.steps} >= {"isolation", "fill"}
    fill = next(step for step in back.steps if step.kind == "fill")
    assert {m.material_lot.material for m in fill.materials}
    [release] = back.lots
    assert release.lot.id == released.id
    assert release.results and release.disposition is not None
    assert [s.valid for s in release.disposition.signatures] == [True]
    [path] = back.clinic
    assert path.infusion is not None and path.infusion.id == infusion.id
    assert path.order.signatures and all(s.valid for s in path.order.signatures)
    assert path.shipment is None or path.shipment.record is not None
    assert len(path.thaws) == len(order.bags)
    go = [signed for signed in path.bedside_checks if signed.record.go]
    assert go and len(go[0].signatures) == 2
    assert {e.event_type for e in back.events} >= {"created", "handed_off", "received"}


def test_back_from_a_bag_and_from_a_dose_order_agree(ward, infused):
    infusion, _ = infused
    order = infusion.dose_order
    from_order = trace.trace_back(db.session, TraceFrom.DOSE, order.id)
    from_bag = trace.trace_back(db.session, TraceFrom.UNIT, order.bags[0].unit_id)
    assert from_bag.donation.id == from_order.donation.id
    assert [p.order.record.id for p in from_bag.clinic] == [order.id]
    # a bag's own ancestors do not include the dose made from it
    assert order.dose_unit_id not in {t.unit.id for t in from_bag.units}


@pytest.mark.parametrize(
    ("kind", "direction"),
    [("nonsense", trace.trace_forward), ("dose", trace.trace_forward), ("lot", trace.trace_back)],
)
def test_a_start_that_cannot_be_traced_that_way_is_refused(lab, kind, direction):
    with pytest.raises(InvalidInput):
        direction(db.session, kind, 1)


@pytest.mark.parametrize("kind", TraceFrom.FORWARD)
def test_an_unknown_start_is_not_found(lab, kind):
    with pytest.raises(NotFound):
        trace.trace_forward(db.session, kind, 999_999)


# --- generated trees --------------------------------------------------------------------------


def expected_descendants(session: Any, start: Unit) -> set[int]:
    children: dict[int, set[int]] = {}
    for edge in session.query(LineageEdge).all():
        children.setdefault(edge.parent_id, set()).add(edge.child_id)
    found, todo = {start.id}, [start.id]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def expected_ancestors(session: Any, start: Unit) -> set[int]:
    parents: dict[int, set[int]] = {}
    for edge in session.query(LineageEdge).all():
        parents.setdefault(edge.child_id, set()).add(edge.parent_id)
    found, todo = {start.id}, [start.id]
    while todo:
        for parent in parents.get(todo.pop(), ()):
            if parent not in found:
                found.add(parent)
                todo.append(parent)
    return found


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_forward_and_back_on_a_generated_tree_equal_the_expected_sets(lab, seed):
    rng = random.Random(seed)
    container, units = grow(lab, rng=rng, steps=12)
    grow(lab, rng=rng, steps=4)  # another donation: never reached
    session = db.session

    forward = trace.trace_forward(session, TraceFrom.DONATION, container.donation_id)
    assert {t.unit.id for t in forward.units} == {unit.id for unit in units}
    for start in rng.sample(units, k=5):
        found = trace.trace_forward(session, TraceFrom.UNIT, start.id)
        assert {t.unit.id for t in found.units} == expected_descendants(session, start)
        back = trace.trace_back(session, TraceFrom.UNIT, start.id)
        assert {t.unit.id for t in back.units} == expected_ancestors(session, start)
        assert back.donation.id == container.donation_id


def statements(run: Any) -> int:
    db.session.commit()
    db.session.expire_all()
    with counting_statements() as seen:
        result = run()
    assert result.units  # a trace that found nothing would prove nothing
    return len(seen)


def test_the_number_of_queries_does_not_grow_with_the_tree(lab):
    rng = random.Random(7)
    small, small_units = grow(lab, rng=rng, steps=3)
    large, large_units = grow(lab, rng=rng, steps=25)
    assert len(large_units) > 3 * len(small_units)
    session = db.session

    def forward(container: Unit) -> Any:
        return lambda: trace.trace_forward(session, TraceFrom.DONATION, container.donation_id)

    def back(unit: Unit) -> Any:
        return lambda: trace.trace_back(session, TraceFrom.UNIT, unit.id)

    assert statements(forward(small)) == statements(forward(large))
    assert statements(back(small_units[-1])) == statements(back(large_units[-1]))


def test_the_queries_do_not_grow_with_the_doses_and_infusions(ward, released):
    infuse(ward)
    one = statements(lambda: trace.trace_forward(db.session, TraceFrom.LOT, released.id))
    infuse(ward)
    ward.prepared()
    three = statements(lambda: trace.trace_forward(db.session, TraceFrom.LOT, released.id))
    assert one == three
    cell_records = db.session.query(CellRecord).filter_by(lot_id=released.id).count()
    assert cell_records > 0
