"""The site at scale (issue 20): build it on PostgreSQL, serve it with gunicorn, load it with
wrk, and print the issue's table of paths, where each stands and whether its goal holds.

    python benchmarks/site_scale.py                   # ~100 000 units, ~1 000 000 audit entries
    python benchmarks/site_scale.py --scale 0.05      # a quick run (100 donations, 50 000 entries)
    python benchmarks/site_scale.py --reuse           # keep the built site, clone it next time
    python benchmarks/site_scale.py --soak 600        # also 10 minutes of mixed traffic
    python benchmarks/site_scale.py --worker-class sync

**The site.** ``--database`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/site_scale``)
is created and dropped. ``cellchain.demo`` seeds it through the services, then
``bench_trace.build`` writes 2 000 donations (× ``--scale``) as rows, ~100 000 units with
their whole batch record, and ~1 000 000 audit entries (× ``--scale``) are appended to the
demo's chain with COPY: each entry's hash is made by ``audit.keyed_entry_hash``, the function
``audit.record_many`` uses, with the app's audit key, so ``cellchain audit verify`` accepts
the chain. With ``--reuse`` the built database is kept as ``<name>_built`` (``--kept`` names
another, so that a run on another ``--database`` copies the same kept site; its audit key
and targets are in ``--workdir``) and each run works on a fresh copy of it (``CREATE DATABASE …
TEMPLATE``, ~20 s instead of minutes); it is built again when the scale changes or the day
has (the demo's patients are due today).

**Measured in process** (through the services, each run from a fresh session): trace forward
of the material lot whose trace reaches the number of units nearest the issue's 26 138;
trace back from the demo's infusion; opening a recall of a donation filled into 5 lots of
200 bags (about 1 000 units blocked: no reagent lot blocks near that many) and of the reagent
lot that blocks the number nearest 20 000 (signed with QA's password, then rolled back; each
answer checked against what was built); a label batch of 100 bags as PNG, PDF and ZPL; and
``cellchain audit verify`` run as the command it is, in a Python process of its own: timed
from the command's start to its exit code, after the imports and a first app (the start-up,
reported apart), its RSS sampled every 50 ms and its peak from ``wait4``.

**Measured over HTTP.** gunicorn (2 workers, ``--worker-class``: gthread with 4 threads by
default, which measured 2-4× the scan throughput of sync workers here, as the threads overlap
their waits on PostgreSQL; sync closes every connection after its answer) serves
``benchmarks/site_scale_app.py`` on loopback: the app plus ``/_bench/bare`` (a route of the
app through all its hooks, no token: the comparison for the scan), ``/_flask/bare`` (an empty
Flask app mounted beside it) and a header with each request's SQL statement count. wrk (one
thread, 16 connections) drives each path for ``--duration`` seconds. The load model:

- *saturated*: closed loop, 16 connections each sending its next request as soon as the
  answer arrives (throughput, CPU per request);
- *clinic*: 16 clients, each thinking a uniform 0–1 s between an answer and its next request
  (at most 32 requests/s offered), the goal row's p99 for the bedside check.

With ``--soak SECONDS``, mixed traffic (70 % scans, 20 % bedside checks, 10 % traces back
from the infusion; 16 connections thinking 0–0.2 s) runs that long; the errors (non-2xx
answers, failed connections, timeouts) and each worker's RSS every 10 s are reported.

Worker CPU per request is the workers' ``utime + stime`` (``/proc/<pid>/stat``) over a phase
divided by the requests wrk completed in it. Statements per request are read from the header
on sequential requests. Timings are reported, never asserted; the script exits 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/site_scale"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "site_scale"
AUDIT_ENTRIES = 1_000_000
#: the issue's forward trace, and the recalls' sizes
FORWARD_UNITS = 26_138
RECALL_SIZES = (1_000, 20_000)
#: lots of 200 bags of the donation recalled to block about 1 000 units
THOUSAND_LOTS = 5
#: the shape of what is built: a kept site of another version is built again
BUILD_VERSION = 2
LABEL_BAGS = 100
CLIENTS = 16
#: alternating rounds of the bare routes and the scan (each a third of --duration)
ROUNDS = 6
THINK_MS = (0, 1000)
SOAK_THINK_MS = (0, 200)
ROOT = Path(__file__).resolve().parent.parent
# the tree this script is in is the one measured, here and in gunicorn and the CLI (a clean
# export of a commit, say), whatever cellchain is installed
sys.path.insert(1, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the database ---------------------------------------------------------------------------


@dataclass
class Targets:
    """What the timed operations start from and must answer (kept in --workdir to reuse)."""

    scale: float
    built_on: str
    donations: int
    units: int
    audit_entries: int
    build_seconds: dict[str, float]
    forward_lot: int
    forward_label: str
    forward_units: int
    forward_bags: int
    #: (what is recalled: donation or material_lot, its id, its label, units it must block)
    recalls: list[tuple[str, int, str, int]]
    infusion_id: int
    label_lot: int
    scan_codes: list[str] = field(default_factory=list)
    version: int = BUILD_VERSION


class Site:
    """The PostgreSQL database of the run, and its template when reused."""

    def __init__(self, url: str, kept: str | None = None) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.url = url
        parsed = make_url(url)
        self.name = parsed.database or "site_scale"
        self.template = kept or f"{self.name}_built"
        self.admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
        self.libpq = parsed.set(drivername="postgresql").render_as_string(hide_password=False)

    def sql(self, statement: str) -> list[Any]:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            result = conn.execute(text(statement))
            return list(result) if result.returns_rows else []

    def exists(self, name: str) -> bool:
        return bool(self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))

    def drop(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create(self, *, template: str | None = None) -> None:
        self.drop(self.name)
        clause = f' TEMPLATE "{template}"' if template else ""
        self.sql(f'CREATE DATABASE "{self.name}"{clause}')

    def settle(self) -> None:
        """Statistics and visibility of every table up to date and the dirty pages written
        (``VACUUM ANALYZE``, ``CHECKPOINT``), so that autovacuum and the checkpointer do not
        start on the rows just loaded or copied while the run measures: a site in use has
        been vacuumed and analysed."""
        import psycopg

        with psycopg.connect(self.libpq, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")

    def keep_as_template(self) -> None:
        self.drop(self.template)
        self.sql(f'CREATE DATABASE "{self.template}" TEMPLATE "{self.name}"')


def environment(url: str, workdir: Path, checkpoints: Path) -> dict[str, str]:
    """The ``CELLCHAIN_*`` variables of the app in this process, gunicorn and the CLI."""
    return {
        "CELLCHAIN_ENV": "development",
        "CELLCHAIN_DATABASE_URL": url,
        "CELLCHAIN_INSTANCE_PATH": str(workdir / "instance"),
        "CELLCHAIN_AUDIT_KEY_FILE": str(workdir / "audit-keys"),
        "CELLCHAIN_AUDIT_CHECKPOINT_DIR": str(checkpoints),
    }


def build_site(app: Any, options: argparse.Namespace) -> Targets:
    """The demo through the services, the bulk rows, the audit entries; the targets."""
    from zoneinfo import ZoneInfo

    import bench_trace  # benchmarks/ is on sys.path; imported once the app exists
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from cellchain.chain.models import Unit, UnitStatus
    from cellchain.clinic.models import Infusion
    from cellchain.core.accounts import AccountPolicy
    from cellchain.core.types import utcnow
    from cellchain.demo import seed_demo
    from cellchain.donors.models import Donation
    from cellchain.extensions import db

    session = db.session
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    upgrade()
    site = seed_demo(
        session,
        now=utcnow(),
        facility_code=app.config["FACILITY_CODE"],
        policy=AccountPolicy.from_config(app.config),
        site_zone=ZoneInfo(app.config["SITE_TIMEZONE"]),
    )
    session.commit()
    seconds["demo"] = time.perf_counter() - started
    say(f"demo through the services: {seconds['demo']:.1f} s")

    started = time.perf_counter()
    donations = max(2, round(bench_trace.DEFAULT_DONATIONS * options.scale))
    built = bench_trace.build(
        session,
        donations=donations,
        big_lot_bags=160,
        facility=app.config["FACILITY_CODE"],
        user_id=site.users["tech"].id,
        product_id=site.donations["released"].product_definition_id,
        rng=random.Random(2026),
    )
    thousand = thousand_bag_donation(app, site.users["tech"].id, built.big_donation)
    seconds["bulk"] = time.perf_counter() - started
    say(f"bulk rows: {seconds['bulk']:.1f} s")

    started = time.perf_counter()
    wanted = max(1000, round(AUDIT_ENTRIES * options.scale))
    entries = append_audit_entries(app, wanted, user_id=site.users["tech"].id)
    seconds["audit"] = time.perf_counter() - started
    say(f"audit entries: {entries} in the chain, {seconds['audit']:.1f} s")

    bags = built.all_bags()
    reach = {lot: len(units) for lot, units in built.material_units.items()}
    blocks = {lot: len(units & bags) for lot, units in built.material_units.items()}
    forward = min(reach, key=lambda lot: (abs(reach[lot] - FORWARD_UNITS), lot))
    final = [status.value for status in UnitStatus if status.final]
    left = session.execute(
        select(func.count())
        .select_from(Unit)
        .where(Unit.donation_id == thousand, Unit.status.not_in(final))
    ).scalar_one()
    big = min(blocks, key=lambda lot: (abs(blocks[lot] - RECALL_SIZES[1]), lot))
    recalls = [
        ("donation", thousand, f"a donation filled into {THOUSAND_LOTS} lots of 200 bags", left),
        ("material_lot", big, built.material_label[big], blocks[big]),
    ]
    big_lot = built.big_lots[0]
    codes = list(session.execute(select(Unit.code).order_by(func.random()).limit(2000)).scalars())
    infusion_id = session.execute(select(Infusion.id)).scalars().one()
    units = session.execute(select(func.count()).select_from(Unit)).scalar_one()
    donations = session.execute(select(func.count()).select_from(Donation)).scalar_one()
    session.remove()
    return Targets(
        scale=options.scale,
        built_on=utcnow().date().isoformat(),
        donations=donations,
        units=units,
        audit_entries=entries,
        build_seconds=seconds,
        forward_lot=forward,
        forward_label=built.material_label[forward],
        forward_units=reach[forward],
        forward_bags=blocks[forward],
        recalls=recalls,
        infusion_id=infusion_id,
        label_lot=big_lot,
        scan_codes=codes,
    )


def thousand_bag_donation(app: Any, user_id: int, like: int) -> int:
    """One more donation, expanded to 12 CS5 and filled into 5 lots of 200 bags (the most a
    lot has): a recall of it blocks about 1 000 units. Written by a builder of its own after
    the others (its reagents are lots of their own); its id."""
    import bench_trace
    from sqlalchemy import select

    from cellchain.donors.models import Donation
    from cellchain.extensions import db
    from cellchain.manufacturing.models import Equipment

    session = db.session
    model = session.get(Donation, like)
    assert model is not None
    collected_at = model.collected_at + dt.timedelta(hours=1)
    builder = bench_trace.TreeBuilder(
        session,
        facility=app.config["FACILITY_CODE"],
        user_id=user_id,
        product_id=model.product_definition_id,
        equipment=dict(session.execute(select(Equipment.code, Equipment.id)).all()),
        first=collected_at - dt.timedelta(days=1),
        last=collected_at + dt.timedelta(days=1),
    )
    for row in builder.rows["material_lots"]:
        row["lot_number"] += "-K"  # lots of their own, numbered apart from the others
    donation = builder.donation(
        collected_at, passages=bench_trace.BIG_PASSAGES, lots=[200] * THOUSAND_LOTS
    )
    builder.finish()
    return donation


def append_audit_entries(app: Any, wanted: int, *, user_id: int) -> int:
    """Append entries to the chain until it holds ``wanted``, with COPY; hashed and keyed
    as ``audit.record_many`` hashes them. Returns the entries in the chain."""
    import psycopg
    from sqlalchemy.engine import make_url

    from cellchain.core import audit, audit_keys
    from cellchain.core.types import canonical_json

    keyring = audit_keys.current_keyring()
    key_id = keyring.current_id
    conninfo = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).set(drivername="postgresql")
    with psycopg.connect(conninfo.render_as_string(hide_password=False)) as conn:
        last_seq, prev_hash = conn.execute(
            "SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1 FOR UPDATE"
        ).fetchone()  # type: ignore[misc]
        (first_unit, last_unit) = conn.execute("SELECT min(id), max(id) FROM units").fetchone()  # type: ignore[misc]
        count = max(0, wanted - last_seq)
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=300)
        step = dt.timedelta(days=299) / max(1, count)
        places = ("INC-01", "BSC-01", "CRF-01", "LN2-01 / rack 3", "QC bench")
        columns = (
            "seq, at, actor_id, actor_username, action, entity_type, entity_id, changes, "
            "reason, prev_hash, entry_hash, key_id"
        )
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY audit_entries ({columns}) FROM STDIN") as copy,
        ):
            for number in range(count):
                seq = last_seq + 1 + number
                unit = first_unit + number % (last_unit - first_unit + 1)
                kind = number % 4
                if kind == 0:
                    action, changes = (
                        "unit.moved",
                        {"location": [places[number % 5], places[(number + 1) % 5]]},
                    )
                elif kind == 1:
                    action, changes = "unit.status_changed", {"status": ["quarantine", "consumed"]}
                elif kind == 2:
                    action, changes = (
                        "label.printed",
                        {"copies": [None, 1], "format": [None, "png"]},
                    )
                else:
                    action, changes = "unit.scanned", {"note": [None, f"scan {number}"]}
                fields: dict[str, Any] = {
                    "seq": seq,
                    "prev_hash": prev_hash,
                    "at": start + step * number,
                    "actor_id": user_id,
                    "actor_username": "tech",
                    "action": action,
                    "entity_type": "unit",
                    "entity_id": str(unit),
                    "changes": canonical_json(changes),
                    "reason": None,
                }
                entry_hash = audit.keyed_entry_hash(keyring, key_id, **fields)
                copy.write_row(
                    (
                        seq,
                        fields["at"],
                        user_id,
                        "tech",
                        action,
                        "unit",
                        fields["entity_id"],
                        fields["changes"],
                        None,
                        prev_hash,
                        entry_hash,
                        key_id,
                    )
                )
                prev_hash = entry_hash
        conn.execute(
            "UPDATE audit_chain_head SET last_seq = %s, last_hash = %s WHERE id = 1",
            (last_seq + count, prev_hash),
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE audit_entries")
    return last_seq + count


def load_or_build(
    site: Site, options: argparse.Namespace, env: dict[str, str]
) -> tuple[Targets, bool]:
    """A fresh copy of the kept site when it fits (--reuse), else a site built now; and
    whether it is a copy."""
    from cellchain import create_app
    from cellchain.extensions import db

    meta = options.workdir / f"{site.template}.json"
    today = dt.datetime.now(dt.UTC).date().isoformat()
    if options.reuse and meta.exists() and site.exists(site.template):
        kept = json.loads(meta.read_text())
        kept.setdefault("version", 1)
        targets = Targets(**kept)
        targets.recalls = [tuple(r) for r in targets.recalls]  # type: ignore[misc]
        if (
            targets.scale == options.scale
            and targets.built_on == today
            and targets.version == BUILD_VERSION
        ):
            started = time.perf_counter()
            site.create(template=site.template)
            say(f"site copied from {site.template}: {time.perf_counter() - started:.1f} s")
            return targets, True
        say("the kept site is of another scale or day: building again")
    site.create()
    os.environ.update(env)
    app = create_app()
    with app.app_context():
        targets = build_site(app, options)
        db.session.remove()
        db.engine.dispose()
    if options.reuse:
        started = time.perf_counter()
        site.keep_as_template()
        meta.write_text(json.dumps(asdict(targets)))
        say(f"kept as {site.template}: {time.perf_counter() - started:.1f} s")
    return targets, False


# --- in process -----------------------------------------------------------------------------


class Statements:
    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, *_: Any) -> None:
        self.sent += 1


@dataclass
class Timed:
    seconds: list[float]
    statements: int
    answer: str

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000


def timed(
    runs: int,
    action: Callable[[], Any],
    check: Callable[[Any], str],
    counter: Statements,
    after: Callable[[], None],
) -> Timed:
    from cellchain.extensions import db

    seconds, statements, answer = [], [], ""
    for _ in range(runs):
        db.session.remove()
        sent = counter.sent
        started = time.perf_counter()
        result = action()
        seconds.append(time.perf_counter() - started)
        statements.append(counter.sent - sent)
        answer = check(result)
        after()
        db.session.remove()
    return Timed(seconds, int(statistics.median(statements)), answer)


class WrongAnswer(RuntimeError):
    pass


def require(condition: bool, message: str) -> None:
    if not condition:
        raise WrongAnswer(message)


def in_process(app: Any, targets: Targets, options: argparse.Namespace) -> dict[str, Any]:
    """Trace forward and back, the recalls, the label batch: through the services."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import event, select

    from cellchain.core.models import User
    from cellchain.core.types import utcnow
    from cellchain.demo import DEMO_USERS
    from cellchain.extensions import db
    from cellchain.labels import service as labels
    from cellchain.labels.content import IsbtSettings
    from cellchain.labels.layout import qr_modules
    from cellchain.labels.templates import load_templates
    from cellchain.manufacturing.processing import processing
    from cellchain.resources import resource_path
    from cellchain.traceability.models import RecallTarget
    from cellchain.traceability.recalls import recalls
    from cellchain.traceability.trace import trace

    counter = Statements()
    event.listen(db.engine, "before_cursor_execute", counter)
    session = db.session
    results: dict[str, Any] = {}
    runs = options.runs

    def forward() -> Any:
        return trace.trace_forward(session, "material_lot", targets.forward_lot)

    def forward_check(answer: Any) -> str:
        found = len({t.unit.id for t in answer.units})
        require(
            found == targets.forward_units, f"forward: {found} units, {targets.forward_units} built"
        )
        return f"{found} units"

    results["forward"] = timed(runs, forward, forward_check, counter, session.rollback)
    say(f"trace forward: {results['forward'].answer}, {results['forward'].median_ms:.0f} ms")

    def back() -> Any:
        return trace.trace_back(session, "infusion", targets.infusion_id)

    def back_check(answer: Any) -> str:
        (path,) = answer.clinic
        manifests = [m for record in (path.order, *path.bedside_checks) for m in record.signatures]
        require(all(m.valid for m in manifests), "a signature reads as invalid")
        return f"{len(answer.units)} units, {len(manifests)} signatures on the clinic path"

    results["back"] = timed(runs * 2, back, back_check, counter, session.rollback)
    say(f"trace back: {results['back'].answer}, {results['back'].median_ms:.0f} ms")

    qa_password = next(u.password for u in DEMO_USERS if u.username == "qa")
    qa_id = session.execute(select(User.id).where(User.username == "qa")).scalar_one()
    for index, (kind, target_id, label, blocked) in enumerate(targets.recalls):

        def recall(kind: str = kind, target_id: int = target_id) -> Any:
            opened = recalls.open_recall(
                session,
                target=RecallTarget(kind),
                target_id=target_id,
                reason="Benchmark: a recall opened and rolled back",
                user=session.get(User, qa_id),  # type: ignore[arg-type]
                password=qa_password,
                now=utcnow(),
            )
            session.flush()
            return opened

        def recall_check(answer: Any, blocked: int = blocked) -> str:
            require(answer.blocked == blocked, f"recall: {answer.blocked} blocked, {blocked} built")
            return f"{answer.blocked} blocked"

        recall_runs = max(1, options.recall_runs if blocked < 5000 else options.recall_runs // 2)
        results[f"recall{index}"] = timed(
            recall_runs, recall, recall_check, counter, session.rollback
        )
        done = results[f"recall{index}"]
        say(f"recall of {label}: {done.answer}, {done.median_ms:.0f} ms")

    settings = labels.LabelSettings(
        templates=load_templates(resource_path("labels")),
        zone=ZoneInfo(app.config["SITE_TIMEZONE"]),
        isbt=IsbtSettings({}),
    )
    tech_id = session.execute(select(User.id).where(User.username == "tech")).scalar_one()
    bag_ids = [
        bag.id
        for bag in processing.bags_of(session, processing.get_lot(session, targets.label_lot))
    ]
    session.remove()
    for output_format in ("png", "pdf", "zpl"):
        for bags in (LABEL_BAGS, LABEL_BAGS // 10):

            def print_batch(output_format: str = output_format, bags: int = bags) -> Any:
                from cellchain.chain.models import Unit

                qr_modules.cache_clear()
                units = list(
                    session.execute(
                        select(Unit).where(Unit.id.in_(bag_ids[:bags])).order_by(Unit.id)
                    ).scalars()
                )
                printed = labels.print_labels(
                    session,
                    units,
                    output_format=output_format,
                    copies=1,
                    reason="benchmark",
                    settings=settings,
                    actor=session.get(User, tech_id),  # type: ignore[arg-type]
                    now=utcnow(),
                    name=f"batch-{bags}",
                )
                session.commit()
                return printed

            def print_check(printed: Any, bags: int = bags) -> str:
                require(len(printed.prints) >= 1 and len(printed.data) > 0, "no label printed")
                return f"{bags} labels, {len(printed.data)} bytes"

            key = f"labels_{output_format}_{bags}"
            results[key] = timed(
                options.label_runs if bags == LABEL_BAGS else 1,
                print_batch,
                print_check,
                counter,
                lambda: None,
            )
        batch = results[f"labels_{output_format}_{LABEL_BAGS}"]
        say(f"labels {output_format}: {LABEL_BAGS / statistics.median(batch.seconds):.0f}/s")
    event.remove(db.engine, "before_cursor_execute", counter)
    session.remove()
    return results


# --- set-up of the HTTP paths -----------------------------------------------------------------


@dataclass
class Http:
    tokens: dict[str, str]
    wristband: str
    label: str


def prepare_http(app: Any) -> Http:
    """API tokens, and AS-001's dose received and thawed just now: ready for bedside checks
    (repeated checks of one dose are each recorded, and each answers go within the thaw
    window of 60 minutes)."""
    from sqlalchemy import select

    from cellchain.core import accounts
    from cellchain.core.identifiers import parse_identifier
    from cellchain.core.models import User
    from cellchain.core.payload import encode_payload
    from cellchain.core.types import utcnow
    from cellchain.extensions import db

    session = db.session
    now = utcnow()
    users = {u.username: u for u in session.execute(select(User)).scalars()}
    tokens = {}
    for name in ("tech", "clinician", "qa"):
        _, text = accounts.create_token(session, user=users[name], now=now, name="site_scale")
        tokens[name] = text
    session.commit()
    patient, label = receive_and_thaw_the_dose(session, users["clinician"], now)
    session.commit()
    http = Http(
        tokens=tokens,
        wristband=encode_payload(parse_identifier(patient.coi)),
        label=encode_payload(parse_identifier(label)),
    )
    session.remove()
    return http


def receive_and_thaw_the_dose(session: Any, clinician: Any, now: dt.datetime) -> tuple[Any, str]:
    """The demo's AS-001 dose received (shipper DS-103) and thawed, its last bag a minute
    before ``now``, by ``clinician``: a bedside check of it now goes. The patient and the dose
    unit's code; the caller commits."""
    from sqlalchemy import select

    from cellchain.clinic.bedside import thaw
    from cellchain.clinic.models import Shipment
    from cellchain.clinic.shipments import shipments
    from cellchain.dosing import orders
    from cellchain.dosing.models import Patient

    patient = session.execute(select(Patient).where(Patient.study_id == "AS-001")).scalar_one()
    (order,) = orders.orders_of(session, patient)
    shipment = session.execute(select(Shipment).where(Shipment.shipper_id == "DS-103")).scalar_one()
    minimum = thaw.min_thaw_minutes(session, order)
    shipments.receive(
        session,
        shipment,
        shipments.Receipt(
            scan=shipment.shipper_id,
            temperature_c=-182.0,
            condition="intact",
            logger_excursion=False,
        ),
        actor=clinician,
        now=now - dt.timedelta(minutes=minimum + 4),
    )
    label = str(order.dose_unit.code)  # type: ignore[union-attr]
    for at in (now - dt.timedelta(minutes=minimum + 3), now - dt.timedelta(minutes=1)):
        thaw.scan_thaw(session, label, actor=clinician, now=at)
    return patient, label


# --- gunicorn and wrk -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """gunicorn with 2 workers serving ``site_scale_app:create()`` on loopback."""

    def __init__(self, worker_class: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.worker_class = worker_class
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--pythonpath",
            str(ROOT / "benchmarks"),
            "--chdir",
            str(ROOT),
            "-w",
            "2",
            "-k",
            worker_class,
            "-b",
            f"127.0.0.1:{self.port}",
            "--log-level",
            "warning",
            "--backlog",
            "256",
            "--timeout",
            "120",
        ]
        if worker_class == "gthread":
            command += ["--threads", "4"]
        command.append("site_scale_app:create()")
        self.log = log.open("w")
        # started in the measured tree: ``python -m`` puts the directory it starts in first on
        # the path, ahead of ``--chdir`` and PYTHONPATH, so a run from another checkout would
        # serve that checkout's code
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {log}")
            try:
                if request(self.port, "GET", "/_bench/bare")[0] == 200 and len(self.workers()) == 2:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not answer within 60 s; see {log}")

    def workers(self) -> list[int]:
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        return sorted(int(child) for child in children)

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.workers():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / CLK_TCK

    def rss_mb(self) -> dict[int, float]:
        return {pid: rss_mb(pid) for pid in self.workers()}

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def request(
    port: int, method: str, path: str, *, token: str | None = None, body: Any = None
) -> tuple[int, dict[str, str], bytes, float]:
    """One request on a new connection: status, headers, body and seconds."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    connection = HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        started = time.perf_counter()
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        content = response.read()
        seconds = time.perf_counter() - started
        return response.status, {k.lower(): v for k, v in response.getheaders()}, content, seconds
    finally:
        connection.close()


@dataclass
class Probe:
    statements: list[int]
    seconds: list[float]
    body: Any

    @property
    def median_statements(self) -> int:
        return int(statistics.median(self.statements))

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000


def probe(
    port: int,
    times: int,
    method: str,
    path: str,
    *,
    token: str,
    body: Any = None,
    status: int = 200,
) -> Probe:
    """Sequential requests, one at a time: their statements (header) and times."""
    statements, seconds, answer = [], [], None
    for _ in range(times):
        code, headers, content, spent = request(port, method, path, token=token, body=body)
        if code != status:
            raise WrongAnswer(f"{method} {path}: {code} {content[:500]!r}")
        statements.append(int(headers["x-bench-statements"]))
        seconds.append(spent)
        answer = json.loads(content) if content.startswith(b"{") else content
    return Probe(statements, seconds, answer)


LUA_HEAD = """
local token = {token}
"""

#: each connection waits a uniform think time between an answer and its next request
LUA_THINK = """
delay = function()
  return math.random({think_lo}, {think_hi})
end
"""

LUA_SCAN = """
local codes = {codes}
local headers = {{["Authorization"] = "Bearer " .. token, ["Accept"] = "application/json"}}
request = function()
  return wrk.format("GET", "/api/v1/scan?code=" .. codes[math.random(#codes)], headers)
end
"""

LUA_BEDSIDE = """
local body = {body}
local headers = {{["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json",
                 ["Accept"] = "application/json"}}
request = function()
  return wrk.format("POST", "/api/v1/bedside/checks", headers, body)
end
"""

LUA_PATH = """
request = function()
  return wrk.format("GET", {path})
end
"""

LUA_MIXED = """
local codes = {codes}
local body = {body}
local qa = {qa}
local clinician = {clinician}
request = function()
  local pick = math.random(100)
  if pick <= 70 then
    return wrk.format("GET", "/api/v1/scan?code=" .. codes[math.random(#codes)],
      {{["Authorization"] = "Bearer " .. token}})
  elseif pick <= 90 then
    return wrk.format("POST", "/api/v1/bedside/checks",
      {{["Authorization"] = "Bearer " .. clinician, ["Content-Type"] = "application/json"}}, body)
  else
    return wrk.format("GET", {back},
      {{["Authorization"] = "Bearer " .. qa}})
  end
end
"""


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII is a Lua string


def lua_list(values: list[str]) -> str:
    return "{" + ",".join(lua_string(v) for v in values) + "}"


@dataclass
class Load:
    """One wrk run: requests, errors, rate, latency percentiles, worker CPU, wrk's own CPU."""

    label: str
    requests: int
    seconds: float
    errors: int
    latency_ms: dict[str, float]
    worker_cpu: float
    wrk_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @classmethod
    def combined(cls, label: str, loads: list[Load]) -> Load:
        """Several runs of one path as one: their sums, and each percentile's worst."""
        return cls(
            label,
            sum(load.requests for load in loads),
            sum(load.seconds for load in loads),
            sum(load.errors for load in loads),
            {p: max(load.latency_ms.get(p, 0.0) for load in loads) for p in loads[0].latency_ms},
            sum(load.worker_cpu for load in loads),
            sum(load.wrk_cpu for load in loads),
        )

    @property
    def cpu_ms_per_request(self) -> float:
        return self.worker_cpu / max(1, self.requests) * 1000


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(output: str) -> tuple[int, float, int, dict[str, float]]:
    requests_match = re.search(r"(\d+) requests in ([\d.]+)(\w+),", output)
    if not requests_match:
        raise RuntimeError(f"wrk said:\n{output}")
    requests = int(requests_match.group(1))
    seconds = float(requests_match.group(2)) * UNITS[requests_match.group(3)] / 1000
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        # a sync worker closes each connection after its answer: wrk counts those as read
        # errors though every answer arrived; connect, write and timeout errors are real
        errors += sum(int(socket_errors.group(i)) for i in (1, 3, 4))
    latency = {
        match.group(1): float(match.group(2)) * UNITS[match.group(3)]
        for match in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    }
    return requests, seconds, errors, latency


def run_wrk(
    server: Server, label: str, script: str, seconds: float, workdir: Path, clients: int = CLIENTS
) -> Load:
    path = workdir / f"{re.sub(r'[^a-z0-9]+', '_', label.lower())}.lua"
    path.write_text(script)
    before = server.cpu_seconds()
    stolen = steal_seconds()
    process = subprocess.Popen(
        [
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "--latency",
            "-s",
            str(path),
            f"http://127.0.0.1:{server.port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = process.stdout.read() if process.stdout else ""
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    worker_cpu = server.cpu_seconds() - before
    stolen = steal_seconds() - stolen
    requests, spent, errors, latency = parse_wrk(output)
    load = Load(
        label, requests, spent, errors, latency, worker_cpu, usage.ru_utime + usage.ru_stime
    )
    say(
        f"{label}: {load.rate:.0f} req/s, p50 {latency.get('50', 0):.1f} ms, p99 "
        f"{latency.get('99', 0):.1f} ms, {load.cpu_ms_per_request:.2f} ms worker CPU/request, "
        f"{errors} errors, wrk CPU {load.wrk_cpu:.1f} s, CPU stolen by the host "
        f"{stolen / max(spent, 1e-9) * 100:.0f} %"
    )
    return load


def steal_seconds() -> float:
    """The CPU time the hypervisor gave to others while this machine's CPUs wanted it (the
    ``steal`` column of ``/proc/stat``), all CPUs; 0 where it is not reported."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


@contextmanager
def sampling(server: Server, every: float) -> Iterator[list[tuple[float, dict[int, float]]]]:
    """RSS of the workers every ``every`` seconds while the block runs."""
    samples: list[tuple[float, dict[int, float]]] = []
    stop = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - started, server.rss_mb()))
            stop.wait(every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()
        samples.append((samples[-1][0] if samples else 0.0, server.rss_mb()))


def over_http(
    server: Server, http: Http, targets: Targets, options: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    port, duration = server.port, options.duration
    tokens = http.tokens
    bedside_body = {"wristband": http.wristband, "label": http.label}
    results["rss_start"] = server.rss_mb()
    codes = [urllib.parse.quote(code, safe="") for code in targets.scan_codes]

    # warm up every path in both workers, and check the answers
    for _ in range(4):
        probe(port, 1, "GET", f"/api/v1/scan?code={codes[0]}", token=tokens["tech"])
    go = probe(
        port,
        1,
        "POST",
        "/api/v1/bedside/checks",
        token=tokens["clinician"],
        body=bedside_body,
        status=201,
    )
    require(go.body["verdict"] == "go", f"the bedside check says {go.body['verdict']}: {go.body}")
    probe(port, 2, "GET", "/_bench/bare", token="", status=200)

    results["scan_probe"] = probe(
        port, 30, "GET", f"/api/v1/scan?code={codes[1]}", token=tokens["tech"]
    )
    results["bedside_probe"] = probe(
        port,
        10,
        "POST",
        "/api/v1/bedside/checks",
        token=tokens["clinician"],
        body=bedside_body,
        status=201,
    )
    results["back_probe"] = probe(
        port, 10, "GET", f"/api/v1/trace/back/infusion/{targets.infusion_id}", token=tokens["qa"]
    )
    say(
        f"probes: scan {results['scan_probe'].median_statements} statements, bedside "
        f"{results['bedside_probe'].median_statements}, trace back "
        f"{results['back_probe'].median_statements} ({results['back_probe'].median_ms:.0f} ms)"
    )

    head = LUA_HEAD.format(token=lua_string(tokens["tech"]))
    # the bare routes and the scan in alternating rounds, each a share of --duration: the
    # machine is shared and drifts within seconds, so each round's scan is compared with the
    # bare route run right beside it, the two in turn first (bare, scan, scan, bare, …); bare
    # Flask once a round, for information
    scripts = {
        "bare": ("bare route of the app", head + LUA_PATH.format(path=lua_string("/_bench/bare"))),
        "flask": ("bare Flask app", head + LUA_PATH.format(path=lua_string("/_flask/bare"))),
        "scan": ("scan, saturated", head + LUA_SCAN.format(codes=lua_list(codes))),
    }
    rounds: dict[str, list[Load]] = {key: [] for key in scripts}
    for number in range(ROUNDS):
        order = ("bare", "scan", "flask") if number % 2 == 0 else ("scan", "bare", "flask")
        for key in order:
            label, script = scripts[key]
            rounds[key].append(
                run_wrk(server, f"{label} ({number + 1}/{ROUNDS})", script, duration / 3, workdir)
            )
    for key, loads in rounds.items():
        results[key] = Load.combined(scripts[key][0], loads)
    results["scan_ratios"] = [
        scan.rate / bare.rate for scan, bare in zip(rounds["scan"], rounds["bare"], strict=True)
    ]
    body = lua_string(json.dumps(bedside_body))
    clinician = LUA_HEAD.format(token=lua_string(tokens["clinician"]))
    results["bedside"] = run_wrk(
        server, "bedside, saturated", clinician + LUA_BEDSIDE.format(body=body), duration, workdir
    )
    clinic = clinician + LUA_THINK.format(think_lo=THINK_MS[0], think_hi=THINK_MS[1])
    results["bedside_clinic"] = run_wrk(
        server,
        "bedside, clinic model",
        clinic + LUA_BEDSIDE.format(body=body),
        max(duration, 30),
        workdir,
    )
    after = probe(
        port,
        1,
        "POST",
        "/api/v1/bedside/checks",
        token=tokens["clinician"],
        body=bedside_body,
        status=201,
    )
    require(
        after.body["verdict"] == "go",
        f"after the load the bedside check says {after.body['verdict']}",
    )
    results["rss_end"] = server.rss_mb()
    # three answers of 26 000 units (9 MB of JSON each), before the soak: the memory goal
    # holds after them too, and the soak shows whether the workers stay flat afterwards
    results["forward_probe"] = probe(
        port,
        3,
        "GET",
        f"/api/v1/trace/forward/material_lot/{targets.forward_lot}",
        token=tokens["qa"],
    )
    results["rss_forward"] = server.rss_mb()
    say(f"trace forward over HTTP: {results['forward_probe'].median_ms:.0f} ms")

    if options.soak:
        mixed = (
            head
            + LUA_THINK.format(think_lo=SOAK_THINK_MS[0], think_hi=SOAK_THINK_MS[1])
            + LUA_MIXED.format(
                codes=lua_list(codes),
                body=body,
                qa=lua_string(tokens["qa"]),
                clinician=lua_string(tokens["clinician"]),
                back=lua_string(f"/api/v1/trace/back/infusion/{targets.infusion_id}"),
            )
        )
        with sampling(server, 10.0) as samples:
            results["soak"] = run_wrk(
                server, f"soak, mixed, {options.soak} s", mixed, options.soak, workdir
            )
        results["soak_rss"] = samples
        after = probe(
            port,
            1,
            "POST",
            "/api/v1/bedside/checks",
            token=tokens["clinician"],
            body=bedside_body,
            status=201,
        )
        results["soak_verdict"] = after.body["verdict"]
    return results


# --- audit verify -----------------------------------------------------------------------------


@dataclass
class Verified:
    """``cellchain audit verify`` in a process of its own."""

    #: the command, from its start to its exit code (its app created, the chain walked,
    #: the checkpoint written), after Python imported the package and made an app once
    seconds: float
    #: Python's start, the imports and the first app, before the command
    startup_seconds: float
    entries: int
    peak_rss_mb: float
    #: the process's RSS during the command: (seconds into it, MB)
    samples: list[tuple[float, float]]
    output: str
    exit_code: int

    @property
    def growth_mb(self) -> float:
        """The most RSS in the last quarter of the command over the most in its second
        quarter: about 0 when memory stays flat while the chain is walked."""
        if len(self.samples) < 8:
            return 0.0
        quarter = len(self.samples) // 4
        return max(mb for _, mb in self.samples[-quarter:]) - max(
            mb for _, mb in self.samples[quarter : 2 * quarter]
        )


#: Runs ``cellchain audit verify`` as the console script would, timing the command apart
#: from the imports, and sampling the process's own RSS every 50 ms meanwhile.
VERIFY = """
import json, sys, threading, time
started = time.perf_counter()
from cellchain import create_app
from cellchain.cli import main
create_app()  # every module imported: the command's own app is then made without imports
imported = time.perf_counter()
samples, done = [], threading.Event()
def sample():
    while not done.is_set():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                samples.append((time.perf_counter() - imported, int(line.split()[1]) / 1024))
        done.wait(0.05)
threading.Thread(target=sample, daemon=True).start()
try:
    main(["audit", "verify"], prog_name="cellchain")
    code = 0
except SystemExit as exit:
    code = exit.code if isinstance(exit.code, int) else 1
ended = time.perf_counter()
done.set()
print("SITE_SCALE " + json.dumps(
    {"startup": imported - started, "seconds": ended - imported, "code": code,
     "samples": samples}))
"""


def audit_verify(env: dict[str, str]) -> Verified:
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", VERIFY],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,  # ``-c`` puts the directory it starts in first on the path, as ``-m``
        )
        _, _, usage = os.wait4(process.pid, 0)
        process.returncode = 0
        out.seek(0)
        output = out.read()
    reported = re.search(r"^SITE_SCALE (.*)$", output, re.M)
    if reported is None:
        raise RuntimeError(f"cellchain audit verify said:\n{output}")
    measured = json.loads(reported.group(1))
    found = re.search(r"(\d+) entries verified", output)
    result = Verified(
        seconds=measured["seconds"],
        startup_seconds=measured["startup"],
        entries=int(found.group(1)) if found else 0,
        peak_rss_mb=usage.ru_maxrss / 1024,
        samples=[tuple(sample) for sample in measured["samples"]],
        output=output[: reported.start()].strip(),
        exit_code=measured["code"],
    )
    say(
        f"cellchain audit verify: exit {result.exit_code}, {result.entries} entries in "
        f"{result.seconds:.1f} s (imports before it {result.startup_seconds:.1f} s), peak RSS "
        f"{result.peak_rss_mb:.0f} MB, growth {result.growth_mb:.1f} MB"
    )
    return result


# --- the report -------------------------------------------------------------------------------


def yes(condition: bool) -> str:
    return "yes" if condition else "no"


def table(
    targets: Targets,
    local: dict[str, Any],
    http: dict[str, Any] | None,
    verified: Verified,
    options: argparse.Namespace,
) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    if http:
        bare = http["bare"].rate
        ratios = http["scan_ratios"]
        ratio = statistics.median(ratios)
        scan_statements = http["scan_probe"].median_statements
        scan_cpu = http["scan"].cpu_ms_per_request
        rows.append(
            (
                "scan → unit over HTTP, throughput vs a bare endpoint of the app, same gunicorn, "
                "same run",
                f"{ratio:.2f}×, the median of {len(ratios)} rounds side by side "
                f"({min(ratios):.2f}–{max(ratios):.2f}×; all rounds' requests "
                f"{http['scan'].rate:.0f} vs {bare:.0f} req/s, {http['scan'].rate / bare:.2f}×; "
                f"{scan_statements} SQL statements, {scan_cpu:.1f} ms CPU vs "
                f"{http['bare'].cpu_ms_per_request:.1f}; vs bare Flask "
                f"{http['scan'].rate / http['flask'].rate:.2f}×)",
                "≥ 0.5×, ≤ 3 statements",
                yes(ratio >= 0.5 and scan_statements <= 3),
            )
        )
        bedside_statements = http["bedside_probe"].median_statements
        cpu = http["bedside"].cpu_ms_per_request
        p99 = http["bedside_clinic"].latency_ms.get("99", float("inf"))
        saturated = http["bedside"].latency_ms.get("99", float("inf"))
        rows.append(
            (
                "bedside check `POST /api/v1/bedside/checks`",
                f"{bedside_statements} statements, {cpu:.1f} ms CPU; p99 {p99:.0f} ms at 16 "
                f"clients thinking 0–1 s ({http['bedside_clinic'].rate:.0f} req/s; saturated: "
                f"p99 {saturated:.0f} ms, {http['bedside'].rate:.0f} req/s)",
                "≤ 15 statements, ≤ 5 ms CPU; p99 ≤ 50 ms at 16 clients",
                yes(bedside_statements <= 15 and cpu <= 5 and p99 <= 50),
            )
        )
    forward = local["forward"]
    over = f", {http['forward_probe'].median_ms:.0f} ms over HTTP" if http else ""
    rows.append(
        (
            f"trace forward, {targets.forward_units:,} units",
            f"{forward.median_ms:.0f} ms ({forward.statements} statements{over})",
            "≤ 100 ms",
            yes(forward.median_ms <= 100),
        )
    )
    back = local["back"]
    over = (
        f"; over HTTP {http['back_probe'].median_ms:.0f} ms, "
        f"{http['back_probe'].median_statements} statements with authentication"
        if http
        else ""
    )
    rows.append(
        (
            "trace back from an infusion",
            f"{back.median_ms:.0f} ms, {back.statements} statements{over}",
            "≤ 20 ms, statements independent of the number of signatures (a test)",
            yes(back.median_ms <= 20),
        )
    )
    (*_, blocked1), (*_, blocked2) = targets.recalls
    first, second = local["recall0"], local["recall1"]
    rows.append(
        (
            f"open a recall blocking {blocked1:,} units; {blocked2:,} units",
            f"{first.median_ms / 1000:.2f} s ({first.statements} statements); "
            f"{second.median_ms / 1000:.2f} s ({second.statements} statements)",
            "≤ 0.3 s; 20,000 units ≤ 3 s",
            yes(first.median_ms <= 300 and second.median_ms <= 3000),
        )
    )
    rate = verified.entries / verified.seconds if verified.seconds else 0.0
    rows.append(
        (
            "`cellchain audit verify`",
            f"{rate / 1000:.0f}k entries/s ({verified.entries:,} in {verified.seconds:.1f} s, "
            f"the command after {verified.startup_seconds:.1f} s of imports; exit "
            f"{verified.exit_code}); peak RSS {verified.peak_rss_mb:.0f} MB, "
            f"{verified.growth_mb:+.0f} MB from its second quarter to its last",
            "≥ 200k entries/s, memory flat",
            yes(verified.exit_code == 0 and rate >= 200_000 and verified.growth_mb <= 16),
        )
    )
    per_second = {
        f: LABEL_BAGS / statistics.median(local[f"labels_{f}_{LABEL_BAGS}"].seconds)
        for f in ("png", "pdf", "zpl")
    }
    statements = {b: local[f"labels_png_{b}"].statements for b in (LABEL_BAGS, LABEL_BAGS // 10)}
    rows.append(
        (
            f"label batch, {LABEL_BAGS} bags",
            f"PNG {per_second['png']:.0f}/s, PDF {per_second['pdf']:.0f}/s, ZPL "
            f"{per_second['zpl']:.0f}/s; {statements[LABEL_BAGS]} statements per batch of "
            f"{LABEL_BAGS}, {statements[LABEL_BAGS // 10]} of {LABEL_BAGS // 10}",
            "PNG ≥ 150/s; a fixed number of statements per batch",
            yes(
                per_second["png"] >= 150 and statements[LABEL_BAGS] == statements[LABEL_BAGS // 10]
            ),
        )
    )
    if http:
        start, end = http["rss_start"], http["rss_end"]
        text = ", ".join(f"{start[p]:.0f} → {end.get(p, 0):.0f} MB" for p in sorted(start))
        text += "; after 3 traces forward of that lot over HTTP: " + ", ".join(
            f"{mb:.0f} MB" for _, mb in sorted(http["rss_forward"].items())
        )
        highest = max([*start.values(), *end.values(), *http["rss_forward"].values()])
        flat = True
        if "soak" in http:
            samples = http["soak_rss"]
            first_rss, last_rss = samples[0][1], samples[-1][1]
            soak_text = ", ".join(
                f"{first_rss.get(p, 0):.0f} → {last_rss.get(p, 0):.0f} MB"
                for p in sorted(first_rss)
            )
            highest = max(highest, *(mb for _, rss in samples for mb in rss.values()))
            growth = max(last_rss.get(p, 0) - first_rss.get(p, 0) for p in first_rss)
            flat = growth <= 10 and http["soak"].errors == 0
            text += (
                f"; soak {options.soak} s: {soak_text}, {http['soak'].requests} requests, "
                f"{http['soak'].errors} errors, last bedside verdict {http['soak_verdict']}"
            )
        else:
            text += " (no soak: run with --soak 600)"
        rows.append(
            (
                "gunicorn worker memory under load (per worker, start → end)",
                text,
                "≤ 150 MB, flat over a 10-minute soak",
                yes(highest <= 150 and flat and "soak" in http),
            )
        )
    return rows


def processes() -> dict[int, tuple[int, float, str]]:
    """Every process: its parent, its CPU seconds so far and its command line (shortened)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / CLK_TCK
        found[int(entry.name)] = (int(fields[1]), seconds, command.strip()[:200])
    return found


def others_busy(before: dict[int, tuple[int, float, str]]) -> str:
    """The CPU other processes used since ``before`` (this script's own process tree left
    out; PostgreSQL backends by database, others by their command), the busiest first."""
    after = processes()
    mine = {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, (parent, _, _) in after.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                changed = True
    used: dict[str, float] = {}
    for pid, (_, seconds, command) in after.items():
        if pid in mine or not command:
            continue
        spent = seconds - before[pid][1] if pid in before else seconds
        if spent < 0.5:
            continue
        words = command.split()
        if "exec(eval(sys.stdin.readline()))" in command:
            name = "pytest-xdist workers (execnet)"
        elif command.startswith("postgres:"):
            name = " ".join(words[:4])  # postgres: cluster: user database
        else:
            name = " ".join(Path(word).name if "/" in word else word for word in words[:4])[:50]
        used[name] = used.get(name, 0.0) + spent
    busiest = sorted(used.items(), key=lambda item: -item[1])[:8]
    return "; ".join(f"{name} {seconds:.0f} s" for name, seconds in busiest) or "nothing"


def machine_facts(
    site: Site, server_class: str | None, before: dict[int, tuple[int, float, str]]
) -> list[tuple[str, str]]:
    import gunicorn
    import psycopg
    import sqlalchemy

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        int(line.split()[1]) // 1024 // 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    (version,) = site.sql("SHOW server_version")[0]
    settings = {name: site.sql(f"SHOW {name}")[0][0] for name in ("shared_buffers", "work_mem")}
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if not commit and (ROOT / "COMMIT").exists():  # an export: `git rev-parse HEAD > COMMIT`
        commit = (ROOT / "COMMIT").read_text().strip()[:7] + " (a clean export)"
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "cellchain"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return [
        ("date", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("commit", commit + (" (with uncommitted changes in cellchain/)" if dirty else "")),
        ("machine", f"{os.cpu_count()} CPUs ({cpu}), {memory} GiB, load {os.getloadavg()[0]:.2f}"),
        ("CPU of other processes during the run", others_busy(before)),
        (
            "software",
            f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, psycopg "
            f"{psycopg.__version__}, PostgreSQL {version} (shared_buffers "
            f"{settings['shared_buffers']}, work_mem {settings['work_mem']}), gunicorn "
            f"{gunicorn.__version__} ({server_class or 'not started'}, 2 workers), "
            f"{wrk[0] if wrk else 'wrk'}",
        ),
    ]


def print_report(
    facts: list[tuple[str, str]], size: list[tuple[str, str]], rows: list[tuple[str, str, str, str]]
) -> None:
    print()
    width = max(len(label) for label, _ in facts + size)
    for label, value in facts + size:
        print(f"{label:<{width}}  {value}")
    print()
    print("| path | now | goal | met |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--database", default=DEFAULT_DATABASE, help="PostgreSQL URL (created, dropped)"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="of the donations and audit entries"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep the built site and copy it next time"
    )
    parser.add_argument("--keep", action="store_true", help="keep this run's database")
    parser.add_argument(
        "--kept",
        help="with --reuse: the kept site's database (default: <--database's name>_built, "
        "e.g. site_scale_built); another run database can copy it",
    )
    parser.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="audit key, logs, kept targets"
    )
    parser.add_argument("--worker-class", default="gthread", choices=("sync", "gthread"))
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of each load phase")
    parser.add_argument(
        "--soak", type=int, default=0, help="seconds of mixed traffic (600: the issue's)"
    )
    parser.add_argument("--runs", type=int, default=5, help="runs of each trace")
    parser.add_argument("--recall-runs", type=int, default=3, help="runs of each recall")
    parser.add_argument("--label-runs", type=int, default=3, help="runs of each label batch")
    parser.add_argument("--no-http", action="store_true", help="only what runs in process")
    parser.add_argument(
        "--build-only", action="store_true", help="build (and with --reuse keep) the site, stop"
    )
    options = parser.parse_args()
    if not options.database.startswith("postgresql"):
        parser.error("--database: a PostgreSQL URL (the site is built with COPY)")

    options.workdir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=options.workdir))
    env = environment(options.database, options.workdir, run_dir / "checkpoints")
    os.environ.update(env)
    site = Site(options.database, options.kept)
    server: Server | None = None
    started = time.perf_counter()
    before = processes()
    try:
        targets, copied = load_or_build(site, options, env)
        say(f"site ready: {time.perf_counter() - started:.0f} s")
        if options.build_only:
            return
        settling = time.perf_counter()
        site.settle()
        say(f"vacuumed, analysed and checkpointed: {time.perf_counter() - settling:.0f} s")
        from flask_migrate import upgrade

        from cellchain import create_app
        from cellchain.extensions import db

        app = create_app()
        with app.app_context():
            upgrade()  # a kept site gets the migrations committed since it was built
            local = in_process(app, targets, options)
            http_setup = None if options.no_http else prepare_http(app)
            db.session.remove()
            db.engine.dispose()
        verified = audit_verify(env)
        http = None
        if http_setup is not None:
            server = Server(options.worker_class, env, run_dir / "gunicorn.log")
            http = over_http(server, http_setup, targets, options, run_dir)
        facts = machine_facts(site, None if options.no_http else options.worker_class, before)
    finally:
        if server is not None:
            server.stop()
        if not options.keep:
            site.drop(site.name)
        site.admin.dispose()
    seconds = targets.build_seconds
    size = [
        (
            "site",
            f"{targets.donations:,} donations, {targets.units:,} units, "
            f"{targets.audit_entries:,} audit entries before the run (scale {targets.scale:g})",
        ),
        (
            "build",
            f"demo {seconds['demo']:.0f} s, bulk rows {seconds['bulk']:.0f} s, audit entries "
            f"(COPY) {seconds['audit']:.0f} s"
            + (" (this run: a copy of the kept site)" if copied else ""),
        ),
        ("forward trace", f"{targets.forward_label}: {targets.forward_units:,} units"),
        (
            "recalls",
            "; ".join(f"{label}: {blocked:,} units" for *_, label, blocked in targets.recalls),
        ),
        ("load model", f"wrk, 1 thread, {CLIENTS} connections, {options.duration:g} s per phase"),
        ("run", f"{time.perf_counter() - started:.0f} s, logs in {run_dir}"),
    ]
    print_report(facts, size, table(targets, local, http, verified, options))


if __name__ == "__main__":
    main()
