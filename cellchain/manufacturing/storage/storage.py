"""Rules of LN2 storage: positions (tank / rack / box / slot), moves and tank readings
(DOMAIN.md §4: storage at or below −135 °C in the vapour phase; an excursion opens a deviation).

A slot holds one unit and a unit is in at most one slot; the database says so too (unique
constraints on the slot and on the unit). Occupancy changes are conditional updates
(``… WHERE unit_id IS NULL``), so two technicians filling the same slot at the same moment end
with one placement and a clear refusal for the other. Every placement and removal is a
custody event on the unit (``moved``, the location being the position's label) and an entry
in the audit trail.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from cellchain.chain import service as chain
from cellchain.chain.models import GONE, EventType, Unit, UnitEvent, UnitKind, UnitStatus
from cellchain.core import audit, record_state
from cellchain.core.display import local_time
from cellchain.core.guarded import update_if
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.models import User
from cellchain.errors import Conflict, InvalidInput, NotFound
from cellchain.extensions import DbSession
from cellchain.manufacturing.defaults import UC_MSC_PARAMETERS
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.equipment import service as equipment_service
from cellchain.manufacturing.models import (
    CellRecord,
    Deviation,
    DeviationCategory,
    Equipment,
    EquipmentKind,
    Lot,
    StoragePosition,
    TankReading,
)
from cellchain.manufacturing.processing import resources

#: What may be put into LN2 storage: the lot's cryobags and cell-bank vials.
STORABLE_KINDS: frozenset[UnitKind] = frozenset({UnitKind.CRYOBAG, UnitKind.BANK_VIAL})

#: The storage limit when a product definition does not name one (DOMAIN.md §4).
DEFAULT_STORAGE_MAX_C = float(UC_MSC_PARAMETERS["storage_max_temperature_c"])

#: Physical bounds of a reading: absolute zero, and far above anything a tank could report.
MIN_TEMPERATURE_C = -273.15
MAX_TEMPERATURE_C = 100.0

#: Rack, box and slot are short codes ("2", "B", "A7"), as printed on the rack and the box.
COORDINATE_MAX = 10
_COORDINATE = re.compile(r"^[A-Z0-9][A-Z0-9-]*$")

#: Events after which a unit is where the event says (a scan or hand-off does not move it).
_LOCATING_EVENTS = (EventType.CREATED.value, EventType.MOVED.value, EventType.RECEIVED.value)

#: An equipment kind (a stored value) as a person reads it, in the reader's language.
EQUIPMENT_KIND_NAMES: dict[str, LazyText] = {
    EquipmentKind.BIOSAFETY_CABINET: lazy("biosafety cabinet"),
    EquipmentKind.INCUBATOR: lazy("incubator"),
    EquipmentKind.CENTRIFUGE: lazy("centrifuge"),
    EquipmentKind.CELL_COUNTER: lazy("cell counter"),
    EquipmentKind.CONTROLLED_RATE_FREEZER: lazy("controlled-rate freezer"),
    EquipmentKind.LN2_TANK: lazy("LN2 tank"),
}


@dataclass(frozen=True)
class TankSummary:
    """An LN2 tank with how many of its slots hold a unit and its latest reading."""

    tank: Equipment
    occupied: int
    last_reading: TankReading | None


@dataclass
class ReadingOutcome:
    """A recorded tank reading and the deviations it opened (one per lot affected)."""

    reading: TankReading
    deviations: list[Deviation] = field(default_factory=list)


# --- positions ----------------------------------------------------------------------------------


def store_unit(
    session: DbSession,
    unit: Unit,
    *,
    tank: Equipment,
    rack: str,
    box: str,
    slot: str,
    actor: User,
    now: dt.datetime,
    at: dt.datetime | None = None,
    zone: ZoneInfo,
) -> StoragePosition:
    """Put a cryobag or cell-bank vial into a slot of an LN2 tank (in service).

    A unit already stored elsewhere is moved: its old slot is emptied. An occupied slot is
    refused, naming the unit in it. ``at`` is when it was put there if that was before it is
    recorded; it may not be in the future, nor before the unit existed or was last placed.

    A caller that stores units as part of a larger use case should do so before it writes
    audit entries: a transaction waiting for a slot must not hold the audit chain's lock.
    """
    _require_tank(tank, in_service=True)
    coordinates = {
        "rack": _coordinate(rack, "rack"),
        "box": _coordinate(box, "box"),
        "slot": _coordinate(slot, "slot"),
    }
    kind = UnitKind(unit.kind)
    if kind not in STORABLE_KINDS:
        raise InvalidInput(
            _(
                "%(code)s is a %(kind)s; only cryobags and cell-bank vials go into LN2 storage.",
                code=unit.code,
                kind=unit.kind_name,
            ),
            errors={"unit": [_("Not a cryobag or cell-bank vial.")]},
        )
    _lock_unit(session, unit)
    _require_present(unit)
    at = at or now
    _check_time(unit, at, now, zone)
    # the tank is equipment: in date (calibration, maintenance) on the day of the placement
    equipment_service.require_in_date(
        session, [tank], on=at.astimezone(zone).date(), field="tank_id"
    )
    current = position_of(session, unit)
    if current is not None and current.since is not None and at < current.since:
        raise InvalidInput(
            _(
                "%(code)s was put into %(where)s at %(when)s; a later placement cannot be "
                "dated before that.",
                code=unit.code,
                where=position_name(current),
                when=local_time(current.since, zone),
            ),
            errors={"at": [_("Before the unit's current placement.")]},
        )
    position = _position(session, tank, **coordinates)
    if position.unit_id is not None:
        raise _occupied(session, position, unit)
    # Occupancy first, audit entries after (see ``_vacate``).
    if current is not None:
        _vacate(session, current, unit)
    # The guard that matters under concurrency: fill the slot only if it is still empty.
    if not update_if(
        session, position, StoragePosition.unit_id.is_(None), unit_id=unit.id, since=at
    ):
        session.refresh(position)
        raise _occupied(session, position, unit)
    set_committed_value(position, "unit", unit)
    chain.record_custody(
        session,
        unit,
        chain.CustodyInput(EventType.MOVED, at=at, location=position.label),
        actor=actor,
        now=now,
    )
    changes: dict[str, tuple[object, object]] = {
        "unit": (None, unit.code),
        "since": (None, at),
    }
    if current is not None:
        changes["moved_from"] = (None, current.label)
        _audit_emptied(session, current, unit, actor=actor, now=now)
    audit.record(
        session,
        actor=actor,
        at=now,
        action="storage.stored",
        entity_type="storage_position",
        entity_id=position.id,
        changes=changes,
    )
    return position


def remove_unit(
    session: DbSession,
    unit: Unit,
    *,
    location: str,
    actor: User,
    now: dt.datetime,
    at: dt.datetime | None = None,
    zone: ZoneInfo,
) -> StoragePosition:
    """Take a unit out of its LN2 position to ``location``; the slot becomes empty.

    A unit that is already gone (a vial thawed and consumed before anyone took it off the
    record) can still be taken off: its slot is freed and the removal is recorded as a scan
    at the location, since a unit that no longer exists cannot be moved.
    """
    _lock_unit(session, unit)
    current = position_of(session, unit)
    if current is None:
        raise Conflict(
            _("%(code)s is not in LN2 storage.", code=unit.code),
            title=_("Not stored"),
            errors={"unit": [_("Not stored.")]},
        )
    at = at or now
    _check_time(unit, at, now, zone)
    if current.since is not None and at < current.since:
        raise InvalidInput(
            _(
                "%(code)s was put into %(where)s at %(when)s; it cannot have been taken out "
                "before that.",
                code=unit.code,
                where=position_name(current),
                when=local_time(current.since, zone),
            ),
            errors={"at": [_("Before the unit was put there.")]},
        )
    label = current.label
    destination = (location or "").strip()
    if not destination:
        raise InvalidInput(
            _("Where the unit goes is required."), errors={"location": [_("Required.")]}
        )
    _vacate(session, current, unit)
    gone = UnitStatus(unit.status) in GONE
    chain.record_custody(
        session,
        unit,
        chain.CustodyInput(
            EventType.SCANNED if gone else EventType.MOVED,
            at=at,
            location=destination,
            # stored with the custody event: English, as every record
            note=f"taken out of {label}" + (f" ({unit.status})" if gone else ""),
        ),
        actor=actor,
        now=now,
    )
    _audit_emptied(session, current, unit, actor=actor, now=now)
    return current


def position_name(position: StoragePosition) -> str:
    """The position as a person reads it (tank / rack / box / slot), in the reader's
    language; its English is ``position.label``, the location the custody events store."""
    return _(
        "%(tank)s / rack %(rack)s / box %(box)s / slot %(slot)s",
        tank=position.tank.code,
        rack=position.rack,
        box=position.box,
        slot=position.slot,
    )


def position_of(session: DbSession, unit: Unit) -> StoragePosition | None:
    """The slot holding ``unit``, or None when it is not in LN2 storage."""
    return session.execute(
        select(StoragePosition).where(StoragePosition.unit_id == unit.id)
    ).scalar_one_or_none()


def tank_contents(session: DbSession, tank: Equipment) -> list[StoragePosition]:
    """The occupied slots of ``tank``, in rack / box / slot order (2 before 10)."""
    positions = session.execute(
        select(StoragePosition)
        .where(StoragePosition.tank_id == tank.id, StoragePosition.unit_id.is_not(None))
        .options(selectinload(StoragePosition.unit))
    ).scalars()
    return sorted(positions, key=lambda p: (_natural(p.rack), _natural(p.box), _natural(p.slot)))


def lots_of_units(session: DbSession, units: Sequence[Unit]) -> dict[int, Lot]:
    """unit id → the lot it is a bag of, for those of ``units`` that are a lot's bags."""
    if not units:
        return {}
    rows = session.execute(
        select(CellRecord.unit_id, Lot)
        .join(Lot, Lot.id == CellRecord.lot_id)
        .where(CellRecord.unit_id.in_([unit.id for unit in units]))
    ).all()
    return {row[0]: row[1] for row in rows}


def list_tanks(session: DbSession) -> list[TankSummary]:
    """Every LN2 tank on file (in service or not) with its occupied slots and last reading."""
    tanks = list(
        session.execute(
            select(Equipment)
            .where(Equipment.kind == EquipmentKind.LN2_TANK.value)
            .order_by(Equipment.code)
        ).scalars()
    )
    counts = dict(
        session.execute(
            select(StoragePosition.tank_id, func.count())
            .where(StoragePosition.unit_id.is_not(None))
            .group_by(StoragePosition.tank_id)
        ).all()
    )
    return [
        TankSummary(
            tank=tank,
            occupied=int(counts.get(tank.id, 0)),
            last_reading=next(iter(readings_of(session, tank, limit=1)), None),
        )
        for tank in tanks
    ]


def get_tank(session: DbSession, tank_id: int) -> Equipment:
    """The LN2 tank ``tank_id``; other equipment is not found as a tank."""
    tank = resources.get_equipment(session, tank_id)
    if tank.kind != EquipmentKind.LN2_TANK.value:
        raise NotFound(_("Equipment %(code)s is not an LN2 tank.", code=tank.code))
    return tank


# --- readings -----------------------------------------------------------------------------------


def record_tank_reading(
    session: DbSession,
    tank: Equipment,
    *,
    temperature_c: float,
    at: dt.datetime | None,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
    level_percent: float | None = None,
) -> ReadingOutcome:
    """Record a temperature reading of an LN2 tank taken at ``at`` (now if None).

    Above the storage limit of a lot's product definition (``storage_max_temperature_c``,
    −135 °C by default), a storage-excursion deviation is opened on every lot that had a bag
    in this tank at that time, one per lot: the lot cannot be released until QA closes it.
    """
    _require_tank(tank, in_service=False)
    if not isinstance(temperature_c, int | float) or not math.isfinite(temperature_c):
        raise InvalidInput(
            _("The temperature must be a number."),
            errors={"temperature_c": [_("Not a number.")]},
        )
    if not MIN_TEMPERATURE_C <= temperature_c <= MAX_TEMPERATURE_C:
        raise InvalidInput(
            _(
                "%(temperature)s °C is not a possible tank temperature; it lies between "
                "%(low)s and %(high)s °C.",
                temperature=format(temperature_c, "g"),
                low=format(MIN_TEMPERATURE_C, "g"),
                high=format(MAX_TEMPERATURE_C, "g"),
            ),
            errors={"temperature_c": [_("Must be between −273.15 and 100 °C.")]},
        )
    at = at or now
    if at > now:
        raise InvalidInput(
            _("A reading cannot be recorded in the future."),
            errors={"at": [_("In the future.")]},
        )
    reading = TankReading(
        tank_id=tank.id,
        at=at,
        temperature_c=float(temperature_c),
        level_percent=level_percent,
        recorded_by_id=actor.id,
        recorded_at=now,
    )
    session.add(reading)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="tank.reading",
        entity_type="tank_reading",
        entity_id=reading.id,
        changes={
            "tank": (None, tank.code),
            "at": (None, at),
            "temperature_c": (None, reading.temperature_c),
            **({"level_percent": (None, level_percent)} if level_percent is not None else {}),
        },
    )
    outcome = ReadingOutcome(reading=reading)
    for lot, bags in _lots_in_tank_at(session, tank, at):
        limit = _storage_limit(lot)
        if reading.temperature_c <= limit:
            continue
        codes = ", ".join(bag.code for bag in bags)
        # The deviation's description is stored: English, whoever recorded the reading.
        description = (
            f"Storage temperature excursion: tank {tank.code} read "
            f"{reading.temperature_c:g} °C at {local_time(at, zone)}, above the storage limit of "
            f"{limit:g} °C of lot {lot.lot_number}. {len(bags)} bag(s) of the lot were in "
            f"the tank: {codes}. Reading #{reading.id}."
        )
        outcome.deviations.append(
            deviations.open_deviation(
                session,
                lot=lot,
                category=DeviationCategory.STORAGE_EXCURSION,
                description=description,
                actor=actor,
                now=now,
            )
        )
    return outcome


def readings_of(session: DbSession, tank: Equipment, *, limit: int = 20) -> list[TankReading]:
    """The tank's latest readings, newest first."""
    return list(
        session.execute(
            select(TankReading)
            .where(TankReading.tank_id == tank.id)
            .order_by(TankReading.at.desc(), TankReading.id.desc())
            .limit(limit)
        ).scalars()
    )


# --- internals ----------------------------------------------------------------------------------


def _require_tank(tank: Equipment, *, in_service: bool) -> None:
    if tank.kind != EquipmentKind.LN2_TANK.value:
        raise InvalidInput(
            _(
                "%(code)s is a %(kind)s, not an LN2 tank.",
                code=tank.code,
                kind=equipment_kind_name(tank.kind),
            ),
            errors={"tank_id": [_("Not an LN2 tank.")]},
        )
    if in_service and not tank.active:
        raise Conflict(
            _("LN2 tank %(code)s is out of service; nothing may be put into it.", code=tank.code),
            errors={"tank_id": [_("Out of service.")]},
            title=_("Tank out of service"),
        )


def equipment_kind_name(kind: str) -> str:
    """An equipment kind (stored value) in the reader's language; unknown: as stored."""
    found = EQUIPMENT_KIND_NAMES.get(kind)
    return str(found) if found is not None else kind.replace("_", " ")


def _coordinate_name(name: str) -> str:
    """ "rack", "box" or "slot" in the reader's language."""
    names = {"rack": _("rack"), "box": _("box"), "slot": _("slot")}
    return names.get(name, name)


def _coordinate(value: str, name: str) -> str:
    """A rack, box or slot as one spelling: trimmed, upper case, numbers without leading zeros
    (so "slot 07" and "slot 7" are the same slot)."""
    text = (value or "").strip().upper()
    if not text:
        raise InvalidInput(
            _("The %(name)s is required.", name=_coordinate_name(name)),
            errors={name: [_("Required.")]},
        )
    if len(text) > COORDINATE_MAX or not _COORDINATE.match(text):
        raise InvalidInput(
            _(
                "%(value)s is not a %(name)s: up to %(max)s letters, digits or hyphens.",
                value=repr(value),
                name=_coordinate_name(name),
                max=COORDINATE_MAX,
            ),
            errors={name: [_("Up to %(max)s letters, digits or hyphens.", max=COORDINATE_MAX)]},
        )
    return str(int(text)) if text.isdigit() else text


def _natural(text: str) -> tuple[int, int | str]:
    return (0, int(text)) if text.isdigit() else (1, text)


def _lock_unit(session: DbSession, unit: Unit) -> None:
    """Lock the unit's row (PostgreSQL ``FOR UPDATE``) and re-read it, so two people moving
    the same unit at once act one after the other, each on what the other left."""
    session.execute(
        select(Unit)
        .where(Unit.id == unit.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _require_present(unit: Unit) -> None:
    if UnitStatus(unit.status) in GONE:
        raise Conflict(
            _(
                "%(code)s is %(status)s; a unit that no longer exists cannot be stored.",
                code=unit.code,
                status=unit.status_name,
            ),
            title=_("Unit no longer exists physically"),
            errors={"unit": [_("No longer exists: %(status)s.", status=unit.status_name)]},
        )


def _check_time(unit: Unit, at: dt.datetime, now: dt.datetime, zone: ZoneInfo) -> None:
    if at > now:
        raise InvalidInput(
            _("A placement cannot be recorded in the future."),
            errors={"at": [_("In the future.")]},
        )
    if at < unit.created_at:
        raise InvalidInput(
            _("%(code)s did not exist yet at %(when)s.", code=unit.code, when=local_time(at, zone)),
            errors={"at": [_("Before the unit was made.")]},
        )


def _position(
    session: DbSession, tank: Equipment, *, rack: str, box: str, slot: str
) -> StoragePosition:
    """The position row of a slot, created the first time the slot is used.

    ``INSERT … ON CONFLICT DO NOTHING`` then a read: two people using a new slot at once
    both end up with the one row (the second insert waits for the first and does nothing).
    """
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    created = session.scalars(
        record_state.marked(
            insert(StoragePosition)
            .values(tank_id=tank.id, rack=rack, box=box, slot=slot)
            .on_conflict_do_nothing(index_elements=["tank_id", "rack", "box", "slot"])
            .returning(StoragePosition.id)
        )
    ).all()
    record_state.touched(session, StoragePosition, created)
    return session.execute(
        select(StoragePosition)
        .where(
            StoragePosition.tank_id == tank.id,
            StoragePosition.rack == rack,
            StoragePosition.box == box,
            StoragePosition.slot == slot,
        )
        .execution_options(populate_existing=True)
    ).scalar_one()


def _vacate(session: DbSession, position: StoragePosition, unit: Unit) -> None:
    """Free ``position`` if it still holds ``unit``.

    Only the update: the caller writes the audit entries after every occupancy change, so a
    transaction waiting here for a slot holds no lock on the audit chain that the one it waits
    for still needs (which would deadlock on PostgreSQL).
    """
    emptied = session.execute(
        record_state.marked(
            update(StoragePosition)
            .where(StoragePosition.id == position.id, StoragePosition.unit_id == unit.id)
            .values(unit_id=None, since=None)
            .execution_options(synchronize_session=False)
        )
    )
    # Session.execute is typed to return a Result; an UPDATE's is a CursorResult, with rowcount
    if emptied.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            _(
                "%(where)s was changed by someone else a moment ago; reload and try again.",
                where=position_name(position),
            ),
            title=_("Changed concurrently"),
        )
    record_state.touched(session, StoragePosition, [position.id])
    set_committed_value(position, "unit_id", None)
    set_committed_value(position, "since", None)
    set_committed_value(position, "unit", None)


def _audit_emptied(
    session: DbSession, position: StoragePosition, unit: Unit, *, actor: User, now: dt.datetime
) -> None:
    audit.record(
        session,
        actor=actor,
        at=now,
        action="storage.emptied",
        entity_type="storage_position",
        entity_id=position.id,
        changes={"unit": (unit.code, None)},
    )


def _occupied(session: DbSession, position: StoragePosition, unit: Unit) -> Conflict:
    holder = position.unit or (session.get(Unit, position.unit_id) if position.unit_id else None)
    where = position_name(position)
    if holder is not None and holder.id == unit.id:
        return Conflict(
            _("%(code)s is already in %(where)s.", code=unit.code, where=where),
            title=_("Already there"),
            errors={"slot": [_("Already holds this unit.")]},
        )
    if holder is None:
        detail = _("%(where)s is occupied by another unit; a slot holds one unit.", where=where)
        field = _("Occupied by another unit.")
    elif UnitStatus(holder.status) in GONE:
        detail = _(
            "%(where)s is occupied by %(code)s; a slot holds one unit. The record says "
            "%(code)s is %(status)s: take it off the position first.",
            where=where,
            code=holder.code,
            status=holder.status_name,
        )
        field = _("Occupied by %(code)s.", code=holder.code)
    else:
        detail = _(
            "%(where)s is occupied by %(code)s; a slot holds one unit.",
            where=where,
            code=holder.code,
        )
        field = _("Occupied by %(code)s.", code=holder.code)
    return Conflict(detail, title=_("Slot occupied"), errors={"slot": [field]})


def _lots_in_tank_at(
    session: DbSession, tank: Equipment, at: dt.datetime
) -> list[tuple[Lot, list[Unit]]]:
    """The lots that had at least one bag in ``tank`` at ``at``, with those bags.

    A bag was in the tank at ``at`` if its last move (or receipt) at or before ``at`` took it
    to one of the tank's positions, as its custody history says; a reading entered after the
    fact thus finds the bags moved out since. Bags whose current position in the tank dates
    from ``at`` or earlier are included as well, so a gap in the history can only add a lot,
    never lose one.
    """
    prefix = _like_escape(f"{tank.code} / ") + "%"
    bags = select(CellRecord.unit_id).where(CellRecord.lot_id.is_not(None)).scalar_subquery()
    ranked = (
        select(
            UnitEvent.unit_id,
            UnitEvent.location,
            func.row_number()
            .over(
                partition_by=UnitEvent.unit_id,
                order_by=(UnitEvent.at.desc(), UnitEvent.id.desc()),
            )
            .label("rank"),
        )
        .where(
            UnitEvent.unit_id.in_(bags),
            UnitEvent.event_type.in_(_LOCATING_EVENTS),
            UnitEvent.at <= at,
        )
        .subquery()
    )
    by_history = select(ranked.c.unit_id).where(
        ranked.c.rank == 1, ranked.c.location.like(prefix, escape="\\")
    )
    by_position = select(StoragePosition.unit_id).where(
        StoragePosition.tank_id == tank.id,
        StoragePosition.unit_id.is_not(None),
        StoragePosition.since <= at,
    )
    rows = session.execute(
        select(Lot, Unit)
        .join(CellRecord, CellRecord.lot_id == Lot.id)
        .join(Unit, Unit.id == CellRecord.unit_id)
        .where(or_(Unit.id.in_(by_history), Unit.id.in_(by_position)))
        .order_by(Lot.id, Unit.id)
    ).all()
    found: dict[int, tuple[Lot, list[Unit]]] = {}
    for lot, unit in rows:
        found.setdefault(lot.id, (lot, []))[1].append(unit)
    return list(found.values())


def _storage_limit(lot: Lot) -> float:
    value = lot.product_definition.parameters.get("storage_max_temperature_c")
    return DEFAULT_STORAGE_MAX_C if value is None else float(value)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
