"""API of LN2 storage and tank readings.

Load → call the service → dump. No rules here.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.chain import service as chain
from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import requires, unit_of_work
from cellchain.manufacturing.models import Equipment
from cellchain.manufacturing.processing import resources
from cellchain.manufacturing.storage import commands, storage
from cellchain.manufacturing.storage.schemas import (
    PositionOut,
    ReadingIn,
    ReadingResultOut,
    StoreIn,
    TankDetailOut,
    TankOut,
)

storage_api = Blueprint(
    "storage_api", __name__, url_prefix="/api/v1/storage", description="LN2 storage"
)
blueprints = (storage_api,)


# --- what the endpoints return ------------------------------------------------------------------


def position_out(position: Any, lot_number: str | None = None) -> dict[str, Any]:
    return {
        **{name: getattr(position, name) for name in ("id", "tank_id", "rack", "box", "slot")},
        "tank": position.tank,
        "label": position.label,
        "since": position.since,
        "unit": position.unit,
        "lot_number": lot_number,
    }


def tank_out(summary: storage.TankSummary) -> dict[str, Any]:
    tank = summary.tank
    return {
        **{name: getattr(tank, name) for name in ("id", "code", "name", "active")},
        "occupied": summary.occupied,
        "last_reading": summary.last_reading,
    }


def tank_detail(tank: Equipment) -> dict[str, Any]:
    session = db.session
    positions = storage.tank_contents(session, tank)
    lots = storage.lots_of_units(session, [p.unit for p in positions if p.unit])
    readings = storage.readings_of(session, tank)
    return {
        **{name: getattr(tank, name) for name in ("id", "code", "name", "active")},
        "occupied": len(positions),
        "last_reading": readings[0] if readings else None,
        "positions": [
            position_out(p, lots[p.unit_id].lot_number if p.unit_id in lots else None)
            for p in positions
        ],
        "readings": readings,
    }


# --- storage ------------------------------------------------------------------------------------


@storage_api.get("/tanks")
@requires(Permission.READ_RECORDS)
@storage_api.response(200, TankOut(many=True))
def list_tanks() -> Any:
    """Every LN2 tank with the number of occupied slots and its latest reading."""
    return [tank_out(summary) for summary in storage.list_tanks(db.session)]


@storage_api.get("/tanks/<int:tank_id>")
@requires(Permission.READ_RECORDS)
@storage_api.response(200, TankDetailOut)
def get_tank(tank_id: int) -> Any:
    """One tank: its occupied positions with their units and lots, and its latest readings."""
    return tank_detail(storage.get_tank(db.session, tank_id))


@storage_api.post("/units/<int:unit_id>")
@requires(Permission.RECORD_STORAGE)
@storage_api.arguments(StoreIn)
@storage_api.response(201, PositionOut)
def store_unit(data: dict[str, Any], unit_id: int) -> Any:
    """Put a cryobag or cell-bank vial into a slot (moving it if it is stored elsewhere).

    An occupied slot is 409, naming the unit in it. The placement is a custody event
    (``moved``) on the unit.
    """
    with unit_of_work() as session:
        unit = chain.get_unit(session, unit_id)
        tank = resources.get_equipment(session, data["tank_id"])
        position = commands.store_unit_as_user(session, unit, tank, data)
        lot = storage.lots_of_units(session, [unit]).get(unit.id)
        body = position_out(position, lot.lot_number if lot else None)
    return body


@storage_api.post("/tanks/<int:tank_id>/readings")
@requires(Permission.RECORD_STORAGE)
@storage_api.arguments(ReadingIn)
@storage_api.response(201, ReadingResultOut)
def record_reading(data: dict[str, Any], tank_id: int) -> Any:
    """Record a temperature reading. Above the storage limit, a storage-excursion deviation is
    opened on every lot with a bag in the tank at that time; they are returned."""
    with unit_of_work() as session:
        outcome = commands.record_reading_as_user(session, storage.get_tank(session, tank_id), data)
    return outcome
