"""The rows a transaction wrote are stamped with the seq of the state entry holding them, in
the statements that append the trail (issue 20): on PostgreSQL inside the append's one
statement, on SQLite one executemany per table. Every row's ``audit_seq`` is what the
ORM UPDATE per table and entry left before: the seq of the entry whose state names it."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Table, select

from cellchain.core import accounts, audit, record_state
from cellchain.core.models import AuditEntry, User, UserRole
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.manufacturing.models import Equipment
from tests.support.statements import counting_statements

TABLES: list[Any] = [User.__table__, UserRole.__table__, Equipment.__table__]


def stamps(session: Any) -> dict[tuple[str, str], int | None]:
    """Every row of ``TABLES`` → its ``audit_seq``, by the key the trail names it with."""
    seqs: dict[tuple[str, str], int | None] = {}
    for table in TABLES:
        assert isinstance(table, Table)
        pk = list(table.primary_key.columns)
        for row in session.execute(select(*pk, table.c.audit_seq)):
            seqs[(table.name, record_state.key_text(tuple(row[: len(pk)])))] = row[-1]
    return seqs


def states_after(session: Any, seq: int) -> list[tuple[int, dict[str, Any]]]:
    """The state entries after ``seq``: (seq, table → key → values or None)."""
    entries = session.execute(
        select(AuditEntry.seq, AuditEntry.changes)
        .where(AuditEntry.action == record_state.STATE_ACTION, AuditEntry.seq > seq)
        .order_by(AuditEntry.seq)
    )
    return [
        (entry_seq, {name: rows for name, (_old, rows) in json.loads(changes).items()})
        for entry_seq, changes in entries
    ]


def test_each_row_is_stamped_with_the_entry_holding_it_across_tables_and_entries(
    session, make_user, monkeypatch
):
    admin = make_user("ada", Role.ADMIN)
    users = [make_user(name, Role.TECHNICIAN) for name in ("bo", "cy", "di")]
    session.add(
        Equipment(code="BSC-01", kind="biosafety_cabinet", name="cabinet", created_at=utcnow())
    )
    session.commit()
    before = stamps(session)
    assert all(seq is not None for seq in before.values()), before
    last = session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
    # a small entry size: the transaction's rows are spread over several entries, one table
    # (users) over more than one of them
    monkeypatch.setattr(record_state, "ROWS_PER_ENTRY", 2)
    now = utcnow()
    for user in users:
        user.full_name = f"{user.username.title()} Renamed"
    accounts.set_roles(
        session, actor=admin, now=now, user=users[0], roles=[Role.QC_ANALYST], reason="test"
    )
    for code in ("INC-01", "INC-02"):
        session.add(Equipment(code=code, kind="incubator", name="incubator", created_at=now))
    with counting_statements() as seen:
        session.commit()
    after = stamps(session)

    entries = states_after(session, last)
    assert len(entries) >= 3, entries
    assert sum("users" in rows for _seq, rows in entries) >= 2, entries
    expected = dict(before)
    for seq, rows in entries:
        for table_name, values_by_key in rows.items():
            for key, values in values_by_key.items():
                if values is None:  # deleted by the application: gone, nothing stamped
                    expected.pop((table_name, key), None)
                else:
                    expected[(table_name, key)] = seq
    # every row this transaction wrote carries its entry's seq, every other row its own
    assert after == expected
    written = {key for _seq, rows in entries for name, by_key in rows.items() for key in by_key}
    changed = {key for key, seq in after.items() if before.get(key) != seq}
    assert changed and {key for _name, key in changed} <= written
    role_key = (
        "user_roles",
        record_state.key_text((users[0].id, Role.QC_ANALYST.value)),
    )
    assert after[role_key] is not None and after[role_key] > last
    assert ("user_roles", record_state.key_text((users[0].id, Role.TECHNICIAN.value))) not in after

    stamping = [s for s in seen if "SET audit_seq" in s]
    if session.get_bind().dialect.name == "postgresql":
        # one statement appends the entries, stamps the three tables' rows, moves the head
        assert len(stamping) == 1, stamping
        assert "INSERT INTO audit_entries" in stamping[0], stamping
        assert all(f"UPDATE {table.name} SET audit_seq" in stamping[0] for table in TABLES)
    else:
        assert sorted(s.split(" SET ")[0] for s in stamping) == sorted(
            f"UPDATE {table.name}" for table in TABLES
        ), stamping
    assert record_state.verify_records(session).intact
    assert audit.verify_chain(session).intact


def test_a_row_named_by_two_entries_of_a_batch_keeps_the_later(session, make_user):
    """``record_many``'s stamps: a row named by two drafts takes the later entry's seq, as
    the two UPDATEs one after the other left it."""
    user = make_user("ria", Role.TECHNICIAN)
    table: Any = User.__table__
    drafts = [audit.Draft("test.noted", "thing", name) for name in ("one", "two")]
    entries = audit.record_many(
        session,
        drafts,
        actor=None,
        at=utcnow(),
        stamps=[{table: [(user.id,)]}, {table: [(user.id,)]}],
    )
    assert session.scalar(select(User.audit_seq).where(User.id == user.id)) == entries[1].seq
    session.rollback()
