"""Measure trace back, trace forward and opening a recall at a realistic scale; print a table.

    python benchmarks/bench_trace.py                      # SQLite, 2 000 donations, ~100 000 units
    python benchmarks/bench_trace.py --scale 0.05         # a quick run (100 donations)
    python benchmarks/bench_trace.py --explain            # also the slowest statements' plans
    python benchmarks/bench_trace.py \
        --database postgresql+psycopg://postgres@127.0.0.1:5432/bench_trace

Builds a fresh database with the migrations. The SQLite file is deleted afterwards; a
PostgreSQL database named in --database is created and dropped, as in the other benchmarks
(never taken from CELLCHAIN_DATABASE_URL, since it is dropped). --keep keeps either.

The records a trace back needs are made through the real services: ``cellchain.demo`` seeds
its site (users, protocol, product, specification, lots released and rejected with QA
signatures, patients, second-checked doses, and AS-003's dose shipped, received, thawed,
checked at the bedside with two signatures and infused). The bulk of the tree is then written
with SQLAlchemy Core inserts, row for row what ``manufacturing.processing`` writes: per
donation a donor, the donation, its cord and placenta containers, an enzymatic isolation into
2 T175, passages into 4 T175, 6 T175 and 4 CS5, the fill of 20–44 cryobags into a lot
(quarantine), their controlled-rate freezing and LN2 storage; every step with its units in and
out, cell records, lineage edges (every child to every parent, as ``derive_units`` writes
them), materials and equipment, custody events and issued codes. Material lots are rows too:
one lot of each reagent at a time, so each is used by hundreds of donations. One *big*
donation is expanded to 12 CS5 and filled into 3 lots of --big-lot-bags bags. The identifier
sequences are set past the numbers written; on SQLite, which does not enforce foreign keys
here, ``PRAGMA foreign_key_check`` checks them (PostgreSQL enforces them on insert).

Timed, through ``cellchain.traceability`` as the pages and the API call it, each run from a
fresh session as a request has: trace back from the infusion and from a bag; trace forward
from a typical donation, the big donation, one of its lots, the donation behind the infusion
(its doses and patients) and the most-used lot of platelet lysate; opening a recall of the
big donation and of the infused donation (signed with QA's password, then rolled back). Every
answer is checked against what was built (unit sets, bag counts, the infused patient, the
clinic path, valid signatures), so a fast wrong answer stops the run. The table gives median,
minimum and maximum milliseconds over --runs (traces) or --recall-runs (recalls) runs and the
median number of SQL statements one run sends. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import Table, create_engine, event, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from cellchain import create_app
from cellchain.chain.models import (
    EventType,
    LineageEdge,
    LineageOperation,
    Unit,
    UnitEvent,
    UnitKind,
    UnitStatus,
)
from cellchain.clinic.models import Infusion
from cellchain.core import record_state
from cellchain.core.accounts import AccountPolicy
from cellchain.core.identifiers import Identifier, make_din, make_unit_code
from cellchain.core.models import IdentifierSequence, IssuedIdentifier, User
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
from cellchain.dosing.models import DoseBag, DoseOrder
from cellchain.extensions import db
from cellchain.manufacturing.models import (
    CellRecord,
    Equipment,
    Lot,
    LotStatus,
    MaterialCategory,
    MaterialLot,
    ProcessingStep,
    StepEquipment,
    StepKind,
    StepMaterial,
    StepUnit,
)
from cellchain.traceability.models import RecallTarget
from cellchain.traceability.recalls import recalls
from cellchain.traceability.trace import trace

DEFAULT_DONATIONS = 2_000
#: bags of a typical donation's lot (uniform); about 50 units per donation in all
BAGS = (20, 44)
#: the big donation: vessels seeded at P0…P3, then this many lots of --big-lot-bags bags
BIG_PASSAGES = (3, 6, 8, 12)
BIG_LOTS = 3
#: donations written per transaction while building
BATCH = 100
#: the reagents every expansion uses: key, material, category, supplier, days one lot lasts
MATERIALS = (
    ("enzyme", "Collagenase NB6", MaterialCategory.ENZYME, "EnzymeWorks", 90),
    ("medium", "α-MEM", MaterialCategory.MEDIUM, "MediaCo", 20),
    ("hpl", "Human platelet lysate", MaterialCategory.SUPPLEMENT, "LysateBio", 40),
    ("trypsin", "TrypLE Select", MaterialCategory.ENZYME, "EnzymeWorks", 30),
    ("dmso", "DMSO (Ph. Eur.)", MaterialCategory.CRYOPROTECTANT, "CryoChem", 120),
    ("albumin", "Human albumin 20 %", MaterialCategory.EXCIPIENT, "PlasmaPharm", 60),
)
CULTURE_KIT = ("BSC-01", "INC-01", "CNT-01")
FREEZE_KIT = ("BSC-01", "CRF-01")
#: tables in foreign-key order
TABLES: tuple[Table, ...] = tuple(
    model.__table__  # type: ignore[attr-defined]
    for model in (
        MaterialLot,
        Donor,
        Donation,
        Unit,
        LineageEdge,
        UnitEvent,
        IssuedIdentifier,
        Lot,
        ProcessingStep,
        StepUnit,
        StepMaterial,
        StepEquipment,
        CellRecord,
    )
)
SERIAL_TABLES = tuple(table.name for table in TABLES if "id" in table.c)

Row = dict[str, Any]


# --- building the data set ----------------------------------------------------------------------


@dataclass
class Built:
    """What was written, kept independently of the database to check the traces' answers."""

    #: donation id → ids of its units
    units_of: dict[int, list[int]] = field(default_factory=dict)
    #: donation id → ids of its cryobags
    bags_of: dict[int, list[int]] = field(default_factory=dict)
    #: lot id → ids of its bags
    lot_bags: dict[int, list[int]] = field(default_factory=dict)
    #: donation id → ids of its lots
    lots_of: dict[int, list[int]] = field(default_factory=dict)
    #: material lot id → ids of the units a forward trace from it must reach
    material_units: dict[int, set[int]] = field(default_factory=dict)
    #: material lot id → the donations whose steps used it
    material_donations: dict[int, set[int]] = field(default_factory=dict)
    material_label: dict[int, str] = field(default_factory=dict)
    big_donation: int = 0
    big_lots: list[int] = field(default_factory=list)

    def all_bags(self) -> set[int]:
        return {bag for bags in self.bags_of.values() for bag in bags}


class TreeBuilder:
    """Writes donations with their whole batch record as plain rows, in batches."""

    def __init__(
        self,
        session: Session,
        *,
        facility: str,
        user_id: int,
        product_id: int,
        equipment: dict[str, int],
        first: dt.datetime,
        last: dt.datetime,
    ) -> None:
        self.session = session
        self.facility = facility
        self.user_id = user_id
        self.product_id = product_id
        self.equipment = equipment
        self.first = first
        self.next_id = {
            table.name: (session.execute(select(func.max(table.c.id))).scalar() or 0) + 1
            for table in TABLES
            if "id" in table.c
        }
        self.rows: dict[str, list[Row]] = {table.name: [] for table in TABLES}
        self.sequences: dict[str, int] = dict(
            session.execute(select(IdentifierSequence.scope, IdentifierSequence.last_value)).all()
        )
        self.existing_scopes = set(self.sequences)
        self.built = Built()
        self.materials = self._material_lots(first, last)

    def id(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value

    def next_in(self, scope: str) -> int:
        value = self.sequences.get(scope, 0) + 1
        self.sequences[scope] = value
        return value

    def flush(self) -> None:
        for table in TABLES:
            rows = self.rows[table.name]
            if rows:
                # as a set-based path of the services would; the bulk rows stay out of the
                # record trail (`audit verify --records` is not what is measured here)
                self.session.execute(record_state.marked(insert(table)), rows)
                rows.clear()
        self.session.commit()

    def finish(self) -> None:
        """Set every identifier sequence past the numbers written, as the services would have."""
        self.flush()
        for scope, value in self.sequences.items():
            if scope in self.existing_scopes:
                self.session.execute(
                    update(IdentifierSequence)
                    .where(IdentifierSequence.scope == scope)
                    .values(last_value=value)
                )
        new = [
            {"scope": scope, "last_value": value}
            for scope, value in self.sequences.items()
            if scope not in self.existing_scopes
        ]
        if new:
            self.session.execute(insert(IdentifierSequence.__table__), new)
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
            # autovacuum would vacuum and analyse tables this size within minutes (inserts
            # trigger it since PostgreSQL 13); do it now, or the index-only scans of the walk
            # would visit the heap for every edge (no visibility map yet)
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")

    # materials ---------------------------------------------------------------------------------

    def _material_lots(self, first: dt.datetime, last: dt.datetime) -> dict[str, list[int]]:
        """One lot of each reagent at a time, received and released by QA before its use."""
        span = (last - first).days + 40
        lots: dict[str, list[int]] = {}
        for key, material, category, supplier, days in MATERIALS:
            lots[key] = []
            for number in range(span // days + 2):
                received = first + dt.timedelta(days=number * days - 5)
                lot_id = self.id("material_lots")
                lot_number = f"{key[:3].upper()}-{received:%y}{number + 1:03d}"
                self.rows["material_lots"].append(
                    {
                        "id": lot_id,
                        "material": material,
                        "category": category.value,
                        "supplier": supplier,
                        "lot_number": lot_number,
                        "expiry_date": (received + dt.timedelta(days=400)).date(),
                        "received_at": received,
                        "created_by_id": self.user_id,
                        "released_at": received + dt.timedelta(days=2),
                        "released_by_id": self.user_id,
                        "recalled_at": None,
                    }
                )
                lots[key].append(lot_id)
                self.built.material_label[lot_id] = f"{material} lot {lot_number} ({supplier})"
        return lots

    def material(self, key: str, at: dt.datetime) -> int:
        """The lot of ``key`` in use on the day ``at``."""
        days = next(row[4] for row in MATERIALS if row[0] == key)
        lots = self.materials[key]
        return lots[min(len(lots) - 1, max(0, (at - self.first).days // days))]

    # one donation ------------------------------------------------------------------------------

    def donation(
        self, collected_at: dt.datetime, *, passages: tuple[int, ...], lots: list[int]
    ) -> int:
        """A donation from registration to its frozen, stored lots; its id."""
        registered_at = collected_at + dt.timedelta(minutes=40)
        year = registered_at.year % 100
        number = self.next_in(f"DIN:{self.facility}:{year:02d}")
        din = make_din(self.facility, year, number)
        donor_number = self.next_in(f"DONOR:{year:02d}")
        donor_id, donation_id = self.id("donors"), self.id("donations")
        received_at = collected_at + dt.timedelta(hours=4)
        self.rows["donors"].append(
            {
                "id": donor_id,
                "code": f"DNR{year:02d}-{donor_number:05d}",
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
                "delivery_at": collected_at - dt.timedelta(minutes=30),
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
                # the first isolation starts processing (see _Expansion.build)
                "processing_started_at": collected_at + dt.timedelta(hours=19),
                "processing_started_by_id": self.user_id,
            }
        )
        self.issued(din.canonical, "DIN", registered_at, "donation", donation_id, "donation")
        _Expansion(self, donation_id, din).build(
            collected_at=collected_at, received_at=received_at, passages=passages, lots=lots
        )
        return donation_id

    def issued(
        self, code: str, kind: str, at: dt.datetime, entity_type: str, entity_id: int, what: str
    ) -> None:
        self.rows["issued_identifiers"].append(
            {
                "id": self.id("issued_identifiers"),
                "code": code,
                "kind": kind,
                "issued_at": at,
                "issued_by_id": self.user_id,
                "entity_type": entity_type,
                "entity_id": str(entity_id),
                "purpose": what if kind == "UNIT" else "donation registration",
            }
        )

    def event(
        self,
        unit: Row,
        event_type: EventType,
        at: dt.datetime,
        *,
        location: str | None = None,
        from_location: str | None = None,
        temperature_c: float | None = None,
        note: str | None = None,
    ) -> None:
        self.rows["unit_events"].append(
            {
                "id": self.id("unit_events"),
                "unit_id": unit["id"],
                "event_type": event_type.value,
                "at": at,
                "recorded_at": at + dt.timedelta(minutes=2),
                "actor_id": self.user_id,
                "location": location or unit["location"],
                "from_location": from_location,
                "counterparty": None,
                "temperature_c": temperature_c,
                "note": note,
            }
        )


@dataclass(frozen=True)
class _Seed:
    """A new culture vessel (format, cells seeded) or bag (volume, cells/mL, lot)."""

    vessel_format: str | None = None
    cells: float | None = None
    volume_ml: float | None = None
    concentration: float | None = None
    viability: float | None = None
    lot_id: int | None = None


class _Expansion:
    """The units and batch record of one donation, as ``manufacturing.processing`` writes them."""

    #: growth area of the vessel formats used, cm² (as in the product definition)
    AREA: ClassVar[dict[str, float]] = {"T175": 175.0, "CS5": 3180.0}

    def __init__(self, builder: TreeBuilder, donation_id: int, din: Identifier) -> None:
        self.b = builder
        self.donation_id = donation_id
        self.din = din
        self.count = 0
        self.units: list[int] = []
        self.children: dict[int, list[int]] = {}
        #: culture vessel id → its format
        self.formats: dict[int, str] = {}
        #: material lot id → the units its steps made (or worked on in place)
        self.worked: dict[int, list[int]] = {}

    def unit(self, kind: UnitKind, at: dt.datetime, location: str) -> Row:
        self.count += 1
        code = make_unit_code(self.din.body, kind.letter, self.count).canonical
        row = {
            "id": self.b.id("units"),
            "code": code,
            "kind": kind.value,
            "status": UnitStatus.QUARANTINE.value,
            "donation_id": self.donation_id,
            "location": location,
            "created_at": at,
            "created_by_id": self.b.user_id,
        }
        self.b.rows["units"].append(row)
        self.units.append(row["id"])
        self.b.issued(code, "UNIT", at, "unit", row["id"], f"label of a {kind.label}")
        self.b.event(row, EventType.CREATED, at)
        return row

    def status(self, unit: Row, target: UnitStatus, at: dt.datetime, why: str) -> None:
        note = f"{unit['status']} → {target.value}: {why}"
        unit["status"] = target.value
        self.b.event(unit, EventType.STATUS_CHANGED, at, note=note)

    def step(
        self,
        kind: StepKind,
        at: dt.datetime,
        *,
        inputs: list[Row],
        operation: LineageOperation | None,
        outputs: list[_Seed],
        passage: int,
        materials: tuple[str, ...],
        equipment: tuple[str, ...],
        harvested: tuple[float, float] | None = None,
        seeded_before: float | None = None,
        cpd: float = 0.0,
        days: float | None = None,
        lot_id: int | None = None,
        method: str | None = None,
    ) -> list[Row]:
        """One processing step: its units out (lineage to every input), cell records, rows."""
        kind_out = UnitKind.CULTURE_VESSEL if outputs and outputs[0].vessel_format else None
        location = "INC-01" if kind_out else "BSC-01"
        made = [self.unit(kind_out or UnitKind.CRYOBAG, at, location) for _ in outputs]
        for child in made:
            for parent in inputs:
                self.b.rows["lineage_edges"].append(
                    {
                        "parent_id": parent["id"],
                        "child_id": child["id"],
                        "operation": operation.value,  # type: ignore[union-attr]
                        "created_at": at,
                    }
                )
                self.children.setdefault(parent["id"], []).append(child["id"])
        if made:
            for parent in inputs:
                self.status(parent, UnitStatus.CONSUMED, at, f"used up by {operation}")
        doublings = None
        if harvested and seeded_before:
            doublings = math.log2(harvested[0] / seeded_before)
        step_id = self.b.id("processing_steps")
        self.b.rows["processing_steps"].append(
            {
                "id": step_id,
                "donation_id": self.donation_id,
                "kind": kind.value,
                "performed_at": at,
                "recorded_at": at + dt.timedelta(minutes=15),
                "performed_by_id": self.b.user_id,
                "method": method,
                "passage": passage,
                "cells_harvested": harvested[0] if harvested else None,
                "viability_percent": harvested[1] if harvested else None,
                "cells_seeded_before": seeded_before,
                "days_in_culture": days,
                "population_doublings": doublings,
                "cumulative_pd": cpd,
                "lot_id": lot_id,
                "notes": None,
            }
        )
        self.b.rows["step_units"].extend(
            [{"step_id": step_id, "unit_id": u["id"], "role": "input"} for u in inputs]
            + [{"step_id": step_id, "unit_id": u["id"], "role": "output"} for u in made]
        )
        worked = [u["id"] for u in made] if made else [u["id"] for u in inputs]
        for key in materials:
            material_id = self.b.material(key, at)
            self.b.rows["step_materials"].append(
                {"step_id": step_id, "material_lot_id": material_id}
            )
            self.worked.setdefault(material_id, []).extend(worked)
        self.b.rows["step_equipment"].extend(
            {"step_id": step_id, "equipment_id": self.b.equipment[code]} for code in equipment
        )
        for unit, seed in zip(made, outputs, strict=True):
            if seed.vessel_format:
                self.formats[unit["id"]] = seed.vessel_format
            self.b.rows["cell_records"].append(
                {
                    "unit_id": unit["id"],
                    "passage": passage,
                    "cells": seed.cells,
                    "cumulative_pd": cpd,
                    "made_at": at,
                    "vessel_format": seed.vessel_format,
                    "area_cm2": self.AREA[seed.vessel_format] if seed.vessel_format else None,
                    "volume_ml": seed.volume_ml,
                    "total_cells_per_ml": seed.concentration,
                    "viability_percent": seed.viability,
                    "lot_id": seed.lot_id,
                }
            )
        return made

    def build(
        self,
        *,
        collected_at: dt.datetime,
        received_at: dt.datetime,
        passages: tuple[int, ...],
        lots: list[int],
    ) -> None:
        """Isolation, passages, then one fill per entry of ``lots`` (its bag count)."""
        cord, placenta = (
            self.unit(UnitKind.DONATION_CONTAINER, collected_at, "Maternity ward, City Hospital")
            for _ in range(2)
        )
        for container in (cord, placenta):
            container["location"] = donors.DEFAULT_RECEIPT_LOCATION
            self.b.event(container, EventType.RECEIVED, received_at, temperature_c=4.5)
        birth = collected_at - dt.timedelta(minutes=30)

        def day(n: float) -> dt.datetime:
            return birth + dt.timedelta(days=n)

        seeded = 1.0e6
        vessels = self.step(
            StepKind.ISOLATION,
            day(0.8),
            inputs=[cord],
            operation=LineageOperation.ISOLATE,
            outputs=[_Seed("T175", seeded)] * passages[0],
            passage=0,
            materials=("enzyme", "medium", "hpl"),
            equipment=CULTURE_KIT,
            method="enzymatic",
        )
        cpd, made_on = 0.0, 0.8
        for number, count in enumerate(passages[1:], start=1):
            when = 1.0 + 7 * number
            big = count > 6 or number == len(passages) - 1  # the last passage goes into CS5
            # harvested near confluence (the services refuse more than 1e5 cells/cm²)
            area = sum(self.AREA[self.formats[vessel["id"]]] for vessel in vessels)
            harvested = 0.9 * area * 1.0e5
            per_vessel = min(2.0e7 if big else 1.0e6, 0.9 * harvested / count)
            before = seeded * len(vessels)
            cpd += math.log2(harvested / before)
            vessels = self.step(
                StepKind.PASSAGE,
                day(when),
                inputs=vessels,
                operation=LineageOperation.PASSAGE,
                outputs=[_Seed("CS5" if big else "T175", per_vessel)] * count,
                passage=number,
                materials=("trypsin", "medium", "hpl"),
                equipment=CULTURE_KIT,
                harvested=(harvested, 96.0),
                seeded_before=before,
                cpd=cpd,
                days=when - made_on,
            )
            seeded, made_on = per_vessel, when
        per_fill = len(vessels) // len(lots)
        for index, bags in enumerate(lots):
            group = vessels[index * per_fill : (index + 1) * per_fill]
            self.fill(group, bags, at=day(29 + 0.01 * index), seeded=seeded, cpd=cpd)
        self.b.built.units_of[self.donation_id] = self.units
        for material_id, worked in self.worked.items():
            reached = self.b.built.material_units.setdefault(material_id, set())
            reached.update(self.descendants(worked))
            self.b.built.material_donations.setdefault(material_id, set()).add(self.donation_id)
        self.b.sequences[f"UNIT:{self.din.body}"] = self.count

    def fill(
        self, vessels: list[Row], bags: int, *, at: dt.datetime, seeded: float, cpd: float
    ) -> None:
        """Final harvest and fill of a lot, then its freezing and LN2 storage."""
        harvested = 0.9 * sum(self.AREA[self.formats[v["id"]]] for v in vessels) * 1.0e5
        cells_per_bag = min(2.5e7, harvested / bags * 0.95)
        volume = 5.0
        before = seeded * len(vessels)
        cpd += math.log2(harvested / before)
        lot_id = self.b.id("lots")
        lot_number = f"{self.din.canonical}-L{self.b.next_in(f'LOT:{self.din.canonical}'):02d}"
        self.b.rows["lots"].append(
            {
                "id": lot_id,
                "lot_number": lot_number,
                "donation_id": self.donation_id,
                "product_definition_id": self.b.product_id,
                "status": LotStatus.QUARANTINE.value,
                "made_at": at,
                "made_by_id": self.b.user_id,
                "final_passage": 3,
                "final_cumulative_pd": cpd,
                "dmso_percent": 10.0,
                "expires_at": at + dt.timedelta(days=365),
                "limit_flags_json": "[]",
            }
        )
        made = self.step(
            StepKind.FILL,
            at,
            inputs=vessels,
            operation=LineageOperation.FILL,
            outputs=[
                _Seed(
                    cells=cells_per_bag,
                    volume_ml=volume,
                    concentration=cells_per_bag / volume,
                    viability=94.0,
                    lot_id=lot_id,
                )
            ]
            * bags,
            passage=3,
            materials=("trypsin", "dmso", "albumin"),
            equipment=CULTURE_KIT,
            harvested=(harvested, 94.0),
            seeded_before=before,
            cpd=cpd,
            days=7.0,
            lot_id=lot_id,
        )
        frozen = at + dt.timedelta(hours=3)
        self.step(
            StepKind.FREEZING,
            frozen,
            inputs=made,
            operation=None,
            outputs=[],
            passage=3,
            materials=(),
            equipment=FREEZE_KIT,
            cpd=cpd,
            lot_id=lot_id,
        )
        stored = at + dt.timedelta(days=1)
        for slot, bag in enumerate(made):
            previous, bag["location"] = bag["location"], "CRF-01"
            self.b.event(bag, EventType.MOVED, frozen, from_location=previous)
            place = f"LN2-01 / rack {lot_id % 9 + 1} / box {slot // 81 + 1} / slot {slot % 81 + 1}"
            previous, bag["location"] = bag["location"], place
            self.b.event(bag, EventType.MOVED, stored, from_location=previous, temperature_c=-185)
        self.b.built.lot_bags[lot_id] = [bag["id"] for bag in made]
        self.b.built.lots_of.setdefault(self.donation_id, []).append(lot_id)
        self.b.built.bags_of.setdefault(self.donation_id, []).extend(bag["id"] for bag in made)

    def descendants(self, start: Iterable[int]) -> set[int]:
        seen = set(start)
        queue = deque(seen)
        while queue:
            for child in self.children.get(queue.popleft(), ()):
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        return seen


def build(
    session: Session,
    *,
    donations: int,
    big_lot_bags: int,
    facility: str,
    user_id: int,
    product_id: int,
    rng: random.Random,
) -> Built:
    """Donations collected over the past ~11 months, oldest first; the big one in the middle."""
    now = utcnow()
    last = now - dt.timedelta(days=35)  # the last expansion is filled and stored before now
    first = last - dt.timedelta(days=300)
    equipment = dict(session.execute(select(Equipment.code, Equipment.id)).all())
    builder = TreeBuilder(
        session,
        facility=facility,
        user_id=user_id,
        product_id=product_id,
        equipment=equipment,
        first=first,
        last=last,
    )
    step = (last - first) / max(1, donations)
    for number in range(donations):
        collected_at = first + step * number
        builder.donation(collected_at, passages=(2, 4, 6, 4), lots=[rng.randint(*BAGS)])
        if number == donations // 2:
            builder.built.big_donation = builder.donation(
                collected_at + step / 2, passages=BIG_PASSAGES, lots=[big_lot_bags] * BIG_LOTS
            )
            builder.built.big_lots = builder.built.lots_of[builder.built.big_donation]
        if number % BATCH == BATCH - 1:
            builder.flush()
    builder.finish()
    return builder.built


def foreign_key_problems(session: Session) -> int:
    """SQLite does not enforce foreign keys on this schema's connections: check them once."""
    if session.get_bind().dialect.name != "sqlite":
        return 0  # PostgreSQL enforced every one on insert
    return len(session.execute(text("PRAGMA foreign_key_check")).all())


# --- timing ------------------------------------------------------------------------------------


class Statements:
    """Counts SQL statements sent (an executemany counts once); with ``log`` on, times each."""

    def __init__(self) -> None:
        self.sent = 0
        self.log: list[tuple[float, str, Any]] | None = None

    def before(self, conn: Connection, cursor: Any, statement: str, *_: Any) -> None:
        self.sent += 1
        conn.info["bench_started"] = time.perf_counter()

    def after(
        self, conn: Connection, cursor: Any, statement: str, parameters: Any, *_: Any
    ) -> None:
        if self.log is not None:
            self.log.append(
                (time.perf_counter() - conn.info["bench_started"], statement, parameters)
            )


STATEMENTS = Statements()


@dataclass
class Measured:
    label: str
    found: str
    seconds: list[float]
    statements: list[int]
    slowest: list[tuple[float, str, Any]] = field(default_factory=list)

    def row(self) -> tuple[str, ...]:
        return (
            self.label,
            self.found,
            f"{statistics.median(self.seconds) * 1000:.1f}",
            f"{min(self.seconds) * 1000:.1f}",
            f"{max(self.seconds) * 1000:.1f}",
            str(len(self.seconds)),
            f"{statistics.median(self.statements):g}",
        )


def measure(
    label: str,
    runs: int,
    action: Callable[[], Any],
    check: Callable[[Any], str],
    *,
    after: Callable[[], None] | None = None,
    explain: bool = False,
) -> Measured:
    """Run ``action`` ``runs`` times, each from a fresh session; ``check`` every answer.

    ``check`` raises if the answer is wrong and says in a few words what was found. ``after``
    (not timed) undoes what a run did, e.g. rolls a recall back. With ``explain`` one more
    run logs each statement's time, for the plans of the slowest.
    """
    seconds, statements, found = [], [], ""
    for number in range(runs + (1 if explain else 0)):
        db.session.remove()
        logging = explain and number == runs
        if logging:
            STATEMENTS.log = []
        sent = STATEMENTS.sent
        start = time.perf_counter()
        answer = action()
        elapsed = time.perf_counter() - start
        count = STATEMENTS.sent - sent
        found = check(answer)
        if after is not None:
            after()
        db.session.remove()
        if logging:
            slowest = sorted(STATEMENTS.log or [], key=lambda entry: -entry[0])[:2]
            STATEMENTS.log = None
            return Measured(label, found, seconds, statements, slowest)
        seconds.append(elapsed)
        statements.append(count)
    return Measured(label, found, seconds, statements)


def explain(statement: str, parameters: Any) -> list[str]:
    """The plan of one logged SELECT, on a connection of its own (after the run ended)."""
    head = statement.lstrip().upper()
    if not head.startswith(("SELECT", "WITH")) or "FOR UPDATE" in head:
        return ["(not a plain SELECT: no plan)"]
    with db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            depth: dict[int, int] = {0: 0}
            lines = []
            for node, parent, _, detail in rows:
                depth[node] = depth.get(parent, 0) + 1
                lines.append("  " * depth[node] + detail)
            return lines
        rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).all()
        return [row[0] for row in rows]


class CheckFailed(RuntimeError):
    """A trace or recall answered something other than what was built."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def ancestors_by_walk(session: Session, start: Iterable[int]) -> set[int]:
    """The ancestors of ``start`` (with it), walked in Python over the edges of its donations:
    an answer independent of the recursive query under test."""
    start = set(start)
    donations = select(Unit.donation_id).where(Unit.id.in_(start))
    edges = session.execute(
        select(LineageEdge.parent_id, LineageEdge.child_id)
        .join(Unit, Unit.id == LineageEdge.child_id)
        .where(Unit.donation_id.in_(donations))
    ).all()
    parents: dict[int, list[int]] = {}
    for parent, child in edges:
        parents.setdefault(child, []).append(parent)
    seen, queue = set(start), deque(start)
    while queue:
        for parent in parents.get(queue.popleft(), ()):
            if parent not in seen:
                seen.add(parent)
                queue.append(parent)
    return seen


# --- what is traced, and what each trace must answer --------------------------------------------


@dataclass(frozen=True)
class Targets:
    """The starts of the timed operations and the answers they must give."""

    infusion_id: int
    #: the donation behind the infusion (the demo's released lot), its units, those a recall
    #: blocks, and the patients with a dose of it
    infused_donation: int
    infused_units: set[int]
    infused_left: int
    dosed_patients: int
    #: the units a trace back from the infusion reaches
    infusion_back: set[int]
    typical: int
    typical_bags: int
    bag: int
    bag_back: set[int]
    big: int
    big_bags: int
    big_left: int
    big_lot: int
    material: int
    material_donations: int
    qa_id: int
    qa_password: str
    #: the units a recall of ``material`` blocks (those not in a final status)
    material_left: int = 0
    #: the material lot whose forward trace reaches closest to 1 000 units, and what a recall
    #: of it blocks
    thousand: int = 0
    thousand_units: int = 0
    thousand_left: int = 0


def find_targets(session: Session, built: Built, *, infused_donation: int, qa_id: int) -> Targets:
    """Pick the starts; what they must answer comes from ``built`` or from plain queries and
    walks in Python, never from the recursive queries under test."""
    infusion = session.execute(select(Infusion)).scalars().one()
    order = infusion.dose_order
    infused_bags = {bag.unit_id for bag in order.bags}
    final = [status.value for status in UnitStatus if status.final]

    def left(donation_id: int) -> int:
        return session.execute(
            select(func.count())
            .select_from(Unit)
            .where(Unit.donation_id == donation_id, Unit.status.not_in(final))
        ).scalar_one()

    dosed = session.execute(
        select(func.count(DoseOrder.patient_id.distinct()))
        .join(DoseBag, DoseBag.order_id == DoseOrder.id)
        .join(Unit, Unit.id == DoseBag.unit_id)
        .where(Unit.donation_id == infused_donation)
    ).scalar_one()
    donations = sorted(built.units_of)
    typical = donations[len(donations) // 4]
    bag = built.bags_of[typical][0]
    platelet_lysate = [
        lot for lot, label in built.material_label.items() if label.startswith("Human platelet")
    ]
    material = max(platelet_lysate, key=lambda lot: len(built.material_donations.get(lot, ())))
    thousand = min(
        (lot for lot in built.material_units if lot != material),
        key=lambda lot: abs(len(built.material_units[lot]) - 1000),
    )
    usable = set(session.execute(select(Unit.id).where(Unit.status.not_in(final))).scalars())

    def left_of(units: set[int]) -> int:
        return len(units & usable)

    from cellchain.demo import DEMO_USERS  # after create_app: see run()

    qa_password = next(user.password for user in DEMO_USERS if user.username == "qa")
    return Targets(
        infusion_id=infusion.id,
        infused_donation=infused_donation,
        infused_units=set(
            session.execute(select(Unit.id).where(Unit.donation_id == infused_donation)).scalars()
        ),
        infused_left=left(infused_donation),
        dosed_patients=dosed,
        infusion_back=ancestors_by_walk(session, infused_bags | {order.dose_unit_id or 0}),
        typical=typical,
        typical_bags=len(built.bags_of[typical]),
        bag=bag,
        bag_back=ancestors_by_walk(session, [bag]),
        big=built.big_donation,
        big_bags=len(built.bags_of[built.big_donation]),
        big_left=left(built.big_donation),
        big_lot=built.big_lots[0],
        material=material,
        material_donations=len(built.material_donations[material]),
        qa_id=qa_id,
        qa_password=qa_password,
        material_left=left_of(built.material_units[material]),
        thousand=thousand,
        thousand_units=len(built.material_units[thousand]),
        thousand_left=left_of(built.material_units[thousand]),
    )


def traced_units(answer: trace.ForwardTrace | trace.BackTrace) -> set[int]:
    ids = [traced.unit.id for traced in answer.units]
    require(len(ids) == len(set(ids)), f"{answer.start.label}: a unit is listed twice")
    return set(ids)


def forward_check(
    expected: set[int], *, bags: int, patients: int = 0
) -> Callable[[trace.ForwardTrace], str]:
    """Exactly the units built from the start, its bags, and the patients dosed from them."""

    def check(answer: trace.ForwardTrace) -> str:
        found = traced_units(answer)
        require(
            found == expected,
            f"{answer.start.label}: {len(found)} units found, {len(expected)} built "
            f"({len(found - expected)} extra, {len(expected - found)} missing)",
        )
        cryobags = sum(1 for t in answer.units if t.unit.kind == UnitKind.CRYOBAG.value)
        require(cryobags == bags, f"{answer.start.label}: {cryobags} cryobags found, {bags} built")
        require(
            len(answer.patients) == patients,
            f"{answer.start.label}: {len(answer.patients)} patients found, {patients} dosed",
        )
        said = f"{len(found)} units, {cryobags} bags"
        if patients:
            infused = len(trace.infused_patients(answer))
            said += f", {len(answer.dose_orders)} doses, {infused} infused"
        return said

    return check


def back_check(
    expected: set[int], *, infusion_id: int | None = None, donation_id: int | None = None
) -> Callable[[trace.BackTrace], str]:
    """Exactly the ancestors; from the infusion also its clinic path, every signature valid."""

    def check(answer: trace.BackTrace) -> str:
        found = traced_units(answer)
        require(found == expected, f"back: {len(found)} units, {len(expected)} expected")
        require(
            all(t.unit.donation_id == answer.donation.id for t in answer.units),
            "a trace back left its donation",
        )
        require(answer.steps != [], "no processing step found")
        said = f"{len(found)} units, {len(answer.steps)} steps, {len(answer.events)} events"
        if infusion_id is None:
            return said
        require(answer.donation.id == donation_id, "the infusion traced to another donation")
        (path,) = answer.clinic
        require(
            path.infusion is not None and path.infusion.id == infusion_id,
            "the infusion is missing from its own trace back",
        )
        require(len(path.thaws) == 1 and path.shipment is not None, "thaw or shipment missing")
        require(
            any(c.record.go and len(c.signatures) == 2 for c in path.bedside_checks),  # type: ignore[attr-defined]
            "the bedside go signed by two clinicians is missing",
        )
        signed = [
            path.order,
            *path.bedside_checks,
            *(lot.disposition for lot in answer.lots if lot.disposition),
            *([answer.eligibility] if answer.eligibility else []),
        ]
        manifests = [manifest for record in signed for manifest in record.signatures]
        require(all(m.valid for m in manifests), "a signature reads as invalid")
        return f"{said}, {len(manifests)} signatures"

    return check


def recall_check(blocked: int, patients: int) -> Callable[[recalls.OpenedRecall], str]:
    def check(answer: recalls.OpenedRecall) -> str:
        require(answer.blocked == blocked, f"{answer.blocked} units blocked, {blocked} expected")
        require(
            answer.exposed_patients == patients,
            f"{answer.exposed_patients} patients to notify, {patients} expected",
        )
        return f"{answer.blocked} blocked, {answer.exposed_patients} to notify"

    return check


@dataclass(frozen=True)
class Operation:
    label: str
    action: Callable[[], Any]
    check: Callable[[Any], str]
    #: writes (a recall): rolled back after each run
    writes: bool = False


def operations(session: Session, built: Built, t: Targets) -> list[Operation]:
    def recall(target: RecallTarget, target_id: int) -> Callable[[], recalls.OpenedRecall]:
        def action() -> recalls.OpenedRecall:
            opened = recalls.open_recall(
                session,
                target=target,
                target_id=target_id,
                reason="Benchmark: late positive donor test (rolled back)",
                user=session.get(User, t.qa_id),  # type: ignore[arg-type]
                password=t.qa_password,
                now=utcnow(),
            )
            session.flush()
            return opened

        return action

    qa_hash = session.execute(select(User.password_hash).where(User.id == t.qa_id)).scalar_one()
    return [
        Operation(
            "trace back from the infusion (AS-003)",
            lambda: trace.trace_back(session, "infusion", t.infusion_id),
            back_check(t.infusion_back, infusion_id=t.infusion_id, donation_id=t.infused_donation),
        ),
        Operation(
            "trace back from a cryobag",
            lambda: trace.trace_back(session, "unit", t.bag),
            back_check(t.bag_back),
        ),
        Operation(
            "trace forward from a typical donation",
            lambda: trace.trace_forward(session, "donation", t.typical),
            forward_check(set(built.units_of[t.typical]), bags=t.typical_bags),
        ),
        Operation(
            f"trace forward from the big donation ({t.big_bags} bags)",
            lambda: trace.trace_forward(session, "donation", t.big),
            forward_check(set(built.units_of[t.big]), bags=t.big_bags),
        ),
        Operation(
            "trace forward from one lot of the big donation",
            lambda: trace.trace_forward(session, "lot", t.big_lot),
            forward_check(set(built.lot_bags[t.big_lot]), bags=len(built.lot_bags[t.big_lot])),
        ),
        Operation(
            "trace forward from the infused donation",
            lambda: trace.trace_forward(session, "donation", t.infused_donation),
            forward_check(
                t.infused_units,
                bags=len(
                    session.execute(
                        select(Unit.id).where(
                            Unit.donation_id == t.infused_donation,
                            Unit.kind == UnitKind.CRYOBAG.value,
                        )
                    ).all()
                ),
                patients=t.dosed_patients,
            ),
        ),
        Operation(
            f"trace forward from a platelet lysate lot ({t.material_donations} donations)",
            lambda: trace.trace_forward(session, "material_lot", t.material),
            forward_check(
                built.material_units[t.material],
                bags=len(built.material_units[t.material] & built.all_bags()),
            ),
        ),
        Operation(
            "open a recall of the big donation (rolled back)",
            recall(RecallTarget.DONATION, t.big),
            recall_check(t.big_left, 0),
            writes=True,
        ),
        Operation(
            "open a recall of the infused donation (rolled back)",
            recall(RecallTarget.DONATION, t.infused_donation),
            recall_check(t.infused_left, 1),
            writes=True,
        ),
        Operation(
            f"open a recall of a material lot reaching {t.thousand_units} units (rolled back)",
            recall(RecallTarget.MATERIAL_LOT, t.thousand),
            recall_check(t.thousand_left, 0),
            writes=True,
        ),
        Operation(
            "open a recall of the platelet lysate lot (rolled back)",
            recall(RecallTarget.MATERIAL_LOT, t.material),
            recall_check(t.material_left, 0),
            writes=True,
        ),
        Operation(
            "of which: QA's scrypt password check alone",
            lambda: check_password_hash(qa_hash, t.qa_password),
            lambda matched: require(matched, "QA's password did not match") or "matched",
            writes=True,
        ),
    ]


# --- main --------------------------------------------------------------------------------------


@dataclass
class Database:
    """Where the benchmark writes: a temporary SQLite file or a PostgreSQL database it made."""

    url: str
    #: the SQLite file's folder
    workdir: Path | None = None
    #: a connection to PostgreSQL's maintenance database, to create and drop ours
    admin: Engine | None = None

    @classmethod
    def open(cls, postgresql: str | None) -> Database:
        if not postgresql:
            workdir = Path(tempfile.mkdtemp(prefix="bench_trace_"))
            return cls(f"sqlite:///{workdir / 'bench_trace.sqlite'}", workdir=workdir)
        url = make_url(postgresql)
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{url.database}"'))
        return cls(postgresql, admin=admin)

    def close(self, *, keep: bool) -> None:
        if self.admin is not None:
            if not keep:
                name = make_url(self.url).database
                with self.admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            self.admin.dispose()
        if self.workdir is not None and not keep:
            for path in self.workdir.iterdir():
                path.unlink()
            self.workdir.rmdir()


def count_rows(table: Table) -> int:
    return db.session.execute(select(func.count()).select_from(table)).scalar_one()


def describe(seconds: dict[str, float]) -> list[tuple[str, str]]:
    """The size of what was built, and how long building took."""
    n = {table.name: count_rows(table) for table in TABLES}
    return [
        (
            "data set",
            f"{n['donations']} donations, {n['units']} units, {n['lineage_edges']} lineage "
            f"edges, {n['unit_events']} unit events, {n['issued_identifiers']} issued identifiers",
        ),
        (
            "batch record",
            f"{n['processing_steps']} steps, {n['step_units']} step units, "
            f"{n['step_materials']} step materials, {n['step_equipment']} step equipment, "
            f"{n['cell_records']} cell records, {n['lots']} lots, {n['material_lots']} "
            "material lots",
        ),
        (
            "build",
            f"demo through the services {seconds['demo']:.1f} s, bulk rows {seconds['bulk']:.1f} s"
            + (
                f", PRAGMA foreign_key_check {seconds['check']:.1f} s"
                if db.engine.dialect.name == "sqlite"
                else " (foreign keys enforced on insert)"
            ),
        ),
    ]


@dataclass
class Report:
    #: (what, how big or how long) of the data set
    size: list[tuple[str, str]]
    results: list[Measured]
    #: with --explain: (operation, seconds, statement, plan lines) of the slowest statements
    explained: list[tuple[str, float, str, list[str]]]


def print_report(backend: str, report: Report) -> None:
    print()
    print(f"database: {backend}")
    width = max(len(label) for label, _ in report.size)
    for label, value in report.size:
        print(f"{label:<{width}}  {value}")
    print()
    header = (
        "operation",
        "answer (checked)",
        "median ms",
        "min ms",
        "max ms",
        "runs",
        "SQL statements",
    )
    rows = [measured.row() for measured in report.results]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    line = "  ".join(
        f"{{:<{widths[i]}}}" if i < 2 else f"{{:>{widths[i]}}}" for i in range(len(header))
    )
    print(line.format(*header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line.format(*row))
    for label, seconds, statement, lines in report.explained:
        print(f"\n--- {label}: a statement of {seconds * 1000:.1f} ms (to its first row)")
        print(" ".join(statement.split())[:600])
        for plan_line in lines:
            print(f"    {plan_line}")


def run(app: Flask, options: argparse.Namespace) -> Report:
    """Build the data set in the app's database, then time and check every operation."""
    # imported once the app has imported every package's tables: the demo's modules build
    # loader options at import time, which configures the mappers
    from cellchain.demo import seed_demo

    donations = max(2, round(options.donations * options.scale))
    seconds: dict[str, float] = {}
    session = db.session
    upgrade()
    event.listen(db.engine, "before_cursor_execute", STATEMENTS.before)
    event.listen(db.engine, "after_cursor_execute", STATEMENTS.after)

    started = time.perf_counter()
    site = seed_demo(
        session,
        now=utcnow(),
        facility_code=app.config["FACILITY_CODE"],
        policy=AccountPolicy.from_config(app.config),
        site_zone=ZoneInfo(app.config["SITE_TIMEZONE"]),
    )
    session.commit()
    seconds["demo"] = time.perf_counter() - started
    infused_donation = site.donations["released"].id
    qa_id = site.users["qa"].id

    started = time.perf_counter()
    built = build(
        session,
        donations=donations,
        big_lot_bags=options.big_lot_bags,
        facility=app.config["FACILITY_CODE"],
        user_id=site.users["tech"].id,
        product_id=site.donations["released"].product_definition_id,
        rng=random.Random(options.seed),
    )
    seconds["bulk"] = time.perf_counter() - started
    started = time.perf_counter()
    problems = foreign_key_problems(session)
    require(problems == 0, f"{problems} rows break a foreign key")
    seconds["check"] = time.perf_counter() - started
    size = describe(seconds)
    for label, value in size:
        print(f"{label}: {value}", flush=True)

    targets = find_targets(session, built, infused_donation=infused_donation, qa_id=qa_id)
    session.remove()
    results = []
    for operation in operations(session, built, targets):
        results.append(
            measure(
                operation.label,
                options.recall_runs if operation.writes else options.runs,
                operation.action,
                operation.check,
                after=session.rollback if operation.writes else None,
                explain=options.explain,
            )
        )
        done = results[-1]
        print(f"{done.label}: {done.found}, median {done.row()[2]} ms", flush=True)

    blocked = session.execute(
        select(func.count()).select_from(Unit).where(Unit.status == UnitStatus.BLOCKED.value)
    ).scalar_one()
    require(blocked == 0, f"{blocked} units stayed blocked: a recall was not rolled back")
    explained = [
        (measured.label, spent, statement, explain(statement, parameters))
        for measured in results
        for spent, statement, parameters in measured.slowest
    ]
    return Report(size, results, explained)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--donations", type=int, default=DEFAULT_DONATIONS)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies --donations (0.05: a quick run)"
    )
    parser.add_argument("--big-lot-bags", type=int, default=160, help="bags in each big lot")
    parser.add_argument("--runs", type=int, default=10, help="runs of each trace")
    parser.add_argument("--recall-runs", type=int, default=5, help="runs of each recall")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--database", help="PostgreSQL URL of a database to create and drop")
    parser.add_argument("--explain", action="store_true", help="plans of the slowest statements")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    options = parser.parse_args()
    if not 1 <= options.big_lot_bags <= 200:
        parser.error("--big-lot-bags: a lot has 1 to 200 bags (MAX_BAGS_PER_LOT)")

    database = Database.open(options.database)
    try:
        app = create_app({"ENV_NAME": "testing", "SQLALCHEMY_DATABASE_URI": database.url})
        with app.app_context():
            try:
                report = run(app, options)
            finally:
                db.session.remove()
                db.engine.dispose()
    finally:
        database.close(keep=options.keep)
    if options.keep:
        report.size.append(("kept", database.url))
    print_report(make_url(database.url).get_backend_name(), report)


if __name__ == "__main__":
    main()
