"""A Core statement run on the driver's own cursor: for the few requests whose every
microsecond counts (issue 20: the scan, the bedside check's facts, the audit trail's append).

``Connection.execute`` of a compiled, cached statement still costs more CPU than the
statement's round trip on a loaded site: an execution context, the rendering of its
post-compile parameters, a ``CursorResult`` whose metadata reads the cursor's description (with
psycopg, one ``Column`` object per column, every time), the row objects. A
``DriverStatement`` is compiled once per dialect into its SQL text, its parameters' order and
processors and its columns' result processors, and is then sent with
``Connection._cursor_execute``: SQLAlchemy's own path for a dialect's side statements, which
fires the engine's ``before_cursor_execute`` and ``after_cursor_execute`` events (the
statement counters of the tests and benchmarks see it), logs it, and turns a driver's error
into SQLAlchemy's. Only what this does not do is given up: no result metadata, no ORM, no
Session events (a statement run here must need none: a read, a write of bookkeeping that
is not part of a record, ``record_state.UNRECORDED_COLUMNS``, or the audit trail's append,
``audit._LOCK_HEAD`` and ``audit._APPEND``: rows that are no ORM objects, of tables
``record_state`` does not guard, ``UNRECORDED``).

``autocommit`` holds a connection in the driver's autocommit for a read that is one
statement, so one snapshot: no BEGIN and no ROLLBACK round trips around it.

``kept_read`` runs such a read on a connection each thread keeps for it, out of the pool and
always in the driver's autocommit: taking a pooled connection, switching it to autocommit and
back and handing it back cost more than a third of what the statement itself costs in a
request (issue 20: the scan).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql import ClauseElement

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class _Compiled:
    sql: str
    #: the parameters' names in order, for a positional driver (``?``); None for named ones
    order: tuple[str, ...] | None
    constants: Mapping[str, Any]
    bind_processors: Mapping[str, Callable[[Any], Any]]
    #: the columns whose values are processed (a date-time's zone, SQLite's text), by index
    result_processors: tuple[tuple[int, Callable[[Any], Any]], ...]
    row: Any


class DriverStatement:
    """``statement`` compiled once per dialect, run on the driver's cursor."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is not None:
            return compiled
        sql_compiled: Any = self.statement.compile(dialect=dialect)
        required = {name: None for bind, name in sql_compiled.bind_names.items() if bind.required}
        # renders the post-compile parameters (literal ones here) once, not at every execution
        state = sql_compiled.construct_expanded_state(required)
        columns = list(getattr(self.statement, "selected_columns", ()))
        row: Any = NamedTuple("Row", [(c.key, Any) for c in columns]) if columns else None
        compiled = _Compiled(
            sql=state.statement,
            order=tuple(state.positiontup) if state.positiontup is not None else None,
            constants={k: v for k, v in state.parameters.items() if k not in required},
            # every parameter's type conversion (UTCDateTime's refusal of a naive time and
            # its SQLite text included), the expanded ones' from the expanded state
            bind_processors={
                **{
                    name: process
                    for name, process in sql_compiled._bind_processors.items()
                    if not isinstance(process, tuple)
                },
                **state.processors,
            },
            result_processors=tuple(
                (index, process)
                for index, process in enumerate(
                    c.type._cached_result_processor(dialect, None) for c in columns
                )
                if process is not None
            ),
            row=row,
        )
        self._compiled[dialect.name] = compiled
        return compiled

    def _parameters(self, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        values = {**compiled.constants, **params}
        for name, process in compiled.bind_processors.items():
            if name in values:
                values[name] = process(values[name])
        if compiled.order is not None:
            return tuple(values[name] for name in compiled.order)
        return values

    def _run(self, connection: Connection, params: Mapping[str, Any]) -> tuple[Any, _Compiled]:
        compiled = self._compile(connection.dialect)
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        connection._cursor_execute(cursor, compiled.sql, self._parameters(compiled, params))
        return cursor, compiled

    def execute(self, connection: Connection, params: Mapping[str, Any]) -> None:
        """Send the statement (a write); nothing is read back."""
        cursor, _compiled = self._run(connection, params)
        cursor.close()

    def one_or_none(self, connection: Connection, params: Mapping[str, Any]) -> Any | None:
        """The statement's first row as a named tuple of its columns' keys, its values
        processed as ``Connection.execute`` processes them, or None when there is none."""
        cursor, compiled = self._run(connection, params)
        try:
            raw = cursor.fetchone()
        finally:
            cursor.close()
        if raw is None or compiled.row is None:
            return None
        values = list(raw)
        for index, process in compiled.result_processors:
            values[index] = process(values[index])
        return compiled.row._make(values)

    def all(self, connection: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row of the statement, each as ``one_or_none`` gives its first (a read of
        many rows)."""
        cursor, compiled = self._run(connection, params)
        try:
            raws = cursor.fetchall()
        finally:
            cursor.close()
        if compiled.row is None:
            return []
        make = compiled.row._make
        if not compiled.result_processors:
            return [make(raw) for raw in raws]
        rows = []
        for raw in raws:
            values = list(raw)
            for index, process in compiled.result_processors:
                values[index] = process(values[index])
            rows.append(make(values))
        return rows


@contextmanager
def autocommit(connection: Connection) -> Iterator[Connection]:
    """``connection`` in the driver's autocommit while the block runs, set back after (the
    dialect's own switch, as the ``AUTOCOMMIT`` isolation level does, without that execution
    option's bookkeeping). Only for statements sent with ``DriverStatement``: SQLAlchemy's
    own transaction on ``connection`` does not know of it."""
    dbapi_connection = connection.connection.dbapi_connection
    dialect = connection.dialect
    dialect.set_isolation_level(dbapi_connection, "AUTOCOMMIT")  # type: ignore[arg-type]
    try:
        yield connection
    finally:
        dialect.reset_isolation_level(dbapi_connection)  # type: ignore[arg-type]


# --- a connection per thread for autocommit reads (issue 20: the scan) -----------------------


class _Kept:
    """One thread's connection to one engine's database, detached from the engine's pool (the
    pool forgets it: no request's Session can ever be handed it, and it holds none of the
    pool's places) and in the driver's autocommit for as long as it lives. It is closed when
    the engine is disposed, when its thread ends, or after any error on it."""

    __slots__ = ("__weakref__", "_finalizer", "connection", "engine", "fork", "lock", "pool")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: the pool it came from: ``Engine.dispose`` replaces the engine's pool, so a
        #: connection made while the engine was being disposed (before ``_all_kept`` knew of
        #: it) is recognised as of the old pool and closed at its next use (review, N2)
        self.pool = engine.pool
        self.fork = _forks
        #: held while a read runs, so that ``Engine.dispose`` from another thread waits for it
        self.lock = threading.Lock()
        connection = engine.connect()  # through the pool: its events, its ping of an idle one
        try:
            pooled = connection.connection
            dbapi_connection = pooled.dbapi_connection
            pooled.detach()
            dialect = engine.dialect
            dialect.set_isolation_level(dbapi_connection, "AUTOCOMMIT")  # type: ignore[arg-type]
        except BaseException:
            connection.close()
            raise
        self.connection: Connection | None = connection
        # at the thread's end (its locals are dropped) or at exit; never in a forked child,
        # whose copy of the socket is the parent's (``_forget_after_fork``)
        self._finalizer = weakref.finalize(self, _close, connection, dbapi_connection)
        _all_kept.add(self)
        if not event.contains(engine, "engine_disposed", _close_kept_of):
            event.listen(engine, "engine_disposed", _close_kept_of)

    def close(self) -> None:
        with self.lock:
            self.connection = None
            self._finalizer()


def _close(connection: Connection, dbapi_connection: Any) -> None:
    """Close a kept connection for good (detached, so not back into a pool); quietly: a
    connection the server already closed, or one made in another thread (SQLite), may
    refuse."""
    for close in (connection.close, dbapi_connection.close):
        with suppress(Exception):
            close()


#: every thread's kept connection, for ``Engine.dispose`` (tests drop databases after it)
_all_kept: weakref.WeakSet[_Kept] = weakref.WeakSet()
_local = threading.local()
#: how many times this process is a forked child; a connection made before the fork is the
#: parent's, never used (nor closed) here
_forks = 0
_inherited: list[_Kept] = []


def _close_kept_of(engine: Engine) -> None:
    """``Engine.dispose``: every thread's kept connection to it is closed (a thread still
    reading is waited for), as the pool's own are."""
    for kept in list(_all_kept):
        if kept.engine is engine:
            kept.close()


def _forget_after_fork() -> None:
    global _forks
    _forks += 1
    for kept in list(_all_kept):
        kept._finalizer.detach()
        _inherited.append(kept)  # kept alive, so that nothing closes the parent's socket
    _all_kept.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _kept(engine: Engine) -> _Kept | None:
    """This thread's kept connection to ``engine``, made when there is none (or it was
    closed, or made for another engine, or before this process was forked); None on the
    thread's first read, which takes a pooled connection: a server that starts a thread per
    request (Werkzeug's) keeps none, where each of its requests would have connected anew."""
    kept: _Kept | None = getattr(_local, "kept", None)
    if kept is not None and kept.fork == _forks:
        if kept.engine is engine:
            if kept.connection is None or kept.pool is not engine.pool:
                # closed, or made across an ``Engine.dispose``: a new one now
                kept.close()
                kept = _local.kept = _Kept(engine)
            return kept
        kept.close()  # one kept connection per thread: the engine it was for is done
    elif getattr(_local, "first", None) is not engine:
        _local.first = engine
        return None
    kept = _local.kept = _Kept(engine)
    return kept


def kept_read(
    engine: Engine,
    read: Callable[Concatenate[Connection, P], T],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """``read(connection, …)`` on this thread's kept connection to ``engine``: out of the
    pool, always in the driver's autocommit (no checkout, no switch to autocommit and back,
    no checkin per request; issue 20, the scan). For reads of ``DriverStatement``\\ s only
    (with at most a write of bookkeeping), which may be sent twice: when the server has
    closed the connection (a restart, an idle timeout), the read runs once more on a new one,
    as the pool's ping would have found a new one. After any other error the connection is
    closed, with whatever state it was left in, and the error raised.

    A thread's first read runs on a pooled connection switched to autocommit and back, the
    connection kept from its second (``_kept``); so does every read with a pool that shares
    its connections between threads or gives a thread the same one (SQLite in memory)."""
    kept = _kept(engine) if isinstance(engine.pool, QueuePool) else None
    if kept is None:
        with engine.connect() as pooled, autocommit(pooled):
            return read(pooled, *args, **kwargs)
    retried = False
    while True:
        try:
            with kept.lock:
                connection = kept.connection
                if (
                    connection is not None
                    and kept.pool is engine.pool
                    and not connection.invalidated
                ):
                    return read(connection, *args, **kwargs)
        except DBAPIError as error:
            kept.close()
            if retried or not error.connection_invalidated:
                raise
            retried = True
        except BaseException:
            kept.close()
            raise
        # else closed or replaced by ``Engine.dispose`` in another thread meanwhile, or
        # invalidated by an error the read itself caught: closed for good (review, N1: it was
        # left open, and handed back again and again), and a new one
        kept.close()
        kept = _kept(engine) or kept
