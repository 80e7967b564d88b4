"""Measure what users of the foundation wait on, at a realistic scale, and print a table.

    python benchmarks/bench_foundation.py                 # SQLite, 100 000 audit entries
    python benchmarks/bench_foundation.py --entries 1000000 --bulk \
        --database postgresql+psycopg://postgres@127.0.0.1:5432/bench

Builds a fresh database (the SQLite file is deleted afterwards; a PostgreSQL database named
in --database is created and dropped), writes audit entries and issued DINs through the
services, then times: appending one audit entry, resolving a scanned code, reserving a DIN,
and verifying the whole audit chain. Timings are reported, never asserted.

``--bulk`` builds the audit entries in bulk instead of one ``audit.record`` at a time (a
million in about a minute): each hash is made by ``audit.keyed_entry_hash``, the function the
service uses, and the rows are COPY'd (PostgreSQL) or inserted in batches (SQLite), so the
chain is exactly what the service would have written. The verification is then run
``--verify-runs`` times, each in a fresh process (``audit_verification.verify``, the use
case of ``cellchain audit verify``), and reports entries per second and the peak resident
memory of that process and of its workers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask_migrate import upgrade
from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.engine import make_url

from cellchain import create_app
from cellchain.core import audit, audit_keys, audit_verification, numbering
from cellchain.core.models import AuditChainHead, AuditEntry
from cellchain.core.types import canonical_json, utcnow
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


#: the columns of an audit entry, in the order ``bulk_rows`` gives them
COLUMNS = (
    *("seq", "at", "actor_id", "actor_username", "action", "entity_type", "entity_id"),
    *("changes", "reason", "prev_hash", "entry_hash", "key_id"),
)


def bulk_rows(entries: int, keyring: audit_keys.Keyring) -> Iterator[tuple[Any, ...]]:
    """The rows of a chain of ``entries`` entries as ``audit.record_many`` makes them (keyed
    with the current key), with varied content: accents, quotes and reasons on some."""
    key_id = keyring.current_id
    start = utcnow() - dt.timedelta(days=365)
    prev_hash = audit.GENESIS_HASH
    statuses = ("quarantine", "available", "allocated", "dispensed", "held «QA»")
    for seq in range(1, entries + 1):
        old, new = statuses[seq % 5], statuses[(seq + 1) % 5]
        fields: dict[str, Any] = {
            "seq": seq,
            "prev_hash": prev_hash,
            "at": start + dt.timedelta(seconds=seq * 7, microseconds=seq % 1000),
            "actor_id": None,
            "actor_username": audit.SYSTEM_ACTOR,
            "action": ("unit.status_changed", "bench.changed", "label.printed")[seq % 3],
            "entity_type": "unit",
            "entity_id": f"X9999{seq:08d}",
            "changes": canonical_json({"status": [old, new], "volume_ml": [seq % 50, 12.5]}),
            "reason": None if seq % 4 else f'correction "{seq}" — typo at the bench',
        }
        entry_hash = audit.keyed_entry_hash(keyring, key_id, **fields)
        yield tuple({**fields, "entry_hash": entry_hash, "key_id": key_id}[c] for c in COLUMNS)
        prev_hash = entry_hash


def bulk_fill(entries: int) -> None:
    """Append ``entries`` audit entries in bulk (see the module's docstring) and move the
    chain head to the last one, in one transaction."""
    keyring = audit_keys.current_keyring()
    connection = db.session.connection()
    last_hash = audit.GENESIS_HASH
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY audit_entries ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in bulk_rows(entries, keyring):
                copy.write_row(row)
                last_hash = row[10]
    else:
        batch: list[dict[str, Any]] = []
        for row in bulk_rows(entries, keyring):
            batch.append(dict(zip(COLUMNS, row, strict=True)))
            last_hash = row[10]
            if len(batch) == 10_000:
                db.session.execute(insert(AuditEntry), batch)
                batch = []
        if batch:
            db.session.execute(insert(AuditEntry), batch)
    db.session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == 1)
        .values(last_seq=entries, last_hash=last_hash)
    )
    db.session.commit()


def verify_in_this_process(config: dict[str, Any]) -> dict[str, Any]:
    """Run the verification of ``cellchain audit verify`` (without checkpoints) and return
    its report, time and this process's peak resident memory (and its workers')."""
    app = create_app(config)
    with app.app_context():
        start = time.perf_counter()
        verified = audit_verification.verify(
            db.session, keyring=audit_keys.current_keyring(), checkpoint_dir=None
        )
        elapsed = time.perf_counter() - start
        db.session.remove()
    own, workers = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return {
        "entries": verified.chain.entries_checked,
        "intact": verified.intact,
        "seconds": elapsed,
        #: CPU seconds of the whole process (its start and imports too) and its workers
        "cpu_seconds": own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime,
        "rss_mb": own.ru_maxrss / 1024,
        "workers_rss_mb": workers.ru_maxrss / 1024,
    }


def _verify_child(config: dict[str, Any], results: Any) -> None:
    results.put(verify_in_this_process(config))


def verify_in_fresh_process(config: dict[str, Any]) -> dict[str, Any]:
    """``verify_in_this_process`` in a new process, so its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_verify_child, args=(config, results))
    child.start()
    outcome: dict[str, Any] = results.get()
    child.join()
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dins", type=int, default=5_000)
    parser.add_argument("--database", help="PostgreSQL URL of a database to create and drop")
    parser.add_argument("--bulk", action="store_true", help="build the audit entries in bulk")
    parser.add_argument("--verify-runs", type=int, default=1, help="verifications, each timed")
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

    config = {
        "ENV_NAME": "testing",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "AUDIT_KEY_FILE": str(Path(workdir.name) / "audit-keys"),
    }
    app = create_app(config)
    rows: list[tuple[str, str]] = []
    with app.app_context():
        upgrade()
        start = time.perf_counter()
        if options.bulk:
            bulk_fill(options.entries)
            fill(0, options.dins)
        else:
            fill(options.entries, options.dins)
        rows.append(
            (
                f"write {options.entries} audit entries{' in bulk' if options.bulk else ''}"
                f" + {options.dins} DINs",
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
        db.session.remove()
        runs = [verify_in_fresh_process(config) for _ in range(options.verify_runs)]
        seconds = statistics.median(run["seconds"] for run in runs)
        each = ", ".join(f"{run['seconds']:.2f}" for run in runs)
        rows.append(
            (
                f"verify chain ({runs[0]['entries']} entries, intact={runs[0]['intact']}), "
                f"median of {len(runs)} in a fresh process",
                f"{seconds:.2f} s, {runs[0]['entries'] / seconds:,.0f} entries/s (runs: {each} s)",
            )
        )
        cpu = statistics.median(run["cpu_seconds"] for run in runs)
        rows.append(
            (
                "verify chain: CPU of the process and its workers (median)",
                f"{cpu:.1f} s, {runs[0]['entries'] / cpu:,.0f} entries per CPU second",
            )
        )
        rows.append(
            (
                "verify chain: peak resident memory",
                f"process {max(run['rss_mb'] for run in runs):.0f} MB, "
                f"each worker ≤ {max(run['workers_rss_mb'] for run in runs):.0f} MB",
            )
        )
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
