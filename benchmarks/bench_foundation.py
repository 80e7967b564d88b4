"""Measure what users of the foundation wait on, at a realistic scale, and print a table.

    python benchmarks/bench_foundation.py                 # SQLite, 100 000 audit entries
    python benchmarks/bench_foundation.py --entries 1000000 \
        --database postgresql+psycopg://postgres@127.0.0.1:5432/bench

Builds a fresh database (the SQLite file is deleted afterwards; a PostgreSQL database named
in --database is created and dropped), writes audit entries and issued DINs through the
services, then times: appending one audit entry, resolving a scanned code, reserving a DIN,
and verifying the whole audit chain. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flask_migrate import upgrade
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cellchain import create_app
from cellchain.core import audit, numbering
from cellchain.core.types import utcnow
from cellchain.extensions import db

FACILITY = "X9999"


def timed(runs: int, action: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return samples


def fill(entries: int, dins: int) -> None:
    """Write through the services in batches of 1 000 per transaction, as busy sites do."""
    now = utcnow()
    for n in range(entries):
        audit.record(
            db.session,
            actor=None,
            at=now,
            action="bench.changed",
            entity_type="unit",
            entity_id=n,
            changes={"status": ("quarantine", "available")},
        )
        if n % 1000 == 999:
            db.session.commit()
    for n in range(dins):
        numbering.allocate_din(
            db.session, facility_code=FACILITY, actor=None, now=now, purpose="bench"
        )
        if n % 1000 == 999:
            db.session.commit()
    db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dins", type=int, default=5_000)
    parser.add_argument("--database", help="PostgreSQL URL of a database to create and drop")
    options = parser.parse_args()

    workdir = tempfile.TemporaryDirectory()
    if options.database:
        url = make_url(options.database)
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}"'))
            conn.execute(text(f'CREATE DATABASE "{url.database}"'))
        database_url = options.database
    else:
        database_url = f"sqlite:///{Path(workdir.name) / 'bench.sqlite'}"

    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": database_url})
    rows: list[tuple[str, str]] = []
    with app.app_context():
        upgrade()
        start = time.perf_counter()
        fill(options.entries, options.dins)
        rows.append(
            (
                f"write {options.entries} audit entries + {options.dins} DINs",
                f"{time.perf_counter() - start:.1f} s",
            )
        )
        codes = [row.code for row in numbering.recent_issued(db.session, limit=100)]

        def append_one() -> None:
            audit.record(
                db.session,
                actor=None,
                at=utcnow(),
                action="bench.one",
                entity_type="unit",
                entity_id=1,
            )
            db.session.commit()

        def scan_one() -> None:
            numbering.lookup(db.session, codes[len(codes) // 2].lower())

        def reserve_one() -> None:
            numbering.allocate_din(
                db.session, facility_code=FACILITY, actor=None, now=utcnow(), purpose="bench"
            )
            db.session.commit()

        for label, action in (
            ("append one audit entry (commit)", append_one),
            ("scan → issued identifier", scan_one),
            ("reserve one DIN (commit)", reserve_one),
        ):
            samples = timed(200, action)
            rows.append(
                (
                    label,
                    f"median {statistics.median(samples) * 1000:.2f} ms, "
                    f"p95 {sorted(samples)[189] * 1000:.2f} ms",
                )
            )
        start = time.perf_counter()
        report = audit.verify_chain(db.session)
        rows.append(
            (
                f"verify chain ({report.entries_checked} entries, intact={report.intact})",
                f"{time.perf_counter() - start:.1f} s",
            )
        )
        db.session.remove()
        db.engine.dispose()

    if options.database:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    workdir.cleanup()
    width = max(len(label) for label, _ in rows)
    print(f"database: {make_url(database_url).get_backend_name()}")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
