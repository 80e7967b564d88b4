"""The entries of a transaction are queued and written together before the commit (issue 20):
the chain's head moves once per use case, in the order the entries were made, and a rollback
(of the transaction or of a savepoint) takes its entries with it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cellchain.core import audit
from cellchain.core.audit_keys import Keyring
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from tests.support.audit_hashes import assert_chained_as_keyed_entry_hash
from tests.support.statements import counting_statements


def note(session, entity_id: str, actor=None) -> AuditEntry:
    return audit.record(
        session,
        actor=actor,
        at=utcnow(),
        action="test.noted",
        entity_type="thing",
        entity_id=entity_id,
        changes={"value": (None, entity_id)},
    )


def written(session) -> list[str]:
    return list(
        session.scalars(
            select(AuditEntry.entity_id)
            .where(AuditEntry.action == "test.noted")
            .order_by(AuditEntry.seq)
        )
    )


def test_entries_of_a_transaction_move_the_head_once(session, make_user):
    user = make_user("ria", "qa")
    assert user.username == "ria"  # loaded again after make_user's commit, before counting
    with counting_statements() as seen:
        first, second, third = (note(session, name, user) for name in ("a", "b", "c"))
        assert seen == [], "an entry is written only with the others"
        session.commit()
    trail = [s for s in seen if "audit_chain_head" in s or "audit_entries" in s]
    heads = [s for s in trail if "audit_chain_head" in s]
    inserts = [s for s in trail if "INSERT INTO audit_entries" in s]
    assert len(heads) == 2 and len(inserts) == 1, seen  # lock, then move; one insert
    # PostgreSQL: the insert and the head's move are one statement (``_APPEND``)
    assert len(trail) == (2 if session.get_bind().dialect.name == "postgresql" else 3), trail
    assert [first.seq + 1, first.seq + 2] == [second.seq, third.seq]
    assert second.prev_hash == first.entry_hash and third.prev_hash == second.entry_hash
    assert written(session) == ["a", "b", "c"]
    assert audit.verify_chain(session).intact


def test_a_rollback_takes_the_queued_entries(session):
    note(session, "gone")
    session.rollback()
    note(session, "kept")
    session.commit()
    assert written(session) == ["kept"]
    assert audit.verify_chain(session).intact


def test_a_savepoint_rolled_back_takes_only_its_own_entries(session):
    note(session, "before")
    savepoint = session.begin_nested()
    note(session, "inside")
    savepoint.rollback()
    with session.begin_nested():
        note(session, "in a savepoint kept")
    note(session, "after")
    session.commit()
    assert written(session) == ["before", "in a savepoint kept", "after"]
    assert audit.verify_chain(session).intact


def test_reading_the_trail_sees_the_entries_of_the_transaction(session):
    note(session, "read")
    assert written(session) == ["read"]  # written before the read, in the transaction
    session.rollback()
    assert written(session) == []


def test_the_record_state_entry_follows_the_queued_ones_in_the_same_batch(session, make_user):
    """A use case that changes a regulated row: its entries and the state entry naming the
    transaction by its first entry are one batch."""
    user = make_user("ria", "qa")
    user.full_name = "Ria Changed"
    entry = note(session, "with state", user)
    with counting_statements() as seen:
        session.commit()
    assert sum("INSERT INTO audit_entries" in s for s in seen) == 1, seen
    state = session.scalars(select(AuditEntry).where(AuditEntry.seq == entry.seq + 1)).one()
    assert state.action == "records.state"
    assert state.entity_id == str(entry.seq)
    assert state.actor_username == "ria"
    assert audit.verify_chain(session).intact


def test_record_many_in_a_savepoint_does_not_lose_entries_queued_before_it(session):
    """Review finding F1: entries queued before a savepoint are not written inside it, where
    its rollback would take them while the outer transaction commits."""
    note(session, "before the savepoint")
    savepoint = session.begin_nested()
    audit.record_many(
        session,
        [audit.Draft("test.noted", "thing", "inside")],
        actor=None,
        at=utcnow(),
    )
    savepoint.rollback()
    session.commit()
    assert written(session) == ["before the savepoint"]
    assert audit.verify_chain(session).intact


def test_record_many_in_a_savepoint_kept_writes_in_the_order_made(session):
    note(session, "before")
    with session.begin_nested():
        audit.record_many(
            session,
            [audit.Draft("test.noted", "thing", name) for name in ("in 1", "in 2")],
            actor=None,
            at=utcnow(),
        )
    note(session, "after")
    session.commit()
    assert written(session) == ["before", "in 1", "in 2", "after"]
    assert audit.verify_chain(session).intact


KEYRING = Keyring(Path("test-keys"), {"k1-aaaaaa": b"s" * 16, "k2-bbbbbb": b"t" * 80})
moments = st.datetimes(
    min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(9998, 12, 31), timezones=st.timezones()
)
pending_rows = st.lists(
    st.tuples(
        st.text(),  # action
        st.text(),  # entity_type
        st.text() | st.just(audit.FIRST_OF_BATCH),  # entity_id
        st.text(),  # changes
        st.none() | st.text(),  # reason
        st.none() | st.integers(1, 2**31 - 1),  # actor_id
        st.text(),  # actor_username
        moments,
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    rows=pending_rows,
    first_seq=st.integers(1, 2**31 - 10),
    prev_hash=st.text(),
    key_id=st.sampled_from(list(KEYRING.keys)),
)
def test_the_write_path_hashes_are_keyed_entry_hash_of_canonical_json(
    rows, first_seq, prev_hash, key_id
):
    """``chain_hashes`` writes the hashed text by hand; each hash is exactly
    ``keyed_entry_hash`` (canonical JSON) of the entry, chained to the one before."""
    written = audit.chain_hashes(
        rows,
        first_seq=first_seq,
        prev_hash=prev_hash,
        key_id=key_id,
        secret=KEYRING.keys[key_id],
    )
    assert_chained_as_keyed_entry_hash(
        KEYRING, key_id, rows, written, first_seq=first_seq, prev_hash=prev_hash
    )


def test_many_entries_are_written_in_a_fixed_number_of_statements(session, make_user):
    """A bulk change's entries (``append_many``) and the queued ones before them: one batch,
    in order, verified, whatever their number."""
    user = make_user("ria", "qa")
    assert user.username == "ria"
    note(session, "queued first", user)
    for count in (3, 40):
        drafts = [
            audit.Draft("test.noted", "thing", f"bulk {n}", {"status": ("a", "b")}, "why")
            for n in range(count)
        ]
        with counting_statements() as seen:
            audit.append_many(session, drafts, actor=user, at=utcnow())
        assert sum("INSERT INTO audit_entries" in s for s in seen) == 1, seen
        assert sum("audit_chain_head" in s for s in seen) == 2, seen
    session.commit()
    assert written(session)[:2] == ["queued first", "bulk 0"]
    assert session.scalar(select(func.count()).where(AuditEntry.action == "test.noted")) == 44
    assert audit.verify_chain(session).intact


def test_a_failed_write_before_the_commit_keeps_the_queue(session, monkeypatch):
    """If writing the queued entries fails before the commit and the caller commits again
    without rolling back, the change never commits without its entries (review finding F5):
    the entries are put back and written by the commit that succeeds."""
    note(session, "first")
    with session.begin_nested():
        note(session, "in a savepoint kept")
    real_write = audit._write
    failures = []

    def failing_once(*args, **kwargs):
        if not failures:
            failures.append("failed")
            raise RuntimeError("the database went away")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(audit, "_write", failing_once)
    with pytest.raises(RuntimeError, match="went away"):
        session.commit()
    assert failures == ["failed"]
    assert [entry.entity_id for entry in audit.queued(session)] == [
        "first",
        "in a savepoint kept",
    ]
    session.commit()
    assert written(session) == ["first", "in a savepoint kept"]
    assert audit.verify_chain(session).intact


def test_a_failed_bulk_write_keeps_the_entries_queued_before_it(session, monkeypatch):
    """``append_many`` writes the queue with its own entries: when that fails, the queued
    entries are back on the queue (finding F5, beside the commit)."""
    note(session, "queued")
    monkeypatch.setattr(audit, "_write", lambda *a, **k: (_ for _ in ()).throw(OSError("gone")))
    draft = audit.Draft(
        action="test.noted", entity_type="thing", entity_id="bulk", changes={"value": (None, 1)}
    )
    with pytest.raises(OSError, match="gone"):
        audit.append_many(session, [draft], actor=None, at=utcnow())
    assert [entry.entity_id for entry in audit.queued(session)] == ["queued"]
