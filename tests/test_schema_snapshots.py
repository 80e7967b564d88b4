"""The PostgreSQL test snapshots restore exactly what a test changed, however it changed it.

A restore copies back only the tables written to since the last one (``SchemaSnapshots``):
a write the marks miss would leak one test's rows into the next, so each way a test writes
is tried here.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import DatabaseFactory

pytestmark = pytest.mark.postgres_only


def counts(url: str) -> tuple[int, int, int]:
    """Users, audit entries and the users' next id in the database at ``url``."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return (
                conn.scalar(text("SELECT count(*) FROM users")),
                conn.scalar(text("SELECT count(*) FROM audit_entries")),
                conn.scalar(text("SELECT nextval('users_id_seq')")),
            )
    finally:
        engine.dispose()


def write(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


ADD_USER = (
    "INSERT INTO users (username, full_name, password_hash, active, failed_attempts, "
    "created_at) VALUES ('leak', 'Leak', 'x', true, 0, now())"
)


def test_rows_inserted_updated_and_deleted_are_put_back(databases: DatabaseFactory):
    url = databases.restore()
    before = counts(url)
    write(url, ADD_USER)
    assert counts(url)[0] == before[0] + 1
    databases.restore()
    # nextval above moved the sequence without a write: it is set back all the same
    assert counts(url) == before


def test_a_write_with_the_tables_triggers_off_is_put_back(databases: DatabaseFactory):
    url = databases.restore()
    write(url, ADD_USER)
    snapshot = databases.snapshot()
    try:
        before = counts(url)
        write(
            url,
            "ALTER TABLE audit_entries DISABLE TRIGGER USER",
            "INSERT INTO audit_entries (seq, at, actor_username, action, entity_type, "
            "entity_id, changes, prev_hash, entry_hash) "
            "VALUES (999, now(), 'x', 'x', 'x', '1', '{}', 'p', 'h')",
            "ALTER TABLE audit_entries ENABLE TRIGGER USER",
        )
        assert counts(url)[1] == before[1] + 1
        databases.restore(snapshot)
        assert counts(url) == before
    finally:
        databases.restore()
        databases.drop(snapshot)


def test_moving_between_snapshots_puts_back_every_table_either_holds(
    databases: DatabaseFactory,
):
    url = databases.restore()
    empty = counts(url)
    write(url, ADD_USER)
    with_user = databases.snapshot()
    try:
        databases.restore()
        assert counts(url) == empty
        databases.restore(with_user)
        assert counts(url)[0] == empty[0] + 1
        databases.restore()
        assert counts(url) == empty
    finally:
        databases.drop(with_user)
