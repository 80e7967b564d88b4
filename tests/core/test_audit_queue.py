"""The entries of a transaction are queued and written together before the commit (issue 20):
the chain's head moves once per use case, in the order the entries were made, and a rollback
(of the transaction or of a savepoint) takes its entries with it."""

from __future__ import annotations

from sqlalchemy import select

from cellchain.core import audit
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
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
    heads = [s for s in seen if s.lstrip().upper().startswith("UPDATE AUDIT_CHAIN_HEAD")]
    inserts = [s for s in seen if "INSERT INTO audit_entries" in s]
    assert len(heads) == 2 and len(inserts) == 1, seen  # lock and hash; one insert
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
