"""A worker killed mid-write (SIGKILL, as the OOM killer or a failing host would) leaves no
partial record and an intact audit chain, on PostgreSQL.

A separate process (``tests.support.write_loop``) reserves DINs in batches through the
service, one transaction per batch; the test waits until it is inside a batch that has
written rows (PostgreSQL gave its transaction an id), kills it with ``kill -9``, and checks
that every batch is whole, the identifier sequence and the audit trail agree with the
issued codes, the chain verifies, and the next write goes on from where it was.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

from cellchain.core import audit, numbering
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.conftest import DatabaseFactory, build_test_app
from tests.conftest import test_config as config_of

#: a worker process and a kill: started first (tests/conftest.py, ``heavy``)
pytestmark = [pytest.mark.postgres_only, pytest.mark.heavy]

ROOT = Path(__file__).resolve().parents[2]
#: DINs per batch: each a few statements, so a batch is a transaction of hundreds
BATCH = 100
#: kills tried until one lands inside a batch (one almost always does)
ATTEMPTS = 5
DEADLINE_SECONDS = 60

T = TypeVar("T")


@pytest.fixture
def site(databases: DatabaseFactory) -> Iterator[str]:
    url = databases.create()
    yield url
    databases.drop(url)


def wait_for(what: str, probe: Callable[[], T | None], deadline: float) -> T:
    """Poll ``probe`` until it returns something true; fail naming ``what`` at the deadline."""
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def writing_backend(conn: Connection, database: str) -> tuple[int, str] | None:
    """The worker's backend (pid, transaction id) while it is inside a batch that has
    written rows, after at least one batch was committed; None otherwise."""
    committed = conn.scalar(text("SELECT count(*) FROM issued_identifiers"))
    if not committed:
        return None
    row = conn.execute(
        text(
            "SELECT pid, backend_xid::text FROM pg_stat_activity WHERE datname = :db "
            "AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
        ),
        {"db": database},
    ).first()
    return (row[0], row[1]) if row else None


def transaction_status(conn: Connection, xid: str) -> str:
    """committed, aborted or in progress: ``xid`` (32 bits) widened to its epoch's xid8."""
    next_xid = int(conn.scalar(text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")))
    epoch, low = next_xid >> 32, next_xid & 0xFFFFFFFF
    if int(xid) > low:
        epoch -= 1
    full = (epoch << 32) | int(xid)
    return str(conn.scalar(text("SELECT pg_xact_status(CAST(:x AS text)::xid8)"), {"x": full}))


def kill_mid_batch(engine: Engine, config: dict[str, object], database: str, log: Path) -> bool:
    """Start a worker, kill -9 it inside a batch; True if the batch it was in was aborted
    (False: it committed between the look and the kill). Its output goes to ``log``."""
    with log.open("wb") as output:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.write_loop",
                json.dumps(config, default=str),
                str(BATCH),
            ],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        with engine.connect() as conn:

            def probe() -> tuple[int, str] | None:
                assert worker.poll() is None, log.read_text(errors="replace")
                return writing_backend(conn, database)

            backend_pid, xid = wait_for("the worker to be inside a batch", probe, deadline)
            os.kill(worker.pid, signal.SIGKILL)
            assert worker.wait(timeout=DEADLINE_SECONDS) == -signal.SIGKILL
            # the server ends the backend and its transaction when the client is gone
            gone = "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = :pid)"
            wait_for(
                "the killed worker's backend to end",
                lambda: conn.scalar(text(gone), {"pid": backend_pid}),
                deadline,
            )
            return transaction_status(conn, xid) == "aborted"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_worker_killed_mid_batch_leaves_whole_batches_and_an_intact_chain(
    site: str, tmp_path: Path
):
    config = config_of(site)
    engine = create_engine(site, isolation_level="AUTOCOMMIT")
    database = str(make_url(site).database)
    try:
        tries = 1
        while not kill_mid_batch(engine, config, database, tmp_path / f"worker-{tries}.log"):
            assert tries < ATTEMPTS, f"none of {ATTEMPTS} kills landed inside a batch"
            tries += 1

        with engine.connect() as conn:
            batches = conn.execute(
                text(
                    "SELECT purpose, count(*) FROM issued_identifiers "
                    "WHERE purpose LIKE 'crash-test %' GROUP BY purpose"
                )
            ).all()
            issued = conn.scalar(text("SELECT count(*) FROM issued_identifiers"))
            sequence = conn.scalar(
                text("SELECT sum(last_value) FROM identifier_sequences WHERE scope LIKE 'DIN:%'")
            )
            audited = conn.scalar(
                text("SELECT count(*) FROM audit_entries WHERE action = 'identifier.issued'")
            )
        assert batches, "no batch was committed before the kill"
        assert {count for _purpose, count in batches} == {BATCH}  # no partial batch
        assert issued == sequence == audited == BATCH * len(batches)
    finally:
        engine.dispose()

    # the chain is intact, and the site goes on writing after the crash
    app = build_test_app(site)
    with app.app_context():
        report = audit.verify_chain(db.session)
        assert report.intact, report.problem
        [after] = numbering.reserve_dins(
            db.session,
            facility_code=app.config["FACILITY_CODE"],
            actor=None,
            now=utcnow(),
            purpose="after the crash",
            count=1,
        )
        db.session.commit()
        assert after.purpose == "after the crash"
        sequence_after = db.session.scalar(
            text("SELECT sum(last_value) FROM identifier_sequences WHERE scope LIKE 'DIN:%'")
        )
        assert sequence_after == issued + 1  # the sequence goes on, no gap, no reuse
        assert audit.verify_chain(db.session).intact
        db.session.remove()
        db.engine.dispose()
