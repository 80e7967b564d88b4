"""The read replica: the pages and API answers that only read, served from a second database.

``CELLCHAIN_READ_DATABASE_URL`` (config ``READ_DATABASE_URI``) names a copy of the database
kept by replication (a PostgreSQL hot standby); none (the default) reads from the primary.
:func:`reads` is the session a read-only view passes to its service instead of
``db.session``: a session of its own on the replica's engine, one per app context (request),
closed at its end, or ``db.session`` itself when no replica is configured.

Only reads whose answer may be a few seconds old take it (docs/deployment.md, "The read
replica"): traces forward and back, the chain-of-identity report, the DSMB summary. Never a
safety check (the bedside, a release, an allocation, a scan): those read and write the
primary in their unit of work.

A write through the replica is impossible twice over: the engine's connections start every
transaction read-only (PostgreSQL ``default_transaction_read_only=on``; a SQLite file is
opened with ``mode=ro``), and the session refuses to flush anything (``ReplicaWrite``), so a
mistaken write fails in the view that made it, not silently on a standby that would refuse
it anyway.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, appcontext_tearing_down, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from cellchain.extensions import DbSession, db

#: ``app.extensions`` key of the replica's engine
ENGINE_KEY = "cellchain.read_engine"
#: ``g`` key of the request's replica session
_SESSION_KEY = "cellchain_read_session"
#: what every PostgreSQL connection of the replica's engine starts with
READ_ONLY_OPTION = "-c default_transaction_read_only=on"


class ReplicaWrite(RuntimeError):
    """Something tried to write through the read replica's session: a programming error."""


def read_only_url(url: str) -> str:
    """``url`` as the replica engine opens it: a SQLite file read-only (``mode=ro``, as a URI);
    other databases unchanged (their sessions are made read-only by ``engine_options``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return url
    database = parsed.database
    if not database.startswith("file:"):
        database = f"file:{database}"
    # pysqlite hands the query's other keys (``mode``) to SQLite inside the file: URI
    readonly: URL = parsed.set(database=database).update_query_dict({"mode": "ro", "uri": "true"})
    return readonly.render_as_string(hide_password=False)


def engine_options(url: str) -> dict[str, Any]:
    """The replica engine's options: the primary's (``config.engine_options``), and on
    PostgreSQL every transaction read-only from the connection's start."""
    from cellchain.config import engine_options as primary_options

    options = primary_options(url, {"pool_pre_ping": True})
    if url.startswith("postgresql"):
        connect_args = dict(options.get("connect_args", {}))
        connect_args["options"] = f"{connect_args.get('options', '')} {READ_ONLY_OPTION}".strip()
        options["connect_args"] = connect_args
    return options


def make_engine(url: str) -> Engine:
    """An engine on the replica at ``url`` whose connections cannot write."""
    readonly = read_only_url(url)
    return create_engine(readonly, **engine_options(readonly))


def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    raise ReplicaWrite(
        "The read replica's session is for reads only; a write goes through db.session in a "
        "unit of work (cellchain/core/read_replica.py)."
    )


_ENGINE_LOCK = threading.Lock()


def read_engine(app: Flask | None = None) -> Engine | None:
    """The replica's engine of ``app`` (the current one), made at its first use; None when no
    replica is configured: reads go to the primary."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    url = app.config.get("READ_DATABASE_URI")
    if not url:
        return None
    engine = app.extensions.get(ENGINE_KEY)
    if engine is None:
        with _ENGINE_LOCK:  # one engine (one pool) per app, whichever thread asks first
            engine = app.extensions.get(ENGINE_KEY)
            if engine is None:
                engine = app.extensions[ENGINE_KEY] = make_engine(str(url))
    return engine if isinstance(engine, Engine) else None


@appcontext_tearing_down.connect
def close_read_session(_sender: Any, **_extra: Any) -> None:
    """The end of a request (an app context): its replica session is closed, its connection
    back in the pool. A signal, so that nothing in the app's wiring has to call this module."""
    session = g.pop(_SESSION_KEY, None)
    if session is not None:
        session.close()


def reads() -> DbSession:
    """The session of a read that may be served by the replica: the request's replica session,
    or ``db.session`` when no replica is configured."""
    engine = read_engine()
    if engine is None:
        return db.session
    session = g.get(_SESSION_KEY)
    if session is None:
        session = Session(bind=engine, autoflush=False, expire_on_commit=False)
        event.listen(session, "before_flush", _refuse_flush)
        setattr(g, _SESSION_KEY, session)
    return session  # type: ignore[no-any-return]


def dispose(app: Flask) -> None:
    """Close the replica engine's connections (an app's end: the tests, a worker's exit)."""
    engine = app.extensions.pop(ENGINE_KEY, None)
    if isinstance(engine, Engine):
        engine.dispose()
