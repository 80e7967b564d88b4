"""Measure what users of the chain of identity wait on, at a realistic scale, and print a table.

    python benchmarks/bench_chain.py                      # SQLite, 2 000 donations, ~100 000 units
    python benchmarks/bench_chain.py --donations 50       # a quick run
    python benchmarks/bench_chain.py --donations 500 \
        --database postgresql+psycopg://postgres@127.0.0.1:5432/bench_chain

Builds a fresh database (the SQLite file is deleted afterwards; a PostgreSQL database named in
--database is created and dropped). Users and the approved UC-MSC product definition are made
through the services; the bulk of the data set is written with SQLAlchemy Core: per donation a
donor, the donation (received, processing, eligibility pending), and about 50 units in the
lineage of a real expansion with their custody events and issued codes:

    2 donation containers (cord, placenta) ─isolate→ 3 P0 culture vessels
    P(n-1) vessels ─harvest→ 1 pooled suspension (several parents) ─passage→ Pn vessels, n = 1…5
    (at P2 one vessel is split in two)
    P5 vessels ─harvest→ 1 pool ─fill→ 20 cryobags, ─sample→ 3 sample tubes

The identifier sequences are set past the bulk-written codes, so the services then issue the
next numbers. No audit entries are bulk-written: the timed operations append to an intact chain,
which is verified at the end.

Timed, each through the real service functions and committing where a request would: resolving
a scanned unit code, tracing back from a cryobag, tracing forward from a donation container,
registering a donation, recording a custody move, loading a donation page's data, and filling
20 cryobags from one parent. Every run starts from a fresh session, as a request does; --runs
sets how many runs each operation gets and --seed which units and donations they pick. The
table gives median, 95th percentile and maximum in milliseconds, and the median number of SQL
statements one run sends. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask_migrate import upgrade
from sqlalchemy import create_engine, event, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cellchain import create_app
from cellchain.chain import service as chain
from cellchain.chain.models import (
    EventType,
    LineageEdge,
    LineageOperation,
    Unit,
    UnitEvent,
    UnitKind,
    UnitStatus,
)
from cellchain.core import accounts, audit, record_state
from cellchain.core.identifiers import make_din, make_unit_code
from cellchain.core.models import IdentifierSequence, IssuedIdentifier, User
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.donors import service as donors
from cellchain.donors.models import (
    ContainerCondition,
    Donation,
    DonationStatus,
    Donor,
    Eligibility,
    ScreeningOutcome,
)
from cellchain.extensions import db
from cellchain.manufacturing import service as products

PASSWORD = "amber lantern ridge 9471"  # not built on the users' names (the password rules)
#: vessels seeded at P1…P5 (one vessel of P2 is then split in two)
PASSAGE_VESSELS = (2, 2, 3, 4, 4)
SPLIT_AT_PASSAGE = 2
CRYOBAGS = 20
SAMPLE_TUBES = 3
#: days between passages; the last donation's expansion must be finished before "now"
DAYS_PER_PASSAGE = 6
#: donations written per transaction while building
BATCH = 100
#: tables in foreign-key order
TABLES = (
    Donor.__table__,
    Donation.__table__,
    Unit.__table__,
    LineageEdge.__table__,
    UnitEvent.__table__,
    IssuedIdentifier.__table__,
)
SERIAL_TABLES = ("donors", "donations", "units", "unit_events", "issued_identifiers")


# --- building the data set ----------------------------------------------------------------------


@dataclass
class DataSet:
    """What the timed operations pick from."""

    donation_ids: list[int] = field(default_factory=list)
    #: (id, canonical code) of every cryobag
    cryobags: list[tuple[int, str]] = field(default_factory=list)
    #: the cord container of each donation (its descendants are nearly the whole tree)
    containers: list[int] = field(default_factory=list)


class Builder:
    """Writes donations with their lineage as plain rows, in batches, with Core inserts."""

    def __init__(self, session: Session, *, facility: str, user: User, product_id: int) -> None:
        self.session = session
        self.facility = facility
        self.user_id = user.id
        self.product_id = product_id
        self.next_id = {
            name: (session.execute(select(func.max(table.c.id))).scalar() or 0) + 1
            for name, table in ((t.name, t) for t in TABLES if "id" in t.c)
        }
        self.rows: dict[str, list[dict[str, Any]]] = {table.name: [] for table in TABLES}
        self.sequences: dict[str, int] = {}
        self.data = DataSet()

    def _id(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value

    def flush(self) -> None:
        for table in TABLES:
            rows = self.rows[table.name]
            if rows:
                # as a set-based path of the services would; the bulk rows stay out of the
                # record trail (as in bench_trace.py)
                self.session.execute(record_state.marked(insert(table)), rows)
                rows.clear()
        self.session.commit()

    def finish(self) -> None:
        """Set every identifier sequence past the numbers written, as the services would have."""
        self.flush()
        existing = set(self.session.execute(select(IdentifierSequence.scope)).scalars())
        clash = existing & self.sequences.keys()
        if clash:
            raise RuntimeError(f"sequences already in use: {sorted(clash)[:3]}")
        self.session.execute(
            insert(IdentifierSequence.__table__),
            [{"scope": scope, "last_value": value} for scope, value in self.sequences.items()],
        )
        if self.session.get_bind().dialect.name == "postgresql":
            for name in SERIAL_TABLES:  # explicit ids do not advance a serial's sequence
                self.session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT coalesce(max(id), 1) FROM {name}))"
                    )
                )
        self.session.commit()
        if self.session.get_bind().dialect.name == "postgresql":
            # autovacuum would analyse tables this size within a minute; do it now
            self.session.execute(text("ANALYZE"))
            self.session.commit()

    # one donation ---------------------------------------------------------------------------

    def donation(self, collected_at: dt.datetime) -> None:
        registered_at = collected_at + dt.timedelta(minutes=40)
        # DINs and donor codes are numbered per nominal year of registration, as the services do
        year = registered_at.year % 100
        number = self.sequences.get(f"DIN:{self.facility}:{year:02d}", 0) + 1
        din = make_din(self.facility, year, number)
        donor_id, donation_id = self._id("donors"), self._id("donations")
        received_at = collected_at + dt.timedelta(hours=4)
        processing_at = collected_at + dt.timedelta(hours=7)
        self.rows["donors"].append(
            {
                "id": donor_id,
                "code": f"DNR{year:02d}-{number:05d}",
                "consent_date": collected_at.date() - dt.timedelta(days=30),
                "consent_form_version": "ICF v3.1",
                "consent_recorded_by_id": self.user_id,
                "consent_recorded_at": registered_at,
                "screening_outcome": ScreeningOutcome.ACCEPTABLE.value,
                "screening_date": collected_at.date() - dt.timedelta(days=2),
                "screening_recorded_by_id": self.user_id,
                "screening_notes": None,
                "created_at": registered_at,
            }
        )
        self.rows["donations"].append(
            {
                "id": donation_id,
                "din": din.canonical,
                "donor_id": donor_id,
                "product_definition_id": self.product_id,
                "umbilical_cord": True,
                "placenta": True,
                "delivery_at": collected_at - dt.timedelta(hours=1),
                "collected_at": collected_at,
                "collection_site": "Maternity ward, City Hospital",
                "collector": "Midwife R. Okafor",
                "transport_conditions": "2–8 °C validated shipper",
                "registered_at": registered_at,
                "registered_by_id": self.user_id,
                "status": DonationStatus.PROCESSING.value,
                "eligibility": Eligibility.PENDING.value,
                "received_at": received_at,
                "received_recorded_at": received_at,
                "received_by_id": self.user_id,
                "arrival_temperature_c": 4.5,
                "container_condition": ContainerCondition.INTACT.value,
                "receipt_note": None,
                "processing_started_at": processing_at,
                "processing_started_by_id": self.user_id,
            }
        )
        self._issued(din.canonical, "DIN", registered_at, "donation", donation_id)
        self.sequences[f"DIN:{self.facility}:{year:02d}"] = number
        self.sequences[f"DONOR:{year:02d}"] = number
        self.data.donation_ids.append(donation_id)
        _Lineage(self, donation_id, din.body).build(
            collected_at=collected_at, received_at=received_at, processing_at=processing_at
        )

    def _issued(
        self, code: str, kind: str, at: dt.datetime, entity_type: str, entity_id: int, purpose=""
    ) -> None:
        self.rows["issued_identifiers"].append(
            {
                "id": self._id("issued_identifiers"),
                "code": code,
                "kind": kind,
                "issued_at": at,
                "issued_by_id": self.user_id,
                "entity_type": entity_type,
                "entity_id": str(entity_id),
                "purpose": purpose or "donation registration",
            }
        )

    def event(
        self,
        unit: dict[str, Any],
        event_type: EventType,
        at: dt.datetime,
        *,
        location: str | None = None,
        from_location: str | None = None,
        counterparty: str | None = None,
        temperature_c: float | None = None,
        note: str | None = None,
    ) -> None:
        self.rows["unit_events"].append(
            {
                "id": self._id("unit_events"),
                "unit_id": unit["id"],
                "event_type": event_type.value,
                "at": at,
                "recorded_at": at + dt.timedelta(minutes=2),
                "actor_id": self.user_id,
                "location": location or unit["location"],
                "from_location": from_location,
                "counterparty": counterparty,
                "temperature_c": temperature_c,
                "note": note,
            }
        )


class _Lineage:
    """The units of one donation, as a real expansion makes them."""

    def __init__(self, builder: Builder, donation_id: int, din_body: str) -> None:
        self.b = builder
        self.donation_id = donation_id
        self.din_body = din_body
        self.count = 0

    def unit(self, kind: UnitKind, at: dt.datetime, location: str) -> dict[str, Any]:
        self.count += 1
        code = make_unit_code(self.din_body, kind.letter, self.count).canonical
        row = {
            "id": self.b._id("units"),
            "code": code,
            "kind": kind.value,
            "status": UnitStatus.QUARANTINE.value,
            "donation_id": self.donation_id,
            "location": location,
            "created_at": at,
            "created_by_id": self.b.user_id,
        }
        self.b.rows["units"].append(row)
        self.b._issued(code, "UNIT", at, "unit", row["id"], f"label of a {kind.label}")
        self.b.event(row, EventType.CREATED, at)
        return row

    def derive(
        self,
        parents: list[dict[str, Any]],
        kind: UnitKind,
        operation: LineageOperation,
        count: int,
        at: dt.datetime,
        location: str,
        *,
        consume: bool = True,
    ) -> list[dict[str, Any]]:
        children = [self.unit(kind, at, location) for _ in range(count)]
        for child in children:
            for parent in parents:
                self.b.rows["lineage_edges"].append(
                    {
                        "parent_id": parent["id"],
                        "child_id": child["id"],
                        "operation": operation.value,
                        "created_at": at,
                    }
                )
        if consume:
            for parent in parents:
                self.status(parent, UnitStatus.CONSUMED, at, f"used up by {operation.value}")
        return children

    def status(self, unit: dict[str, Any], target: UnitStatus, at: dt.datetime, why: str) -> None:
        note = f"{unit['status']} → {target.value}: {why}"
        unit["status"] = target.value
        self.b.event(unit, EventType.STATUS_CHANGED, at, note=note)

    def move(self, unit: dict[str, Any], at: dt.datetime, location: str) -> None:
        previous, unit["location"] = unit["location"], location
        self.b.event(unit, EventType.MOVED, at, location=location, from_location=previous)

    def build(
        self, *, collected_at: dt.datetime, received_at: dt.datetime, processing_at: dt.datetime
    ) -> None:
        bsc, incubator = "Biosafety cabinet 1", "Incubator 2"
        cord, placenta = (
            self.unit(UnitKind.DONATION_CONTAINER, collected_at, "Maternity ward, City Hospital")
            for _ in range(2)
        )
        for container in (cord, placenta):
            container["location"] = donors.DEFAULT_RECEIPT_LOCATION
            self.b.event(container, EventType.RECEIVED, received_at, temperature_c=4.5)
        self.b.data.containers.append(cord["id"])
        vessels = self.derive(
            [cord], UnitKind.CULTURE_VESSEL, LineageOperation.ISOLATE, 2, processing_at, incubator
        ) + self.derive(
            [placenta],
            UnitKind.CULTURE_VESSEL,
            LineageOperation.ISOLATE,
            1,
            processing_at,
            incubator,
        )
        at = processing_at
        for passage, seeded in enumerate(PASSAGE_VESSELS, start=1):
            at += dt.timedelta(days=DAYS_PER_PASSAGE)
            pool = self.derive(
                vessels, UnitKind.CULTURE_VESSEL, LineageOperation.HARVEST, 1, at, bsc
            )
            later = at + dt.timedelta(minutes=45)
            vessels = self.derive(
                pool, UnitKind.CULTURE_VESSEL, LineageOperation.PASSAGE, seeded, later, incubator
            )
            if passage == SPLIT_AT_PASSAGE:
                split_at = at + dt.timedelta(days=DAYS_PER_PASSAGE // 2)
                halves = self.derive(
                    vessels[-1:], UnitKind.CULTURE_VESSEL, LineageOperation.SPLIT, 2, split_at, bsc
                )
                for half in halves:
                    self.move(half, split_at + dt.timedelta(minutes=20), incubator)
                vessels = vessels[:-1] + halves
        at += dt.timedelta(days=DAYS_PER_PASSAGE)
        pool = self.derive(vessels, UnitKind.CULTURE_VESSEL, LineageOperation.HARVEST, 1, at, bsc)
        fill_at = at + dt.timedelta(hours=1)
        bags = self.derive(
            pool, UnitKind.CRYOBAG, LineageOperation.FILL, CRYOBAGS, fill_at, bsc, consume=False
        )
        tubes = self.derive(
            pool, UnitKind.SAMPLE_TUBE, LineageOperation.SAMPLE, SAMPLE_TUBES, fill_at, bsc
        )
        for number, bag in enumerate(bags):
            self.move(bag, fill_at + dt.timedelta(hours=1), "Controlled-rate freezer 1")
            self.move(
                bag,
                fill_at + dt.timedelta(days=1),
                f"LN2 tank 3, rack {number // 10 + 1}, box {number % 10 + 1}",
            )
            self.b.data.cryobags.append((bag["id"], bag["code"]))
        for tube in tubes[:-1]:  # sterility and mycoplasma are used up by QC
            self.b.event(
                tube,
                EventType.HANDED_OFF,
                fill_at + dt.timedelta(hours=2),
                counterparty="QC laboratory",
            )
            self.status(tube, UnitStatus.CONSUMED, fill_at + dt.timedelta(days=3), "QC test")
        self.move(tubes[-1], fill_at + dt.timedelta(hours=2), "Retention freezer −80 °C")
        self.b.sequences[f"UNIT:{self.din_body}"] = self.count


def build(
    session: Session, *, donations: int, facility: str, user: User, product_id: int
) -> DataSet:
    """About 50 units per donation; collections spread over the past year, oldest first."""
    now = utcnow()
    expansion = dt.timedelta(days=DAYS_PER_PASSAGE * (len(PASSAGE_VESSELS) + 1) + 5)
    last = now - expansion
    first = last - dt.timedelta(days=300)
    step = (last - first) / max(1, donations)
    builder = Builder(session, facility=facility, user=user, product_id=product_id)
    for number in range(donations):
        builder.donation(first + step * number)
        if number % BATCH == BATCH - 1:
            builder.flush()
    builder.finish()
    return builder.data


# --- timing ------------------------------------------------------------------------------------


class Statements:
    """Counts the SQL statements sent to the database (an executemany counts once)."""

    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, *_: object) -> None:
        self.sent += 1


STATEMENTS = Statements()


@dataclass(frozen=True)
class Samples:
    seconds: list[float]
    statements: list[int]


def timed(runs: int, action: Callable[[Any], object], setup: Callable[[], Any]) -> Samples:
    """``setup`` (not timed) prepares each run, e.g. a fresh session as a new request has."""
    seconds, statements = [], []
    for _ in range(runs):
        argument = setup()
        sent = STATEMENTS.sent
        start = time.perf_counter()
        action(argument)
        seconds.append(time.perf_counter() - start)
        statements.append(STATEMENTS.sent - sent)
    return Samples(seconds, statements)


def summary(label: str, samples: Samples) -> tuple[str, ...]:
    ordered = sorted(samples.seconds)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return (
        label,
        f"{statistics.median(ordered) * 1000:.2f}",
        f"{p95 * 1000:.2f}",
        f"{ordered[-1] * 1000:.2f}",
        str(len(ordered)),
        f"{statistics.median(samples.statements):g}",
    )


def count(table: Any) -> int:
    return db.session.execute(select(func.count()).select_from(table)).scalar_one()


def make_user(username: str, role: Role, policy: accounts.AccountPolicy) -> User:
    user = accounts.create_user(
        db.session,
        actor=None,
        now=utcnow(),
        username=username,
        full_name=f"{username.title()} Benchmark",
        password=PASSWORD,
        roles=[role],
        policy=policy,
    )
    db.session.commit()
    return user


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--donations", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=200, help="runs of each timed operation")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--database", help="PostgreSQL URL of a database to create and drop")
    options = parser.parse_args()
    rng = random.Random(options.seed)

    workdir = tempfile.TemporaryDirectory()
    if options.database:
        url = make_url(options.database)
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{url.database}"'))
        database_url = options.database
    else:
        database_url = f"sqlite:///{Path(workdir.name) / 'bench.sqlite'}"

    app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": database_url})
    facility = app.config["FACILITY_CODE"]
    site_zone = ZoneInfo(app.config["SITE_TIMEZONE"])
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
        tech_id, product_id = tech.id, product.id

        start = time.perf_counter()
        data = build(
            session,
            donations=options.donations,
            facility=facility,
            user=tech,
            product_id=product_id,
        )
        build_seconds = time.perf_counter() - start
        size.append(
            (
                "data set",
                f"{count(Donation.__table__)} donations, {count(Unit.__table__)} units, "
                f"{count(LineageEdge.__table__)} lineage edges, {count(UnitEvent.__table__)} "
                f"unit events, {count(IssuedIdentifier.__table__)} issued identifiers",
            )
        )
        size.append(("build", f"{build_seconds:.1f} s"))

        def fresh() -> None:
            """A new request: nothing cached in the session."""
            session.remove()

        def actor() -> User:
            return session.get(User, tech_id)

        # scan → unit, in the display form printed under the barcode
        def pick_code() -> str:
            fresh()
            code = rng.choice(data.cryobags)[1]
            return f"{code[:5]} {code[5:7]} {code[7:13]} {code[13:18]} [{code[18]}]"

        rows.append(
            summary(
                "resolve a scanned unit code (display form)",
                timed(options.runs, lambda code: chain.resolve_unit(session, code), pick_code),
            )
        )

        def pick_unit(ids: list[int]) -> Callable[[], Unit]:
            def setup() -> Unit:
                fresh()
                return chain.get_unit(session, rng.choice(ids))

            return setup

        bag_ids = [unit_id for unit_id, _ in data.cryobags]
        back = chain.trace_back(session, chain.get_unit(session, bag_ids[0]))
        rows.append(
            summary(
                f"trace back from a cryobag ({len(back)} ancestors)",
                timed(
                    options.runs, lambda unit: chain.trace_back(session, unit), pick_unit(bag_ids)
                ),
            )
        )
        forward = chain.trace_forward(session, chain.get_unit(session, data.containers[0]))
        rows.append(
            summary(
                f"trace forward from a donation container ({len(forward)} descendants)",
                timed(
                    options.runs,
                    lambda unit: chain.trace_forward(session, unit),
                    pick_unit(data.containers),
                ),
            )
        )

        def load_page(donation_id: int) -> int:
            donation = donors.get_donation(session, donation_id)
            donors.review_eligibility(donation)
            events = chain.events_of_donation(session, donation.id)
            # the page lists the units, and each event row names its unit and who recorded it
            return len(donation.units) + sum(1 for e in events if e.unit.code and e.actor)

        def pick_donation() -> int:
            fresh()
            return rng.choice(data.donation_ids)

        rows.append(
            summary(
                "load a donation page's data (donation, review, events, units)",
                timed(options.runs, load_page, pick_donation),
            )
        )

        registered: list[int] = []

        def register(user: User) -> None:
            now = utcnow()
            donation = donors.register_donation(
                session,
                donors.DonationRegistration(
                    umbilical_cord=True,
                    placenta=True,
                    delivery_at=now - dt.timedelta(hours=6),
                    collected_at=now - dt.timedelta(hours=5),
                    collection_site="Maternity ward, City Hospital",
                    collector="Midwife R. Okafor",
                    transport_conditions="2–8 °C validated shipper",
                    new_donor=donors.NewDonor(
                        consent_date=now.date() - dt.timedelta(days=30),
                        consent_form_version="ICF v3.1",
                        screening_outcome=ScreeningOutcome.ACCEPTABLE,
                        screening_date=now.date() - dt.timedelta(days=2),
                    ),
                ),
                facility_code=facility,
                site_zone=site_zone,
                actor=user,
                now=now,
            )
            session.commit()
            registered.append(donation.id)

        def fresh_actor() -> User:
            fresh()
            return actor()

        rows.append(
            summary(
                "register a donation with 2 containers (commit)",
                timed(options.runs, register, fresh_actor),
            )
        )

        moves = iter(range(1, options.runs + 1))

        def move(unit_id: int) -> None:
            unit = chain.get_unit(session, unit_id)
            chain.record_custody(
                session,
                unit,
                chain.CustodyInput(
                    event_type=EventType.MOVED,
                    location=f"LN2 tank 4, rack {next(moves) % 9 + 1}",
                    temperature_c=-190.0,
                ),
                actor=actor(),
                now=utcnow(),
            )
            session.commit()

        def pick_bag_id() -> int:
            fresh()
            return rng.choice(bag_ids)

        rows.append(
            summary(
                "record a custody move of a cryobag (commit)",
                timed(options.runs, move, pick_bag_id),
            )
        )

        parents = iter(registered)

        def pick_parent() -> Unit:
            fresh()
            return chain.units_of_donation(session, next(parents))[0]

        def fill(parent: Unit) -> None:
            chain.derive_units(
                session,
                parents=[parent],
                kind=UnitKind.CRYOBAG,
                operation=LineageOperation.FILL,
                count=CRYOBAGS,
                location="Biosafety cabinet 1",
                actor=actor(),
                now=utcnow(),
            )
            session.commit()

        rows.append(
            summary(
                f"fill {CRYOBAGS} cryobags from one unit (derive_units, commit)",
                timed(min(options.runs, len(registered)), fill, pick_parent),
            )
        )

        fresh()
        start = time.perf_counter()
        report = audit.verify_chain(session)
        size.append(
            (
                "audit chain",
                f"{report.entries_checked} entries written by the timed operations, "
                f"intact={report.intact} (verified in {time.perf_counter() - start:.1f} s)",
            )
        )
        session.remove()
        db.engine.dispose()

    if options.database:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        admin.dispose()
    workdir.cleanup()

    print(f"database: {make_url(database_url).get_backend_name()}")
    width = max(len(label) for label, _ in size)
    for label, value in size:
        print(f"{label:<{width}}  {value}")
    print()
    header = ("operation", "median ms", "p95 ms", "max ms", "runs", "SQL statements")
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
