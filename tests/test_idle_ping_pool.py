"""On PostgreSQL a pooled connection is pinged before use only after sitting idle (issue 20:
``pool_pre_ping`` cost every request a round trip), and a connection the server closed while
idle is still replaced before any request sees it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import QueuePool

from cellchain import config
from cellchain.config import IdlePingPool, engine_options
from cellchain.extensions import db


def test_postgresql_pings_idle_connections_only_and_sqlite_keeps_pre_ping():
    postgres = engine_options("postgresql+psycopg://u@h/d", {"pool_pre_ping": True})
    assert postgres["poolclass"] is IdlePingPool and postgres["pool_pre_ping"] is False
    assert postgres["connect_args"]["options"] == "-c jit=off -c timezone=UTC"
    # a site's own ?options= in the URL are kept, after cellchain's (review, N2)
    site = engine_options("postgresql+psycopg://u@h/d?options=-c%20search_path%3Dlab", {})
    assert site["connect_args"]["options"] == "-c jit=off -c timezone=UTC -c search_path=lab"
    assert engine_options("sqlite:///x.sqlite", {"pool_pre_ping": True}) == {"pool_pre_ping": True}
    # a site's own pool settings are left alone
    own = engine_options("postgresql://u@h/d", {"pool_pre_ping": True, "poolclass": QueuePool})
    assert own["poolclass"] is QueuePool and own["pool_pre_ping"] is True


def _pid(connection: Any) -> int:
    return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.postgres_only
def test_a_connection_used_just_now_is_not_pinged_and_an_idle_one_is(app, monkeypatch):
    engine = db.engine
    assert isinstance(engine.pool, IdlePingPool) and not engine.pool._pre_ping
    pings: list[int] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(
        engine.dialect, "do_ping", lambda connection: pings.append(1) or ping(connection)
    )
    engine.dispose()  # one connection in the pool, made now
    with engine.connect() as connection:
        _pid(connection)
    with engine.connect() as connection:
        _pid(connection)
    assert pings == []

    monkeypatch.setattr(config, "PING_AFTER_IDLE_SECONDS", 0.0)
    with engine.connect() as connection:
        _pid(connection)
    assert pings == [1]


@pytest.mark.postgres_only
def test_a_connection_the_server_closed_while_idle_is_replaced(app, monkeypatch):
    engine = db.engine
    engine.dispose()  # one connection in the pool: the one closed below
    with engine.connect() as connection:
        closed = _pid(connection)
    killer = create_engine(engine.url, isolation_level="AUTOCOMMIT")
    try:
        with killer.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": closed})
    finally:
        killer.dispose()
    monkeypatch.setattr(config, "PING_AFTER_IDLE_SECONDS", 0.0)

    with engine.connect() as connection:
        assert _pid(connection) != closed
