"""The trace back from the demo's infusion, in process, on a copy of the site at scale (issue 20):
the time and statements of ``trace.trace_back`` as ``site_scale.py`` measures it, where they go,
and the answers to compare before and after a change.

    python benchmarks/bench_back.py --database postgresql+psycopg://postgres@127.0.0.1:5432/back_run
    python benchmarks/bench_back.py ... --runs 40                 # the time of 40 traces
    python benchmarks/bench_back.py ... --statements              # each statement: rows, ms
    python benchmarks/bench_back.py ... --profile                 # cProfile of the traces
    python benchmarks/bench_back.py ... --answers /tmp/out        # the API's JSON and the page

Run the code of another commit with ``PYTHONPATH=/tmp/export`` (its ``cellchain`` is then
imported: the script says which). The database is a copy of the kept site (``site_scale.py
--reuse --kept site_scale_built --database … --keep --build-only``) with the audit key of
``--workdir``. ``--answers`` logs in (a web session and an API token are written to the copy):
the API's answer as sent and the page as rendered, its CSRF tokens blanked, with their SHA-256.

Each run starts from an empty session (``db.session.remove()``), as ``site_scale.py``'s do:
``trace`` is ``trace_back`` alone (``site_scale.py``'s figure), ``+dump`` also dumps the API's
answer (``BackTraceOut``; what it reads lazily included). CPU is this process's
``time.process_time``; the database's time is in the wall time, not in the CPU.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import os
import pstats
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "site_scale"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--database", required=True, help="a copy of the site (PostgreSQL URL)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="its audit key")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--statements", action="store_true", help="each statement of one trace")
    parser.add_argument("--profile", action="store_true", help="cProfile of --runs traces")
    parser.add_argument("--answers", type=Path, help="write the API's answer and the page here")
    parser.add_argument("--infusion", type=int, help="the infusion (default: the only one)")
    options = parser.parse_args()

    os.environ.update(
        {
            "CELLCHAIN_ENV": "development",
            "CELLCHAIN_DATABASE_URL": options.database,
            "CELLCHAIN_INSTANCE_PATH": str(options.workdir / "instance"),
            "CELLCHAIN_AUDIT_KEY_FILE": str(options.workdir / "audit-keys"),
            "CELLCHAIN_AUDIT_CHECKPOINT_DIR": tempfile.mkdtemp(prefix="bench-back-"),
        }
    )
    import cellchain
    from cellchain import create_app

    print(f"cellchain from {Path(cellchain.__file__).parent}")
    app = create_app()
    with app.app_context():
        run(app, options)


def run(app: Any, options: argparse.Namespace) -> None:
    from sqlalchemy import event, select

    from cellchain.clinic.models import Infusion
    from cellchain.extensions import db
    from cellchain.traceability.trace import trace
    from cellchain.traceability.trace.schemas import BackTraceOut

    session = db.session
    infusion_id = options.infusion or session.execute(select(Infusion.id)).scalars().one()
    session.remove()
    sent: list[tuple[str, float, int]] = []
    started: list[float] = []

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        started.append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        rows = cursor.rowcount if cursor.rowcount is not None else -1
        sent.append((statement, (time.perf_counter() - started.pop()) * 1000, rows))

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)

    def once(dump: bool) -> tuple[float, float, int, float]:
        session.remove()
        del sent[:]
        wall, cpu = time.perf_counter(), time.process_time()
        back = trace.trace_back(session, "infusion", infusion_id)
        if dump:
            BackTraceOut().dump(back)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        in_db = sum(ms for _, ms, _ in sent)
        session.rollback()
        session.remove()
        return wall * 1000, cpu * 1000, len(sent), in_db

    for _ in range(options.warmup):
        once(True)

    if options.statements:
        once(True)
        for number, (statement, ms, rows) in enumerate(sent, 1):
            head = " ".join(statement.split())[:150]
            print(f"{number:3} {ms:7.2f} ms {rows:5} rows  {head}")
        print(f"    {sum(ms for _, ms, _ in sent):7.2f} ms in {len(sent)} statements (+dump)")

    for dump in (False, True):
        runs = [once(dump) for _ in range(options.runs)]
        walls, cpus, counts, in_db = zip(*runs, strict=True)
        label = "trace+dump" if dump else "trace"
        print(
            f"{label:11} wall median {statistics.median(walls):6.2f} ms (min {min(walls):6.2f}), "
            f"CPU median {statistics.median(cpus):6.2f} ms (min {min(cpus):6.2f}), "
            f"cursor time {statistics.median(in_db):5.2f} ms, "
            f"statements {statistics.median(counts):g} over {options.runs} runs"
        )

    if options.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(options.runs):
            once(False)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
        print(out.getvalue())

    if options.answers:
        answers(app, options.answers, infusion_id)


def answers(app: Any, where: Path, infusion_id: int) -> None:
    """The API's answer and the page, as sent, to ``where`` (api.json, page.html)."""
    from sqlalchemy import select

    from cellchain.core import accounts
    from cellchain.core.models import User
    from cellchain.core.types import utcnow
    from cellchain.demo import DEMO_USERS
    from cellchain.extensions import db

    where.mkdir(parents=True, exist_ok=True)
    qa = next(u for u in DEMO_USERS if u.username == "qa")
    user = db.session.execute(select(User).where(User.username == "qa")).scalar_one()
    _row, token = accounts.create_token(
        db.session, user=user, now=utcnow(), name="bench_back", scope="full", days=1
    )
    db.session.commit()
    db.session.remove()
    api = app.test_client()
    answer = api.get(
        f"/api/v1/trace/back/infusion/{infusion_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    web = app.test_client()
    login = web.post("/login", data={"username": "qa", "password": qa.password})
    assert login.status_code == 302, login.get_data(as_text=True)
    page = web.get(f"/trace/back/infusion/{infusion_id}")
    assert page.status_code == 200, page.get_data(as_text=True)[:2000]
    html = re.sub(rb'(name="csrf_token"[^>]*value=")[^"]*"', rb'\1"', page.get_data())
    html = re.sub(rb'(<meta name="csrf-token" content=")[^"]*"', rb'\1"', html)
    for name, body in (("api.json", answer.get_data()), ("page.html", html)):
        (where / name).write_bytes(body)
        print(f"{name}: {len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()}")


if __name__ == "__main__":
    main()
