"""A gunicorn worker killed mid-write (SIGKILL, as the OOM killer or a failing host would)
leaves no partial record and an intact audit chain, on PostgreSQL, and the site serves on.

The app runs under gunicorn (one worker) on a database of its own; a client reserves DINs
through the API, 100 per request (one transaction: per DIN the year's sequence is moved,
the code issued and an audit entry written). The test waits until the worker is inside such
a transaction and has written rows (PostgreSQL gave the transaction an id), kills the
worker with ``kill -9``, checks that PostgreSQL aborted that transaction, and then that
every request's DINs are all there or none, the sequence and the audit trail agree with
the issued codes, the chain verifies, and the worker gunicorn starts in its place reserves
the next DIN without a gap.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

from cellchain.core import accounts, audit
from cellchain.core.accounts import AccountPolicy
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD, DatabaseFactory, build_test_app
from tests.conftest import test_config as config_of

#: a server started and a worker killed: started first (tests/conftest.py, ``heavy``)
pytestmark = [pytest.mark.postgres_only, pytest.mark.heavy]

ROOT = Path(__file__).resolve().parents[2]
#: DINs per request (the API's most): each a few statements, a transaction of hundreds
BATCH = 100
#: kills tried until one lands inside a transaction (the first almost always does)
ATTEMPTS = 5
DEADLINE_SECONDS = 60
PURPOSE = "crash-test request {n}"

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


class Server:
    """gunicorn serving the app of ``config`` with one worker, its log in ``log``."""

    def __init__(self, config: dict[str, Any], log: Path, deadline: float) -> None:
        self.log = log
        # gunicorn calls the factory with literal arguments: the config as a dict literal
        literal = repr(json.loads(json.dumps(config, default=str)))
        command = [
            *(sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", "1"),
            *("--preload", "--log-level", "info", f"cellchain:create_app({literal})"),
        ]
        with log.open("wb") as output:
            self.master = subprocess.Popen(
                command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
            )
        try:
            listening = r"Listening at: http://127\.0\.0\.1:(\d+)"
            self.port = int(wait_for("gunicorn to listen", lambda: self._find(listening), deadline))
        except BaseException:
            self.stop()
            raise

    def _find(self, pattern: str) -> str | None:
        assert self.master.poll() is None, self.log.read_text(errors="replace")
        found = re.findall(pattern, self.log.read_text(errors="replace"))
        return found[-1] if found else None

    def worker(self, deadline: float, other_than: int | None = None) -> int:
        """The pid of the worker gunicorn booted last (one other than ``other_than``)."""

        def booted() -> int | None:
            pid = self._find(r"Booting worker with pid: (\d+)")
            return int(pid) if pid and int(pid) != other_than else None

        return wait_for("gunicorn to boot a worker", booted, deadline)

    def reserve(self, token: str, n: int, count: int = BATCH) -> int:
        """POST /api/v1/identifiers/din; the status."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1/identifiers/din",
            data=json.dumps({"count": count, "purpose": PURPOSE.format(n=n)}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=DEADLINE_SECONDS) as response:
            return int(response.status)

    def stop(self) -> None:
        if self.master.poll() is None:
            self.master.send_signal(signal.SIGTERM)
            try:
                self.master.wait(timeout=DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                self.master.kill()
                self.master.wait()


class Client(threading.Thread):
    """Reserves DINs through the server, request after request, until stopped or refused
    (the connection dropped by the killed worker)."""

    def __init__(self, server: Server, token: str, first: int) -> None:
        super().__init__(daemon=True)
        self.server, self.token, self.n = server, token, first
        self.stopping = threading.Event()
        self.statuses: list[int] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            self.n += 1
            try:
                self.statuses.append(self.server.reserve(self.token, self.n))
            except urllib.error.HTTPError as error:  # an answer, not a dropped connection
                self.statuses.append(error.code)
                return
            except (OSError, http.client.HTTPException):  # the worker died mid-request
                return


def writing_backend(conn: Connection, database: str) -> tuple[int, str] | None:
    """The worker's backend (pid, transaction id) while it is inside a request's transaction
    that has written rows, after at least one request committed; None otherwise."""
    if not conn.scalar(text("SELECT count(*) FROM issued_identifiers")):
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


def kill_mid_request(
    server: Server, token: str, engine: Engine, database: str, first: int
) -> tuple[bool, int]:
    """Write through the server and kill -9 its worker inside a request's transaction; True
    if that transaction was aborted (False: it committed between the look and the kill),
    and the last request number used."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    worker = server.worker(deadline)
    client = Client(server, token, first)
    client.start()
    try:
        with engine.connect() as conn:
            backend_pid, xid = wait_for(
                "the worker to be inside a request's transaction",
                lambda: writing_backend(conn, database),
                deadline,
            )
            os.kill(worker, signal.SIGKILL)
            # the server ends the backend and its transaction when the client is gone
            gone = "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = :pid)"
            wait_for(
                "the killed worker's backend to end",
                lambda: conn.scalar(text(gone), {"pid": backend_pid}),
                deadline,
            )
            aborted = transaction_status(conn, xid) == "aborted"
    finally:
        client.stopping.set()
        client.join(timeout=DEADLINE_SECONDS)
    assert set(client.statuses) <= {201}, client.statuses
    server.worker(deadline, other_than=worker)  # gunicorn boots a worker in its place
    return aborted, client.n


def test_a_worker_killed_mid_request_leaves_whole_records_and_an_intact_chain(
    site: str, tmp_path: Path
):
    config = config_of(site)
    app = build_test_app(site)
    with app.app_context():
        user = accounts.create_user(
            db.session,
            actor=None,
            now=utcnow(),
            username="labeller",
            full_name="Lab Eller",
            password=TEST_PASSWORD,
            roles=[Role.TECHNICIAN],
            policy=AccountPolicy.from_config(app.config),
        )
        _row, token = accounts.create_token(db.session, user=user, now=utcnow(), name="crash")
        db.session.commit()
        db.session.remove()
        db.engine.dispose()

    engine = create_engine(site, isolation_level="AUTOCOMMIT")
    database = str(make_url(site).database)
    server = Server(config, tmp_path / "gunicorn.log", time.monotonic() + DEADLINE_SECONDS)
    try:
        tries, last = 1, 0
        aborted, last = kill_mid_request(server, token, engine, database, last)
        while not aborted:
            assert tries < ATTEMPTS, f"none of {ATTEMPTS} kills landed inside a transaction"
            tries += 1
            aborted, last = kill_mid_request(server, token, engine, database, last)
        # the new worker serves: the next DIN
        assert server.reserve(token, last + 1, count=1) == 201
    finally:
        server.stop()

    try:
        with engine.connect() as conn:
            requests = conn.execute(
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
    finally:
        engine.dispose()
    sizes = sorted(count for _purpose, count in requests)
    assert sizes[0] == 1 and set(sizes[1:]) == {BATCH}  # the last, and no partial request
    assert issued == sequence == audited == 1 + BATCH * (len(requests) - 1)  # no gap

    with app.app_context():
        report = audit.verify_chain(db.session)
        db.session.remove()
        db.engine.dispose()
    assert report.intact, report.problem
