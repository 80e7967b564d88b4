"""What an API request costs beside a bare Flask endpoint: scan → unit over HTTP (issue 20).

    python benchmarks/bench_requests.py                       # build, serve, measure, drop
    python benchmarks/bench_requests.py --keep                # keep the database for the next run
    python benchmarks/bench_requests.py --reuse               # measure on a kept database
    python benchmarks/bench_requests.py --reuse --profile 1000   # cProfile 1,000 scans in-process

Builds the demo site (``cellchain.demo``, through the services) in a PostgreSQL database
(``--database``, created and dropped unless ``--keep``), gives the QC analyst an API token and
starts gunicorn (``--workers`` sync workers, 2 by default, or ``gthread`` workers of
``--threads`` threads: ``--threads 4 --connections 16`` is ``site_scale.py``'s model; loopback
only) on an app built by
``create_bench_app``: the real app plus one bare route, ``GET /bench/bare``, that answers
``ok`` and goes through the same request hooks and after-request headers as every route (it
is public, so no session or token is looked up). ``wrk`` then alternates the bare route and
``GET /api/v1/scan?code=<a unit's code>`` with the token, ``--rounds`` times each, and the
table gives the median requests per second of each, their ratio (the issue's goal: scan at
least 0.5× bare), and the CPU the gunicorn workers spent per request (their ``utime+stime``
from ``/proc`` before and after each run, divided by the requests served). The statements of
one scan are counted in-process with the Flask test client. Nothing is asserted: this prints.

``wrk`` runs on the same 2 CPUs as the workers, so requests per second are shared with the
load generator and with whatever else runs; the CPU per request is the steadier figure.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import make_url

DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_requests"
BARE_PATH = "/bench/bare"
STATE_FILE = "bench_requests.state"


def create_bench_app() -> Flask:
    """The app as ``wsgi.py`` builds it, plus the bare route the scan is compared with."""
    from cellchain import create_app
    from cellchain.http import public

    app = create_app()

    @public
    def bare() -> str:
        return "ok"

    app.add_url_rule(BARE_PATH, "bench_bare", bare)
    return app


# --- the database ---------------------------------------------------------------------------


def _server_url(url: str) -> str:
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


def create_database(url: str) -> None:
    name = make_url(url).database
    engine = create_engine(_server_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def drop_database(url: str) -> None:
    name = make_url(url).database
    engine = create_engine(_server_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def build(instance: Path) -> tuple[str, str]:
    """Migrate and seed the demo site; the QC analyst's new token and a unit's code."""
    from flask_migrate import upgrade

    from cellchain import create_app
    from cellchain.core import accounts
    from cellchain.core.models import IssuedIdentifier, User
    from cellchain.core.types import utcnow
    from cellchain.extensions import db
    from cellchain.http import account_policy, facility_code, site_zone

    app = create_app()
    from cellchain.demo import seed_demo  # after the app: its modules need every model mapped

    with app.app_context():
        upgrade()
        with app.test_request_context():
            seed_demo(
                db.session,
                now=utcnow(),
                facility_code=facility_code(),
                policy=account_policy(),
                site_zone=site_zone(),
            )
            db.session.commit()
        qc = db.session.execute(select(User).where(User.username == "qc")).scalar_one()
        _row, token = accounts.create_token(db.session, user=qc, now=utcnow(), name="bench")
        db.session.commit()
        code = db.session.execute(
            select(IssuedIdentifier.code)
            .where(IssuedIdentifier.kind == "UNIT", IssuedIdentifier.entity_type == "unit")
            .order_by(IssuedIdentifier.id)
            .limit(1)
        ).scalar_one()
    return token, code


# --- in-process: statements and a profile ---------------------------------------------------


def in_process(token: str, code: str, profile: int) -> dict[str, Any]:
    """Statements of one scan (fresh session), CPU per scan and per bare request over
    ``profile`` requests each with the test client, and the cProfile of the scans."""
    from cellchain.extensions import db

    app = create_bench_app()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    scan = f"/api/v1/scan?code={code}"
    result: dict[str, Any] = {}
    with app.app_context():
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])

        engine = db.engine
        assert client.get(scan, headers=headers).status_code == 200
        event.listen(engine, "before_cursor_execute", count)
        response = client.get(scan, headers=headers)
        event.remove(engine, "before_cursor_execute", count)
        assert response.status_code == 200, response.get_data(as_text=True)
        result["statements"] = statements
        result["body"] = response.get_data(as_text=True)
    n = max(profile, 200)
    for _ in range(50):
        client.get(BARE_PATH)
        client.get(scan, headers=headers)
    started = time.process_time()
    for _ in range(n):
        client.get(BARE_PATH)
    result["bare_cpu_ms"] = (time.process_time() - started) * 1000 / n
    started = time.process_time()
    for _ in range(n):
        client.get(scan, headers=headers)
    result["scan_cpu_ms"] = (time.process_time() - started) * 1000 / n
    if profile:
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for _ in range(profile):
            client.get(scan, headers=headers)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
        result["profile"] = out.getvalue()
    return result


# --- over HTTP ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def wait_for(url: str, deadline: float) -> None:
    import urllib.request

    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer {url} in time")


def run_wrk(url: str, seconds: int, connections: int, headers: list[str]) -> tuple[float, int]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    if "Socket errors" in output:
        print(output, file=sys.stderr)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in output:
        raise SystemExit(f"errors from {url}:\n{output}")
    return rate, count


def over_http(
    env: dict[str, str], token: str, code: str, args: argparse.Namespace
) -> dict[str, list[float]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(args.workers),
            *(["-k", "gthread", "--threads", str(args.threads)] if args.threads else []),
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(Path(__file__).parent),
            "--log-level",
            "warning",
            "bench_requests:create_bench_app()",
        ],
        env=env,
    )
    samples: dict[str, list[float]] = {"bare": [], "scan": [], "bare_cpu": [], "scan_cpu": []}
    try:
        wait_for(base + BARE_PATH, time.monotonic() + 60)
        pids = worker_pids(server.pid)
        targets = {
            "bare": (base + BARE_PATH, []),
            "scan": (f"{base}/api/v1/scan?code={code}", [f"Authorization: Bearer {token}"]),
        }
        for url, headers in targets.values():  # warm every worker
            run_wrk(url, 2, args.connections, headers)
        for _round in range(args.rounds):
            for name, (url, headers) in targets.items():
                before = cpu_seconds(pids)
                rate, count = run_wrk(url, args.seconds, args.connections, headers)
                cpu = cpu_seconds(pids) - before
                samples[name].append(rate)
                samples[f"{name}_cpu"].append(cpu * 1000 / count)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--keep", action="store_true", help="keep the database and instance")
    parser.add_argument(
        "--instance", type=Path, help="the kept instance folder (default: $TMPDIR/bench_requests)"
    )
    parser.add_argument("--reuse", action="store_true", help="use the kept database")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=0, help="gthread workers of this many threads (0: sync)"
    )
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0, help="cProfile this many scans")
    parser.add_argument("--no-http", action="store_true", help="only the in-process figures")
    args = parser.parse_args()
    if shutil.which("wrk") is None and not args.no_http:
        raise SystemExit("wrk is needed (apt-get install wrk)")

    kept = args.instance or Path(tempfile.gettempdir()) / "bench_requests"
    instance = kept if (args.keep or args.reuse) else Path(tempfile.mkdtemp(prefix="bench_req_"))
    instance.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "CELLCHAIN_ENV": "development",
        "CELLCHAIN_DATABASE_URL": args.database,
        "CELLCHAIN_INSTANCE_PATH": str(instance),
    }
    os.environ.update(env)
    state = instance / STATE_FILE
    if args.reuse and state.exists():
        token, code = state.read_text().split()
    else:
        create_database(args.database)
        started = time.monotonic()
        token, code = build(instance)
        print(f"built the demo site in {time.monotonic() - started:.1f} s")
        state.write_text(f"{token} {code}")
    try:
        local = in_process(token, code, args.profile)
        if local.get("profile"):
            print(local["profile"])
        print(f"scan of {code}: {len(local['statements'])} SQL statements")
        for statement in local["statements"]:
            print("   ", " ".join(statement.split())[:160])
        print(
            f"in-process CPU per request (test client): bare {local['bare_cpu_ms']:.2f} ms, "
            f"scan {local['scan_cpu_ms']:.2f} ms"
        )
        if args.no_http:
            return
        samples = over_http(env, token, code, args)
    finally:
        if not (args.keep or args.reuse):
            drop_database(args.database)
            shutil.rmtree(instance, ignore_errors=True)
    bare, scan = statistics.median(samples["bare"]), statistics.median(samples["scan"])
    ratios = [s / b for s, b in zip(samples["scan"], samples["bare"], strict=True)]
    print(
        f"\ngunicorn {args.workers} "
        + (f"gthread workers x {args.threads} threads" if args.threads else "sync workers")
        + f", wrk 1 thread {args.connections} connections, "
        f"{args.rounds} rounds of {args.seconds} s each, alternating"
    )
    print(f"{'path':<28}{'req/s median':>14}{'min':>9}{'max':>9}{'CPU ms/req':>12}")
    for name, label in (("bare", f"GET {BARE_PATH}"), ("scan", "GET /api/v1/scan (unit)")):
        rates = samples[name]
        print(
            f"{label:<28}{statistics.median(rates):>14.0f}{min(rates):>9.0f}{max(rates):>9.0f}"
            f"{statistics.median(samples[name + '_cpu']):>12.2f}"
        )
    print(
        f"scan / bare: {scan / bare:.2f}× (median of medians; per round "
        f"{', '.join(f'{r:.2f}' for r in ratios)}); goal ≥ 0.5×, ≤ 3 statements: "
        f"{'met' if scan / bare >= 0.5 and len(local['statements']) <= 3 else 'not met'}"
    )


if __name__ == "__main__":
    main()
