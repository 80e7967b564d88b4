"""Counted material lots on the bench (issue 22): received with a quantity, released."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.models import MaterialCategory, StockUnit
from cellchain.manufacturing.processing import processing, resources

UTC = ZoneInfo("UTC")


@dataclass
class Stocked:
    """The bench and counted lots: α-MEM 1000 mL, lysate 100 mL, DMSO 100 mL, albumin
    1000 mL, cryobags 50 units."""

    bench: Any
    lots: dict[str, Any]

    @property
    def tech(self) -> Any:
        return self.bench.lab.tech

    def receive(
        self,
        key: str,
        name: str,
        category: MaterialCategory,
        quantity: float,
        unit: StockUnit,
        *,
        expiry: dt.date | None = None,
        released_at: dt.datetime | None = None,
        release: bool = True,
        zone: ZoneInfo = UTC,
    ) -> Any:
        now = utcnow()
        lot = resources.receive_material_lot(
            db.session,
            resources.MaterialLotInput(
                name,
                category,
                "Stock Supplier",
                f"{key}-S1",
                expiry or now.date() + dt.timedelta(days=200),
                quantity,
                unit,
            ),
            actor=self.tech,
            now=now,
        )
        if release:
            resources.release_material_lot(
                db.session, lot, actor=self.bench.lab.qa, now=released_at or now, zone=zone
            )
        db.session.commit()
        self.lots[key] = lot
        return lot

    def context(self, *keys: str, **changes: Any) -> processing.StepContext:
        return self.bench.context(
            material_lot_ids=tuple(self.lots[key].id for key in keys), **changes
        )

    def isolate(self, *keys: str, quantities: dict[str, float] | None = None, **changes: Any):
        donation = self.bench.lab.eligible_donation()
        step = processing.isolate(
            db.session,
            donation,
            tissue=donation.units[:1],
            method="enzymatic",
            vessels=[processing.Vessel("T175", 1.0e6)] * 2,
            context=self.context(
                *keys,
                material_quantities={
                    self.lots[key].id: value for key, value in (quantities or {}).items()
                },
                **changes,
            ),
            actor=self.tech,
            now=utcnow(),
        )
        db.session.commit()
        self.bench.age(self.bench.outputs(step))
        return step

    def fill(self, *keys: str, quantities: dict[str, float] | None = None) -> Any:
        """A lot of 4 bags × 20 mL at 10 % DMSO from a new isolation's two vessels, using
        the lots named by ``keys``."""
        vessels = self.bench.outputs(self.isolate("medium", quantities={"medium": 60}))
        lot = processing.fill_lot(
            db.session,
            vessels_in=vessels,
            harvest=processing.Harvest(cells=3.0e7, viability_percent=93.0),
            fill=processing.Fill(
                bag_count=4, volume_ml=20.0, total_cells_per_ml=1.0e5, dmso_percent=10
            ),
            context=self.context(
                *keys,
                material_quantities={
                    self.lots[key].id: value for key, value in (quantities or {}).items()
                },
            ),
            actor=self.tech,
            now=utcnow(),
        )
        db.session.commit()
        return lot


@pytest.fixture
def stocked(bench: Any) -> Stocked:
    stock = Stocked(bench, {})
    for key, name, category, quantity, unit in (
        ("medium", "α-MEM", MaterialCategory.MEDIUM, 1000, StockUnit.ML),
        ("hpl", "Human platelet lysate", MaterialCategory.SUPPLEMENT, 100, StockUnit.ML),
        ("dmso", "DMSO (Ph. Eur.)", MaterialCategory.CRYOPROTECTANT, 100, StockUnit.ML),
        ("albumin", "Human albumin 20 %", MaterialCategory.EXCIPIENT, 1000, StockUnit.ML),
        ("bags", "Cryobag 50 mL", MaterialCategory.CONSUMABLE, 50, StockUnit.UNITS),
    ):
        stock.receive(key, name, category, quantity, unit)
    return stock
