"""The forward trace of site_scale's DMSO lot (issue 20: 26 138 units in <= 100 ms), in
process, on a copy of the kept site, with where its time goes.

    python benchmarks/bench_forward.py --database postgresql+psycopg://postgres@127.0.0.1:5432/forward_run
    python benchmarks/bench_forward.py --runs 20 --profile     # a cProfile of the runs
    python benchmarks/bench_forward.py --explain      # EXPLAIN (ANALYZE, BUFFERS) of each statement
    python benchmarks/bench_forward.py --http         # the whole API request, in process

Each run is a fresh session (as site_scale's ``timed``). Reported per run: wall time, this
process's CPU time (Python), the PostgreSQL backend's CPU time (``/proc/<pid>/schedstat`` of the
session's backend: the database is local), the statements and their time from send to
answer. To measure another tree, put it first: ``PYTHONPATH=/tmp/x python …``; the answer
(every unit, distance and lot number, each unit's values) is hashed, so two trees' answers can
be compared.

``--http`` times the whole request instead, ``GET /api/v1/trace/forward/material_lot/<id>``
through Flask's test client with a bearer token (made once in the copy: it writes a token
row): authentication, the trace, the recalls that name its units, and the 9 MB answer
written and read to its end; the SHA-256 of the body compares two trees' bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/forward_run"
WORKDIR = Path(tempfile.gettempdir()) / "site_scale"


def backend_cpu(pid: int) -> float:
    """The CPU time of a local process, in seconds: the scheduler's nanoseconds on a CPU
    (``/proc/<pid>/schedstat``), where there is one; else utime + stime, counted in clock
    ticks (10 ms: a trace's own figure then moves in steps of 10 ms)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--kept", default="site_scale_built", help="whose targets (json)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warm", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--each", action="store_true", help="print every run's figures")
    parser.add_argument("--lot", type=int, default=None, help="material lot (default: the kept)")
    parser.add_argument("--http", action="store_true", help="the API request, in process")
    parser.add_argument(
        "--workdir", type=Path, default=WORKDIR, help="site_scale's --workdir (targets, keys)"
    )
    options = parser.parse_args()
    workdir = options.workdir

    targets = json.loads((workdir / f"{options.kept}.json").read_text())
    lot = options.lot or targets["forward_lot"]
    os.environ.update(
        {
            "CELLCHAIN_ENV": "development",
            "CELLCHAIN_DATABASE_URL": options.database,
            "CELLCHAIN_INSTANCE_PATH": str(workdir / "instance"),
            "CELLCHAIN_AUDIT_KEY_FILE": str(workdir / "audit-keys"),
        }
    )
    from sqlalchemy import event, text

    import cellchain
    from cellchain import create_app
    from cellchain.extensions import db
    from cellchain.traceability.trace import trace

    print(f"code: {Path(cellchain.__file__).parent}", file=sys.stderr)
    app = create_app()
    if options.http:
        over_http(app, lot, options)
        return
    statements: list[tuple[str, Any, float]] = []
    started_at: list[float] = []

    with app.app_context():
        engine = db.engine

        @event.listens_for(engine, "before_cursor_execute")
        def before(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            started_at.append(time.perf_counter())

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            statements.append((statement, params, time.perf_counter() - started_at.pop()))

        def one() -> tuple[float, float, float, list[tuple[str, Any, float]], Any]:
            db.session.remove()
            pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            del statements[:]
            pg0, cpu0, wall0 = backend_cpu(pid), time.process_time(), time.perf_counter()
            answer = trace.trace_forward(db.session, "material_lot", lot)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            pg = backend_cpu(pid) - pg0
            ran = list(statements)
            db.session.rollback()
            db.session.remove()
            return wall, cpu, pg, ran, answer

        for _ in range(options.warm):
            one()
        rows = []
        profile = cProfile.Profile() if options.profile else None
        answer = None
        for _ in range(options.runs):
            if profile:
                profile.enable()
            wall, cpu, pg, ran, answer = one()
            if profile:
                profile.disable()
            rows.append((wall, cpu, pg, ran))
        assert answer is not None
        digest = hashlib.sha256()
        for reached in answer.units:
            digest.update(
                repr((tuple(reached.unit), reached.distance, reached.lot_number)).encode()
            )
        found = len({r.unit.id for r in answer.units})
        print(
            f"answer: {found} units (built {targets['forward_units']}), "
            f"{len(answer.dose_orders)} dose orders, sha256 {digest.hexdigest()[:16]}"
        )
        assert found == targets["forward_units"], "wrong answer"
        if options.each:
            for number, (wall, cpu, pg, _ran) in enumerate(rows, start=options.warm + 1):
                print(
                    f"  run {number}: wall {wall * 1000:.0f} python {cpu * 1000:.0f}"
                    f" pg {pg * 1000:.0f}"
                )
        walls = [r[0] * 1000 for r in rows]
        cpus = [r[1] * 1000 for r in rows]
        pgs = [r[2] * 1000 for r in rows]
        print(
            f"runs {len(rows)}  wall ms median {statistics.median(walls):.0f} "
            f"min {min(walls):.0f} max {max(walls):.0f} | python CPU ms median "
            f"{statistics.median(cpus):.0f} | postgres CPU ms median {statistics.median(pgs):.0f}"
        )
        per_statement: dict[int, list[float]] = {}
        for _wall, _cpu, _pg, ran in rows:
            for index, (_sql, _params, seconds) in enumerate(ran):
                per_statement.setdefault(index, []).append(seconds * 1000)
        last = rows[-1][3]
        for index, times in per_statement.items():
            sql = " ".join(last[index][0].split())[:110] if index < len(last) else "?"
            print(f"  statement {index}: median {statistics.median(times):6.1f} ms  {sql}")
        print(f"load: {os.getloadavg()}")
        if profile:
            stats = pstats.Stats(profile)
            stats.sort_stats("tottime").print_stats(25)
        if options.explain:
            connection = db.session.connection()
            for sql, params, _seconds in last:
                print("=" * 100)
                print(" ".join(sql.split())[:400])
                plan = connection.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + sql, params if params else ()
                ).all()
                for (line,) in plan:
                    print(line)
            db.session.rollback()


def over_http(app: Any, lot: int, options: argparse.Namespace) -> None:
    """``--http``: the API request's wall and CPU time (this process: Flask, the trace's
    Python, the answer's JSON; and the PostgreSQL backends' CPU), and the body's digest."""
    import psycopg
    from sqlalchemy import select

    from cellchain.core import accounts
    from cellchain.core.models import User
    from cellchain.core.types import utcnow
    from cellchain.extensions import db

    with app.app_context():
        user = db.session.execute(select(User).where(User.username == "qa")).scalar_one()
        _, token = accounts.create_token(db.session, user=user, now=utcnow(), name="bench_forward")
        db.session.commit()
        db.session.remove()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    path = f"/api/v1/trace/forward/material_lot/{lot}"
    backends = (
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )

    watch = psycopg.connect(options.database.replace("+psycopg", ""), autocommit=True)

    def backends_cpu() -> float:
        pids = [row[0] for row in watch.execute(backends)]
        total = 0.0
        for pid in pids:
            with contextlib.suppress(FileNotFoundError):  # a backend gone meanwhile
                total += backend_cpu(pid)
        return total

    walls, cpus, pgs, digests, size = [], [], [], set(), 0
    for number in range(options.warm + options.runs):
        pg0, cpu0, wall0 = backends_cpu(), time.process_time(), time.perf_counter()
        response = client.get(path, headers=headers)
        body = response.get_data()
        response.close()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        pg = backends_cpu() - pg0
        assert response.status_code == 200, body[:500]
        if number >= options.warm:
            walls.append(wall * 1000)
            cpus.append(cpu * 1000)
            pgs.append(pg * 1000)
            digests.add(hashlib.sha256(body).hexdigest()[:16])
            size = len(body)
            if options.each:
                print(f"  run {number + 1}: wall {wall * 1000:.0f} python {cpu * 1000:.0f}")
    print(f"answer: {size} bytes, sha256 {', '.join(sorted(digests))}")
    print(
        f"runs {len(walls)}  wall ms median {statistics.median(walls):.0f} min {min(walls):.0f} "
        f"max {max(walls):.0f} | python CPU ms median {statistics.median(cpus):.0f} | "
        f"postgres CPU ms median {statistics.median(pgs):.0f}"
    )
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
