"""``core/driver.DriverStatement`` sends what ``Connection.execute`` would send: every
parameter goes through its type's conversion (independent review of issue 20's scan, F1: the
last use of a token was stored on SQLite as '… +00:00' text where the ORM stores naive UTC,
and a naive time was not refused)."""

from __future__ import annotations

import datetime as dt
import gc
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    column,
    create_engine,
    func,
    select,
    table,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError

from cellchain.core import driver
from cellchain.core.driver import DriverStatement, autocommit, kept_read
from cellchain.core.models import User
from cellchain.extensions import db
from tests.support.statements import counting_statements
from tests.support.tamper import outside_the_trail

AT = dt.datetime(2026, 12, 7, 1, 45, 16, 692980, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _stored(user_id: int) -> str:
    return db.session.execute(
        text("SELECT CAST(locked_at AS TEXT) FROM users WHERE id = :id"), {"id": user_id}
    ).scalar_one()


def _set_locked_at():
    return update(User).where(User.id == bindparam("user_id")).values(locked_at=bindparam("at"))


def test_a_time_is_stored_as_connection_execute_stores_it(app, make_user):
    first, second = make_user("driver-one"), make_user("driver-two")
    db.session.commit()
    with db.engine.connect() as connection:
        connection.execute(_set_locked_at(), {"user_id": first.id, "at": AT})
        connection.commit()
        with autocommit(connection):
            DriverStatement(_set_locked_at()).execute(connection, {"user_id": second.id, "at": AT})
    assert _stored(second.id) == _stored(first.id)
    reread = db.session.execute(select(User.locked_at).where(User.id == second.id)).scalar_one()
    assert reread == AT


def test_a_naive_time_is_refused(app, make_user):
    user = make_user("driver-naive")
    db.session.commit()
    refused = pytest.raises(Exception, match="naive datetime refused")
    with db.engine.connect() as connection, autocommit(connection), refused:
        DriverStatement(_set_locked_at()).execute(
            connection, {"user_id": user.id, "at": AT.replace(tzinfo=None)}
        )


# --- the kept connection of each thread (``kept_read``, issue 20: the scan) ----------------

_BY_NAME = DriverStatement(select(User.id, User.username).where(User.username == bindparam("name")))


def _read(connection: Connection, name: str) -> tuple[Any, Any]:
    """The user named ``name``, and the driver's connection it was read on."""
    return _BY_NAME.one_or_none(connection, {"name": name}), connection.connection.dbapi_connection


def _keep(engine: Engine) -> None:
    """Two reads: from a thread's second on, its connection is kept (``driver._kept``)."""
    for _ in range(2):
        kept_read(engine, _read, "nobody")


def _in_autocommit(dbapi_connection: Any) -> bool:
    if db.engine.dialect.name == "sqlite":
        return dbapi_connection.isolation_level is None
    return bool(dbapi_connection.autocommit)


def _closed(dbapi_connection: Any) -> bool:
    if db.engine.dialect.name == "sqlite":
        try:
            dbapi_connection.cursor()
        except sqlite3.ProgrammingError:
            return True
        return False
    return bool(dbapi_connection.closed)


def _in_thread(work: Callable[[], Any]) -> Any:
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(work()))
    thread.start()
    thread.join()
    return results[0]


def test_a_kept_read_is_on_one_connection_out_of_the_pool_in_autocommit(app, make_user):
    user_id = make_user("kept-one").id
    db.session.commit()
    db.session.remove()
    engine = db.engine
    checked_out = engine.pool.checkedout()

    _keep(engine)
    row, kept = kept_read(engine, _read, "kept-one")
    again, same = kept_read(engine, _read, "kept-one")

    assert row.id == again.id == user_id and row.username == "kept-one"
    assert same is kept and _in_autocommit(kept)
    assert engine.pool.checkedout() == checked_out  # it holds no place of the pool's
    # the pool never gives it to a request: its connections are in a transaction as ever
    with engine.connect() as a, engine.connect() as b, engine.connect() as c:
        pooled = [x.connection.dbapi_connection for x in (a, b, c)]
        assert all(p is not kept for p in pooled)
        for connection in (a, b, c):
            connection.execute(select(User.id).limit(1))
            assert connection.in_transaction() and not _in_autocommit(
                connection.connection.dbapi_connection
            )


def test_a_request_after_a_kept_read_writes_in_its_own_transaction(app, make_user):
    """The autocommit of the kept connection never reaches a request's session: what the
    session writes and rolls back is not written."""
    make_user("kept-two")
    db.session.commit()
    _keep(db.engine)
    _row, kept = kept_read(db.engine, _read, "kept-two")

    changed = update(User).where(User.username == "kept-two").values(full_name="Rolled Back")
    db.session.execute(outside_the_trail(changed))
    session_connection = db.session.connection().connection.dbapi_connection
    assert session_connection is not kept and not _in_autocommit(session_connection)
    db.session.rollback()

    assert kept_read(db.engine, _read, "kept-two")[1] is kept
    name = db.session.execute(select(User.full_name).where(User.username == "kept-two"))
    assert name.scalar_one() != "Rolled Back"


def test_statement_counters_added_after_the_connection_was_kept_see_its_statements(app, make_user):
    make_user("kept-three")
    db.session.commit()
    _keep(db.engine)  # the thread's connection, kept before counting

    with counting_statements() as statements:
        kept_read(db.engine, _read, "kept-three")

    assert len(statements) == 1 and "users" in statements[0]


def test_after_an_error_the_kept_connection_is_closed_and_the_next_read_has_a_new_one(
    app, make_user
):
    make_user("kept-four")
    db.session.commit()
    _keep(db.engine)
    _row, kept = kept_read(db.engine, _read, "kept-four")
    missing = DriverStatement(select(column("x")).select_from(table("no_such_table")))

    with pytest.raises(DBAPIError):
        kept_read(db.engine, lambda connection: missing.one_or_none(connection, {}))

    assert _closed(kept)
    row, fresh = kept_read(db.engine, _read, "kept-four")
    assert row is not None and fresh is not kept and _in_autocommit(fresh)

    def fails_after_its_statement(connection: Connection) -> None:
        _read(connection, "kept-four")
        raise ValueError("after the statement")

    with pytest.raises(ValueError, match="after the statement"):
        kept_read(db.engine, fails_after_its_statement)
    assert _closed(fresh)
    assert kept_read(db.engine, _read, "kept-four")[0] is not None


def test_dispose_closes_the_kept_connection_of_every_thread(app, make_user):
    """Tests restore and drop databases after ``Engine.dispose``; so the kept connections go
    with the pool's."""
    make_user("kept-five")
    db.session.commit()
    engine = db.engine
    made = threading.Event()
    disposed = threading.Event()
    seen: dict[str, Any] = {}

    def reader() -> None:
        with app.app_context():
            _keep(engine)
            seen["before"] = kept_read(engine, _read, "kept-five")[1]
            made.set()
            disposed.wait(30)
            row, after = kept_read(engine, _read, "kept-five")
            seen["after"] = row, after, _closed(after)

    thread = threading.Thread(target=reader)
    thread.start()
    assert made.wait(30)
    _keep(engine)
    _row, mine = kept_read(engine, _read, "kept-five")

    engine.dispose()

    assert _closed(seen["before"]) and _closed(mine)
    disposed.set()
    thread.join(30)
    row, after, closed = seen["after"]
    assert row is not None and after is not seen["before"] and not closed


def test_a_thread_that_reads_once_keeps_no_connection(app, make_user):
    """A server that starts a thread per request (Werkzeug's): the read takes a pooled
    connection, and gives it back as it was, out of autocommit."""
    make_user("kept-once")
    db.session.commit()
    engine = db.engine
    checked_out = engine.pool.checkedout()

    def read() -> Any:
        with app.app_context():
            row, connection = kept_read(engine, _read, "kept-once")
            return row, connection, driver._local.__dict__.get("kept")

    row, connection, kept = _in_thread(read)
    gc.collect()

    assert row is not None and kept is None
    assert engine.pool.checkedout() == checked_out
    assert not _closed(connection) and not _in_autocommit(connection)


def test_the_kept_connection_of_a_thread_is_closed_when_the_thread_ends(app, make_user):
    make_user("kept-six")
    db.session.commit()
    engine = db.engine

    def read() -> Any:
        with app.app_context():
            _keep(engine)
            return kept_read(engine, _read, "kept-six")[1]

    kept = _in_thread(read)
    gc.collect()

    assert _closed(kept)


def test_a_pool_that_shares_its_connections_gets_no_kept_one():
    """SQLite in memory: one connection per thread, the database itself; it is never taken
    out of its pool."""
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (7)"))
        statement = DriverStatement(select(column("x")).select_from(table("t")))

        row = kept_read(engine, lambda connection: statement.one_or_none(connection, {}))

        assert row.x == 7
        with engine.connect() as connection:
            assert connection.execute(text("SELECT x FROM t")).scalar_one() == 7
    finally:
        engine.dispose()


_BACKEND = DriverStatement(select(func.pg_backend_pid().label("pid")))


def _backend(connection: Connection) -> tuple[int, Any]:
    return _BACKEND.one_or_none(connection, {}).pid, connection.connection.dbapi_connection


def _terminate(pid: int) -> None:
    killer = create_engine(db.engine.url, isolation_level="AUTOCOMMIT")
    try:
        with killer.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        killer.dispose()


@pytest.mark.postgres_only
def test_a_kept_connection_the_server_closed_is_replaced_and_the_read_sent_again(app):
    engine = db.engine
    _keep(engine)
    closed, kept = kept_read(engine, _backend)
    _terminate(closed)

    with counting_statements() as statements:
        pid, fresh = kept_read(engine, _backend)

    assert pid != closed and fresh is not kept and _closed(kept)
    assert len(statements) == 2  # the one the closed connection refused, and the one again
    assert kept_read(engine, _backend) == (pid, fresh)


@pytest.mark.postgres_only
def test_a_forked_child_never_uses_nor_closes_the_parents_kept_connection(app):
    """gunicorn forks its workers: a connection kept before the fork is the parent's socket.
    The child makes its own, and drops the parent's without a word to the server."""
    engine = db.engine
    _keep(engine)
    parent_pid, kept = kept_read(engine, _backend)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report its backend, then end as a worker ends (its finalizers)
        status = 1
        try:
            os.close(read_end)
            engine.dispose(close=False)  # the pool's connections are the parent's too
            pid, _connection = kept_read(engine, _backend)
            os.write(write_end, str(pid).encode())
            driver._local.kept = None
            gc.collect()
            weakref.finalize._exitfunc()  # type: ignore[attr-defined]
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_pid = int(pipe.read() or 0)
    _, status = os.waitpid(child, 0)

    assert status == 0 and child_pid not in (0, parent_pid)
    with counting_statements() as statements:
        assert kept_read(engine, _backend) == (parent_pid, kept)
    assert len(statements) == 1  # not sent again on a new connection: the parent's still works


def test_dispose_while_a_thread_makes_its_kept_connection_closes_it_at_its_next_read(
    app, make_user, monkeypatch
):
    """Between the pool's checkout and ``_all_kept`` knowing of it, the connection is neither
    the pool's nor the dispose listener's: it is recognised by its pool, which ``dispose``
    replaced, and closed at the thread's next read (independent review, N2)."""
    make_user("kept-seven")
    db.session.commit()
    engine = db.engine
    making, go_on = threading.Event(), threading.Event()
    switch = engine.dialect.set_isolation_level

    switches: list[str] = []
    seen: dict[str, Any] = {}

    def paused(dbapi_connection: Any, level: str) -> None:
        if level == "AUTOCOMMIT" and threading.current_thread().name == "maker":
            switches.append(level)
            if len(switches) == 2:  # the second read's: making the kept connection
                seen["across"] = dbapi_connection
                making.set()
                go_on.wait(30)
        switch(dbapi_connection, level)

    monkeypatch.setattr(engine.dialect, "set_isolation_level", paused)

    def maker() -> None:
        with app.app_context():
            kept_read(engine, _read, "kept-seven")  # the first read: pooled
            seen["made"] = kept_read(engine, _read, "kept-seven")  # made across the dispose
            seen["next"] = kept_read(engine, _read, "kept-seven")

    thread = threading.Thread(target=maker, name="maker")
    thread.start()
    assert making.wait(30)
    engine.dispose()
    go_on.set()
    thread.join(30)

    across = seen["across"]
    (row, made), (again, following) = seen["made"], seen["next"]
    assert row is not None and again is not None
    # the connection made across the dispose was closed before it read anything
    assert made is not across and following is made and _closed(across)


@pytest.mark.postgres_only
def test_a_read_that_catches_its_own_error_leaves_no_connection_to_spin_on(app):
    """A read that swallows a disconnect leaves the kept connection invalidated: the next
    read gets a new one instead of being handed the invalidated one for ever (independent
    review, N1). Run in a thread of its own (the kept connection is the thread's), joined
    with a deadline: before the fix the second read never returned."""
    engine = db.engine

    def swallowing(connection: Connection) -> Any:
        try:
            return _backend(connection)
        except DBAPIError:
            return None

    seen: dict[str, Any] = {}

    def reader() -> None:
        with app.app_context():
            _keep(engine)
            seen["pid"], seen["kept"] = kept_read(engine, _backend)
            _terminate(seen["pid"])
            seen["swallowed"] = kept_read(engine, swallowing)
            seen["next"] = kept_read(engine, _backend)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(30)

    assert not thread.is_alive(), "kept_read never returned"
    assert seen["swallowed"] is None
    new_pid, fresh = seen["next"]
    assert new_pid != seen["pid"] and fresh is not seen["kept"] and _closed(seen["kept"])
