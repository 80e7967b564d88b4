"""A forward trace's units, however they are read (issue 20: on PostgreSQL the walk, then the
units' rows for its ids; the rows built without the ORM), are exactly what one statement of
the recursive walk joined to the units, their donation, maker and lot gives as ORM objects:
the same units, each once at its fewest steps from the start, nearest first and then by id,
with the same values (times aware, in UTC)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from cellchain.chain.models import LineageEdge, Unit
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.models import StepEquipment, StepMaterial
from cellchain.traceability.trace import trace
from cellchain.traceability.trace.trace import TraceFrom
from tests.support.recalls import infuse
from tests.support.traces import orm_walk


def walked(kind: str, record_id: int) -> list[tuple[Any, ...]]:
    """The forward trace's units read the way it read them before: the walk and the joins
    in one statement, ORM units, ordered by the database."""
    return [
        (
            unit.id,
            unit.code,
            unit.kind,
            unit.status,
            unit.donation_id,
            unit.location,
            unit.created_at,
            unit.created_by_id,
            unit.donation.din,
            unit.created_by.username if unit.created_by else None,
            distance,
            lot_number,
        )
        for unit, distance, lot_number in orm_walk(kind, record_id)
    ]


def traced(kind: str, record_id: int) -> list[tuple[Any, ...]]:
    forward = trace.trace_forward(db.session, kind, record_id)
    for reached in forward.units:
        assert type(reached.unit) is trace.UnitRow and reached.recalls == ()
        assert reached.unit.created_at.tzinfo is dt.UTC
    return [(*reached.unit, reached.distance, reached.lot_number) for reached in forward.units]


def same(kind: str, record_id: int) -> list[tuple[Any, ...]]:
    expected = walked(kind, record_id)
    assert traced(kind, record_id) == expected
    return expected


@pytest.mark.parametrize("streamed_rows", [1, 7, trace.STREAMED_ROWS])
def test_every_start_reads_the_units_the_one_statement_walk_reads(
    ward: Any, released: Any, monkeypatch: pytest.MonkeyPatch, streamed_rows: int
) -> None:
    """On PostgreSQL the units' rows are read a chunk at a time as they come
    (``trace._walked_units``): one row, a few, or all of them in one chunk, the same."""
    monkeypatch.setattr(trace, "STREAMED_ROWS", streamed_rows)
    infusion = infuse(ward)
    waiting = ward.prepared()
    donation_id = released.donation_id
    units = same(TraceFrom.DONATION, donation_id)
    # the units in a dose, found as the rows are read: both orders
    forward = trace.trace_forward(db.session, TraceFrom.DONATION, donation_id)
    assert {order.id for order in forward.dose_orders} == {infusion.dose_order_id, waiting.id}
    assert [i.id for i in forward.infusions] == [infusion.id]
    assert len(units) > 20 and len({u[0] for u in units}) == len(units)
    assert {u[10] for u in units} >= {0, 1, 2, 3}
    assert any(u[11] == released.lot_number for u in units)
    assert any(u[11] is None for u in units)  # the donation's container has no lot
    same(TraceFrom.LOT, released.id)
    same(TraceFrom.UNIT, infusion.dose_order.bags[0].unit_id)
    material = db.session.execute(select(StepMaterial.material_lot_id).limit(1)).scalar_one()
    assert same(TraceFrom.MATERIAL_LOT, material)
    item = db.session.execute(select(StepEquipment.equipment_id).limit(1)).scalar_one()
    assert same(TraceFrom.EQUIPMENT, item)


def test_a_unit_reached_by_two_paths_is_listed_once_at_the_nearer(ward: Any, released: Any) -> None:
    infuse(ward)
    first = same(TraceFrom.DONATION, released.donation_id)
    container = next(u for u in first if u[10] == 0)
    farthest = max(first, key=lambda u: (u[10], u[0]))
    assert farthest[10] >= 3
    # a second, shorter path from the container to the farthest unit
    db.session.add(
        LineageEdge(
            parent_id=container[0], child_id=farthest[0], operation="sample", created_at=utcnow()
        )
    )
    db.session.flush()
    again = same(TraceFrom.DONATION, released.donation_id)
    assert len(again) == len(first)
    assert [u[10] for u in again if u[0] == farthest[0]] == [1]


def test_seeds_that_are_no_unit_reach_nothing(ward: Any) -> None:
    assert trace.reached_units(db.session, select(Unit.id).where(Unit.id < 0)) == []
