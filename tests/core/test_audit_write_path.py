"""The audit trail's write path (issue 20): the entries are hashed before the chain's head is
locked, an append is a fixed, small number of statements, two writers serialise on the head,
and a write that fails after taking the lock leaves no gap when written again."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import StatementError

from cellchain.core import audit, audit_keys
from cellchain.core.audit_keys import Keyring
from cellchain.core.models import AuditChainHead, AuditEntry
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.support.audit_hashes import assert_chained_as_keyed_entry_hash
from tests.support.statements import counting_statements


def note(session: Any, entity_id: str) -> AuditEntry:
    return audit.record(
        session,
        actor=None,
        at=utcnow(),
        action="test.noted",
        entity_type="thing",
        entity_id=entity_id,
        changes={"value": (None, entity_id)},
    )


def noted(session: Any) -> list[tuple[int, str]]:
    return [
        (row.seq, row.entity_id)
        for row in session.execute(
            select(AuditEntry.seq, AuditEntry.entity_id)
            .where(AuditEntry.action == "test.noted")
            .order_by(AuditEntry.seq)
        )
    ]


def test_an_append_is_two_statements_on_postgresql_and_three_on_sqlite(session):
    """Whatever the batch (queued entries, a bulk batch, an entry naming the batch's first):
    PostgreSQL locks and reads the head, then inserts the entries and moves the head in one
    statement; SQLite locks, inserts, moves."""
    note(session, "queued")
    drafts = [audit.Draft("test.noted", "thing", f"bulk {n}") for n in range(25)]
    drafts.append(audit.Draft("test.noted", "transaction", audit.FIRST_OF_BATCH))
    with counting_statements() as seen:
        audit.append_many(session, drafts, actor=None, at=utcnow())
    postgres = session.get_bind().dialect.name == "postgresql"
    assert len(seen) == (2 if postgres else 3), seen
    # the lock reads the head and the key of the entry it names (audit_keys.refuse_outdated)
    assert "audit_chain_head" in seen[0] and "INSERT" not in seen[0], seen
    assert sum("INSERT INTO audit_entries" in statement for statement in seen) == 1, seen
    assert "audit_chain_head" in seen[-1], seen
    session.commit()
    first = session.scalar(select(AuditEntry.seq).where(AuditEntry.entity_id == "queued"))
    last = session.scalar(select(AuditEntry).where(AuditEntry.entity_type == "transaction"))
    assert last.entity_id == str(first)
    head = session.get(AuditChainHead, 1)
    assert (head.last_seq, head.last_hash) == (last.seq, last.entry_hash)
    assert audit.verify_chain(session).intact


def test_a_write_that_fails_after_locking_the_head_leaves_no_gap_when_written_again(session):
    """Review finding N3: the head is moved only by the statement that inserts the entries
    (PostgreSQL) or after them (SQLite), so a write that fails in between leaves the head as
    it was, and a commit tried again in the same transaction (no rollback: SQLite lets it)
    writes the entries right after the last one, with no seq skipped."""
    note(session, "before")
    session.commit()
    note(session, "retried")
    failures: list[str] = []

    def fail_once(conn, cursor, statement, parameters, context, executemany):
        if "INSERT INTO audit_entries" in statement and not failures:
            failures.append(statement)
            raise RuntimeError("the insert failed")

    engine = db.engine
    event.listen(engine, "before_cursor_execute", fail_once)
    try:
        # the driver statement's path wraps the error as SQLAlchemy wraps a driver's
        with pytest.raises((RuntimeError, StatementError), match="insert failed"):
            session.commit()
        assert failures, "the insert was never tried"
        session.commit()
    finally:
        event.remove(engine, "before_cursor_execute", fail_once)
    (before, _), (retried, _) = noted(session)
    assert retried == before + 1
    report = audit.verify_chain(session)
    assert report.intact, report.problem


def test_a_key_rotated_while_waiting_for_the_lock_keys_the_entries(session, monkeypatch):
    """The entries are hashed before the head is locked with the key the last write found;
    if the key file has a new key once the lock is taken (a rotation committed meanwhile),
    they are hashed again with it, as when the key was read only after the lock."""
    before = audit_keys.current_keyring()
    monkeypatch.setattr(audit, "_LAST_KEYRING", before)
    rotated, new_id = audit_keys.append_new_key(before.path)
    assert rotated.current_id == new_id != before.current_id
    note(session, "after the rotation")
    session.commit()
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "test.noted"))
    assert entry.key_id == new_id
    assert audit._LAST_KEYRING is not None and audit._LAST_KEYRING.current_id == new_id
    assert audit.verify_chain(session).intact


def test_rows_of_other_types_are_hashed_as_keyed_entry_hash_says():
    """A row whose values are not the schema's types (a bool actor id, a float) is hashed
    through ``canonical_json`` after the lock: the same HMAC as ``keyed_entry_hash``."""
    keyring = Keyring(Path("test-keys"), {"k1-aaaaaa": b"s" * 16})
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    rows: list[Any] = [
        ("a", "thing", "1", "{}", None, True, "ria", at),
        ("b", "thing", audit.FIRST_OF_BATCH, "{}", "why", 1.5, "ria", at),
        ("c", "thing", "3", "{}", None, 7, "ria", at),
    ]
    written = audit.chain_hashes(
        rows, first_seq=10, prev_hash="p" * 64, key_id="k1-aaaaaa", secret=b"s" * 16
    )
    assert_chained_as_keyed_entry_hash(
        keyring, "k1-aaaaaa", rows, written, first_seq=10, prev_hash="p" * 64
    )


@pytest.mark.postgres_only
def test_a_second_writer_waits_for_the_head_until_the_first_commits(app, session):
    """Two writers race: the second waits on the head's row lock while the first holds it
    (its entries written, not committed), then appends after the first's entries."""
    note(session, "first")
    audit.write_queued(session)  # the head is locked by this transaction until its commit
    outcome: list[Any] = []

    def second_writer() -> None:
        try:
            with app.app_context():
                note(db.session, "second")
                db.session.commit()
                db.session.remove()
            outcome.append("committed")
        except BaseException as error:  # reported below
            outcome.append(error)

    thread = threading.Thread(target=second_writer)
    thread.start()
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query LIKE '%FROM audit_chain_head%FOR UPDATE%'"
    )
    with db.engine.connect() as observer:
        deadline = time.monotonic() + 20
        while not observer.execute(text(waiting)).scalar_one():
            assert thread.is_alive() and not outcome, outcome
            assert time.monotonic() < deadline, "the second writer never waited on the head"
            time.sleep(0.02)
            observer.rollback()
    assert not outcome, "the second writer appended while the first held the head"
    session.commit()
    thread.join(timeout=30)
    assert outcome == ["committed"], outcome
    (first_seq, first), (second_seq, second) = noted(session)
    assert (first, second, second_seq) == ("first", "second", first_seq + 1)
    entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "test.noted"))
    first_entry, second_entry = sorted(entries, key=lambda entry: entry.seq)
    assert second_entry.prev_hash == first_entry.entry_hash
    report = audit.verify_chain(session)
    assert report.intact, report.problem
