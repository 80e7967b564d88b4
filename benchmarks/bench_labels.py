"""Measure how fast a lot's labels print, in each format, and print a table.

    python benchmarks/bench_labels.py                     # SQLite, a lot of 100 cryobags
    python benchmarks/bench_labels.py --bags 200 --runs 5

Builds a fresh SQLite database (the file is deleted afterwards) and, through the services, one
lot at the size asked for: users, the approved UC-MSC product definition, a donation registered
and received, isolation into 2 vessels, three passages, and the fill of ``--bags`` cryobags
(eligibility pending, lot in quarantine, as a lot is labelled at fill).

Timed, each through ``labels.service`` as the print endpoints call it and committing where a
request would: printing the whole lot (one copy of each label) as PNG (a zip of one PNG per
bag), as a PDF sheet and as ZPL, then one bag's label as a single PNG. Every run starts from a
fresh session, as a request does, and encodes its QR codes and renders its text afresh (the
layout's cache of QR modules and the PNG writer's cache of rendered text lines are cleared): a
lot is printed once, then reprinted. Every print is logged, so each run after the first is a
reprint, with the reason "benchmark". The table gives the best and the median of --runs runs
(wall clock, and the CPU time of this process, which other work on a shared machine disturbs
less), labels per second at the best time, the size of the file handed out, and the number of
SQL statements one run sends. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from bench_chain import PASSWORD, STATEMENTS  # benchmarks/ is on sys.path
from flask_migrate import upgrade
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from cellchain import create_app
from cellchain.chain.models import Unit
from cellchain.core import accounts, audit
from cellchain.core.models import User
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.donors import service as donors
from cellchain.donors.models import ContainerCondition, ScreeningOutcome
from cellchain.extensions import db
from cellchain.labels import service as labels
from cellchain.labels.content import IsbtSettings
from cellchain.labels.layout import qr_modules
from cellchain.labels.models import LabelPrint
from cellchain.labels.output import text_mask
from cellchain.labels.templates import load_templates
from cellchain.manufacturing import service as products
from cellchain.manufacturing.models import Lot
from cellchain.manufacturing.processing import processing

REASON = "benchmark"
FORMATS = ("png", "pdf", "zpl")
#: passages of the expansion before the fill: (day, cells harvested, vessels seeded, format,
#: cells per vessel), the demo's plan
PASSAGES = (
    (8, 1.6e7, 4, "T175", 1.0e6),
    (15, 2.4e7, 6, "T175", 1.0e6),
    (22, 9.0e7, 4, "CS5", 2.0e7),
)
#: the final harvest of the 4 CS5 and what each bag holds (enough for the most bags a lot has)
HARVEST_CELLS = 1.2e9
BAG_VOLUME_ML = 5.0
BAG_CONCENTRATION_PER_ML = 1.0e6  # total cells per mL
#: days from birth to the fill; the donation is registered this long (and a day) ago
FILL_DAY = 29


# --- building the lot ---------------------------------------------------------------------------


def build_lot(*, bags: int, facility: str, tech: User) -> Lot:
    """One donation → isolation → three passages → fill of ``bags`` cryobags, committed."""
    session = db.session
    now = utcnow()
    delivery = now - dt.timedelta(days=FILL_DAY + 1)
    donation = donors.register_donation(
        session,
        donors.DonationRegistration(
            umbilical_cord=True,
            placenta=True,
            delivery_at=delivery,
            collected_at=delivery + dt.timedelta(minutes=30),
            collection_site="Maternity ward, City Hospital",
            collector="Midwife R. Okafor",
            transport_conditions="2–8 °C validated shipper",
            new_donor=donors.NewDonor(
                consent_date=(delivery - dt.timedelta(days=20)).date(),
                consent_form_version="ICF v3.1",
                screening_outcome=ScreeningOutcome.ACCEPTABLE,
                screening_date=(delivery - dt.timedelta(days=1)).date(),
            ),
        ),
        facility_code=facility,
        site_zone=ZoneInfo("UTC"),
        actor=tech,
        now=now,
    )
    donors.receive_donation(
        session,
        donation,
        donors.Receipt(
            received_at=donation.collected_at + dt.timedelta(hours=3),
            temperature_c=4.5,
            condition=ContainerCondition.INTACT,
            accept=True,
        ),
        actor=tech,
        now=now,
    )

    def context(day: float) -> processing.StepContext:
        return processing.StepContext(
            performed_at=delivery + dt.timedelta(days=day), location="Biosafety cabinet 1"
        )

    step = processing.isolate(
        session,
        donation,
        tissue=donation.units[:1],
        method="enzymatic",
        vessels=[processing.Vessel("T175", 1.0e6)] * 2,
        context=context(0.8),
        actor=tech,
        now=now,
    )
    for day, harvested, count, vessel_format, seeded in PASSAGES:
        step = processing.passage(
            session,
            vessels_in=[row.unit for row in step.units if row.role == "output"],
            harvest=processing.Harvest(cells=harvested, viability_percent=96.0),
            vessels_out=[processing.Vessel(vessel_format, seeded)] * count,
            context=context(day),
            actor=tech,
            now=now,
        )
    lot = processing.fill_lot(
        session,
        vessels_in=[row.unit for row in step.units if row.role == "output"],
        harvest=processing.Harvest(cells=HARVEST_CELLS, viability_percent=94.0),
        fill=processing.Fill(
            bag_count=bags,
            volume_ml=BAG_VOLUME_ML,
            total_cells_per_ml=BAG_CONCENTRATION_PER_ML,
            dmso_percent=10.0,
        ),
        context=context(FILL_DAY),
        actor=tech,
        now=now,
    )
    session.commit()
    return lot


def make_user(username: str, role: Role, policy: accounts.AccountPolicy) -> User:
    """A user of the benchmark site (a full name the password does not build on)."""
    user = accounts.create_user(
        db.session,
        actor=None,
        now=utcnow(),
        username=username,
        full_name=f"{username.title()} Labeller",
        password=PASSWORD,
        roles=[role],
        policy=policy,
    )
    db.session.commit()
    return user


# --- timing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float
    statements: int
    size: int
    labels: int


def timed(runs: int, action: Callable[[], labels.PrintedFile]) -> list[Run]:
    """Each run starts from a fresh session and cold QR and text caches; the print is
    committed."""
    results = []
    for _ in range(runs):
        db.session.remove()
        qr_modules.cache_clear()
        text_mask.cache_clear()
        sent = STATEMENTS.sent
        start, start_cpu = time.perf_counter(), time.process_time()
        printed = action()
        db.session.commit()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        statements = STATEMENTS.sent - sent
        results.append(
            Run(seconds, cpu_seconds, statements, len(printed.data), len(printed.prints))
        )
    return results


def summary(label: str, runs: list[Run]) -> tuple[str, ...]:
    best = min(runs, key=lambda run: run.seconds)
    return (
        label,
        str(best.labels),
        f"{best.seconds:.3f}",
        f"{statistics.median(run.seconds for run in runs):.3f}",
        f"{min(run.cpu_seconds for run in runs):.3f}",
        f"{statistics.median(run.cpu_seconds for run in runs):.3f}",
        f"{best.labels / best.seconds:.1f}",
        size_text(best.size),
        f"{statistics.median(run.statements for run in runs):g}",
    )


def size_text(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size} B"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bags", type=int, default=100, help="cryobags in the lot")
    parser.add_argument("--runs", type=int, default=3, help="runs of each print (best is shown)")
    options = parser.parse_args()

    workdir = tempfile.TemporaryDirectory()
    database_url = f"sqlite:///{Path(workdir.name) / 'bench.sqlite'}"
    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": database_url})
    settings = labels.LabelSettings(
        templates=load_templates(), zone=ZoneInfo("UTC"), isbt=IsbtSettings(product_codes={})
    )
    size: list[tuple[str, str]] = []
    rows: list[tuple[str, ...]] = []
    with app.app_context():
        session = db.session
        upgrade()
        event.listen(db.engine, "before_cursor_execute", STATEMENTS)
        policy = accounts.AccountPolicy.from_config(app.config)
        tech = make_user("tina", Role.TECHNICIAN, policy)
        qa = make_user("alex", Role.QA, policy)
        product = products.PRODUCTS.load_default(session, actor=qa, now=utcnow())
        products.PRODUCTS.approve(session, product, user=qa, password=PASSWORD, now=utcnow())
        session.commit()

        start = time.perf_counter()
        lot = build_lot(bags=options.bags, facility=app.config["FACILITY_CODE"], tech=tech)
        lot_id, tech_id = lot.id, tech.id
        bags = processing.bags_of(session, lot)
        size.append(("lot", f"{lot.lot_number}: {len(bags)} cryobags, {lot.status}"))
        size.append(("build", f"{time.perf_counter() - start:.1f} s"))
        template = settings.templates["cryobag"]
        size.append(
            (
                "template",
                f"{template.label_type} v{template.version}, "
                f"{template.width_mm:g} × {template.height_mm:g} mm",
            )
        )
        first_bag_id = bags[0].id

        def print_lot(output_format: str) -> Callable[[], labels.PrintedFile]:
            def action() -> labels.PrintedFile:
                return labels.print_lot_labels(
                    session,
                    processing.get_lot(session, lot_id),
                    output_format=output_format,
                    copies=1,
                    reason=REASON,
                    settings=settings,
                    actor=session.get(User, tech_id),
                    now=utcnow(),
                )

            return action

        for output_format in FORMATS:
            runs = timed(options.runs, print_lot(output_format))
            rows.append(summary(f"whole lot, {output_format.upper()}", runs))

        def print_one() -> labels.PrintedFile:
            bag = session.get(Unit, first_bag_id)
            return labels.print_labels(
                session,
                [bag],
                output_format="png",
                copies=1,
                reason=REASON,
                settings=settings,
                actor=session.get(User, tech_id),
                now=utcnow(),
                name=bag.code,
            )

        rows.append(summary("one label, PNG", timed(options.runs, print_one)))

        session.remove()
        logged = session.execute(select(func.count()).select_from(LabelPrint)).scalar_one()
        report = audit.verify_chain(session)
        size.append(
            (
                "print log",
                f"{logged} label prints, audit chain of {report.entries_checked} entries "
                f"intact={report.intact}",
            )
        )
        session.remove()
        db.engine.dispose()
    workdir.cleanup()

    print(f"database: {make_url(database_url).get_backend_name()}")
    width = max(len(label) for label, _ in size)
    for label, value in size:
        print(f"{label:<{width}}  {value}")
    print()
    header = (
        "print",
        "labels",
        "best s",
        "median s",
        "best CPU s",
        "median CPU s",
        "labels/s",
        "output",
        "SQL statements",
    )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    line = "  ".join(
        f"{{:<{widths[0]}}}" if i == 0 else f"{{:>{widths[i]}}}" for i in range(len(header))
    )
    print(line.format(*header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line.format(*row))


if __name__ == "__main__":
    main()
