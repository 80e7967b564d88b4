"""The forward trace's units read the way the trace read them before issue 20: the recursive
walk and the joins in one statement, as ORM units ordered by the database. Tests compare the
rows the trace reads now with these."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cellchain.chain import service as chain
from cellchain.chain.models import Unit
from cellchain.extensions import db
from cellchain.manufacturing.models import CellRecord, Lot
from cellchain.traceability.trace import trace


def orm_walk(kind: str, record_id: int) -> list[tuple[Unit, int, str | None]]:
    """(unit, distance, lot number) of every unit a forward trace from ``kind`` ``record_id``
    reaches, nearest first, then by id."""
    seeds = trace.forward_seeds(db.session, kind, record_id)[1]
    nearest = chain.nearest_of(chain.lineage_walk(seeds, upwards=False))
    rows: Any = db.session.execute(
        select(Unit, nearest.c.distance, Lot.lot_number)
        .join(nearest, nearest.c.unit_id == Unit.id)
        .outerjoin(CellRecord, CellRecord.unit_id == Unit.id)
        .outerjoin(Lot, Lot.id == CellRecord.lot_id)
        .order_by(nearest.c.distance, Unit.id)
    ).all()
    return [(unit, distance, lot_number) for unit, distance, lot_number in rows]
