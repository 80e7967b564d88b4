"""Verifying the audit trail: one use case for ``cellchain audit verify``, the audit review
page and ``POST /api/v1/audit/verify`` (issue 18).

The database is compared with the last checkpoint outside it (``audit_checkpoints.check``)
and the chain is walked with the keys (``audit.verify_chain``), both in one snapshot on
PostgreSQL (REPEATABLE READ), so an entry the running application commits meanwhile is
neither half seen nor taken for a deleted tail. Verification only reads: appending a
checkpoint after a clean verification is the command line's job (``cellchain audit verify``
and the scheduled ``cellchain audit checkpoint``, run as the app's account, whose folder the
site archives), never a web request's.

On PostgreSQL a long chain is verified in parallel (issue 20, ``verify_chain``): each row
carries its predecessor's hash, so chunks of entries are checked independently, by worker
processes that each read their chunks in the verifying transaction's snapshot (exported with
``pg_export_snapshot()``, imported with ``SET TRANSACTION SNAPSHOT``); the chunks' results
are judged in chain order by ``audit.ChainWalk``, so the report is the one-by-one walk's.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, scoped_session
from sqlalchemy.pool import NullPool

from cellchain.core import audit, audit_checkpoints
from cellchain.core.audit import VERIFIED_COLUMNS, ChainReport, ChunkScan
from cellchain.core.audit_checkpoints import Anchoring, Checkpoint
from cellchain.core.audit_keys import Keyring
from cellchain.core.models import AuditEntry
from cellchain.extensions import DbSession

#: Isolation levels in which every read of a transaction sees one snapshot (PostgreSQL).
ONE_SNAPSHOT_LEVELS = ("REPEATABLE READ", "SERIALIZABLE")
#: Entries per chunk a worker reads and checks at once (its memory: a chunk's rows).
CHUNK_ENTRIES = 20_000
#: Chains shorter than this are verified in one process: starting workers costs more.
PARALLEL_FROM = 100_000
#: How the worker processes start: spawned, never forked from a process holding connections.
#: (The tests replace it with a forkserver that has imported this module already, since a
#: spawned worker spends most of its start importing it.)
START_METHOD: multiprocessing.context.BaseContext = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class Verification:
    """The chain walked with the keys, and its comparison with the last checkpoint."""

    chain: ChainReport
    #: None when no checkpoint folder is configured (nothing to compare with)
    anchoring: Anchoring | None

    @property
    def intact(self) -> bool:
        """The chain is whole and the database holds what the last checkpoint recorded."""
        return self.chain.intact and (self.anchoring is None or self.anchoring.intact)

    @property
    def checkpoints_configured(self) -> bool:
        return self.anchoring is not None

    @property
    def checkpoint_problems(self) -> list[str]:
        """What does not fit the checkpoint file, in words (forged lines, missing entries)."""
        return list(self.anchoring.problems) if self.anchoring is not None else []

    @property
    def compared_with(self) -> Checkpoint | None:
        """The last valid checkpoint, the one the database was compared with."""
        return self.anchoring.log.last if self.anchoring is not None else None


def verify(
    session: DbSession, *, keyring: Keyring, checkpoint_dir: str | Path | None
) -> Verification:
    """Compare the database with the last checkpoint in ``checkpoint_dir`` (if given) and walk
    the chain with ``keyring``, reading one snapshot (``one_snapshot``). Writes nothing."""
    with one_snapshot(session) as reading:
        anchoring = (
            audit_checkpoints.check(reading, checkpoint_dir, keyring) if checkpoint_dir else None
        )
        chain = verify_chain(reading, keyring)
    return Verification(chain, anchoring)


def verify_chain(
    session: DbSession,
    keyring: Keyring,
    *,
    workers: int | None = None,
    chunk_entries: int = CHUNK_ENTRIES,
    parallel_from: int = PARALLEL_FROM,
) -> ChainReport:
    """``audit.verify_chain``, with the chunks checked by ``workers`` processes (the CPUs by
    default) on PostgreSQL when the chain has ``parallel_from`` entries or more, all of them
    reading the snapshot of ``session``'s transaction (with psycopg 3, the project's driver);
    in this process otherwise (SQLite, a short chain, a daemon process, or a chain whose
    seqs are not 1…n without gaps, which is broken anyway and is then walked in order)."""
    workers = workers or os.cpu_count() or 1
    dialect = session.get_bind().dialect
    if (
        (dialect.name, dialect.driver) != ("postgresql", "psycopg")  # the workers' driver
        or workers < 2
        or multiprocessing.current_process().daemon  # a daemon may not start processes
    ):
        return audit.verify_chain(session, keyring=keyring, batch_size=chunk_entries)
    snapshot, low, high, count = session.execute(
        text(
            "SELECT pg_export_snapshot(), min(seq), max(seq), count(*) "
            f"FROM {AuditEntry.__tablename__}"
        )
    ).one()
    if count < max(parallel_from, 1) or high - low + 1 != count:
        return audit.verify_chain(session, keyring=keyring, batch_size=chunk_entries)
    ranges = [
        (start, min(start + chunk_entries - 1, high))
        for start in range(low, high + 1, chunk_entries)
    ]
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(ranges)),
        mp_context=START_METHOD,
        initializer=_start_worker,
        initargs=(url, snapshot, dict(keyring.keys)),
    )
    try:
        return audit.verify_chain(session, keyring=keyring, chunks=pool.map(_scan_range, ranges))
    except BrokenProcessPool:
        # a worker could not start or connect (too many clients, the network, settings
        # only this process has): the pool is broken, never restarted in a loop; the chain
        # is walked here instead, in the same snapshot, and the answer is the same
        return audit.verify_chain(session, keyring=keyring, batch_size=chunk_entries)
    finally:  # the chunks not yet started are dropped, also when a chunk was broken
        pool.shutdown(wait=True, cancel_futures=True)


#: A worker's connection (in the exported snapshot) and the keys, set by ``_start_worker``.
_worker: dict[str, Any] = {}


def _start_worker(url: str, snapshot: str, keys: Mapping[str, bytes]) -> None:
    """Open the worker's connection and make its transaction read the verifying one's
    snapshot: REPEATABLE READ, read only, ``SET TRANSACTION SNAPSHOT`` first. Times come
    back in UTC, the zone the hashed text is written in."""
    from psycopg import sql

    raw = create_engine(url, poolclass=NullPool).raw_connection()
    connection: Any = raw.driver_connection
    connection.rollback()
    connection.autocommit = True
    connection.execute("SET TIME ZONE 'UTC'")
    connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    connection.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    _worker.update(raw=raw, connection=connection, keys=keys)  # raw: kept open


def _scan_range(bounds: tuple[int, int]) -> ChunkScan:
    """Scan the entries with seq in ``bounds`` (both included), in a worker."""
    cursor = _worker["connection"].cursor(binary=True)
    cursor.execute(
        f"SELECT {', '.join(VERIFIED_COLUMNS)} FROM {AuditEntry.__tablename__} "
        "WHERE seq BETWEEN %s AND %s ORDER BY seq",
        bounds,
    )
    scan = audit.scan_chunk(cursor, _worker["keys"], typed=True)
    cursor.close()
    return scan


def start_one_snapshot(session: DbSession) -> bool:
    """On PostgreSQL, make the session's next transaction read one snapshot (REPEATABLE
    READ); True if its reads see one snapshot from now on (always on SQLite, where a
    verification reads as it did; False for a PostgreSQL session already in a transaction
    of a weaker level)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    if isinstance(session, scoped_session):  # Flask-SQLAlchemy's: the request's own session
        session = session()
    if not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return True
    level = session.connection().get_isolation_level()
    return level in ONE_SNAPSHOT_LEVELS


@contextmanager
def one_snapshot(session: DbSession) -> Iterator[DbSession]:
    """A session whose reads see one snapshot: ``session`` itself when it can (nothing read
    yet, as in the command line, or already REPEATABLE READ), else a session of its own on
    the same database, rolled back and closed after (a page's session has read the acting
    user already)."""
    if start_one_snapshot(session):
        yield session
        return
    with Session(bind=session.get_bind()) as own:
        own.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        try:
            yield own
        finally:
            own.rollback()
