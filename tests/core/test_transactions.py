"""One use case, one transaction, on SQLite too: a savepoint opened after the use case has
only read (``session.begin_nested()``) must not commit what it wrote when it is released;
the use case's rollback takes it back with the rest (``cellchain.core.transactions``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from cellchain.extensions import db


def rows(session) -> list[int]:  # type: ignore[no-untyped-def]
    return [row[0] for row in session.execute(text("SELECT x FROM probe ORDER BY x"))]


@pytest.fixture
def probe(app) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """A table of one column for the test, dropped after it (the worker's database is reused,
    and only rows are restored between tests)."""
    db.session.execute(text("CREATE TABLE probe (x INTEGER)"))
    db.session.commit()
    yield
    db.session.rollback()
    db.session.execute(text("DROP TABLE probe"))
    db.session.commit()


def test_a_released_savepoint_is_rolled_back_with_its_use_case(probe):
    session = db.session

    session.execute(text("SELECT 1"))  # the use case reads first: no write has begun it
    with session.begin_nested():
        session.execute(text("INSERT INTO probe (x) VALUES (1)"))
    session.execute(text("INSERT INTO probe (x) VALUES (2)"))
    session.rollback()  # the use case is refused after the savepoint

    assert rows(session) == []


def test_a_released_savepoint_commits_with_its_use_case(probe):
    session = db.session

    session.execute(text("SELECT 1"))
    with session.begin_nested():
        session.execute(text("INSERT INTO probe (x) VALUES (1)"))
    with contextlib.suppress(LookupError), session.begin_nested():
        session.execute(text("INSERT INTO probe (x) VALUES (2)"))
        raise LookupError("refused inside the savepoint")
    session.execute(text("INSERT INTO probe (x) VALUES (3)"))
    session.commit()

    assert rows(session) == [1, 3]
