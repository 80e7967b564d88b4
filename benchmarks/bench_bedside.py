"""The bedside check in process (issue 20): worker CPU per ``POST /api/v1/bedside/checks``
with the Flask test client on a copy of the kept site, and its profile.

    # once: a copy of the kept site, AS-001's dose received and thawed, tokens in --workdir
    python benchmarks/bench_bedside.py --database postgresql+psycopg://…/bedside_run --prepare
    # then, as often as wanted (the thaw window is 60 minutes: --prepare again after it)
    python benchmarks/bench_bedside.py --database postgresql+psycopg://…/bedside_run \
        --requests 200 --warmup 20 [--profile out.prof]

The code measured is the tree this script is in (copy it into a clean export of another
commit to measure that one), here and in gunicorn. The database, its audit key
(``--workdir``, as ``site_scale.py``'s) and tokens are shared by both. CPU is
``time.process_time`` of this process over the timed requests, divided by their number
(PostgreSQL's CPU is not in it); statements are counted per request.

``--http``: gunicorn as ``site_scale.py`` runs it (2 gthread workers), wrk saturated for
``--duration`` seconds (worker CPU per request), then the clinic model (16 clients thinking
0–1 s) for ``--clinic`` seconds (its p99). Reported, never asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "site_scale"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))


def environment(url: str, workdir: Path) -> None:
    os.environ.update(
        {
            "CELLCHAIN_ENV": "development",
            "CELLCHAIN_DATABASE_URL": url,
            "CELLCHAIN_INSTANCE_PATH": str(workdir / "instance"),
            "CELLCHAIN_AUDIT_KEY_FILE": str(workdir / "audit-keys"),
            "CELLCHAIN_AUDIT_CHECKPOINT_DIR": str(workdir / "bedside-checkpoints"),
        }
    )


def prepare(app: Any, kept: str, url: str, state: Path) -> None:
    """A fresh copy of ``kept`` at ``url``, AS-001's dose received and thawed, a token."""
    from sqlalchemy import create_engine, select, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.database in (kept, "postgres", "test") or not str(parsed.database).endswith("_run"):
        # it is dropped: never the kept site, a maintenance database or a real site
        # (independent review, N5)
        raise SystemExit(
            f"--prepare drops {parsed.database!r}: give a database of your own named …_run, "
            f"not the kept site {kept!r}"
        )
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{parsed.database}" TEMPLATE "{kept}"'))
    admin.dispose()

    from flask_migrate import upgrade

    from cellchain.core import accounts
    from cellchain.core.identifiers import parse_identifier
    from cellchain.core.models import User
    from cellchain.core.payload import encode_payload
    from cellchain.core.types import utcnow
    from cellchain.extensions import db

    with app.app_context():
        upgrade()
        session = db.session
        now = utcnow()
        clinician = session.execute(select(User).where(User.username == "clinician")).scalar_one()
        _, token = accounts.create_token(session, user=clinician, now=now, name="bench_bedside")
        session.commit()
        import site_scale

        patient, label = site_scale.receive_and_thaw_the_dose(session, clinician, now)
        session.commit()
        state.write_text(
            json.dumps(
                {
                    "token": token,
                    "body": {
                        "wristband": encode_payload(parse_identifier(patient.coi)),
                        "label": encode_payload(parse_identifier(label)),
                    },
                    "thawed_at": now.isoformat(),
                }
            )
        )
        db.session.remove()


def measure(app: Any, state: dict[str, Any], options: argparse.Namespace) -> dict[str, Any]:
    """Warm-up, then the timed requests: CPU and wall per request, statements, the verdict."""
    import gc

    from sqlalchemy import event

    from cellchain.extensions import db

    headers = {"Authorization": f"Bearer {state['token']}", "Accept": "application/json"}
    client = app.test_client()
    count = [0]

    def counted(*_: Any) -> None:
        count[0] += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", counted)

    def post() -> Any:
        answer = client.post("/api/v1/bedside/checks", json=state["body"], headers=headers)
        if answer.status_code != 201:
            raise SystemExit(f"{answer.status_code}: {answer.get_data(as_text=True)[:500]}")
        return answer

    for _ in range(options.warmup):
        post()
    statements = []
    walls = []
    profiler = cProfile.Profile(time.process_time) if options.profile else None
    gc.collect()
    cpu = time.process_time()
    wall = time.perf_counter()
    if profiler:
        profiler.enable()
    last = None
    for _ in range(options.requests):
        count[0] = 0
        started = time.perf_counter()
        last = post()
        walls.append(time.perf_counter() - started)
        statements.append(count[0])
    if profiler:
        profiler.disable()
        profiler.dump_stats(options.profile)
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    event.remove(engine, "before_cursor_execute", counted)
    assert last is not None
    return {
        "cpu_ms": cpu / options.requests * 1000,
        "wall_ms": wall / options.requests * 1000,
        "p50_ms": statistics.median(walls) * 1000,
        "statements": sorted(set(statements)),
        "verdict": last.get_json()["verdict"],
    }


def over_http(state: dict[str, Any], options: argparse.Namespace) -> None:
    """Saturated, then the clinic model, on gunicorn as ``site_scale.py`` serves it."""
    import site_scale

    run_dir = Path(tempfile.mkdtemp(prefix="bedside-", dir=options.workdir))
    env = {key: value for key, value in os.environ.items() if key.startswith("CELLCHAIN_")}
    server = site_scale.Server("gthread", env, run_dir / "gunicorn.log")
    try:
        token, body = state["token"], json.dumps(state["body"])
        for _ in range(6):
            code, _headers, content, _ = site_scale.request(
                server.port, "POST", "/api/v1/bedside/checks", token=token, body=state["body"]
            )
            if code != 201 or json.loads(content)["verdict"] != "go":
                raise SystemExit(f"{code}: {content[:500]!r}")
        clinician = site_scale.LUA_HEAD.format(token=site_scale.lua_string(token))
        bedside = site_scale.LUA_BEDSIDE.format(body=site_scale.lua_string(body))
        saturated = site_scale.run_wrk(
            server, "bedside, saturated", clinician + bedside, options.duration, run_dir
        )
        think = site_scale.LUA_THINK.format(think_lo=0, think_hi=1000)
        clinic = site_scale.run_wrk(
            server, "bedside, clinic model", clinician + think + bedside, options.clinic, run_dir
        )
    finally:
        server.stop()
    print(
        f"{options.label or ROOT}: saturated {saturated.rate:.0f} req/s, "
        f"{saturated.cpu_ms_per_request:.2f} ms worker CPU, p99 "
        f"{saturated.latency_ms.get('99', 0):.0f} ms; clinic {clinic.rate:.0f} req/s, "
        f"{clinic.cpu_ms_per_request:.2f} ms worker CPU, p50 {clinic.latency_ms.get('50', 0):.0f}"
        f" p99 {clinic.latency_ms.get('99', 0):.0f} ms, errors "
        f"{saturated.errors + clinic.errors}; load {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--database", required=True, help="PostgreSQL URL of the run's copy")
    parser.add_argument("--kept", default="site_scale_built", help="the kept site (template)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--prepare", action="store_true", help="copy the kept site, thaw")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--profile", help="write a cProfile of the timed requests here")
    parser.add_argument("--label", default="", help="a name for the report line")
    parser.add_argument("--http", action="store_true", help="gunicorn and wrk, not in process")
    parser.add_argument("--duration", type=float, default=20.0, help="saturated, seconds")
    parser.add_argument("--clinic", type=float, default=30.0, help="clinic model, seconds")
    options = parser.parse_args()
    environment(options.database, options.workdir)
    state_file = options.workdir / f"bedside-{options.database.rsplit('/', 1)[-1]}.json"

    import cellchain
    from cellchain import create_app

    app = create_app()
    if options.prepare:
        prepare(app, options.kept, options.database, state_file)
        print(f"prepared {options.database}; state in {state_file}")
        return
    state = json.loads(state_file.read_text())
    if options.http:
        over_http(state, options)
        return
    result = measure(app, state, options)
    load = os.getloadavg()[0]
    print(
        f"{options.label or Path(cellchain.__file__).parent.parent}: "
        f"{result['cpu_ms']:.2f} ms CPU, {result['wall_ms']:.2f} ms wall "
        f"(p50 {result['p50_ms']:.2f}) per check over {options.requests}; statements "
        f"{result['statements']}; verdict {result['verdict']}; load {load:.1f}",
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()
