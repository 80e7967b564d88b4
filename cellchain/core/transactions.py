"""One transaction per use case on SQLite too: a savepoint never commits early.

Python's ``sqlite3`` (the "legacy" transaction control of Python ≤ 3.11 and the default
after) sends ``BEGIN`` only before an INSERT, UPDATE, DELETE or REPLACE. A use case that
reads first and then opens a savepoint (``session.begin_nested()``) therefore sends
``SAVEPOINT`` with no transaction open; SQLite makes that savepoint the transaction itself,
and its ``RELEASE`` **commits** everything written so far. A later refusal in the same use
case then rolls back only the rest: half a use case would be on disk (measured before this
fix: a row written inside the savepoint survived the use case's rollback).

The fix is SQLAlchemy's documented remedy, kept narrow: before a savepoint on a SQLite
connection with no transaction open, send ``BEGIN`` ourselves, so the savepoint nests inside
the use case's transaction and commits or rolls back with it. Reads outside savepoints keep
the driver's behaviour (no change to locking). PostgreSQL needs nothing: psycopg opens the
transaction with the first statement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from cellchain.core import record_state

if TYPE_CHECKING:
    from cellchain.extensions import DbSession


def begin_before_savepoint(connection: Connection, name: str) -> None:
    """Open the SQLite transaction before the first savepoint of a use case."""
    if connection.dialect.name != "sqlite":
        return
    driver_connection = connection.connection.dbapi_connection
    if driver_connection is not None and not driver_connection.in_transaction:
        driver_connection.execute("BEGIN")


def write_lock_before_reading(session: DbSession) -> None:
    """Take SQLite's write lock now, before a use case reads what it is about to change.

    ``SELECT … FOR UPDATE`` is a no-op on SQLite and the driver leaves reads outside any
    transaction until the first write, so two writers could both read the same figure (what
    remains of a material lot) and both pass. With no transaction open yet, ``BEGIN IMMEDIATE``
    takes the database's write lock: a second writer waits (the busy timeout) until the first
    commits, then reads its result. A transaction already open has either written (it holds
    the lock) or read under SQLite's shared lock (a competing writer then fails with "database
    is locked" instead of both passing). PostgreSQL: nothing here; the caller's row lock does it.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    driver_connection = connection.connection.dbapi_connection
    if driver_connection is not None and not driver_connection.in_transaction:
        driver_connection.execute("BEGIN IMMEDIATE")


def install() -> None:
    """Listen on every engine (the app's, the migrations', the tests'); safe to call twice.

    Also every session's record-state hooks: a transaction that writes regulated rows
    appends their values to the audit trail before it commits (``core/record_state.py``)."""
    if not event.contains(Engine, "savepoint", begin_before_savepoint):
        event.listen(Engine, "savepoint", begin_before_savepoint)
    record_state.install()
