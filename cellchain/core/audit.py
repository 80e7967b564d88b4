"""The audit trail: one function to record, one to verify, one to read (DOMAIN.md §6).

Entries are written in the caller's transaction, so a change and its audit commit or roll
back together. Each entry's hash covers its content and the previous entry's hash; the
single ``audit_chain_head`` row is locked before the entries are placed (``SELECT … FOR
UPDATE`` on PostgreSQL, the write lock on SQLite) and held until the commit, so concurrent
writers append one after the other and never fork. Everything that does not depend on an
entry's place is done before the lock (``_write``).

The hash is keyed (issue 18): an HMAC-SHA256 with the current key of the key file
(``cellchain.core.audit_keys``), which is kept outside the database, and the entry names the
key's id. Someone who can write to the database but not read the key file cannot rewrite an
entry and recompute the hashes after it. Entries written before keys existed (``key_id``
null) keep their plain SHA-256 and verify as *legacy*; the protection starts at the first
keyed entry, after which an entry without a key is a rewrite. Checkpoints outside the
database (``cellchain.core.audit_checkpoints``) pin the chain's head so that a deleted tail,
or a table emptied and started again, is found too.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    ClauseElement,
    Integer,
    Select,
    String,
    Table,
    TextClause,
    bindparam,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql.util import find_tables

from cellchain.core import audit_keys
from cellchain.core.audit_keys import Keyring
from cellchain.core.driver import DriverStatement
from cellchain.core.listing import ListSpec, Page, PageRequest, fetch_page
from cellchain.core.models import AuditChainHead, AuditEntry, User
from cellchain.core.types import canonical_json, to_jsonable
from cellchain.errors import ReasonRequired
from cellchain.extensions import DbSession

GENESIS_HASH = "0" * 64
SYSTEM_ACTOR = "system"
#: The entry a key rotation writes: its ``entity_id`` is the new key's id, and it is the
#: first entry made with that key; entries after it may not use an older key.
KEY_ROTATED = "audit.key_rotated"

#: A change as field → (old, new).
Changes = Mapping[str, tuple[Any, Any]]


class AuditChainMissing(RuntimeError):
    """The chain head row is absent: the schema was not created by the migrations."""


def entry_hash(
    *,
    seq: int,
    prev_hash: str,
    at: dt.datetime,
    actor_id: int | None,
    actor_username: str,
    action: str,
    entity_type: str,
    entity_id: str,
    changes: str,
    reason: str | None,
) -> str:
    """SHA-256 over the canonical JSON of an entry's content and its predecessor's hash: the
    hash of a legacy entry (one made before the chain was keyed)."""
    content = _content(
        seq=seq,
        prev_hash=prev_hash,
        at=at,
        actor_id=actor_id,
        actor_username=actor_username,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        changes=changes,
        reason=reason,
    )
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def _content(
    *,
    seq: int,
    prev_hash: str,
    at: dt.datetime,
    actor_id: int | None,
    actor_username: str,
    action: str,
    entity_type: str,
    entity_id: str,
    changes: str,
    reason: str | None,
) -> dict[str, Any]:
    return {
        "seq": seq,
        "prev_hash": prev_hash,
        "at": at.astimezone(dt.UTC).isoformat(),
        "actor_id": actor_id,
        "actor_username": actor_username,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "changes": changes,
        "reason": reason,
    }


def _keyed_message(content: dict[str, Any], key_id: str) -> bytes:
    """What a keyed entry's HMAC covers: the legacy content and the key's id."""
    return canonical_json({**content, "key_id": key_id}).encode()


def keyed_entry_hash(keyring: Keyring, key_id: str, **fields: Any) -> str:
    """HMAC-SHA256, with the key ``key_id``, over an entry's content, its predecessor's hash
    and the key's id (the fields of ``entry_hash``)."""
    return keyring.mac(key_id, _keyed_message(_content(**fields), key_id))


def record(
    session: DbSession,
    *,
    actor: User | None,
    at: dt.datetime,
    action: str,
    entity_type: str,
    entity_id: str | int,
    changes: Changes | None = None,
    reason: str | None = None,
    reason_required: bool = False,
) -> AuditEntry:
    """Append one entry to the audit trail in the caller's transaction.

    ``reason_required`` is set by services for corrections and other changes that
    regulations say must be explained; such a change without a reason is refused.

    The entry is queued in the transaction and written with the others just before the
    commit (``_queued``), so a use case moves the chain's head once however many entries it
    makes; a rollback discards it with everything else. The entry returned gets its
    ``seq`` and hashes when it is written.
    """
    draft = Draft(action, entity_type, entity_id, changes, reason, reason_required)
    entry = _queued(draft, actor, at)
    plain = _plain(session)
    if not _INSTALLED:  # no listener would write the queue: write now, as before
        _append(plain, [entry])
    else:
        _queue_of(plain).items.append(entry)
    return entry


@dataclass(frozen=True)
class Draft:
    """One entry to append with ``record_many``: what was done to which record."""

    action: str
    entity_type: str
    entity_id: str | int
    changes: Changes | None = None
    reason: str | None = None
    reason_required: bool = False


#: The ``entity_id`` of a ``Draft`` that names the first entry of the batch it is written in:
#: a record-state entry names the transaction by its first entry, which may still be queued.
FIRST_OF_BATCH = "\x00first-of-batch"


def _queued(draft: Draft, actor: User | None, at: dt.datetime) -> AuditEntry:
    """The entry of ``draft`` as recorded, waiting for its place in the chain: everything
    but its seq, its predecessor's hash, its key and its own hash, set by ``_append``."""
    if draft.reason_required and not (draft.reason or "").strip():
        raise ReasonRequired(draft.action.replace(".", " "))
    return AuditEntry(
        action=draft.action,
        entity_type=draft.entity_type,
        entity_id=str(draft.entity_id),
        changes=canonical_json(
            {
                name: [to_jsonable(old), to_jsonable(new)]
                for name, (old, new) in (draft.changes or {}).items()
            }
        ),
        reason=draft.reason.strip() if draft.reason else None,
        actor_id=actor.id if actor else None,
        actor_username=actor.username if actor else SYSTEM_ACTOR,
        at=at.astimezone(dt.UTC),
    )


#: Rows of regulated tables whose ``audit_seq`` is set to the seq of the entry holding their
#: state, per draft of ``record_many`` (``record_state.write_state``): table → primary keys,
#: each a tuple of the key's values.
Stamps = Mapping[Table, Sequence[tuple[Any, ...]]]


def record_many(
    session: DbSession,
    drafts: Sequence[Draft],
    *,
    actor: User | None,
    at: dt.datetime,
    keyring: Keyring | None = None,
    stamps: Sequence[Stamps] | None = None,
) -> list[AuditEntry]:
    """Append entries by one actor at one time, in order, now, with a fixed number of
    statements however many there are (a recall blocking hundreds of units): the chain head
    is moved once, the hashes are chained here, and the entries are inserted together.

    Entries of the transaction still queued (``record``) are written first, in the same
    batch, so the chain keeps the order in which they were made. The entries are keyed with
    the current key of ``keyring`` (the app's by default), read after the head's lock is
    taken, so an entry that follows a key rotation's entry in the chain is always made with
    the new key. Returns the entries of ``drafts`` (as written; not loaded in the session).

    Inside a savepoint nothing is written: the entries are queued as ``record`` queues them
    (written before the commit, dropped if the savepoint rolls back), since writing the
    queue there would let the savepoint's rollback take entries made before it while the
    transaction commits (review finding F1).

    ``stamps`` (one per draft): the rows whose ``audit_seq`` is set to that draft's seq, in
    the statements that write the entries (``_write``), while the head is locked; only
    outside any savepoint, where the seqs are known."""
    if not drafts:
        return []
    rows = _pending_rows(drafts, actor, at)
    plain = _plain(session)
    if stamps is not None and (keyring is not None or len(stamps) != len(drafts)):
        raise ValueError("stamps are given per draft, and not with a key rotation")
    if _INSTALLED and plain.in_nested_transaction():
        if keyring is not None:
            raise RuntimeError("a key rotation is recorded outside any savepoint")
        if stamps is not None:
            raise RuntimeError("rows are stamped with their entry's seq outside any savepoint")
        items = [_entry_of(row) for row in rows]
        _queue_of(plain).items.extend(items)
        return items
    if keyring is not None:  # the queued entries were made before this key: theirs first
        write_queued(plain)
        written = _write(plain, rows, keyring)
        return [_entry_of(row, done) for row, done in zip(rows, written, strict=True)]
    with _taken_queue(plain) as earlier:
        offset = len(earlier)
        written = _write(
            plain,
            [_pending_of(entry) for entry in earlier] + rows,
            stamps=[
                (offset + index, table, keys)
                for index, by_table in enumerate(stamps or ())
                for table, keys in by_table.items()
                if keys
            ],
        )
        _stamp(earlier, written[:offset])
    return [_entry_of(row, done) for row, done in zip(rows, written[offset:], strict=True)]


def append_many(
    session: DbSession, drafts: Sequence[Draft], *, actor: User | None, at: dt.datetime
) -> None:
    """``record_many`` without the entries back: what a bulk change (a recall blocking tens of
    thousands of units) uses, so that no ORM object is made per entry."""
    if not drafts:
        return
    plain = _plain(session)
    if _INSTALLED and plain.in_nested_transaction():
        record_many(plain, drafts, actor=actor, at=at)
        return
    rows = _pending_rows(drafts, actor, at)
    with _taken_queue(plain) as earlier:
        written = _write(plain, [_pending_of(entry) for entry in earlier] + rows)
        _stamp(earlier, written[: len(earlier)])


#: An entry waiting for its place in the chain, as ``_write`` takes it: action, entity_type,
#: entity_id, changes (canonical JSON), reason, actor_id, actor_username, at.
_Pending = tuple[str, str, str, str, "str | None", "int | None", str, dt.datetime]
#: What ``_write`` gave an entry: seq, prev_hash, entry_hash, key_id, entity_id.
_Written = tuple[int, str, str, str, str]


def _pending_rows(drafts: Sequence[Draft], actor: User | None, at: dt.datetime) -> list[_Pending]:
    """The drafts as ``_queued`` would make them, as plain tuples. Changes made only of text
    (a status change) are encoded once per distinct value."""
    actor_id = actor.id if actor else None
    actor_username = actor.username if actor else SYSTEM_ACTOR
    at = at.astimezone(dt.UTC)
    texts: dict[tuple[Any, ...], str] = {}
    rows: list[_Pending] = []
    for draft in drafts:
        reason = draft.reason
        if draft.reason_required and not (reason or "").strip():
            raise ReasonRequired(draft.action.replace(".", " "))
        changes = draft.changes or {}
        key = tuple(changes.items())
        if all(
            type(name) is str
            and type(pair) is tuple
            and len(pair) == 2
            and (pair[0] is None or type(pair[0]) is str)
            and (pair[1] is None or type(pair[1]) is str)
            for name, pair in key
        ):
            text = texts.get(key)
            if text is None:
                text = texts[key] = _changes_text(changes)
        else:
            text = _changes_text(changes)
        rows.append(
            (
                draft.action,
                draft.entity_type,
                str(draft.entity_id),
                text,
                reason.strip() if reason else None,
                actor_id,
                actor_username,
                at,
            )
        )
    return rows


def _changes_text(changes: Changes) -> str:
    # canonical_json makes every value JSON-safe (``to_jsonable``, which gives the same value
    # applied twice): the pairs are not walked a second time before it
    return canonical_json({name: [old, new] for name, (old, new) in changes.items()})


def _pending_of(entry: AuditEntry) -> _Pending:
    return (
        entry.action,
        entry.entity_type,
        entry.entity_id,
        entry.changes,
        entry.reason,
        entry.actor_id,
        entry.actor_username,
        entry.at,
    )


def _entry_of(row: _Pending, done: _Written | None = None) -> AuditEntry:
    action, entity_type, entity_id, changes, reason, actor_id, actor_username, at = row
    entry = AuditEntry(
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        changes=changes,
        reason=reason,
        actor_id=actor_id,
        actor_username=actor_username,
        at=at,
    )
    if done is not None:
        _stamp([entry], [done])
    return entry


def _stamp(entries: Sequence[AuditEntry], written: Sequence[_Written]) -> None:
    """Give queued entries what writing them decided."""
    for entry, (seq, prev_hash, entry_hash, key_id, entity_id) in zip(
        entries, written, strict=True
    ):
        entry.seq, entry.prev_hash, entry.entry_hash = seq, prev_hash, entry_hash
        entry.key_id, entry.entity_id = key_id, entity_id


def _append(
    session: DbSession, items: Sequence[AuditEntry], keyring: Keyring | None = None
) -> list[AuditEntry]:
    """Write ``items`` (queued entries) at the end of the chain (``_write``)."""
    if not items:
        return []
    _stamp(items, _write(session, [_pending_of(entry) for entry in items], keyring))
    return list(items)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A batch hashed as far as it can be before its place in the chain is known
    (``_prepare``): what ``_chain`` needs to finish each entry's HMAC once the head is locked."""

    rows: Sequence[_Pending]
    key_id: str
    secret: bytes
    outer_pad: Any
    #: per entry: the HMAC's inner state fed with the entry's text up to ``"entity_id":``,
    #: its entity id as JSON (None for ``FIRST_OF_BATCH``), the text from its entity type up
    #: to ``"prev_hash":`` and from its reason up to ``"seq":``; None for an entry with values
    #: of other types than the schema's (hashed whole by ``_keyed_message``)
    parts: list[tuple[Any, str | None, str, str] | None]


def _prepare(rows: Sequence[_Pending], key_id: str, secret: bytes) -> _Prepared:
    """Everything of the entries' hashes that does not depend on their place in the chain:
    the canonical JSON of each entry's content but its seq and predecessor (and the entity id
    of a ``FIRST_OF_BATCH`` entry), fed into the HMAC's inner hash. The keys of the hashed text
    are in sorted order, so the parts that depend on the place come last."""
    inner_pad, outer_pad = _hmac_pads(secret)
    enc = json.encoder.encode_basestring  # the one ``json.dumps(ensure_ascii=False)`` uses
    key_text = enc(key_id)
    utc = dt.UTC
    last_at: Any = None
    at_text = ""
    parts: list[tuple[Any, str | None, str, str] | None] = []
    for action, entity_type, entity_id, changes, reason, actor_id, actor_username, at in rows:
        if not (
            type(action) is str
            and type(entity_type) is str
            and type(entity_id) is str
            and type(changes) is str
            and type(actor_username) is str
            and (reason is None or type(reason) is str)
            and (actor_id is None or type(actor_id) is int)
        ):
            parts.append(None)
            continue
        if at is not last_at:
            last_at = at
            at_text = enc(at.astimezone(utc).isoformat())
        inner = inner_pad.copy()
        inner.update(
            (
                f'{{"action":{enc(action)},'
                f'"actor_id":{"null" if actor_id is None else actor_id},'
                f'"actor_username":{enc(actor_username)},"at":{at_text},'
                f'"changes":{enc(changes)},"entity_id":'
            ).encode()
        )
        parts.append(
            (
                inner,
                None if entity_id == FIRST_OF_BATCH else enc(entity_id),
                f',"entity_type":{enc(entity_type)},"key_id":{key_text},"prev_hash":',
                f',"reason":{"null" if reason is None else enc(reason)},"seq":',
            )
        )
    return _Prepared(rows, key_id, secret, outer_pad, parts)


def _chain(prepared: _Prepared, first_seq: int, prev_hash: str) -> list[_Written]:
    """The place, predecessor and HMAC of each entry of a prepared batch appended after
    ``prev_hash`` from ``first_seq`` on: the little left of each hash once the head is locked."""
    enc = json.encoder.encode_basestring
    outer_pad, key_id = prepared.outer_pad, prepared.key_id
    first = str(first_seq)
    first_text = enc(first)
    written: list[_Written] = []
    seq = first_seq
    for row, part in zip(prepared.rows, prepared.parts, strict=True):
        entity_id = first if row[2] == FIRST_OF_BATCH else row[2]
        if part is not None:
            inner, entity_text, middle, end = part
            inner = inner.copy()
            inner.update(
                f"{first_text if entity_text is None else entity_text}{middle}"
                f"{enc(prev_hash)}{end}{seq}}}".encode()
            )
            outer = outer_pad.copy()
            outer.update(inner.digest())
            entry_hash = outer.hexdigest()
        else:
            action, entity_type, _, changes, reason, actor_id, actor_username, at = row
            message = _keyed_message(
                _content(
                    seq=seq,
                    prev_hash=prev_hash,
                    at=at,
                    actor_id=actor_id,
                    actor_username=actor_username,
                    action=action,
                    entity_type=entity_type,
                    entity_id=entity_id,
                    changes=changes,
                    reason=reason,
                ),
                key_id,
            )
            entry_hash = hmac.new(prepared.secret, message, hashlib.sha256).hexdigest()
        written.append((seq, prev_hash, entry_hash, key_id, entity_id))
        prev_hash = entry_hash
        seq += 1
    return written


def chain_hashes(
    rows: Sequence[_Pending], *, first_seq: int, prev_hash: str, key_id: str, secret: bytes
) -> list[_Written]:
    """The place, predecessor and HMAC of each entry of ``rows`` appended after ``prev_hash``
    from ``first_seq`` on: ``keyed_entry_hash`` of each, computed in one loop (``_prepare``,
    then ``_chain``). The hashed text is written directly with the JSON module's own string
    encoder, keys in sorted order, as ``scan_chunk`` reads it; rows of other types than the
    schema's are encoded by ``canonical_json`` itself (tests/core/test_audit_queue.py compares
    the two)."""
    return _chain(_prepare(rows, key_id, secret), first_seq, prev_hash)


_HEAD = cast(Table, AuditChainHead.__table__)
_ENTRIES = cast(Table, AuditEntry.__table__)

_COLUMNS = (
    *("action", "entity_type", "entity_id", "changes", "reason", "actor_id", "actor_username"),
    *("at", "seq", "prev_hash", "entry_hash", "key_id"),
)
#: The columns ``_APPEND`` takes as JSON arrays (the key id is one value for the batch).
_ARRAYS = _COLUMNS[:-1]

#: PostgreSQL: lock the head's row until the commit and read it. Concurrent writers wait
#: here, then read the head as the one before them left it; nothing is changed yet, so a
#: write that fails after it leaves the head as it was.
#: With the key of the entry it names ('' for a legacy one), refused to a server whose key
#: file is older (``audit_keys.refuse_outdated``); None when that entry is not in the
#: statement's snapshot (committed while this writer waited for the lock: ``_LAST_KEY``).
_HEAD_KEY = (
    select(func.coalesce(_ENTRIES.c.key_id, literal_column("''")))
    .where(_ENTRIES.c.seq == _HEAD.c.last_seq)
    .scalar_subquery()
    .label("last_key")
)
_LOCK_HEAD = DriverStatement(
    select(_HEAD.c.last_seq, _HEAD.c.last_hash, _HEAD_KEY)
    .where(_HEAD.c.id == 1)
    .with_for_update(of=_HEAD)
)
_LAST_KEY = select(_ENTRIES.c.key_id).where(_ENTRIES.c.seq == bindparam("seq", type_=Integer()))

#: PostgreSQL: the entries inserted and the head moved to the last of them in one statement
#: (a data-modifying CTE), the entries as one JSON array per column (json's C encoder;
#: psycopg would dump a Python list as an array value by value), unnested side by side.
_APPENDED = (
    f"appended AS (INSERT INTO audit_entries ({', '.join(_COLUMNS)}) SELECT action, "
    "entity_type, entity_id, changes, reason, CAST(actor_id AS integer), actor_username, "
    "CAST(at AS timestamptz), CAST(seq AS integer), prev_hash, entry_hash, "
    "CAST(:key_id AS varchar) FROM ROWS FROM ("
    + ", ".join(f"json_array_elements_text(CAST(:{name} AS json))" for name in _ARRAYS)
    + f") AS entry({', '.join(_ARRAYS)}))"
)
_MOVE_HEAD = (
    "UPDATE audit_chain_head SET last_seq = CAST(:last_seq AS integer), "
    "last_hash = CAST(:last_hash AS varchar) WHERE id = 1"
)
_APPEND = DriverStatement(text(f"WITH {_APPENDED} {_MOVE_HEAD}"))

#: PostgreSQL: ``_APPEND`` that also sets the ``audit_seq`` of the rows whose state the
#: entries hold (``record_state``), one more member of the CTE per table: an ``UPDATE … FROM``
#: the rows' seqs and keys as JSON arrays, unnested side by side. So the rows are stamped in
#: the statement that appends, and the head's lock is not held for one more statement per
#: table. One statement per set of tables, compiled once (``_stamping_append``).
_STAMPING_APPENDS: dict[tuple[str, ...], DriverStatement] = {}
#: How many sets of tables keep their statement: a worker sees a few dozen use cases.
_STAMPING_KEPT = 512


def _stamp_member(index: int, table: Table, dialect: Any) -> str:
    """The CTE member of ``_stamping_append`` that stamps the rows of ``table``: parameter
    ``stamp<index>_0`` holds the seqs, ``stamp<index>_<n>`` the n-th key column's values."""
    quote = dialect.identifier_preparer.quote
    name, alias = quote(table.name), f"stamp{index}"
    keys = list(table.primary_key.columns)
    for column in keys:  # written as JSON text and cast back: numbers and text only
        if not isinstance(column.type, Integer | String):
            raise TypeError(f"{table.name}.{column.name}: a key of another type than int or str")
    arrays = ", ".join(
        f"json_array_elements_text(CAST(:{alias}_{n} AS json))" for n in range(len(keys) + 1)
    )
    columns = ", ".join(["seq", *(f"k{n}" for n in range(len(keys)))])
    match = " AND ".join(
        f"{name}.{quote(column.name)} = CAST({alias}.k{n} AS {column.type.compile(dialect)})"
        for n, column in enumerate(keys)
    )
    return (
        f"stamped{index} AS (UPDATE {name} SET audit_seq = CAST({alias}.seq AS integer) "
        f"FROM ROWS FROM ({arrays}) AS {alias}({columns}) WHERE {match})"
    )


def _stamping_append(tables: Sequence[Table], dialect: Any) -> DriverStatement:
    """``_APPEND`` stamping the rows of ``tables`` (in this order) too."""
    shape = tuple(table.name for table in tables)
    statement = _STAMPING_APPENDS.get(shape)
    if statement is None:
        if len(_STAMPING_APPENDS) >= _STAMPING_KEPT:
            _STAMPING_APPENDS.clear()
        members = [_stamp_member(index, table, dialect) for index, table in enumerate(tables)]
        statement = _STAMPING_APPENDS[shape] = DriverStatement(
            text(f"WITH {', '.join([_APPENDED, *members])} {_MOVE_HEAD}")
        )
    return statement


#: SQLite: the rows of one table stamped, one executemany of this per table.
_STAMPS_SQLITE: dict[Table, Any] = {}


def _stamp_sqlite(table: Table) -> Any:
    statement = _STAMPS_SQLITE.get(table)
    if statement is None:
        statement = _STAMPS_SQLITE[table] = (
            update(table)
            .where(
                *(
                    column == bindparam(f"stamp_key_{n}", type_=column.type)
                    for n, column in enumerate(table.primary_key.columns)
                )
            )
            .values(audit_seq=bindparam("stamp_seq", type_=Integer()))
        )
    return statement


#: SQLite (one writer at a time): an UPDATE that changes nothing takes the database's write
#: lock and reads the head; the entries are inserted, then the head is moved in one UPDATE.
#: A write that fails before the last statement leaves the head as it was, so writing again
#: in the same transaction leaves no gap in the seqs (review finding N3).
_LOCK_HEAD_SQLITE = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(last_seq=_HEAD.c.last_seq)
    .returning(_HEAD.c.last_seq, _HEAD.c.last_hash, _HEAD_KEY)
)
_INSERT_SQLITE = insert(_ENTRIES)
_MOVE_HEAD_SQLITE = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(
        last_seq=bindparam("new_seq", type_=Integer()),
        last_hash=bindparam("new_hash", type_=String()),
    )
)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def _arrays(rows: Sequence[_Pending]) -> dict[str, str]:
    """The columns of ``rows`` that do not depend on their place in the chain, as JSON arrays
    for ``_APPEND`` (the entity ids of a batch with a ``FIRST_OF_BATCH`` entry are left for
    ``_write``)."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    at_texts = {at: _iso(at) for at in set(columns[7])}
    columns[7] = [at_texts[at] for at in columns[7]]
    arrays = {name: json.dumps(column) for name, column in zip(_COLUMNS, columns, strict=False)}
    if FIRST_OF_BATCH in columns[2]:
        del arrays["entity_id"]
    return arrays


#: The keyring the last ``_write`` read once the head was locked: the key the next one
#: hashes with before taking the lock, when it is still the app's current key then.
_LAST_KEYRING: Keyring | None = None


#: Told of every batch ``_write`` wrote, with what writing it decided (``on_written``).
WrittenHook = Callable[[DbSession, Sequence[_Pending], Sequence[_Written]], None]
_WRITTEN_HOOKS: list[WrittenHook] = []


def on_written(hook: WrittenHook) -> None:
    """Call ``hook(session, rows, written)`` after each batch of entries is written:
    ``record_state`` takes a transaction's actor, time and first entry from it, since the
    entries are written as rows, not flushed as ORM objects it would see."""
    if hook not in _WRITTEN_HOOKS:
        _WRITTEN_HOOKS.append(hook)


#: A stamp as ``_write`` takes it: the index in the batch of the entry holding the rows'
#: state, their table, their primary keys.
_Stamp = tuple[int, Table, Sequence[tuple[Any, ...]]]


def _stamped_seqs(
    stamps: Sequence[_Stamp], written: Sequence[_Written]
) -> dict[Table, dict[tuple[Any, ...], int]]:
    """Each stamped row's seq, by table (sorted by name); a row named twice takes the later
    entry's, as two UPDATEs one after the other would leave it."""
    seqs: dict[Table, dict[tuple[Any, ...], int]] = {}
    for index, table, keys in stamps:
        seq = written[index][0]
        by_key = seqs.setdefault(table, {})
        for key in keys:
            by_key[key] = seq
    return {table: seqs[table] for table in sorted(seqs, key=lambda table: table.name)}


def _write(
    session: DbSession,
    rows: Sequence[_Pending],
    keyring: Keyring | None = None,
    stamps: Sequence[_Stamp] = (),
) -> list[_Written]:
    """Write ``rows`` at the end of the chain. Everything that does not depend on the
    entries' place in the chain is done first, before the head's row is locked (its lock is
    held until the commit, and every other writer waits for it): the entries' canonical JSON,
    hashed into their HMACs as far as it goes, and the JSON arrays of their columns. Then:

    - PostgreSQL, two statements: lock and read the head (``_LOCK_HEAD``); finish the hashes;
      insert the entries, stamp the rows of ``stamps`` and move the head in one (``_APPEND``,
      ``_stamping_append``).
    - SQLite, three: lock and read the head, insert the entries (one executemany), move the
      head; and one executemany per table of ``stamps`` before the move.

    ``stamps``: rows of regulated tables whose ``audit_seq`` is set to the seq of the entry
    (of ``rows``, by index) holding their state (``record_state.write_state``).

    The statements are sent on the session's connection without the ORM (``DriverStatement``
    on PostgreSQL): no Session event needs them, since the entries are no ORM objects."""
    global _LAST_KEYRING
    if not rows:
        return []
    explicit = keyring is not None
    # the key the last write found, checked once the head is locked (reading the key file's
    # state costs a stat and the app's lookups, and is needed after the lock anyway)
    keyring = keyring or _LAST_KEYRING or audit_keys.current_keyring()
    key_id = keyring.current_id
    secret = keyring.keys[key_id]
    prepared = _prepare(rows, key_id, secret)
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    arrays = _arrays(rows) if postgres else {}
    # --- from here the head is locked until the commit
    head = (
        _LOCK_HEAD.one_or_none(connection, {})
        if postgres
        else connection.execute(_LOCK_HEAD_SQLITE).one_or_none()
    )
    if head is None:
        raise AuditChainMissing("audit_chain_head has no row; run `cellchain db upgrade`.")
    last_seq, prev_hash, last_key = head
    if last_key is None and last_seq:  # not in the lock's snapshot: read it now
        last_key = connection.execute(_LAST_KEY, {"seq": last_seq}).scalar()
    if not explicit:
        # a key rotation committed while this writer waited for the lock: its entry is
        # before these, which must be made with its key (read after the lock, as before)
        current = _LAST_KEYRING = audit_keys.current_keyring()
        if current.current_id != key_id or current.keys[current.current_id] != secret:
            key_id = current.current_id
            secret = current.keys[key_id]
            prepared = _prepare(rows, key_id, secret)
        keyring = current
    audit_keys.refuse_outdated(keyring, key_id, last_key, last_seq)
    written = _chain(prepared, last_seq + 1, prev_hash)
    stamped = _stamped_seqs(stamps, written) if stamps else {}
    if postgres:
        if "entity_id" not in arrays:
            arrays["entity_id"] = json.dumps([done[4] for done in written])
        params = {
            **arrays,
            "seq": json.dumps([done[0] for done in written]),
            "prev_hash": json.dumps([done[1] for done in written]),
            "entry_hash": json.dumps([done[2] for done in written]),
            "key_id": key_id,
            "last_seq": written[-1][0],
            "last_hash": written[-1][2],
        }
        statement = _APPEND
        if stamped:
            statement = _stamping_append(list(stamped), connection.dialect)
            for index, by_key in enumerate(stamped.values()):
                params[f"stamp{index}_0"] = json.dumps(list(by_key.values()))
                for n, values in enumerate(zip(*by_key, strict=True)):
                    params[f"stamp{index}_{n + 1}"] = json.dumps(values)
        statement.execute(connection, params)
    else:
        connection.execute(
            _INSERT_SQLITE,
            [
                dict(zip(_COLUMNS, (*row[:2], done[4], *row[3:], *done[:4]), strict=True))
                for row, done in zip(rows, written, strict=True)
            ],
        )
        for table, by_key in stamped.items():
            connection.execute(
                _stamp_sqlite(table),
                [
                    {"stamp_seq": seq, **{f"stamp_key_{n}": part for n, part in enumerate(key)}}
                    for key, seq in by_key.items()
                ],
            )
        connection.execute(
            _MOVE_HEAD_SQLITE, {"new_seq": written[-1][0], "new_hash": written[-1][2]}
        )
    for hook in _WRITTEN_HOOKS:
        hook(session, rows, written)
    return written


# --- the queue of a transaction -----------------------------------------------------------------

_QUEUE_KEY = "audit_queue"
#: Whether the listeners that write the queue are installed (``install``); until then
#: ``record`` writes at once.
_INSTALLED = False


@dataclass
class _Queue:
    """The entries a transaction recorded and has not written yet (``_queued``)."""

    #: the session's outermost transaction the entries belong to
    transaction: SessionTransaction
    items: list[AuditEntry] = field(default_factory=list)
    #: for each savepoint open when it began: how many entries were queued before it
    marks: dict[SessionTransaction, int] = field(default_factory=dict)


def _plain(session: DbSession) -> Session:
    """The Session behind a scoped session proxy."""
    return session() if callable(session) else session


def _root(session: Session) -> SessionTransaction:
    transaction = session.get_transaction()
    if transaction is None:
        transaction = session.begin()
    return transaction


def _queue_of(session: Session) -> _Queue:
    root = _root(session)
    queue = session.info.get(_QUEUE_KEY)
    if not isinstance(queue, _Queue) or queue.transaction is not root:
        queue = session.info[_QUEUE_KEY] = _Queue(root)
    return queue


def queued(session: DbSession) -> Sequence[AuditEntry]:
    """The entries of the current transaction not yet written, oldest first."""
    queue = _plain(session).info.get(_QUEUE_KEY)
    return tuple(queue.items) if isinstance(queue, _Queue) else ()


@contextmanager
def _taken_queue(session: Session) -> Iterator[list[AuditEntry]]:
    """The transaction's queued entries, taken off its queue to be written in the block. If
    the block fails, they are put back as they were (with the savepoints' marks), so that a
    commit retried without a rollback still writes them or fails again, never commits the
    change without its entries (independent review, finding F5)."""
    queue = session.info.get(_QUEUE_KEY)
    if not isinstance(queue, _Queue) or not queue.items:
        yield []
        return
    items, marks = queue.items, queue.marks
    queue.items, queue.marks = [], {transaction: 0 for transaction in marks}
    try:
        yield items
    except BaseException:
        queue.items, queue.marks = items + queue.items, marks
        raise


def write_queued(session: DbSession) -> list[AuditEntry]:
    """Write the entries the transaction has queued, now."""
    plain = _plain(session)
    with _taken_queue(plain) as items:
        return _append(plain, items)


def _write_before_commit(session: Session) -> None:
    """The queued entries are written before the commit (``record_state`` writes them with
    its state entry when it runs first, in the same batch)."""
    if session.in_nested_transaction():
        return
    if session.info.get(_QUEUE_KEY) is not None:
        write_queued(session)


def _write_before_reading_the_trail(state: ORMExecuteState) -> None:
    """Read-your-writes: a statement that reads the trail (or raw SQL, which may) sees the
    transaction's queued entries. Not inside a savepoint: its rollback would take entries
    made before it."""
    session = state.session
    queue = session.info.get(_QUEUE_KEY)
    if not isinstance(queue, _Queue) or not queue.items or session.in_nested_transaction():
        return
    statement = state.statement
    if (
        not isinstance(statement, ClauseElement)
        or isinstance(statement, TextClause)
        or _TRAIL_TABLES & {table.name for table in find_tables(statement, include_joins=True)}
    ):
        write_queued(session)


_TRAIL_TABLES = frozenset({"audit_entries", "audit_chain_head"})


def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    queue = session.info.get(_QUEUE_KEY)
    if transaction.nested and isinstance(queue, _Queue):
        queue.marks[transaction] = len(queue.items)


def _forget_rolled_back(session: Session, transaction: SessionTransaction) -> None:
    """A savepoint rolled back takes the entries queued since it began."""
    queue = session.info.get(_QUEUE_KEY)
    if transaction.nested and isinstance(queue, _Queue):
        del queue.items[queue.marks.pop(transaction, 0) :]


def _end(session: Session, transaction: SessionTransaction) -> None:
    """The outermost transaction ended (committed, rolled back or closed): its queue goes
    (a savepoint's mark is dropped by ``_forget_rolled_back``, which runs after this)."""
    if transaction.parent is None:
        session.info.pop(_QUEUE_KEY, None)


def install() -> None:
    """Listen on every session: queued entries are written before the commit, or before a
    statement that reads the trail, and dropped with a rollback. Safe to call twice."""
    global _INSTALLED
    for name, listener in (
        ("before_commit", _write_before_commit),
        ("do_orm_execute", _write_before_reading_the_trail),
        ("after_transaction_create", _mark_savepoint),
        ("after_soft_rollback", _forget_rolled_back),
        ("after_transaction_end", _end),
    ):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)
    _INSTALLED = True


@dataclass(frozen=True)
class ChainReport:
    """Outcome of walking the audit chain."""

    entries_checked: int
    #: seq of the first entry that does not fit, or None when the chain is intact
    first_broken_seq: int | None = None
    problem: str | None = None
    #: the last entry verified (0 and the genesis hash when there is none)
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    #: entries verified as legacy: made before the chain was keyed (plain SHA-256)
    legacy_entries: int = 0

    @property
    def intact(self) -> bool:
        return self.first_broken_seq is None and self.problem is None


#: The columns verification reads, in the order ``scan_chunk`` takes them.
VERIFIED_COLUMNS = (
    *("seq", "prev_hash", "at", "actor_id", "actor_username", "action", "entity_type"),
    *("entity_id", "changes", "reason", "key_id", "entry_hash"),
)


@dataclass(frozen=True, slots=True)
class ChunkEvent:
    """An entry of a chunk whose verdict may depend on the entries before the chunk, or that
    is certainly broken: the chunk's first entry, the first of a run of entries made with
    one key (or with none), a key rotation, or an entry that does not fit."""

    #: its place in the chunk (0 for the first)
    index: int
    seq: int
    prev_hash: str
    #: the entry before it in the chunk, when it is not the first
    before_hash: str | None
    #: legacy entries before it in the chunk
    legacy_before: int
    key_id: str | None
    #: the key a rotation entry names (``entity_id``); None when it is no rotation
    rotation_to: str | None
    #: its hash does not match its content (when its key is known)
    changed: bool


@dataclass(frozen=True, slots=True)
class ChunkScan:
    """What verifying a run of consecutive entries found, without the entries before it:
    each row carries its predecessor's hash, so every hash is checked here; what depends on
    earlier entries (the first entry's link, whether the chain is keyed yet, the latest
    rotation) is left as ``events`` for ``ChainWalk``, which judges the chunks in chain order.
    The scan stops at an entry that certainly does not fit (its last event)."""

    count: int
    legacy: int
    last_hash: str | None
    events: tuple[ChunkEvent, ...]


def _hmac_pads(secret: bytes) -> tuple[Any, Any]:
    """The inner and outer SHA-256 states of an HMAC with ``secret`` (RFC 2104), copied per
    entry: what ``hmac`` does, without setting the key up again each time."""
    if len(secret) > 64:  # SHA-256's block size
        secret = hashlib.sha256(secret).digest()
    block = secret.ljust(64, b"\0")
    return (
        hashlib.sha256(bytes(byte ^ 0x36 for byte in block)),
        hashlib.sha256(bytes(byte ^ 0x5C for byte in block)),
    )


def _plain_types(row: Sequence[Any]) -> bool:
    """The row holds the types the schema declares (SQLite does not enforce them), so the
    text ``scan_chunk`` writes by hand is exactly the JSON ``canonical_json`` would."""
    seq, prev_hash, _, actor_id, actor_username, action, entity_type, entity_id = row[:8]
    changes, reason = row[8], row[9]
    return (
        type(seq) is int
        and (actor_id is None or type(actor_id) is int)
        and (reason is None or type(reason) is str)
        and all(
            type(value) is str
            for value in (prev_hash, actor_username, action, entity_type, entity_id, changes)
        )
    )


def scan_chunk(
    rows: Iterable[Sequence[Any]], keys: Mapping[str, bytes], *, typed: bool = False
) -> ChunkScan:
    """Check the hashes of consecutive entries (rows of ``VERIFIED_COLUMNS`` ordered by seq)
    with ``keys`` (key id → secret), and their links to each other; see ``ChunkScan``.

    This loop is what verification costs. The hashed text is the canonical JSON of the
    entry's content (``_content``, plus the key id for a keyed entry), written directly with
    the JSON module's own string encoder; the keys in sorted order. ``typed``: the database
    enforces the column types (PostgreSQL), so the row need not be checked for them; rows
    of other types are encoded with ``json`` itself."""
    pads = {key_id: _hmac_pads(secret) for key_id, secret in keys.items()}
    enc = json.encoder.encode_basestring  # the one ``json.dumps(ensure_ascii=False)`` uses
    dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
    sha256, utc, rotated = hashlib.sha256, dt.UTC, KEY_ROTATED
    events: list[ChunkEvent] = []
    count = legacy = 0
    before_seq, before_hash = 0, ""
    run_key: object = events  # no entry's key: the first row starts a run
    last_at: Any = None
    at_text = ""
    for row in rows:
        seq, prev_hash, at, actor_id, actor_username, action = row[:6]
        entity_type, entity_id, changes, reason, key_id, entry_hash = row[6:]
        if count and (seq != before_seq + 1 or prev_hash != before_hash):
            events.append(
                ChunkEvent(count, seq, prev_hash, before_hash, legacy, key_id, None, False)
            )
            break
        if key_id is not None and key_id not in pads:
            events.append(
                ChunkEvent(
                    count,
                    seq,
                    prev_hash,
                    before_hash if count else None,
                    legacy,
                    key_id,
                    None,
                    False,
                )
            )
            break
        if at != last_at or at.tzinfo is not last_at.tzinfo:
            last_at = at
            at_text = (at if at.tzinfo is utc else at.astimezone(utc)).isoformat()
        if typed or _plain_types(row):
            head = (
                f'{{"action":{enc(action)},'
                f'"actor_id":{"null" if actor_id is None else actor_id},'
                f'"actor_username":{enc(actor_username)},"at":"{at_text}",'
                f'"changes":{enc(changes)},"entity_id":{enc(entity_id)},'
                f'"entity_type":{enc(entity_type)},'
            )
            tail = (
                f'"prev_hash":{enc(prev_hash)},'
                f'"reason":{"null" if reason is None else enc(reason)},"seq":{seq}}}'
            )
            text = head + tail if key_id is None else f'{head}"key_id":"{key_id}",{tail}'
        else:
            content = {
                "seq": seq,
                "prev_hash": prev_hash,
                "at": at_text,
                "actor_id": actor_id,
                "actor_username": actor_username,
                "action": action,
                "entity_type": entity_type,
                "entity_id": entity_id,
                "changes": changes,
                "reason": reason,
            }
            if key_id is not None:
                content["key_id"] = key_id
            text = dumps(content)
        if key_id is None:
            recomputed = sha256(text.encode()).hexdigest()
        else:
            inner_pad, outer_pad = pads[key_id]
            inner = inner_pad.copy()
            inner.update(text.encode())
            outer = outer_pad.copy()
            outer.update(inner.digest())
            recomputed = outer.hexdigest()
        changed = recomputed != entry_hash
        rotation_to = entity_id if action == rotated and key_id is not None else None
        if changed or rotation_to is not None or key_id != run_key or not count:
            events.append(
                ChunkEvent(
                    count,
                    seq,
                    prev_hash,
                    before_hash if count else None,
                    legacy,
                    key_id,
                    rotation_to,
                    changed,
                )
            )
            if changed or (rotation_to is not None and rotation_to != key_id):
                break
            run_key = key_id
        if key_id is None:
            legacy += 1
        before_seq, before_hash = seq, entry_hash
        count += 1
    return ChunkScan(count, legacy, before_hash if count else None, tuple(events))


class ChainWalk:
    """Judges the chunks of the chain in order (``feed``), then its end (``finish``): the
    rules that depend on earlier entries, and the same report, word for word, as walking the
    entries one by one.

    Keyed entries must name a key of the keyring. Legacy entries (no key id) are accepted
    only before the first keyed one: after it, an entry without a key is a rewrite by
    someone without the key. After a key rotation's entry, an entry made with a key older
    than the rotation's is refused (a leaked, retired key)."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.order = {key_id: position for position, key_id in enumerate(keyring.keys)}
        self.checked = self.legacy = 0
        self.prev_hash = GENESIS_HASH
        self.first_keyed: int | None = None
        self.oldest_allowed = self.rotated_at = 0

    def feed(self, chunk: ChunkScan) -> ChainReport | None:
        """The report of the first entry of ``chunk`` that does not fit, else None (and the
        walk moves past the chunk). Entries between two events fit: they link, their hash
        holds, and they were made with the key of the event before them, judged there."""
        for mark in chunk.events:
            checked = self.checked + mark.index
            legacy = self.legacy + mark.legacy_before
            expected_seq = checked + 1
            prev_hash = mark.before_hash if mark.index else self.prev_hash
            assert prev_hash is not None

            def broken(
                seq: int,
                problem: str,
                legacy: int = legacy,
                checked: int = checked,
                prev_hash: str = prev_hash,
            ) -> ChainReport:
                return ChainReport(checked, seq, problem, checked, prev_hash, legacy)

            seq, key_id = mark.seq, mark.key_id
            if seq != expected_seq:
                if seq > expected_seq:
                    problem = f"entry #{expected_seq} is missing (the next one is #{seq}): deleted"
                else:
                    problem = f"entry #{seq} is out of order"
                return broken(expected_seq, problem)
            if mark.prev_hash != prev_hash:
                return broken(
                    seq,
                    f"entry #{seq} does not link to entry #{seq - 1}: "
                    "an entry was inserted, replaced or deleted before it",
                )
            if key_id is None:
                if self.first_keyed is not None:
                    return broken(
                        seq,
                        f"entry #{seq} has no key although the chain is keyed from entry "
                        f"#{self.first_keyed}: it was rewritten by someone without the audit key",
                    )
                if mark.changed:  # counted as legacy before its hash is compared
                    return broken(seq, f"entry #{seq} was changed after it was written", legacy + 1)
                continue
            position = self.order.get(key_id)
            if position is None:
                return broken(
                    seq,
                    f"entry #{seq} names audit key {key_id!r}, which is not in the key file "
                    f"{self.keyring.path}: the key file lost it, or the entry was forged",
                )
            if position < self.oldest_allowed:
                return broken(
                    seq,
                    f"entry #{seq} was made with audit key {key_id!r}, retired by the key "
                    f"rotation at entry #{self.rotated_at}: it was written with an old key",
                )
            if self.first_keyed is None:
                self.first_keyed = seq
            if mark.changed:
                return broken(seq, f"entry #{seq} was changed after it was written")
            if mark.rotation_to is not None:
                if mark.rotation_to != key_id:
                    return broken(
                        seq,
                        f"entry #{seq} records a rotation to key {mark.rotation_to!r} but was "
                        f"made with key {key_id!r}",
                    )
                self.oldest_allowed, self.rotated_at = position, seq
        self.checked += chunk.count
        self.legacy += chunk.legacy
        if chunk.last_hash is not None:
            self.prev_hash = chunk.last_hash
        return None

    def finish(self, head: AuditChainHead | None) -> ChainReport:
        """The report once every chunk fitted: the chain must end where its head row says."""
        checked, prev_hash = self.checked, self.prev_hash

        def broken(seq: int, problem: str) -> ChainReport:
            return ChainReport(checked, seq, problem, checked, prev_hash, self.legacy)

        if head is None:
            return ChainReport(checked, None, "the chain head row is missing", checked, prev_hash)
        if head.last_seq > checked:
            return broken(
                checked + 1,
                f"the chain should end at entry #{head.last_seq} but the table ends at "
                f"#{checked}: entries at the end were deleted",
            )
        if head.last_seq < checked or head.last_hash != prev_hash:
            return broken(
                head.last_seq + 1,
                f"the chain should end at entry #{head.last_seq} but the table goes on to "
                f"#{checked}: entries were appended outside the application",
            )
        return ChainReport(checked, None, None, checked, prev_hash, self.legacy)


def read_chunks(session: DbSession, keys: Mapping[str, bytes], size: int) -> Iterator[ChunkScan]:
    """The chain scanned ``size`` entries at a time, in one process: keyset pages by seq
    (Core rows, never more than a page in memory)."""
    columns = [AuditEntry.__table__.c[name] for name in VERIFIED_COLUMNS]
    seq = AuditEntry.__table__.c.seq
    typed = session.get_bind().dialect.name == "postgresql"
    after: int | None = None
    while True:
        page = select(*columns).order_by(seq).limit(size)
        if after is not None:
            page = page.where(seq > after)
        rows = session.execute(page).all()
        if not rows:
            return
        yield scan_chunk(rows, keys, typed=typed)
        if len(rows) < size:
            return
        after = rows[-1][0]


def verify_chain(
    session: DbSession,
    *,
    batch_size: int = 10_000,
    keyring: Keyring | None = None,
    chunks: Iterable[ChunkScan] | None = None,
) -> ChainReport:
    """Walk the whole chain and report the first entry that was edited, deleted or inserted
    (``ChainWalk`` says how keys are judged).

    The entries are scanned ``batch_size`` at a time in this process, or taken from
    ``chunks``: scans of consecutive chunks covering the whole table in order, made
    elsewhere (``audit_verification`` scans them in parallel on PostgreSQL)."""
    keyring = keyring or audit_keys.current_keyring()
    walk = ChainWalk(keyring)
    for chunk in chunks if chunks is not None else read_chunks(session, keyring.keys, batch_size):
        report = walk.feed(chunk)
        if report is not None:
            return report
    return walk.finish(session.get(AuditChainHead, 1))


def rotate_key(session: DbSession, *, at: dt.datetime, reason: str, keyring: Keyring) -> str:
    """Add a new random key to the key file of ``keyring`` and record the rotation (as the
    system, in the caller's transaction) as the first entry made with it; returns its id.

    The entry names the new key's id, never its secret. The file is written first: should the
    transaction then fail, the new key is simply in use without a rotation entry, and entries
    made with it still verify."""
    previous = keyring.current_id
    rotated, key_id = audit_keys.append_new_key(keyring.path)
    record_many(
        session,
        [Draft(KEY_ROTATED, "audit_key", key_id, {"key_id": (previous, key_id)}, reason, True)],
        actor=None,
        at=at,
        keyring=rotated,
    )
    return key_id


@dataclass(frozen=True)
class AuditFilter:
    """What the audit review page and API filter by; empty fields do not filter."""

    entity_type: str | None = None
    entity_id: str | None = None
    actor_username: str | None = None
    action: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def filtered_query(criteria: AuditFilter) -> Select[AuditEntry]:
    """The entries matching ``criteria``, oldest first."""
    query = select(AuditEntry).order_by(AuditEntry.seq)
    if criteria.entity_type:
        query = query.where(AuditEntry.entity_type == criteria.entity_type)
    if criteria.entity_id:
        query = query.where(AuditEntry.entity_id == criteria.entity_id)
    if criteria.actor_username:
        query = query.where(AuditEntry.actor_username == criteria.actor_username.lower())
    if criteria.action:
        query = query.where(AuditEntry.action == criteria.action)
    if criteria.since:
        query = query.where(AuditEntry.at >= criteria.since)
    if criteria.until:
        query = query.where(AuditEntry.at < criteria.until)
    return query


def list_entries(
    session: DbSession, criteria: AuditFilter, *, limit: int = 500, offset: int = 0
) -> list[AuditEntry]:
    """A page of the entries matching ``criteria``."""
    query = filtered_query(criteria).limit(limit).offset(offset)
    return list(session.execute(query).scalars())


#: The audit trail as a list (issue 21): newest first; searched in the record's id, the
#: user, the action and the record type.
AUDIT_LIST = ListSpec(
    sorts={
        "seq": AuditEntry.seq,
        "at": AuditEntry.at,
        "actor": AuditEntry.actor_username,
        "action": AuditEntry.action,
        "record": AuditEntry.entity_type,
    },
    default_sort="seq",
    tiebreaker=AuditEntry.seq,
    searched=(
        AuditEntry.entity_id,
        AuditEntry.actor_username,
        AuditEntry.action,
        AuditEntry.entity_type,
    ),
)


def entries_page(
    session: DbSession, criteria: AuditFilter, request: PageRequest
) -> Page[AuditEntry]:
    """The page ``request`` asks for of the entries matching ``criteria`` (two statements)."""
    return fetch_page(session, filtered_query(criteria), AUDIT_LIST, request)


CSV_COLUMNS = (
    "seq",
    "at_utc",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "changes",
    "reason",
    "prev_hash",
    "entry_hash",
)


def export_csv_rows(
    session: DbSession,
    criteria: AuditFilter,
    changes_of: Callable[[AuditEntry], str] | None = None,
) -> Iterator[str]:
    """The matching entries as CSV text, header first, streamed in lines; ``changes_of`` gives
    an entry's changes as the reader is shown them (default: as stored)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def emit(row: Iterable[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        return buffer.getvalue()

    yield emit(CSV_COLUMNS)
    query = filtered_query(criteria).execution_options(yield_per=2000)
    for entry in session.execute(query).scalars():
        yield emit(
            (
                entry.seq,
                entry.at.isoformat(),
                entry.actor_username,
                entry.action,
                entry.entity_type,
                entry.entity_id,
                changes_of(entry) if changes_of else entry.changes,
                entry.reason or "",
                entry.prev_hash,
                entry.entry_hash,
            )
        )
