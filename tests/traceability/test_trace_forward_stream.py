"""The forward trace's units streamed from PostgreSQL (``trace._walked_units``): an error
while they stream is handled as one when the statement is sent, and a trace left part way
leaves the transaction usable (review R1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, literal, select
from sqlalchemy.exc import DBAPIError

from cellchain.extensions import db
from cellchain.traceability.trace import trace
from cellchain.traceability.trace.trace import TraceFrom
from tests.support.recalls import infuse


@pytest.mark.postgres_only
@pytest.mark.parametrize("fail_at", [0, 3])
def test_an_error_while_the_rows_stream_is_translated_as_one_at_the_first_row(
    ward: Any, released: Any, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    """A server's error after some rows have come (a cancel, a statement timeout, the
    connection lost) reaches the app as SQLAlchemy's ``DBAPIError``, through the engine's
    ``handle_error`` event (which invalidates a lost connection), as one at the first row."""
    import psycopg

    infuse(ward)
    monkeypatch.setattr(trace, "STREAMED_ROWS", 1)
    real = psycopg.Cursor.stream

    def failing(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for number, row in enumerate(real(self, *args, **kwargs)):
            if number == fail_at:
                raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
            yield row

    monkeypatch.setattr(psycopg.Cursor, "stream", failing)
    handled: list[Any] = []

    def seen(context: Any) -> None:
        handled.append(context)

    event.listen(db.engine, "handle_error", seen)
    try:
        with pytest.raises(DBAPIError):
            trace.trace_forward(db.session, TraceFrom.DONATION, released.donation_id)
    finally:
        event.remove(db.engine, "handle_error", seen)
    assert handled


@pytest.mark.postgres_only
def test_a_trace_failing_part_way_leaves_the_transaction_usable(
    ward: Any, released: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Python error while the units are built closes (cancels) the stream: the
    connection is not left busy with the rest of the rows."""
    infuse(ward)
    monkeypatch.setattr(trace, "STREAMED_ROWS", 1)
    real = trace._new
    built: list[int] = []

    def failing(cls: Any, values: Any) -> Any:
        if cls is trace.ReachedUnit:
            built.append(1)
            if len(built) == 3:
                raise RuntimeError("building failed")
        return real(cls, values)

    monkeypatch.setattr(trace, "_new", failing)
    with pytest.raises(RuntimeError):
        trace.trace_forward(db.session, TraceFrom.DONATION, released.donation_id)
    monkeypatch.undo()
    assert db.session.execute(select(literal(1))).scalar_one() == 1
