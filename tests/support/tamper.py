"""Changing the audit trail as an insider with the database would: around the append-only
triggers (PostgreSQL: disabled, which takes the table's owner or a superuser; SQLite: dropped
and made again, which takes write access to the file)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Executable, text

from cellchain.core import record_state

#: SQLite's append-only triggers as migration 0018 makes them.
SQLITE_TRIGGERS = {
    "audit_entries_no_update": "UPDATE",
    "audit_entries_no_delete": "DELETE",
}


Statement = TypeVar("Statement", bound=Executable)


def outside_the_trail(statement: Statement) -> Statement:
    """``statement``, an INSERT, UPDATE or DELETE on a regulated table, let past the guard
    that refuses one whose rows are not marked (``core/record_state.py``), as an edit made in
    SQL would be: its rows are not in the record trail, so `audit verify --records` names them.
    For test set-ups that put a row in a state no use case makes, and for insiders' edits."""
    return record_state.marked(statement)


@contextmanager
def triggers_off(conn: Any) -> Iterator[None]:
    """Within the block, ``conn`` (a connection or session) may change ``audit_entries``."""
    dialect = conn.get_bind().dialect.name if hasattr(conn, "get_bind") else conn.dialect.name
    if dialect == "postgresql":
        conn.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
    else:
        for name in SQLITE_TRIGGERS:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
    yield
    if dialect == "postgresql":
        conn.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER USER"))
    else:
        for name, operation in SQLITE_TRIGGERS.items():
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE {operation} ON audit_entries BEGIN "
                    f"SELECT RAISE(ABORT, 'audit_entries is append-only: {operation} refused'); "
                    "END"
                )
            )
