"""Rules of the chain-of-identity core: creating units, lineage, custody events, trace queries.

Every later stage (manufacturing, release, dosing, clinic) makes and moves units through these
functions, so the rules of the chain hold everywhere: every unit knows its donation, material of
two donations is never combined, status changes follow ``UNIT_TRANSITIONS``, and every change
is an event on the unit and an entry in the audit trail.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import (
    CTE,
    ColumnElement,
    Integer,
    Select,
    Subquery,
    Text,
    any_,
    bindparam,
    cast,
    func,
    insert,
    literal,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.interfaces import ORMOption
from sqlalchemy.orm.util import identity_key

from cellchain.chain.models import (
    CUSTODY_EVENTS,
    GONE,
    UNIT_TRANSITIONS,
    USABLE_AS_PARENT,
    USABLE_FOR,
    EventType,
    LineageEdge,
    LineageOperation,
    Unit,
    UnitEvent,
    UnitKind,
    UnitStatus,
)
from cellchain.chain.models import MAX_UNITS_PER_STEP as MAX_UNITS_PER_STEP
from cellchain.core import actions, audit, numbering, record_state
from cellchain.core.i18n import _
from cellchain.core.identifiers import InvalidIdentifier
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.errors import Conflict, InvalidInput, NotFound
from cellchain.extensions import DbSession


def create_unit(
    session: DbSession,
    *,
    donation_id: int,
    din: str,
    kind: UnitKind,
    location: str,
    actor: User | None,
    now: dt.datetime,
    at: dt.datetime | None = None,
    made_from: tuple[LineageOperation, Sequence[Unit]] | None = None,
    status: UnitStatus = UnitStatus.QUARANTINE,
) -> Unit:
    """Label a new unit of donation ``din``: issue its code, record it, write its first event.

    ``at`` is when the thing came into existence if that was before it was recorded (a
    donation container exists from collection); it defaults to now. ``made_from`` is the
    operation and the parents it was made from, recorded as lineage edges.
    """
    location = _required_text(location, "location", _("Where the unit is"))
    code = numbering.next_unit_code(session, din=din, kind_letter=kind.letter)
    unit = Unit(
        code=code.canonical,
        kind=kind.value,
        status=status.value,
        donation_id=donation_id,
        location=location,
        created_at=at or now,
        created_by_id=actor.id if actor else None,
    )
    session.add(unit)
    session.flush()
    numbering.issue(
        session,
        code,
        actor=actor,
        now=now,
        purpose=f"label of a {kind.label}",
        entity_type="unit",
        entity_id=unit.id,
    )
    changes: dict[str, tuple[object, object]] = {
        "code": (None, unit.code),
        "kind": (None, unit.kind),
        "status": (None, unit.status),
        "donation_id": (None, donation_id),
        "location": (None, location),
    }
    if made_from is not None:
        operation, parents = made_from
        session.add_all(
            LineageEdge(
                parent_id=parent.id,
                child_id=unit.id,
                operation=operation.value,
                created_at=now,
            )
            for parent in parents
        )
        changes["operation"] = (None, operation.value)
        changes["parents"] = (None, [parent.code for parent in parents])
    _add_event(
        session, unit, EventType.CREATED, actor=actor, now=now, at=at or now, location=location
    )
    audit.record(
        session,
        actor=actor,
        at=now,
        action="unit.created",
        entity_type="unit",
        entity_id=unit.id,
        changes=changes,
    )
    return unit


def derive_units(
    session: DbSession,
    *,
    parents: Sequence[Unit],
    kind: UnitKind,
    operation: LineageOperation,
    count: int,
    location: str,
    actor: User | None,
    now: dt.datetime,
    consume_parents: bool = False,
    at: dt.datetime | None = None,
    status: UnitStatus = UnitStatus.QUARANTINE,
) -> list[Unit]:
    """Make ``count`` new units from ``parents`` by ``operation`` and record the lineage.

    Refused when the parents belong to different donations (no pooling across donors,
    DOMAIN.md §1), when a parent is not usable (blocked, rejected, used up or gone), or when
    the same parent is named twice. With ``consume_parents`` the parents become consumed.
    ``at`` is when the step was done, if it is written up afterwards.
    """
    if not parents:
        raise InvalidInput(_("A new unit needs at least one parent unit."))
    if not 1 <= count <= MAX_UNITS_PER_STEP:
        raise InvalidInput(
            _(
                "One step makes 1 to %(max)s units; %(count)s were asked for.",
                max=MAX_UNITS_PER_STEP,
                count=count,
            ),
            errors={"count": [_("Must be between 1 and %(max)s.", max=MAX_UNITS_PER_STEP)]},
        )
    if len({parent.id for parent in parents}) != len(parents):
        raise InvalidInput(_("The same parent unit was given twice."))
    donations = {parent.donation_id for parent in parents}
    if len(donations) > 1:
        codes = ", ".join(f"{p.code} (donation {p.donation.din})" for p in parents)
        raise Conflict(
            _(
                "Material from different donations is never combined; these parents come from"
                " %(count)s donations: %(codes)s.",
                count=len(donations),
                codes=codes,
            ),
            title=_("Pooling across donations refused"),
        )
    _lock(session, parents)
    require_usable(parents, USABLE_FOR.get(operation, USABLE_AS_PARENT))
    donation = parents[0].donation
    children = [
        create_unit(
            session,
            donation_id=donation.id,
            din=donation.din[:-1],
            kind=kind,
            location=location,
            actor=actor,
            now=now,
            at=at,
            made_from=(operation, parents),
            status=status,
        )
        for _ in range(count)
    ]
    session.flush()
    if consume_parents:
        for parent in parents:
            change_status(
                session,
                parent,
                UnitStatus.CONSUMED,
                actor=actor,
                now=now,
                reason=f"used up by {operation.value}",
            )
    return children


class UnitAction(enum.StrEnum):
    """What may be done with a unit on its page."""

    PROCESS = "process"  #: the next processing step takes it as input (``require_usable``)


#: The statuses each act starts from.
UNIT_ACTIONS: dict[UnitAction, frozenset[UnitStatus]] = {UnitAction.PROCESS: USABLE_AS_PARENT}


def unit_actions(unit: Unit) -> frozenset[UnitAction]:
    """The acts the unit's status allows; the page offers these (permissions apart)."""
    return actions.allowed(unit.status, UNIT_ACTIONS)


def require_usable(units: Sequence[Unit], usable: frozenset[UnitStatus] = USABLE_AS_PARENT) -> None:
    """Refuse units that cannot be processed further (blocked, rejected, used up or gone)."""
    allowed = " or ".join(sorted(status.value for status in usable))
    for unit in units:
        status = UnitStatus(unit.status)
        if status not in usable:
            raise Conflict(
                _(
                    "Unit %(code)s is %(status)s; only units %(allowed)s can be processed this"
                    " way.",
                    code=unit.code,
                    status=unit.status_name,
                    allowed=allowed,
                ),
                title=_("Parent unit not usable"),
            )


def _lock(session: DbSession, units: Sequence[Unit]) -> None:
    """Lock the units' rows (PostgreSQL ``FOR UPDATE``) and re-read their status.

    A second derivation from the same vessel waits here until the first commits, then sees
    the vessel as consumed and is refused, instead of acting on a status read earlier.
    """
    session.execute(
        select(Unit)
        .where(Unit.id.in_([unit.id for unit in units]))
        .order_by(Unit.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()


def change_status(
    session: DbSession,
    unit: Unit,
    target: UnitStatus,
    *,
    actor: User | None,
    now: dt.datetime,
    reason: str,
) -> None:
    """Move ``unit`` to ``target`` if ``UNIT_TRANSITIONS`` allows it; record event and audit."""
    change_status_many(session, [unit], target, actor=actor, now=now, reason=reason)


class StatusHolder(Protocol):
    """What ``change_status_many`` reads of a unit: an ORM ``Unit``, or a plain row read
    under a row lock (a recall's tens of thousands of units, issue 20)."""

    @property
    def id(self) -> int: ...
    @property
    def code(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def location(self) -> str: ...


def change_status_many(
    session: DbSession,
    units: Sequence[Unit | StatusHolder],
    target: UnitStatus,
    *,
    actor: User | None,
    now: dt.datetime,
    reason: str,
) -> None:
    """Move every unit to ``target``, each as ``UNIT_TRANSITIONS`` allows, with an event and an
    audit entry each, in a fixed number of statements however many units there are.

    Each update is conditional on the status read, so if someone changed one of the units
    since, nobody wins twice: the whole change is refused and the caller's transaction rolls
    back. Units already in ``target`` are left as they are.
    """
    by_status: dict[UnitStatus, list[Unit | StatusHolder]] = {}
    checked: dict[str, UnitStatus] = {}  # a status is checked at its first unit, named
    for unit in units:
        current = checked.get(unit.status)
        if current is None:
            current = checked[unit.status] = UnitStatus(unit.status)
            if current != target:
                actions.require_transition(UNIT_TRANSITIONS, current, target, f"Unit {unit.code}")
        if current == target:
            continue
        by_status.setdefault(current, []).append(unit)
    changed: list[tuple[Unit | StatusHolder, UnitStatus]] = []
    for current, group in by_status.items():
        result = session.execute(
            record_state.marked(
                update(Unit)
                .where(_among(session, [unit.id for unit in group]), Unit.status == current.value)
                .values(status=target.value)
                .execution_options(synchronize_session=False)
            )
        )
        # Session.execute is typed to return a Result; an UPDATE's is a CursorResult, with rowcount
        if result.rowcount != len(group):  # type: ignore[attr-defined]
            codes = ", ".join(unit.code for unit in group)
            raise Conflict(
                _(
                    "Unit %(codes)s was changed by someone else a moment ago; reload it and try"
                    " again.",
                    codes=codes,
                ),
                title=_("Changed concurrently"),
            )
        record_state.touched(session, Unit, [unit.id for unit in group])
        for unit in group:
            # a plain row's unit may be in the session too: keep that object in step
            loaded = (
                unit
                if isinstance(unit, Unit)
                else session.identity_map.get(identity_key(Unit, unit.id))
            )
            if loaded is not None:
                set_committed_value(loaded, "status", target.value)
            changed.append((unit, current))
    if not changed:
        return
    # one INSERT … SELECT of the units' rows (their locations as stored, the status just
    # set), however many units; its ids go to the record trail
    at = literal(now, type_=UnitEvent.__table__.c.at.type)
    actor_id = literal(actor.id if actor else None, type_=Integer)
    event_ids = session.scalars(
        record_state.marked(
            insert(UnitEvent)
            .from_select(
                ["unit_id", "event_type", "at", "recorded_at", "actor_id", "location", "note"],
                union_all(
                    *(
                        select(
                            Unit.id,
                            literal(EventType.STATUS_CHANGED.value),
                            at,
                            at,
                            actor_id,
                            Unit.location,
                            literal(status_change_note(current, target, reason)),
                        ).where(_among(session, [unit.id for unit in group]))
                        for current, group in by_status.items()
                    )
                ),
            )
            .returning(UnitEvent.id)
        )
    ).all()
    record_state.touched(session, UnitEvent, event_ids)
    changes = {current: {"status": (current.value, target.value)} for current in by_status}
    audit.append_many(
        session,
        [
            audit.Draft(
                action="unit.status_changed",
                entity_type="unit",
                entity_id=unit.id,
                changes=changes[current],
                reason=reason,
            )
            for unit, current in changed
        ],
        actor=actor,
        at=now,
    )


def _among(session: DbSession, ids: Sequence[int]) -> ColumnElement[bool]:
    """``units.id IN ids`` for a list of any length, sent as one parameter (as
    ``traceability.notices.among``): an integer array on PostgreSQL, a JSON array read by
    ``json_each`` on SQLite (which refuses more than 32 766 placeholders)."""
    if session.get_bind().dialect.name == "postgresql":
        return Unit.id == any_(literal(list(ids), type_=ARRAY(Integer)))
    values = func.json_each(json.dumps(list(ids))).table_valued("value")
    return Unit.id.in_(select(values.c.value))


@dataclass(frozen=True)
class CustodyInput:
    """What a person records about a custody or scan event."""

    event_type: EventType
    at: dt.datetime | None = None
    location: str | None = None
    counterparty: str | None = None
    temperature_c: float | None = None
    note: str | None = None


def record_custody(
    session: DbSession, unit: Unit, event: CustodyInput, *, actor: User, now: dt.datetime
) -> UnitEvent:
    """Record a receipt, move, hand-off or scan on ``unit``.

    A move and a receipt need the location the unit is now at, and change it; a hand-off needs
    who took custody. Events may be back-dated (written up after the fact) but never dated in
    the future or before the unit existed. A unit that is gone (infused, consumed, discarded)
    can only be scanned.
    """
    if event.event_type not in CUSTODY_EVENTS:
        raise InvalidInput(
            _(
                "%(event)s is not a custody event; record one of: %(events)s.",
                event=event.event_type.value,
                events=", ".join(e.value for e in CUSTODY_EVENTS),
            ),
            errors={"event_type": [_("Not a custody event.")]},
        )
    at = event.at or now
    if at > now:
        raise InvalidInput(
            _("A custody event cannot be in the future."),
            errors={"at": [_("Must not be in the future.")]},
        )
    if at < unit.created_at:
        raise InvalidInput(
            _(
                "An event on unit %(code)s cannot be earlier than the unit itself (its first"
                " entry in the history).",
                code=unit.code,
            ),
            errors={"at": [_("Must not be before the unit was created.")]},
        )
    if UnitStatus(unit.status) in GONE and event.event_type != EventType.SCANNED:
        raise Conflict(
            _(
                "Unit %(code)s is %(status)s; it can be scanned but no longer moved or handed off.",
                code=unit.code,
                status=unit.status_name,
            ),
            title=_("Unit no longer exists physically"),
        )
    if event.temperature_c is not None and not -273.15 <= event.temperature_c <= 100:
        raise InvalidInput(
            _(
                "%(temperature)s °C is not a possible temperature here.",
                temperature=event.temperature_c,
            ),
            errors={"temperature_c": [_("Must be between −273.15 and 100 °C.")]},
        )
    previous_location = unit.location
    location = (event.location or "").strip() or None
    if event.event_type in (EventType.MOVED, EventType.RECEIVED):
        location = _required_text(location, "location", _("Where the unit is now"))
        unit.location = location
    counterparty = (event.counterparty or "").strip() or None
    if event.event_type == EventType.HANDED_OFF:
        counterparty = _required_text(counterparty, "counterparty", _("Who took custody"))
    recorded = _add_event(
        session,
        unit,
        event.event_type,
        actor=actor,
        now=now,
        at=at,
        location=location or previous_location,
        from_location=previous_location if event.event_type == EventType.MOVED else None,
        counterparty=counterparty,
        temperature_c=event.temperature_c,
        note=(event.note or "").strip() or None,
    )
    changes: dict[str, tuple[object, object]] = {"event": (None, event.event_type.value)}
    if unit.location != previous_location:
        changes["location"] = (previous_location, unit.location)
    if counterparty:
        changes["counterparty"] = (None, counterparty)
    if event.temperature_c is not None:
        changes["temperature_c"] = (None, event.temperature_c)
    audit.record(
        session,
        actor=actor,
        at=now,
        action=f"unit.{event.event_type.value}",
        entity_type="unit",
        entity_id=unit.id,
        changes=changes,
    )
    return recorded


def _add_event(
    session: DbSession,
    unit: Unit,
    event_type: EventType,
    *,
    actor: User | None,
    now: dt.datetime,
    at: dt.datetime,
    location: str | None,
    from_location: str | None = None,
    counterparty: str | None = None,
    temperature_c: float | None = None,
    note: str | None = None,
) -> UnitEvent:
    event = UnitEvent(
        unit_id=unit.id,
        event_type=event_type.value,
        at=at,
        recorded_at=now,
        actor_id=actor.id if actor else None,
        location=location,
        from_location=from_location,
        counterparty=counterparty,
        temperature_c=temperature_c,
        note=note,
    )
    session.add(event)
    session.flush()
    return event


def _required_text(value: str | None, field: str, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(_("%(what)s is required.", what=what), errors={field: [_("Required.")]})
    return text


# --- finding units ----------------------------------------------------------------------------


def get_unit(session: DbSession, unit_id: int) -> Unit:
    return get_or_404(session, Unit, unit_id, "unit")


def resolve_unit(session: DbSession, code: str) -> Unit:
    """The one unit a scanned or typed code identifies, or a clear error.

    The code is parsed and its check character verified, then compared whole and exactly with
    the issued codes (DOMAIN.md §8). A valid code of something that is not a unit (a donation's
    DIN, a patient's COI) is refused with a message that says what it is instead.
    """
    return unit_of_issued(session, numbering.lookup(session, code), text=code)


def shown_with_a_unit() -> tuple[ORMOption, ...]:
    """Loader options for what a unit's answer shows besides its own row (``UnitOut``: the
    donation's DIN, who created it), so they come with the unit in one statement (not the
    creator's roles)."""
    return (joinedload(Unit.donation), joinedload(Unit.created_by).lazyload(User.role_rows))


class IssuedCode(Protocol):
    """What is read of an issued identifier to find what it names: an ``IssuedIdentifier``,
    or its columns read as a plain row."""

    @property
    def code(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def entity_type(self) -> str | None: ...
    @property
    def entity_id(self) -> str | None: ...


def unit_of_issued(
    session: DbSession,
    issued: IssuedCode,
    *,
    text: str | None = None,
    options: Sequence[ORMOption] = (),
) -> Unit:
    """The unit an issued identifier (already looked up, e.g. by a scan) names, or the error
    ``resolve_unit`` gives for ``text``; ``options`` load what the caller reads of it."""
    if issued.kind != "UNIT" or issued.entity_type != "unit" or issued.entity_id is None:
        what = {"DIN": _("a donation's DIN"), "COI": _("a chain-of-identity identifier")}.get(
            issued.kind
        ) or _("a %(kind)s code", kind=issued.kind)
        raise InvalidIdentifier(
            _(
                "%(code)s is %(what)s, not a unit; scan the unit's own label.",
                code=issued.code,
                what=what,
            ),
            reason="structure",
            text=issued.code if text is None else text,
        )
    if not options:
        return get_unit(session, int(issued.entity_id))
    unit = session.get(Unit, int(issued.entity_id), options=options)
    if unit is None:
        raise NotFound(_("There is no unit #%(id)s.", id=issued.entity_id))
    return unit


def units_of_donation(session: DbSession, donation_id: int) -> list[Unit]:
    return list(
        session.execute(
            select(Unit).where(Unit.donation_id == donation_id).order_by(Unit.id)
        ).scalars()
    )


def history(session: DbSession, unit: Unit) -> list[UnitEvent]:
    """The unit's events in the order they happened (ties in the order they were recorded)."""
    return list(
        session.execute(
            select(UnitEvent)
            .where(UnitEvent.unit_id == unit.id)
            .order_by(UnitEvent.at, UnitEvent.id)
        ).scalars()
    )


def events_of_donation(session: DbSession, donation_id: int) -> list[UnitEvent]:
    """Every event on every unit of a donation, in the order they happened."""
    return list(
        session.execute(
            select(UnitEvent)
            .join(Unit, Unit.id == UnitEvent.unit_id)
            .where(Unit.donation_id == donation_id)
            .options(selectinload(UnitEvent.unit), selectinload(UnitEvent.actor))
            .order_by(UnitEvent.at, UnitEvent.id)
        ).scalars()
    )


def status_change_note(current: UnitStatus, target: UnitStatus, reason: str) -> str:
    """The note of a status change event: from, to and why (read back by ``ever_changed_to``)."""
    return f"{current.value} → {target.value}: {reason}"


def ever_changed_to(session: DbSession, unit_ids: Sequence[int], target: UnitStatus) -> bool:
    """Whether any of the units was ever changed to ``target`` (e.g. ever dispensed), from its
    status-change history; one query."""
    if not unit_ids:
        return False
    marker = status_change_note(UnitStatus.AVAILABLE, target, "").removeprefix(
        UnitStatus.AVAILABLE.value
    )  # " → dispensed: "
    found = session.execute(
        select(UnitEvent.id)
        .where(
            UnitEvent.unit_id.in_(list(unit_ids)),
            UnitEvent.event_type == EventType.STATUS_CHANGED.value,
            UnitEvent.note.contains(marker, autoescape=True),
        )
        .limit(1)
    ).first()
    return found is not None


@functools.cache
def _reasons_statement() -> Select[int, str | None]:
    """The status changes of the units ``:unit_ids`` with their notes, oldest first per unit;
    built once per process (issue 20: the bedside check reads it on every scan)."""
    return (
        select(UnitEvent.unit_id, UnitEvent.note)
        .where(
            UnitEvent.unit_id.in_(bindparam("unit_ids", expanding=True, type_=Integer())),
            UnitEvent.event_type == EventType.STATUS_CHANGED.value,
        )
        .order_by(UnitEvent.unit_id, UnitEvent.at, UnitEvent.id)
    )


def status_reasons(session: DbSession, units: Sequence[Unit]) -> dict[int, str]:
    """Why each unit is in its status: the note of its latest status change (e.g. "dispensed →
    blocked: recall RC-2026-0001: …"), by unit id; one query. Units never changed are absent."""
    if not units:
        return {}
    rows = session.execute(_reasons_statement(), {"unit_ids": [unit.id for unit in units]}).all()
    return latest_reasons((unit_id, note) for unit_id, note in rows)


def latest_reasons(rows: Iterable[tuple[int, str | None]]) -> dict[int, str]:
    """``status_reasons`` of (unit id, note) rows of the units' status changes already read,
    oldest first per unit: the note of each unit's latest, by unit id (none when empty)."""
    latest = {unit_id: note for unit_id, note in rows}
    return {unit_id: note for unit_id, note in latest.items() if note}


def parents_of(session: DbSession, unit: Unit) -> list[tuple[Unit, str]]:
    """The unit's direct parents with the operation that made it."""
    rows = session.execute(
        select(Unit, LineageEdge.operation)
        .join(LineageEdge, LineageEdge.parent_id == Unit.id)
        .where(LineageEdge.child_id == unit.id)
        .order_by(Unit.id)
    ).all()
    return [(row[0], row[1]) for row in rows]


def children_of(session: DbSession, unit: Unit) -> list[tuple[Unit, str]]:
    """The unit's direct children with the operation that made each."""
    rows = session.execute(
        select(Unit, LineageEdge.operation)
        .join(LineageEdge, LineageEdge.child_id == Unit.id)
        .where(LineageEdge.parent_id == unit.id)
        .order_by(Unit.id)
    ).all()
    return [(row[0], row[1]) for row in rows]


# --- trace queries (recursive, in the database) -----------------------------------------------


@dataclass(frozen=True)
class TraceStep:
    """A unit found by a trace, and how many lineage steps away from the start it is."""

    unit: Unit
    distance: int


def trace_back(session: DbSession, unit: Unit) -> list[TraceStep]:
    """Every ancestor of ``unit`` back to the donation's containers, nearest first.

    One recursive query (``WITH RECURSIVE``) walks the lineage edges upwards in the database;
    the number of queries does not grow with the size of the tree.
    """
    return _trace(session, [unit], upwards=True)


def trace_forward(session: DbSession, unit: Unit) -> list[TraceStep]:
    """Every descendant of ``unit`` (children, their children, …), nearest first; one query."""
    return _trace(session, [unit], upwards=False)


def ancestors_of_all(session: DbSession, units: Sequence[Unit]) -> list[TraceStep]:
    """Every ancestor of any of ``units`` (e.g. all the bags of a lot), in one query."""
    return _trace(session, units, upwards=True) if units else []


def lineage_walk(seeds: Select[int], *, upwards: bool, name: str = "reached") -> CTE:
    """Every unit reachable from ``seeds`` along the lineage (up to ancestors or down to
    descendants), as a recursive CTE of (unit_id, distance), the seeds at distance 0.

    The walk runs in the database, so a trace is one statement whatever the size of the tree;
    ``UNION`` (not ``UNION ALL``) keeps one row per (unit, distance) however many paths lead
    there, which also keeps it finite.
    """
    edges = LineageEdge.__table__
    start, step = (
        (edges.c.child_id, edges.c.parent_id) if upwards else (edges.c.parent_id, edges.c.child_id)
    )
    seed_rows = seeds.subquery()
    reached = select(seed_rows.c[0].label("unit_id"), literal(0).label("distance")).cte(
        name, recursive=True
    )
    return reached.union(
        select(step, reached.c.distance + 1).join(reached, start == reached.c.unit_id)
    )


def nearest_of(reached: CTE, *, include_seeds: bool = True) -> Subquery:
    """One row per unit of a ``lineage_walk``, with the fewest steps it takes to reach it."""
    query = select(reached.c.unit_id, func.min(reached.c.distance).label("distance"))
    if not include_seeds:
        query = query.where(reached.c.distance > 0)
    return query.group_by(reached.c.unit_id).subquery()


def descendants_as_arrays(seeds: Select[int]) -> Select[str, str]:
    """PostgreSQL: ``nearest_of(lineage_walk(seeds, upwards=False))`` as one row of two texts,
    the integer arrays of the units' ids and of their fewest steps from a seed, in the same
    order (both NULL when nothing is reached), for a statement that takes them back as
    parameters: no Python int per unit (issue 20: a trace forward of 26 138 units).

    Walked a generation at a time: each row of the recursive query is one generation's ids as
    an array, the next the distinct children of all of them, found by one index scan with
    ``= ANY`` rather than a join per row of the previous generation (a third less of
    PostgreSQL's time when most seeds are leaves). A unit is in generation k exactly when a
    path of k edges leads to it from a seed, so the (unit, distance) pairs, and each unit's
    fewest, are ``lineage_walk``'s (``tests/traceability/test_trace_forward_arrays.py``); like
    it, this assumes the lineage has no cycle (a unit is never its own ancestor)."""
    edges = LineageEdge.__table__
    seed_rows = seeds.subquery()
    generations = select(
        func.array_agg(seed_rows.c[0]).label("ids"), literal(0).label("distance")
    ).cte("generations", recursive=True)
    children = (
        select(func.array_agg(edges.c.child_id.distinct()))
        .where(edges.c.parent_id == any_(generations.c.ids))
        .scalar_subquery()
    )
    generations = generations.union_all(
        select(children, generations.c.distance + 1).where(generations.c.ids.is_not(None))
    )
    unit = func.unnest(generations.c.ids).table_valued("unit_id").render_derived(name="unit")
    nearest = (
        select(unit.c.unit_id, func.min(generations.c.distance).label("distance"))
        .select_from(generations)
        .join(unit, true())
        .group_by(unit.c.unit_id)
        .subquery("nearest")
    )
    return select(
        cast(func.array_agg(nearest.c.unit_id), Text),
        cast(func.array_agg(nearest.c.distance), Text),
    )


def _trace(session: DbSession, units: Sequence[Unit], *, upwards: bool) -> list[TraceStep]:
    seeds = select(Unit.id).where(Unit.id.in_([unit.id for unit in units]))
    nearest = nearest_of(lineage_walk(seeds, upwards=upwards), include_seeds=False)
    rows = session.execute(
        select(Unit, nearest.c.distance)
        .join(nearest, nearest.c.unit_id == Unit.id)
        .order_by(nearest.c.distance, Unit.id)
    ).all()
    return [TraceStep(unit=row[0], distance=row[1]) for row in rows]
