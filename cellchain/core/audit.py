"""The audit trail: one function to record, one to verify, one to read (DOMAIN.md §6).

Entries are written in the caller's transaction, so a change and its audit commit or roll
back together. Each entry's hash covers its content and the previous entry's hash; the
single ``audit_chain_head`` row is updated first, which takes a row lock on PostgreSQL and
the write lock on SQLite, so concurrent writers append one after the other and never fork.

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
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select, update

from cellchain.core import audit_keys
from cellchain.core.audit_keys import Keyring
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
    """
    [entry] = record_many(
        session,
        [Draft(action, entity_type, entity_id, changes, reason, reason_required)],
        actor=actor,
        at=at,
    )
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


def record_many(
    session: DbSession,
    drafts: Sequence[Draft],
    *,
    actor: User | None,
    at: dt.datetime,
    keyring: Keyring | None = None,
) -> list[AuditEntry]:
    """Append entries by one actor at one time, in order, with a fixed number of statements
    however many there are (a recall blocking hundreds of units): the chain head is moved
    once, the hashes are chained here, and the entries are inserted together.

    The entries are keyed with the current key of ``keyring`` (the app's by default), read
    after the head's lock is taken, so an entry that follows a key rotation's entry in the
    chain is always made with the new key."""
    if not drafts:
        return []
    for draft in drafts:
        if draft.reason_required and not (draft.reason or "").strip():
            raise ReasonRequired(draft.action.replace(".", " "))
    at = at.astimezone(dt.UTC)
    head = session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == 1)
        .values(last_seq=AuditChainHead.last_seq + len(drafts))
        .returning(AuditChainHead.last_seq, AuditChainHead.last_hash)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if head is None:
        raise AuditChainMissing("audit_chain_head has no row; run `cellchain db upgrade`.")
    last_seq, prev_hash = head
    keyring = keyring or audit_keys.current_keyring()
    key_id = keyring.current_id
    entries = []
    for seq, draft in enumerate(drafts, start=last_seq - len(drafts) + 1):
        fields: dict[str, Any] = {
            "seq": seq,
            "prev_hash": prev_hash,
            "at": at,
            "actor_id": actor.id if actor else None,
            "actor_username": actor.username if actor else SYSTEM_ACTOR,
            "action": draft.action,
            "entity_type": draft.entity_type,
            "entity_id": str(draft.entity_id),
            "changes": canonical_json(
                {
                    field: [to_jsonable(old), to_jsonable(new)]
                    for field, (old, new) in (draft.changes or {}).items()
                }
            ),
            "reason": draft.reason.strip() if draft.reason else None,
        }
        entry = AuditEntry(
            **fields, key_id=key_id, entry_hash=keyed_entry_hash(keyring, key_id, **fields)
        )
        entries.append(entry)
        prev_hash = entry.entry_hash
    session.add_all(entries)
    session.flush()
    session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == 1)
        .values(last_hash=prev_hash)
        .execution_options(synchronize_session=False)
    )
    return entries


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


def verify_chain(
    session: DbSession, *, batch_size: int = 5000, keyring: Keyring | None = None
) -> ChainReport:
    """Walk the whole chain and report the first entry that was edited, deleted or inserted.

    Keyed entries are checked with their key from ``keyring`` (the app's by default). Legacy
    entries (no key id) are accepted only before the first keyed one: after it, an entry
    without a key is a rewrite by someone without the key. After a key rotation's entry, an
    entry made with a key older than the rotation's is refused (a leaked, retired key)."""
    keyring = keyring or audit_keys.current_keyring()
    #: one HMAC state per key, copied per entry: the key is not set up again every time
    macs = {
        key_id: hmac.new(secret, digestmod=hashlib.sha256)
        for key_id, secret in keyring.keys.items()
    }
    order = {key_id: position for position, key_id in enumerate(keyring.keys)}
    oldest_allowed, rotated_at = 0, 0
    first_keyed: int | None = None
    legacy = 0
    # the text ``canonical_json`` makes: the values are already plain (str, int, None)
    dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
    sha256, utc = hashlib.sha256, dt.UTC
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0

    def broken(seq: int, problem: str) -> ChainReport:
        return ChainReport(checked, seq, problem, expected_seq - 1, prev_hash, legacy)

    rows = session.execute(
        select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=batch_size)
    ).scalars()
    for entry in rows:
        seq = entry.seq
        if seq != expected_seq:
            if seq > expected_seq:
                problem = f"entry #{expected_seq} is missing (the next one is #{seq}): deleted"
            else:
                problem = f"entry #{seq} is out of order"
            return broken(expected_seq, problem)
        if entry.prev_hash != prev_hash:
            return broken(
                seq,
                f"entry #{seq} does not link to entry #{seq - 1}: "
                "an entry was inserted, replaced or deleted before it",
            )
        # the fields of ``_content``, built here: this loop is what verification costs
        content = {
            "seq": seq,
            "prev_hash": entry.prev_hash,
            "at": entry.at.astimezone(utc).isoformat(),
            "actor_id": entry.actor_id,
            "actor_username": entry.actor_username,
            "action": entry.action,
            "entity_type": entry.entity_type,
            "entity_id": entry.entity_id,
            "changes": entry.changes,
            "reason": entry.reason,
        }
        key_id = entry.key_id
        if key_id is None:
            if first_keyed is not None:
                return broken(
                    seq,
                    f"entry #{seq} has no key although the chain is keyed from entry "
                    f"#{first_keyed}: it was rewritten by someone without the audit key",
                )
            recomputed = sha256(dumps(content).encode()).hexdigest()
            legacy += 1
        else:
            state = macs.get(key_id)
            if state is None:
                return broken(
                    seq,
                    f"entry #{seq} names audit key {key_id!r}, which is not in the key file "
                    f"{keyring.path}: the key file lost it, or the entry was forged",
                )
            if order[key_id] < oldest_allowed:
                return broken(
                    seq,
                    f"entry #{seq} was made with audit key {key_id!r}, retired by the key "
                    f"rotation at entry #{rotated_at}: it was written with an old key",
                )
            content["key_id"] = key_id  # as ``_keyed_message``
            mac = state.copy()
            mac.update(dumps(content).encode())
            recomputed = mac.hexdigest()
            if first_keyed is None:
                first_keyed = seq
        if recomputed != entry.entry_hash:
            return broken(seq, f"entry #{seq} was changed after it was written")
        if entry.action == KEY_ROTATED and key_id is not None:
            if entry.entity_id != key_id:
                return broken(
                    seq,
                    f"entry #{seq} records a rotation to key {entry.entity_id!r} but was made "
                    f"with key {key_id!r}",
                )
            oldest_allowed, rotated_at = order[key_id], seq
        prev_hash = entry.entry_hash
        expected_seq += 1
        checked += 1
    head = session.get(AuditChainHead, 1)
    if head is None:
        return ChainReport(checked, None, "the chain head row is missing", checked, prev_hash)
    if head.last_seq > checked:
        return broken(
            checked + 1,
            f"the chain should end at entry #{head.last_seq} but the table ends at #{checked}: "
            "entries at the end were deleted",
        )
    if head.last_seq < checked or head.last_hash != prev_hash:
        return broken(
            head.last_seq + 1,
            f"the chain should end at entry #{head.last_seq} but the table goes on to "
            f"#{checked}: entries were appended outside the application",
        )
    return ChainReport(checked, None, None, checked, prev_hash, legacy)


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
