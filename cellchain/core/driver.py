"""A Core statement run on the driver's own cursor: for the few requests whose every
microsecond counts (issue 20: the scan).

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
Session events (a statement run here must need none: a read, or a write of bookkeeping that
is not part of a record, ``record_state.UNRECORDED_COLUMNS``).

``autocommit`` holds a connection in the driver's autocommit for a read that is one
statement, so one snapshot: no BEGIN and no ROLLBACK round trips around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement


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
