"""The scan against the bare route under gunicorn, two trees of the code side by side
(issue 20: the scan's ratio).

    python benchmarks/bench_scan_ab.py --tree base=/tmp/scan_base --tree new=/work/main \\
        --database postgresql+psycopg://postgres@127.0.0.1:5432/scan_run --rounds 4 --seconds 6

Copies the kept site of ``site_scale.py`` (``--kept``, default ``site_scale_built``, built the
same day) into ``--database``, makes API tokens there, and starts one gunicorn per tree
(``site_scale.py``'s model: 2 ``gthread`` workers of 4 threads, ``site_scale_app``), all
serving the same database. Then, round after round, each tree in turn: ``wrk`` (1 thread, 16
connections) on the bare route of the app, then on the scan of the site's codes with the
technician's bearer token, as ``site_scale.py`` sends them. The trees are alternated within
each round, so a machine that drifts (others' tests) weighs on both alike. Prints each run's
requests per second and the workers' CPU per request (``utime + stime`` from ``/proc``), and
per tree the medians and the throughput ratio scan / bare. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import site_scale  # noqa: E402  (benchmarks/ is on the path now)


def counters(server: site_scale.Server) -> dict[str, float]:
    """The workers' user and system CPU seconds and context switches, all their threads."""
    total = {"user": 0.0, "sys": 0.0, "switches": 0.0}
    for pid in server.workers():
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                status = (task / "status").read_text().splitlines()
            except OSError:
                continue
            total["user"] += int(fields[11]) / site_scale.CLK_TCK
            total["sys"] += int(fields[12]) / site_scale.CLK_TCK
            total["switches"] += sum(
                int(line.split()[1]) for line in status if "ctxt_switches" in line
            )
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH, repeatable")
    parser.add_argument(
        "--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/scan_run"
    )
    parser.add_argument("--kept", default="site_scale_built")
    parser.add_argument("--workdir", type=Path, default=site_scale.DEFAULT_WORKDIR)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument(
        "--bare-headers",
        action="store_true",
        help="send the bare route the scan's headers too (bearer token, Accept)",
    )
    options = parser.parse_args()
    trees = dict(item.split("=", 1) for item in options.tree)

    run_dir = Path(tempfile.mkdtemp(prefix="scan-ab-", dir=options.workdir))
    env = site_scale.environment(options.database, options.workdir, run_dir / "checkpoints")
    os.environ.update(env)
    site = site_scale.Site(options.database, options.kept)
    meta = json.loads((options.workdir / f"{options.kept}.json").read_text())
    site.create(template=options.kept)
    from flask_migrate import upgrade

    from cellchain import create_app
    from cellchain.extensions import db

    app = create_app()
    with app.app_context():
        upgrade()
        http = site_scale.prepare_http(app)
        db.session.remove()
        db.engine.dispose()
    codes = [urllib.parse.quote(code, safe="") for code in meta["scan_codes"]]
    head = site_scale.LUA_HEAD.format(token=site_scale.lua_string(http.tokens["tech"]))
    bare_path = site_scale.lua_string("/_bench/bare")
    if options.bare_headers:
        bare = head + (
            'local headers = {["Authorization"] = "Bearer " .. token, '
            '["Accept"] = "application/json"}\n'
            f'request = function()\n  return wrk.format("GET", {bare_path}, headers)\nend\n'
        )
    else:
        bare = head + site_scale.LUA_PATH.format(path=bare_path)
    scripts = {
        "bare": bare,
        "scan": head + site_scale.LUA_SCAN.format(codes=site_scale.lua_list(codes)),
    }
    servers: dict[str, site_scale.Server] = {}
    try:
        for name, tree in trees.items():
            site_scale.ROOT = Path(tree).resolve()
            os.environ["PYTHONPATH"] = str(site_scale.ROOT)
            servers[name] = site_scale.Server("gthread", env, run_dir / f"gunicorn-{name}.log")
            for _ in range(4):  # every worker warm, the answer checked
                site_scale.probe(
                    servers[name].port,
                    1,
                    "GET",
                    f"/api/v1/scan?code={codes[0]}",
                    token=http.tokens["tech"],
                )
        probe = site_scale.probe(
            next(iter(servers.values())).port,
            5,
            "GET",
            f"/api/v1/scan?code={codes[1]}",
            token=http.tokens["tech"],
        )
        site_scale.say(f"scan: {probe.median_statements} statements")
        loads: dict[tuple[str, str], list[site_scale.Load]] = {}
        for number in range(options.rounds):
            site_scale.say(f"round {number + 1}, load {os.getloadavg()[0]:.1f}")
            for name, server in servers.items():
                for path, script in scripts.items():
                    before = counters(server)
                    load = site_scale.run_wrk(
                        server, f"{name} {path}", script, options.seconds, run_dir
                    )
                    after = counters(server)
                    n = max(1, load.requests)
                    per = {key: (after[key] - before[key]) / n for key in after}
                    site_scale.say(
                        f"    per request: user {per['user'] * 1000:.2f} ms, sys "
                        f"{per['sys'] * 1000:.2f} ms, context switches {per['switches']:.1f}"
                    )
                    loads.setdefault((name, path), []).append(load)
    finally:
        for server in servers.values():
            server.stop()
        site.drop(site.name)
        site.admin.dispose()
    print()
    print(
        "| tree | bare req/s | scan req/s | ratio (per round) | bare CPU ms/req | scan CPU ms/req |"
    )
    print("|---|---|---|---|---|---|")
    for name in servers:
        bare_runs, scan_runs = loads[(name, "bare")], loads[(name, "scan")]
        ratios = [s.rate / b.rate for s, b in zip(scan_runs, bare_runs, strict=True)]
        bare_all = site_scale.Load.combined("bare", bare_runs)
        scan_all = site_scale.Load.combined("scan", scan_runs)
        print(
            f"| {name} | {bare_all.rate:.0f} | {scan_all.rate:.0f} | "
            f"{scan_all.rate / bare_all.rate:.2f} ({', '.join(f'{r:.2f}' for r in ratios)}) | "
            f"{statistics.median(b.cpu_ms_per_request for b in bare_runs):.2f} | "
            f"{statistics.median(s.cpu_ms_per_request for s in scan_runs):.2f} |"
        )
    names = list(servers)
    if len(names) == 2:
        first, second = (loads[(name, "scan")] for name in names)
        paired = [
            a.cpu_ms_per_request - b.cpu_ms_per_request for a, b in zip(first, second, strict=True)
        ]
        print(
            f"\nscan CPU per request, {names[0]} - {names[1]}, round by round: "
            + ", ".join(f"{d:+.2f}" for d in paired)
            + f" ms (median {statistics.median(paired):+.2f})"
        )
    print(f"\nload at the end {os.getloadavg()}; logs in {run_dir}; {time.strftime('%H:%M:%S')}")


if __name__ == "__main__":
    main()
