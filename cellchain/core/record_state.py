"""Records checked against the trail: every regulated row's values are in the audit trail.

An insider with database access could change a patient's arm or a lot number in SQL and
nothing would notice: the hash chain protects the trail, not the tables. So each transaction
that inserts, changes or deletes regulated rows appends, just before it commits, one
``records.state`` entry to the trail (through ``audit.record_many``, so it is hash-chained
like any other) holding the full values of every row it touched, and sets each touched row's
``audit_seq`` to that entry's ``seq``. ``verify_records`` rebuilds every row's current
values from the latest state entry naming it and names each row that differs.

Why a generic state entry and not the services' own entries: their ``changes`` name what a
reader needs ("coi", "protocol" as formatted text), not columns, and a service that forgets
a column would go unnoticed. The session sees every row the ORM writes (``after_flush``);
the few set-based statements that bypass the unit of work mark their rows themselves
(``marked`` + ``touched``), and ``do_orm_execute`` refuses an unmarked INSERT, UPDATE or
DELETE on a regulated table, so a new bulk path cannot forget.

Regulated = every table of a model with the ``Recorded`` mixin (``extensions.py``);
``UNRECORDED`` names the others and why. ``tests/core/test_record_state.py`` fails on a
table that is neither.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Date,
    Double,
    Enum,
    Executable,
    Float,
    Integer,
    Row,
    String,
    Table,
    TypeDecorator,
    event,
    select,
    tuple_,
)
from sqlalchemy import inspect as orm_inspect
from sqlalchemy.engine import Connection
from sqlalchemy.orm import (
    Mapper,
    ORMExecuteState,
    Session,
    SessionTransaction,
    UOWTransaction,
    object_session,
)
from sqlalchemy.orm.exc import UnmappedColumnError
from sqlalchemy.sql.dml import UpdateBase

from cellchain.core import audit
from cellchain.core.listing import Page, PageRequest, fetch_page
from cellchain.core.models import AuditEntry, User
from cellchain.core.types import UTCDateTime, canonical_json, to_jsonable, utcnow
from cellchain.extensions import DbSession, Model

#: Tables that are not regulated records, and why. Every other table is ``Recorded``.
UNRECORDED: dict[str, str] = {
    "audit_entries": "the trail itself: append-only and hash-chained",
    "audit_chain_head": "the end of the trail, checked by `cellchain audit verify`",
    "user_sessions": "login credentials, deleted at logout; logins and logouts are audited",
    "identifier_sequences": (
        "counters; what they hand out is in issued_identifiers, whose uniqueness refuses a reuse"
    ),
    "login_throttles": "failed-login counters per address and account (migration 0021)",
    # notifications (issue 21): each follows an event audited by its own service
    "notifications": "messages about audited events, made from them; no record of their own",
    "notification_recipients": "who a notification is for and whether they read it",
    "outbox_emails": "e-mails to send about notifications: delivery bookkeeping",
}

#: Columns that are bookkeeping, not part of the record: neither kept in the trail nor
#: checked, and a change to them alone writes no state (every failure is audited already).
UNRECORDED_COLUMNS: dict[str, frozenset[str]] = {
    "users": frozenset({"failed_attempts"}),
    "api_tokens": frozenset({"last_used_at"}),
    # an export's progress, written while it is generated (trial_data/exports.py)
    "trial_data_exports": frozenset({"percent", "step"}),
}

#: Columns kept in the trail as a SHA-256 digest of their value: a password hash must not be
#: readable in an audit export, but a hash replaced in SQL must still be named.
DIGESTED_COLUMNS: dict[str, frozenset[str]] = {
    "users": frozenset({"password_hash"}),
    # an exported file: its SHA-256 is audited with the export (trial_data/exports.py)
    "trial_data_exports": frozenset({"content"}),
    # a calibration or maintenance certificate: its SHA-256 is audited with it (issue 22)
    "equipment_certificates": frozenset({"content"}),
    # an unused slot's arm is concealed from everyone who reads the trail (issue 19)
    "randomization_slots": frozenset({"allocation"}),
}

STATE_ACTION = "records.state"
BASELINE_ACTION = "records.baseline"
STATE_ACTIONS = (STATE_ACTION, BASELINE_ACTION)
#: ``audit_seq`` of a row that existed before migration 0023, until the baseline is sealed
UNSEALED = 0
#: Rows per state entry: a bulk change or a baseline becomes several entries of bounded size.
ROWS_PER_ENTRY = 1000
#: Keys per ``IN (…)`` list: far below SQLite's and PostgreSQL's limits, and large enough that
#: a use case touching hundreds of rows reads and marks them in one statement per table.
KEYS_PER_STATEMENT = 5000
#: The execution option a set-based statement on a regulated table carries once its caller
#: marks the rows it changes with ``touched``.
MARKED_OPTION = "record_state_marked"
_INFO_KEY = "record_state"

Key = tuple[Any, ...]
_Statement = TypeVar("_Statement", bound=Executable)


class UnmarkedRecordChange(RuntimeError):
    """A set-based INSERT, UPDATE or DELETE on a regulated table did not mark its rows."""


# --- which tables and columns ---------------------------------------------------------------


def is_regulated(table: Table) -> bool:
    """Whether rows of ``table`` are regulated records (its model is ``Recorded``)."""
    return "audit_seq" in table.c


def regulated_tables() -> list[Table]:
    """Every regulated table, in dependency order."""
    return [table for table in Model.metadata.sorted_tables if is_regulated(table)]


def _recorded_columns(table: Table) -> list[Any]:
    skipped = UNRECORDED_COLUMNS.get(table.name, frozenset()) | {"audit_seq"}
    return [column for column in table.c if column.name not in skipped]


def key_text(key: Key) -> str:
    """A row's primary key as the trail writes it: ``12``, or ``3/7`` for a composite key."""
    return "/".join(str(part) for part in key)


def _digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()


def row_values(table: Table, row: Row[Any] | Any) -> dict[str, Any]:
    """A row's recorded columns as the trail keeps them (JSON values, digests where due)."""
    return _values_of(table, row._mapping)


def _values_of(table: Table, mapping: Any) -> dict[str, Any]:
    """``row_values`` of a row's values by column name."""
    digested = DIGESTED_COLUMNS.get(table.name, frozenset())
    values: dict[str, Any] = {}
    for column in _recorded_columns(table):
        value = mapping[column.name]
        if column.name in digested and value is not None:
            values[column.name] = _digest(value)
        else:
            values[column.name] = to_jsonable(value)
    return values


def _values_digest(values: dict[str, Any] | None) -> bytes | None:
    if values is None:
        return None
    return hashlib.blake2b(canonical_json(values).encode(), digest_size=16).digest()


def _key_of(table: Table, row: Row[Any] | Any) -> Key:
    return tuple(row._mapping[column.name] for column in table.primary_key.columns)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _where_keys(table: Table, keys: Sequence[Key]) -> Any:
    columns = list(table.primary_key.columns)
    if len(columns) == 1:
        return columns[0].in_([key[0] for key in keys])
    return tuple_(*columns).in_(list(keys))


# --- what a transaction touched -------------------------------------------------------------


@dataclass
class _Pending:
    """The regulated rows a transaction wrote so far, and who wrote them when."""

    touched: dict[Table, set[Key]] = field(default_factory=lambda: defaultdict(set))
    deleted: dict[Table, set[Key]] = field(default_factory=lambda: defaultdict(set))
    actor_id: int | None = None
    at: dt.datetime | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    #: the values of rows the ORM inserted and has not changed since (``_after_insert``):
    #: their state is written without reading them back
    inserted: dict[Table, dict[Key, dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(dict)
    )


def _pending(session: Session) -> _Pending:
    pending = session.info.get(_INFO_KEY)
    if pending is None:
        pending = session.info[_INFO_KEY] = _Pending()
    assert isinstance(pending, _Pending)
    return pending


def marked(statement: _Statement) -> _Statement:
    """``statement`` (a set-based INSERT, UPDATE or DELETE on a regulated table) with the
    promise that its caller passes the rows it changes to ``touched``."""
    return statement.execution_options(**{MARKED_OPTION: True})


def touched(session: DbSession, model: type[Any] | Table, keys: Iterable[Any]) -> None:
    """Record that rows of ``model`` with primary keys ``keys`` (values, or tuples for a
    composite key) were changed by a set-based statement in this transaction."""
    table = model if isinstance(model, Table) else orm_inspect(model).local_table
    assert isinstance(table, Table)
    if not is_regulated(table):
        return
    pending = _pending(_plain(session))
    target, inserted = pending.touched[table], pending.inserted.get(table, {})
    for key in keys:
        key = tuple(key) if isinstance(key, tuple) else (key,)
        target.add(key)
        inserted.pop(key, None)  # changed by SQL since the ORM inserted it: read it back


def _plain(session: DbSession) -> Session:
    """The Session behind a scoped session proxy."""
    return session() if callable(session) else session


def _changed_columns(state: Any, table: Table) -> bool:
    """Whether a flushed object changed a recorded column (or a many-to-one link)."""
    skipped = UNRECORDED_COLUMNS.get(table.name, frozenset())
    mapper = state.mapper
    for attribute in mapper.column_attrs:
        if attribute.key in skipped:
            continue
        if state.attrs[attribute.key].history.has_changes():
            return True
    return any(
        state.attrs[relationship.key].history.has_changes()
        for relationship in mapper.relationships
        if relationship.direction.name == "MANYTOONE"
    )


def _after_flush(session: Session, _context: UOWTransaction) -> None:
    """Note the regulated rows this flush inserted or changed, and the audit
    entries it wrote (the state entry takes their actor and time)."""
    pending = _pending(session)
    for obj in session.new:
        if isinstance(obj, AuditEntry):
            if obj.action not in STATE_ACTIONS:
                if pending.last_seq is None or obj.seq > pending.last_seq:
                    pending.actor_id, pending.at, pending.last_seq = obj.actor_id, obj.at, obj.seq
                if pending.first_seq is None or obj.seq < pending.first_seq:
                    pending.first_seq = obj.seq
            continue
        state = orm_inspect(obj)
        table = state.mapper.local_table
        if isinstance(table, Table) and is_regulated(table):
            pending.touched[table].add(tuple(state.mapper.primary_key_from_instance(obj)))
    for obj in session.dirty:
        state = orm_inspect(obj)
        table = state.mapper.local_table
        if isinstance(table, Table) and is_regulated(table) and _changed_columns(state, table):
            pending.touched[table].add(tuple(state.mapper.primary_key_from_instance(obj)))


def _note_written(
    session: DbSession, rows: Sequence[Any], written: Sequence[tuple[Any, ...]]
) -> None:
    """Note the audit entries a batch wrote (``audit.on_written``), as ``_after_flush`` notes
    those flushed as objects: the state entry takes the actor and time of the last and names
    the first."""
    pending = _pending(_plain(session))
    for row, done in zip(rows, written, strict=True):
        action, actor_id, at, seq = row[0], row[5], row[7], done[0]
        if action in STATE_ACTIONS:
            continue
        if pending.last_seq is None or seq > pending.last_seq:
            pending.actor_id, pending.at, pending.last_seq = actor_id, at, seq
        if pending.first_seq is None or seq < pending.first_seq:
            pending.first_seq = seq


audit.on_written(_note_written)


def _after_delete(mapper: Mapper[Any], _connection: Connection, target: Any) -> None:
    """Note a regulated row the ORM deleted (also by a cascade or as an orphan, which
    ``session.deleted`` does not list)."""
    table = mapper.local_table
    session = object_session(target)
    if session is not None and isinstance(table, Table) and is_regulated(table):
        key = tuple(mapper.primary_key_from_instance(target))
        pending = _pending(session)
        pending.deleted[table].add(key)
        pending.inserted.get(table, {}).pop(key, None)


def _exact(column: Any, value: Any) -> bool:
    """Whether ``value``, inserted into ``column``, reads back as itself on SQLite and
    PostgreSQL. Only plain types given their own Python type: not Numeric (rounded to its
    scale), JSON (numbers normalised), a real, an Enum or another TypeDecorator."""
    if value is None:
        return True
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return isinstance(value, dt.datetime) and value.tzinfo is not None
    if isinstance(kind, TypeDecorator | Enum):
        return False
    if isinstance(kind, Boolean):
        return type(value) is bool
    if isinstance(kind, Integer):
        return type(value) is int
    if isinstance(kind, String):
        return isinstance(value, str)
    if type(kind) is Date:
        return type(value) is dt.date
    if type(kind) in (Float, Double) and kind.precision is None:
        return type(value) is float
    return False


def _after_insert(mapper: Mapper[Any], _connection: Connection, target: Any) -> None:
    """Keep the values the ORM just inserted into a regulated row, when every recorded column
    is loaded and of a type that reads back as written: its state is then written from them
    (``write_state``) instead of reading the row back. Any later change drops them."""
    table = mapper.local_table
    session = object_session(target)
    if session is None or not isinstance(table, Table) or not is_regulated(table):
        return
    state = orm_inspect(target)
    loaded = state.dict
    mapping: dict[str, Any] = {}
    for column in _recorded_columns(table):
        try:
            prop = mapper.get_property_by_column(column)
        except UnmappedColumnError:  # a column the mapper does not map
            return
        if prop.key not in loaded or not _exact(column, loaded[prop.key]):
            return
        mapping[column.name] = loaded[prop.key]
    key = tuple(mapper.primary_key_from_instance(target))
    if any(part is None for part in key):
        return
    _pending(session).inserted[table][key] = _values_of(table, mapping)


def _after_update(mapper: Mapper[Any], _connection: Connection, target: Any) -> None:
    """A row the ORM updated is read back: drop the values kept when it was inserted."""
    table = mapper.local_table
    session = object_session(target)
    if session is not None and isinstance(table, Table) and is_regulated(table):
        pending = session.info.get(_INFO_KEY)
        if isinstance(pending, _Pending) and table in pending.inserted:
            pending.inserted[table].pop(tuple(mapper.primary_key_from_instance(target)), None)


def _after_soft_rollback(session: Session, _previous: SessionTransaction) -> None:
    """A rollback (of a savepoint too) may have undone an insert: read every row back."""
    pending = session.info.get(_INFO_KEY)
    if isinstance(pending, _Pending):
        pending.inserted.clear()


def _before_commit(session: Session) -> None:
    """Append the transaction's state entry and stamp the touched rows, before the commit."""
    if session.in_nested_transaction():
        return
    session.flush()
    pending = session.info.pop(_INFO_KEY, None)
    if pending is None or not (pending.touched or pending.deleted):
        return
    actor_id, at, entity_id = pending.actor_id, pending.at, str(pending.first_seq or 0)
    queued = audit.queued(session)
    if queued:  # entries not written yet, after any written: the state entry follows them
        actor_id, at = queued[-1].actor_id, queued[-1].at
        if pending.first_seq is None:
            entity_id = audit.FIRST_OF_BATCH  # written in the same batch, first
    actor = session.get(User, actor_id) if actor_id is not None else None
    write_state(
        session,
        pending.touched,
        pending.deleted,
        actor=actor,
        at=at or utcnow(),
        entity_id=entity_id,
        known=pending.inserted,
    )
    session.info.pop(_INFO_KEY, None)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_INFO_KEY, None)


def _guard_statements(state: ORMExecuteState) -> None:
    """Refuse a set-based INSERT, UPDATE or DELETE on a regulated table that does not
    promise to mark its rows: its change would be missing from the trail."""
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    if state.execution_options.get(MARKED_OPTION):
        return
    statement = state.statement
    table = statement.table if isinstance(statement, UpdateBase) else None
    if isinstance(table, Table) and is_regulated(table):
        raise UnmarkedRecordChange(
            f"A set-based statement on the regulated table {table.name} does not mark its "
            "rows: wrap it in record_state.marked(...) and pass its rows to "
            "record_state.touched(...)."
        )


def install() -> None:
    """Listen on every session (the app's, the scripts', the tests'); safe to call twice."""
    for name, mapper_listener in (
        ("after_delete", _after_delete),
        ("after_insert", _after_insert),
        ("after_update", _after_update),
    ):
        if not event.contains(Mapper, name, mapper_listener):
            event.listen(Mapper, name, mapper_listener)
    for name, listener in (
        ("after_flush", _after_flush),
        ("before_commit", _before_commit),
        ("after_transaction_end", _after_transaction_end),
        ("after_soft_rollback", _after_soft_rollback),
        ("do_orm_execute", _guard_statements),
    ):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)
    audit.install()  # after ours: the state entry is written with the queued entries


# --- writing state --------------------------------------------------------------------------


def _read_rows(
    session: DbSession, table: Table, keys: Sequence[Key]
) -> Iterator[tuple[Key, dict[str, Any]]]:
    """The recorded values of the rows of ``table`` with ``keys`` that exist."""
    columns = _recorded_columns(table)
    for chunk in _chunks(keys, KEYS_PER_STATEMENT):
        rows = session.execute(select(*columns).where(_where_keys(table, chunk)))
        for row in rows:
            yield _key_of(table, row), row_values(table, row)


def write_state(
    session: DbSession,
    touched_rows: dict[Table, set[Key]],
    deleted_rows: dict[Table, set[Key]],
    *,
    actor: User | None,
    at: dt.datetime,
    entity_id: str,
    action: str = STATE_ACTION,
    reason: str | None = None,
    known: dict[Table, dict[Key, dict[str, Any]]] | None = None,
) -> list[AuditEntry]:
    """Append the current values of the given rows to the trail and stamp their
    ``audit_seq``: one entry per ``ROWS_PER_ENTRY`` rows. The rows are stamped in the
    statements that append the entries, while the head is locked (``audit.record_many``'s
    ``stamps``; on PostgreSQL further members of the append's one statement, on SQLite one
    executemany per table), not by an ORM UPDATE per table and entry after it.

    A row deleted by the application is kept as ``null`` (so verify knows it is gone on
    purpose); a row that was inserted and rolled back in a savepoint is simply absent. The
    rows in ``known`` (inserted by the ORM and unchanged since, ``_after_insert``) are not
    read back: their values are the ones inserted."""
    states: list[tuple[Table, Key, dict[str, Any] | None]] = []
    for table in sorted(set(touched_rows) | set(deleted_rows), key=lambda t: t.name):
        deleted = deleted_rows.get(table, set())
        wanted = sorted(touched_rows.get(table, set()) | deleted, key=repr)
        kept = (known or {}).get(table, {})
        found = {key: kept[key] for key in wanted if key in kept and key not in deleted}
        unread = [key for key in wanted if key not in found]
        if unread:
            found.update(_read_rows(session, table, unread))
        for key in wanted:
            if key in found:
                states.append((table, key, found[key]))
            elif key in deleted_rows.get(table, set()):
                states.append((table, key, None))
    if not states:
        return []
    drafts = []
    stamps: list[dict[Table, list[Key]]] = []
    for chunk in _chunks(states, ROWS_PER_ENTRY):
        by_table: dict[str, dict[str, Any]] = defaultdict(dict)
        stamped: dict[Table, list[Key]] = defaultdict(list)
        for table, key, values in chunk:
            by_table[table.name][key_text(key)] = values
            if values is not None:  # a deleted row is gone: nothing to stamp
                stamped[table].append(key)
        drafts.append(
            audit.Draft(
                action,
                "transaction",
                entity_id,
                {name: (None, rows) for name, rows in by_table.items()},
                reason,
            )
        )
        stamps.append(stamped)
    return audit.record_many(session, drafts, actor=actor, at=at, stamps=stamps)


def seal_baseline(session: DbSession, *, reason: str, at: dt.datetime) -> int:
    """Record the values of every row that predates the record trail (``audit_seq`` 0, set
    by migration 0023 on an upgraded site), so verify checks them from now on; how many.

    Only those rows: a row inserted by SQL later has no ``audit_seq`` and stays reported.
    Audited as the system with the operator's reason; ``ROWS_PER_ENTRY`` rows per entry."""
    if not reason.strip():
        raise ValueError("A reason is required to seal the baseline.")
    sealed = 0
    for table in regulated_tables():
        pk = list(table.primary_key.columns)
        query = select(*pk).where(table.c.audit_seq == UNSEALED).order_by(*pk)
        keys = [tuple(row) for row in session.execute(query)]
        for part in _chunks(keys, ROWS_PER_ENTRY * 10):
            entries = write_state(
                session,
                {table: set(part)},
                {},
                actor=None,
                at=at,
                entity_id=table.name,
                action=BASELINE_ACTION,
                reason=reason,
            )
            sealed += len(part) if entries else 0
    return sealed


# --- reviewing ------------------------------------------------------------------------------


def review_entries(
    session: DbSession,
    criteria: audit.AuditFilter,
    *,
    show_states: bool,
    limit: int,
    offset: int,
) -> list[AuditEntry]:
    """A page of the audit review: the state entries (every written row's values, long, read
    by `audit verify --records` rather than by people) are left out unless asked for, by
    ``show_states`` or by filtering on their action. Nothing is hidden from the export."""
    query = audit.filtered_query(criteria)
    if not show_states and criteria.action not in STATE_ACTIONS:
        query = query.where(AuditEntry.action.not_in(STATE_ACTIONS))
    return list(session.execute(query.limit(limit).offset(offset)).scalars())


def review_page(
    session: DbSession,
    criteria: audit.AuditFilter,
    *,
    show_states: bool,
    request: PageRequest,
) -> Page[AuditEntry]:
    """A page of the audit review as ``core.listing`` pages a list (newest first by
    default; two statements), the state entries left out as in ``review_entries``."""
    query = audit.filtered_query(criteria)
    if not show_states and criteria.action not in STATE_ACTIONS:
        query = query.where(AuditEntry.action.not_in(STATE_ACTIONS))
    return fetch_page(session, query, audit.AUDIT_LIST, request)


# --- verifying ------------------------------------------------------------------------------


class Problem(StrEnum):
    """What is wrong with a row, as verify names it."""

    DIFFERS = "differs from the trail"
    PUT_BACK = "is not the row's latest state in the trail (an older row put back?)"
    NOT_IN_TRAIL = "is not in the trail (inserted outside the application)"
    DELETED = "is in the trail but no longer in the table (deleted outside the application)"
    DELETED_IN_TRAIL = "was deleted by the application but is back in the table"
    UNSEALED = "predates the record trail and is not sealed (run `cellchain audit seal-baseline`)"


@dataclass(frozen=True)
class ColumnDifference:
    """One column whose value differs from the trail's."""

    column: str
    trail: Any
    row: Any


@dataclass(frozen=True)
class RowProblem:
    """One row that does not match the trail."""

    table: str
    key: str
    problem: Problem
    #: the latest state entry naming the row, if any
    trail_seq: int | None = None
    #: the row's own ``audit_seq``
    row_seq: int | None = None
    columns: tuple[ColumnDifference, ...] = ()

    def describe(self) -> str:
        """One line a reviewer reads: which row, what is wrong, which values."""
        text = f"{self.table} {self.key} {self.problem.value}"
        if self.problem is Problem.PUT_BACK:
            text += f" (its audit_seq is #{self.row_seq}, its latest state is #{self.trail_seq})"
        elif self.trail_seq is not None:
            text += f" (state #{self.trail_seq})"
        for difference in self.columns:
            text += (
                f"; {difference.column}: trail {json.dumps(difference.trail, ensure_ascii=False)}"
                f", row {json.dumps(difference.row, ensure_ascii=False)}"
            )
        return text


@dataclass(frozen=True)
class RecordsReport:
    """Outcome of checking every regulated row against the trail."""

    rows_checked: int
    problems: tuple[RowProblem, ...]

    @property
    def differences(self) -> tuple[RowProblem, ...]:
        return tuple(p for p in self.problems if p.problem is not Problem.UNSEALED)

    @property
    def unsealed(self) -> tuple[RowProblem, ...]:
        return tuple(p for p in self.problems if p.problem is Problem.UNSEALED)

    @property
    def intact(self) -> bool:
        return not self.problems


_States = dict[tuple[str, str], tuple[int, bytes | None]]


def _latest_states(session: DbSession, batch_size: int, *, after: int = 0) -> tuple[_States, int]:
    """Each row named by a state entry after ``after`` → (seq of its latest state, digest of
    its values, or None for a deletion), and the last seq read. Streams the entries; keeps
    digests, not values."""
    latest: _States = {}
    last = after
    query = (
        select(AuditEntry.seq, AuditEntry.changes)
        .where(AuditEntry.action.in_(STATE_ACTIONS), AuditEntry.seq > after)
        .order_by(AuditEntry.seq)
        .execution_options(yield_per=batch_size)
    )
    for seq, changes in session.execute(query):
        last = seq
        for table_name, (_old, rows) in json.loads(changes).items():
            for key, values in rows.items():
                latest[(table_name, key)] = (seq, _values_digest(values))
    return latest, last


def _trail_values(
    session: DbSession, seq: int, table: str, key: str, cache: dict[int, Any]
) -> dict[str, Any] | None:
    """The values the state entry ``seq`` holds for one row (entries parsed once, a few kept)."""
    if seq not in cache:
        if len(cache) >= 64:
            cache.clear()
        changes = session.execute(
            select(AuditEntry.changes).where(AuditEntry.seq == seq)
        ).scalar_one()
        cache[seq] = json.loads(changes)
    values = cache[seq].get(table, [None, {}])[1].get(key)
    return values if isinstance(values, dict) else None


@dataclass(frozen=True)
class _Row:
    table: Table
    key: str
    row_seq: int | None
    values: dict[str, Any]


def _check(
    row: _Row, state: tuple[int, bytes | None] | None
) -> RowProblem | tuple[_Row, int] | None:
    """A row against its latest state: None if it matches, the problem if the row is not in
    the trail or deleted in it, or (row, seq) when its values or ``audit_seq`` differ (the
    columns are named afterwards, from the entry)."""
    if state is None:
        problem = Problem.UNSEALED if row.row_seq == UNSEALED else Problem.NOT_IN_TRAIL
        return RowProblem(row.table.name, row.key, problem, row_seq=row.row_seq)
    seq, digest = state
    if digest is None:
        return RowProblem(row.table.name, row.key, Problem.DELETED_IN_TRAIL, seq, row.row_seq)
    if _values_digest(row.values) != digest or row.row_seq != seq:
        return row, seq
    return None


def verify_records(session: DbSession, *, batch_size: int = 2000) -> RecordsReport:
    """Rebuild every regulated row from the latest state entry naming it and report each row
    that differs, was put back, was inserted or deleted outside the application, or predates
    the trail unsealed. Streams rows and entries: memory grows with a digest per row only.

    The application may commit while this runs (SQLite reads no snapshot): a row whose
    ``audit_seq`` is newer than the entries read first, and a row gone from its table, is
    checked again against the state entries written since, before it is reported."""
    latest, read_up_to = _latest_states(session, batch_size)
    outcomes: list[RowProblem | tuple[_Row, int]] = []
    late: list[tuple[_Row, tuple[int, bytes | None] | None]] = []
    checked = 0
    for table in regulated_tables():
        pk = list(table.primary_key.columns)
        query = (
            select(*_recorded_columns(table), table.c.audit_seq)
            .order_by(*pk)
            .execution_options(yield_per=batch_size)
        )
        for found in session.execute(query):
            checked += 1
            row = _Row(
                table,
                key_text(_key_of(table, found)),
                found._mapping["audit_seq"],
                row_values(table, found),
            )
            state = latest.pop((table.name, row.key), None)
            outcome = _check(row, state)
            if outcome is None:
                continue
            if row.row_seq is not None and row.row_seq > read_up_to:
                late.append((row, state))
            else:
                outcomes.append(outcome)
    gone = {name: state for name, state in latest.items() if state[1] is not None}
    if late or gone:
        since, _ = _latest_states(session, batch_size, after=read_up_to)
        for row, state in late:
            outcome = _check(row, since.get((row.table.name, row.key), state))
            if outcome is not None:
                outcomes.append(outcome)
        for (table_name, key), (seq, _digest) in gone.items():
            if (table_name, key) not in since:
                outcomes.append(RowProblem(table_name, key, Problem.DELETED, seq))
    problems = [outcome for outcome in outcomes if isinstance(outcome, RowProblem)]
    cache: dict[int, Any] = {}
    for outcome in outcomes:
        if isinstance(outcome, RowProblem):
            continue
        row, seq = outcome
        trail = _trail_values(session, seq, row.table.name, row.key, cache) or {}
        columns = tuple(
            ColumnDifference(name, trail.get(name), row.values.get(name))
            for name in sorted(set(trail) | set(row.values))
            if trail.get(name) != row.values.get(name)
        )
        problem = Problem.DIFFERS if row.row_seq == seq else Problem.PUT_BACK
        problems.append(RowProblem(row.table.name, row.key, problem, seq, row.row_seq, columns))
    problems.sort(key=lambda p: (p.table, p.key, p.problem.name))
    return RecordsReport(checked, tuple(problems))
