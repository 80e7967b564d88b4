"""The audit trail: one function to record, one to verify, one to read (DOMAIN.md §6).

Entries are written in the caller's transaction, so a change and its audit commit or roll
back together. Each entry's hash covers its content and the previous entry's hash; the
single ``audit_chain_head`` row is updated first, which takes a row lock on PostgreSQL and
the write lock on SQLite, so concurrent writers append one after the other and never fork.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select, update

from cellchain.core.models import AuditChainHead, AuditEntry, User
from cellchain.core.types import canonical_json, to_jsonable
from cellchain.errors import ReasonRequired
from cellchain.extensions import DbSession

GENESIS_HASH = "0" * 64
SYSTEM_ACTOR = "system"

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
    """SHA-256 over the canonical JSON of an entry's content and its predecessor's hash."""
    content = {
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
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


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
    session: DbSession, drafts: Sequence[Draft], *, actor: User | None, at: dt.datetime
) -> list[AuditEntry]:
    """Append entries by one actor at one time, in order, with a fixed number of statements
    however many there are (a recall blocking hundreds of units): the chain head is moved
    once, the hashes are chained here, and the entries are inserted together."""
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
        entry = AuditEntry(**fields, entry_hash=entry_hash(**fields))
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

    @property
    def intact(self) -> bool:
        return self.first_broken_seq is None and self.problem is None


def verify_chain(session: DbSession, *, batch_size: int = 5000) -> ChainReport:
    """Walk the whole chain and report the first entry that was edited, deleted or inserted."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0
    rows = session.execute(
        select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=batch_size)
    ).scalars()
    for entry in rows:
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                problem = (
                    f"entry #{expected_seq} is missing (the next one is #{entry.seq}): deleted"
                )
            else:
                problem = f"entry #{entry.seq} is out of order"
            return ChainReport(checked, expected_seq, problem)
        if entry.prev_hash != prev_hash:
            return ChainReport(
                checked,
                entry.seq,
                f"entry #{entry.seq} does not link to entry #{entry.seq - 1}: "
                "an entry was inserted, replaced or deleted before it",
            )
        recomputed = entry_hash(
            seq=entry.seq,
            prev_hash=entry.prev_hash,
            at=entry.at,
            actor_id=entry.actor_id,
            actor_username=entry.actor_username,
            action=entry.action,
            entity_type=entry.entity_type,
            entity_id=entry.entity_id,
            changes=entry.changes,
            reason=entry.reason,
        )
        if recomputed != entry.entry_hash:
            return ChainReport(
                checked, entry.seq, f"entry #{entry.seq} was changed after it was written"
            )
        prev_hash = entry.entry_hash
        expected_seq += 1
        checked += 1
    head = session.get(AuditChainHead, 1)
    if head is None:
        return ChainReport(checked, None, "the chain head row is missing")
    if head.last_seq > checked:
        return ChainReport(
            checked,
            checked + 1,
            f"the chain should end at entry #{head.last_seq} but the table ends at #{checked}: "
            "entries at the end were deleted",
        )
    if head.last_seq < checked or head.last_hash != prev_hash:
        return ChainReport(
            checked,
            head.last_seq + 1,
            f"the chain should end at entry #{head.last_seq} but the table goes on to "
            f"#{checked}: entries were appended outside the application",
        )
    return ChainReport(checked)


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


def export_csv_rows(session: DbSession, criteria: AuditFilter) -> Iterator[str]:
    """The matching entries as CSV text, header first, streamed in lines."""
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
                entry.changes,
                entry.reason or "",
                entry.prev_hash,
                entry.entry_hash,
            )
        )
