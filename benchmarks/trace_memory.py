"""Worker memory after big forward traces over HTTP (issue 20, the memory row): gunicorn as
``site_scale.py`` serves it (2 workers, gthread with 4 threads by default), on a copy of the
site ``site_scale.py --reuse --build-only`` kept, and each worker's RSS (``VmRSS``) after
every trace forward of the issue's reagent lot (26 138 units, a 9 MB answer).

    python benchmarks/site_scale.py --reuse --build-only --workdir /tmp/site_scale_full
    python benchmarks/trace_memory.py --workdir /tmp/site_scale_full --traces 6
    python benchmarks/trace_memory.py ... --parallel 2      # two traces at once, each round
    python benchmarks/trace_memory.py ... --env MALLOC_ARENA_MAX=2

``--database`` (default ``…/trace_memory``) is created from the kept site (``--template``,
default ``site_scale_built``) unless ``--no-copy`` and the database exists, and dropped at
the end unless ``--keep``. Before the traces every worker answers scans and a trace back
(warm), and after them scans again: what a worker holds once the big answers are gone is the
row's figure. Every answer's SHA-256 is printed: they must all be the same. Nothing is
asserted; the script exits 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from site_scale import Server, Site, environment, request

DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/trace_memory"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def tokens(env: dict[str, str]) -> dict[str, str]:
    """API tokens of the demo's tech and QA, made in this process."""
    os.environ.update(env)
    from sqlalchemy import select

    from cellchain import create_app
    from cellchain.core import accounts
    from cellchain.core.models import User
    from cellchain.core.types import utcnow
    from cellchain.extensions import db

    app = create_app()
    with app.app_context():
        session = db.session
        made = {}
        for name in ("tech", "qa"):
            user = session.execute(select(User).where(User.username == name)).scalar_one()
            _, text = accounts.create_token(session, user=user, now=utcnow(), name="trace_memory")
            made[name] = text
        session.commit()
        session.remove()
        db.engine.dispose()
    return made


def rss(server: Server) -> dict[int, float]:
    return server.rss_mb()


def show(label: str, memory: dict[int, float]) -> str:
    line = ", ".join(f"{pid}: {mb:.1f} MB" for pid, mb in sorted(memory.items()))
    say(f"{label}: {line}")
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--template", default="site_scale_built")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/site_scale_full"))
    parser.add_argument("--no-copy", action="store_true", help="use the database as it is")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--worker-class", default="gthread", choices=("sync", "gthread"))
    parser.add_argument("--traces", type=int, default=6, help="rounds of forward traces")
    parser.add_argument("--parallel", type=int, default=1, help="traces at once in a round")
    parser.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for gunicorn (repeatable)"
    )
    options = parser.parse_args()

    targets = json.loads((options.workdir / f"{options.template}.json").read_text())
    lot = targets["forward_lot"]
    site = Site(options.database)
    if not (options.no_copy and site.exists(site.name)):
        started = time.perf_counter()
        site.create(template=options.template)
        say(f"copied {options.template}: {time.perf_counter() - started:.0f} s")
    run_dir = Path(tempfile.mkdtemp(prefix="memory-", dir=options.workdir))
    env = environment(options.database, options.workdir, run_dir / "checkpoints")
    made = tokens(env)
    extra = dict(item.split("=", 1) for item in options.env)
    server = Server(options.worker_class, {**env, **extra}, run_dir / "gunicorn.log")
    try:
        say(f"gunicorn {options.worker_class}, 2 workers, env {extra or 'as is'}")
        code = urllib.parse.quote(targets["scan_codes"][0], safe="")
        back = f"/api/v1/trace/back/infusion/{targets['infusion_id']}"

        def small_traffic(times: int) -> None:
            for _ in range(times):
                request(server.port, "GET", f"/api/v1/scan?code={code}", token=made["tech"])
                request(server.port, "GET", back, token=made["qa"])

        small_traffic(10)
        before = rss(server)
        show("warm, before the traces", before)
        path = f"/api/v1/trace/forward/material_lot/{lot}"
        digests: set[str] = set()
        seconds: list[float] = []
        for number in range(options.traces):
            answers: list[tuple[int, dict[str, str], bytes, float]] = []

            def one(into: list[tuple[int, dict[str, str], bytes, float]] = answers) -> None:
                into.append(request(server.port, "GET", path, token=made["qa"]))

            threads = [threading.Thread(target=one) for _ in range(options.parallel)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for status, _, body, spent in answers:
                if status != 200:
                    raise RuntimeError(f"{path}: {status} {body[:300]!r}")
                digests.add(hashlib.sha256(body).hexdigest())
                seconds.append(spent)
            pids = ", ".join(h.get("x-bench-pid", "?") for _, h, _, _ in answers)
            length = len(answers[0][2])
            show(f"after round {number + 1} (served by {pids}, {length:,} bytes)", rss(server))
        small_traffic(10)
        after = rss(server)
        show("after the traces and 20 small requests", after)
        say(
            f"traces: median {statistics.median(seconds) * 1000:.0f} ms; answers "
            f"{'all the same' if len(digests) == 1 else 'DIFFER'}: {sorted(digests)}"
        )
        say(
            "growth per worker: "
            + ", ".join(
                f"{pid}: {after[pid] - before.get(pid, 0):+.1f} MB" for pid in sorted(after)
            )
        )
    finally:
        server.stop()
        if not options.keep:
            site.drop(site.name)
        site.admin.dispose()


if __name__ == "__main__":
    main()
