"""The audit trail: recorded in the caller's transaction, hash-chained, tamper-evident,
append-only on PostgreSQL, and never forked by concurrent writers."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import func, select, text

from cellchain.core import audit
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.errors import ReasonRequired
from cellchain.extensions import db
from tests.support.tamper import triggers_off

FORGED_A, FORGED_B = "a" * 64, "b" * 64


def write_entries(session, count: int) -> None:
    for n in range(count):
        audit.record(
            session,
            actor=None,
            at=utcnow(),
            action="test.changed",
            entity_type="thing",
            entity_id=n,
            changes={"value": (n, n + 1)},
            reason=f"correction {n}",
        )
    session.commit()


def tamper(session, statement: str) -> None:
    """What a person with direct database access could do; they would first have to switch
    off the append-only triggers (PostgreSQL: the table's owner or a superuser)."""
    with triggers_off(session):
        session.execute(text(statement))
    session.commit()


def test_record_keeps_who_what_when_old_new_and_reason(session, make_user):
    user = make_user("ria", "qa")
    at = utcnow()
    entry = audit.record(
        session,
        actor=user,
        at=at,
        action="thing.corrected",
        entity_type="thing",
        entity_id=7,
        changes={"volume_ml": (10.0, 12.5), "when": (None, at)},
        reason="typo at the bench",
        reason_required=True,
    )
    session.commit()
    stored = session.get(AuditEntry, entry.seq)
    assert stored.actor_username == "ria" and stored.actor_id == user.id
    assert stored.at == at
    assert json.loads(stored.changes) == {
        "volume_ml": [10.0, 12.5],
        "when": [None, at.isoformat()],
    }
    assert stored.reason == "typo at the bench"
    assert stored.entity_type == "thing" and stored.entity_id == "7"


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_correction_without_a_reason_is_refused_and_nothing_is_written(session, reason):
    with pytest.raises(ReasonRequired):
        audit.record(
            session,
            actor=None,
            at=utcnow(),
            action="thing.corrected",
            entity_type="thing",
            entity_id=1,
            changes={"x": (1, 2)},
            reason=reason,
            reason_required=True,
        )
    session.rollback()
    assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_the_change_and_its_audit_roll_back_together(session):
    audit.record(session, actor=None, at=utcnow(), action="a", entity_type="t", entity_id=1)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0
    assert audit.verify_chain(session).intact


def test_untouched_chain_verifies(session):
    write_entries(session, 5)
    report = audit.verify_chain(session)
    assert report.intact and report.entries_checked == 5


def test_an_edited_entry_is_found(session):
    write_entries(session, 5)
    tamper(session, "UPDATE audit_entries SET reason = 'nothing happened' WHERE seq = 3")
    report = audit.verify_chain(session)
    assert not report.intact
    assert report.first_broken_seq == 3
    assert "changed" in report.problem


def test_an_edited_hash_is_found_at_the_next_link(session):
    write_entries(session, 5)
    tamper(session, f"UPDATE audit_entries SET entry_hash = '{FORGED_A}' WHERE seq = 2")
    report = audit.verify_chain(session)
    assert report.first_broken_seq == 2


def test_a_deleted_entry_is_found(session):
    write_entries(session, 5)
    tamper(session, "DELETE FROM audit_entries WHERE seq = 4")
    report = audit.verify_chain(session)
    assert report.first_broken_seq == 4 and "missing" in report.problem


def test_entries_deleted_at_the_end_are_found(session):
    write_entries(session, 5)
    tamper(session, "DELETE FROM audit_entries WHERE seq >= 4")
    report = audit.verify_chain(session)
    assert not report.intact and report.first_broken_seq == 4


def test_an_inserted_entry_is_found(session):
    write_entries(session, 3)
    # Renumber to make room and insert a forged entry claiming to be #2.
    tamper(session, "UPDATE audit_entries SET seq = seq + 100 WHERE seq >= 2")
    first_hash = session.scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == 1))
    tamper(
        session,
        "INSERT INTO audit_entries (seq, at, actor_id, actor_username, action, entity_type, "
        "entity_id, changes, reason, prev_hash, entry_hash) VALUES (2, '2026-01-01 00:00:00', "
        f"NULL, 'mallory', 'forged', 'thing', '1', '{{}}', NULL, '{first_hash}', "
        f"'{FORGED_B}')",
    )
    report = audit.verify_chain(session)
    assert not report.intact and report.first_broken_seq == 2


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET reason = 'x'",
        "DELETE FROM audit_entries",
        pytest.param("TRUNCATE audit_entries", marks=pytest.mark.postgres_only),
    ],
)
def test_the_database_refuses_changes_to_the_audit_table(session, statement):
    write_entries(session, 2)
    with pytest.raises(Exception, match="append-only"):
        session.execute(text(statement))
    session.rollback()
    assert audit.verify_chain(session).entries_checked == 2


@pytest.mark.postgres_only
def test_parallel_writers_never_fork_the_chain(app):
    """Eight transactions append at once; the chain stays one line with no gaps."""
    writers, per_writer = 8, 5
    barrier = threading.Barrier(writers)
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=30)
                for i in range(per_writer):
                    audit.record(
                        db.session,
                        actor=None,
                        at=utcnow(),
                        action="parallel.write",
                        entity_type="writer",
                        entity_id=f"{n}-{i}",
                    )
                db.session.commit()
                db.session.remove()
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    report = audit.verify_chain(db.session)
    assert report.intact, report.problem
    assert report.entries_checked == writers * per_writer
    prev_hashes = db.session.scalars(select(AuditEntry.prev_hash)).all()
    assert len(prev_hashes) == len(set(prev_hashes)), "two entries claim the same predecessor"


def test_filter_and_export(session, make_user):
    qa = make_user("quinn", "qa")
    write_entries(session, 3)
    audit.record(session, actor=qa, at=utcnow(), action="x.y", entity_type="lot", entity_id="L1")
    session.commit()
    only_lot = audit.list_entries(session, audit.AuditFilter(entity_type="lot", entity_id="L1"))
    assert [e.action for e in only_lot] == ["x.y"]
    by_user = audit.list_entries(session, audit.AuditFilter(actor_username="QUINN"))
    assert {e.action for e in by_user} == {"x.y"}
    rows = list(audit.export_csv_rows(session, audit.AuditFilter(entity_type="thing")))
    assert rows[0].startswith("seq,at_utc,actor,action")
    assert len(rows) == 1 + 3
    assert "correction 2" in rows[-1]


def test_an_entry_appended_outside_the_application_is_found(session):
    write_entries(session, 2)
    last_hash = session.scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == 2))
    tamper(
        session,
        "INSERT INTO audit_entries (seq, at, actor_id, actor_username, action, entity_type, "
        "entity_id, changes, reason, prev_hash, entry_hash) VALUES (3, '2026-01-01 00:00:00', "
        f"NULL, 'mallory', 'forged', 'thing', '1', '{{}}', NULL, '{last_hash}', '{FORGED_B}')",
    )
    report = audit.verify_chain(session)
    assert not report.intact and report.first_broken_seq == 3
    # an entry without a key after keyed ones (a key_id of its own would not match its HMAC)
    assert "has no key" in report.problem
