"""A lab with materials and equipment on file, and an eligible, received donation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import CellRecord, EquipmentKind, MaterialCategory
from cellchain.manufacturing.processing import processing, resources
from tests.conftest import TEST_PASSWORD
from tests.support.equipment import register_in_date
from tests.support.scenes import scene

#: How long the bench's vessels have been in culture when harvested (days): long enough for
#: the large doublings the limit tests need (one per 12 h at most).
CULTURE_DAYS = 21.0


@dataclass
class Bench:
    """What the technician has at hand: released materials, equipment, helpers for steps."""

    lab: Any
    materials: dict[str, Any]
    equipment: dict[str, Any]

    def context(self, **changes: Any) -> processing.StepContext:
        values: dict[str, Any] = {
            "material_lot_ids": (self.materials["medium"].id, self.materials["hpl"].id),
            "equipment_ids": (self.equipment["BSC-01"].id, self.equipment["INC-01"].id),
        }
        values.update(changes)
        return processing.StepContext(**values)

    def isolation_body(self, donation: Any = None, **changes: Any) -> dict[str, Any]:
        """The API's body of an isolation of ``donation``'s tissue (a new eligible donation's
        by default): one T175 at 1e6, the medium, the biosafety cabinet and the incubator
        (``changes`` replace)."""
        donation = donation or self.lab.eligible_donation()
        body: dict[str, Any] = {
            "tissue": [donation.units[0].code],
            "method": "enzymatic",
            "vessel_count": 1,
            "vessel_format": "T175",
            "cells_per_vessel": 1e6,
            "materials": [self.materials["medium"].id],
            "equipment": [self.equipment["BSC-01"].id, self.equipment["INC-01"].id],
        }
        return {**body, **changes}

    def isolate(self, donation: Any, vessels: int = 3, cells: float | None = 1.0e6) -> Any:
        step = processing.isolate(
            db.session,
            donation,
            tissue=donation.units[:1],
            method="enzymatic" if cells else "explant",
            vessels=[processing.Vessel("T175", cells)] * vessels,
            context=self.context(),
            actor=self.lab.tech,
            now=utcnow(),
        )
        db.session.commit()
        self.age(self.outputs(step))
        return step

    def age(self, vessels: list[Any], days: float = CULTURE_DAYS) -> None:
        """The vessels as if seeded ``days`` ago: a harvest right after its seeding, or cells
        doubling faster than MSC can, is refused (``processing._days_in_culture``)."""
        for vessel in vessels:
            record = db.session.get(CellRecord, vessel.id)
            record.made_at -= dt.timedelta(days=days)
        db.session.commit()

    def outputs(self, step: Any) -> list[Any]:
        return [row.unit for row in step.units if row.role == "output"]

    def passage(
        self,
        vessels: list[Any],
        harvested: float,
        seed: list[float],
        fmt: str = "T175",
        deviation_id: int | None = None,
    ) -> Any:
        step = processing.passage(
            db.session,
            vessels_in=vessels,
            harvest=processing.Harvest(cells=harvested, viability_percent=95.0),
            vessels_out=[processing.Vessel(fmt, cells) for cells in seed],
            context=self.context(deviation_id=deviation_id),
            actor=self.lab.tech,
            now=utcnow(),
        )
        db.session.commit()
        self.age(self.outputs(step))
        return step

    def fill(self, vessels: list[Any], harvested: float, bags: int = 10, **fill: Any) -> Any:
        values = {"bag_count": bags, "volume_ml": 20.0, "total_cells_per_ml": 5.0e6}
        values["dmso_percent"] = 10.0
        deviation_id = fill.pop("deviation_id", None)
        values.update(fill)
        lot = processing.fill_lot(
            db.session,
            vessels_in=vessels,
            harvest=processing.Harvest(cells=harvested, viability_percent=93.0),
            fill=processing.Fill(**values),
            context=self.context(
                material_lot_ids=(self.materials["dmso"].id, self.materials["albumin"].id),
                deviation_id=deviation_id,
            ),
            actor=self.lab.tech,
            now=utcnow(),
        )
        db.session.commit()
        return lot

    def p5(self, donation: Any) -> list[Any]:
        """One vessel of ``donation`` at P5, the product's last passage (CPD 10)."""
        vessels = self.outputs(self.isolate(donation, vessels=1, cells=1.0e5))
        for _ in range(5):
            vessels = self.outputs(self.passage(vessels, harvested=4.0e5, seed=[1.0e5]))
        return vessels

    def authorised_excursion(self, donation: Any, **limits: Any) -> Any:
        """A limit-excursion deviation of ``donation``, authorised by QA up to ``limits``
        (``max_passage``, ``max_cumulative_pd``)."""
        deviation = deviations.open_deviation(
            db.session,
            lot=None,
            donation=donation,
            category="limit_excursion",
            description="P6 needed to reach the dose for AS-007",
            actor=self.lab.tech,
            now=utcnow(),
        )
        deviations.authorise_excursion(
            db.session,
            deviation,
            max_passage=limits.get("max_passage"),
            max_cumulative_pd=limits.get("max_cumulative_pd"),
            justification="Karyotype and potency are tested on this lot before any use",
            user=self.lab.qa,
            password=TEST_PASSWORD,
            now=utcnow(),
        )
        db.session.commit()
        return deviation


@scene
def bench(lab: Any) -> Bench:
    now = utcnow()
    soon = now.date() + dt.timedelta(days=180)
    materials = {}
    for key, name, category in (
        ("medium", "α-MEM", MaterialCategory.MEDIUM),
        ("hpl", "Human platelet lysate", MaterialCategory.SUPPLEMENT),
        ("dmso", "DMSO (Ph. Eur.)", MaterialCategory.CRYOPROTECTANT),
        ("albumin", "Human albumin 20 %", MaterialCategory.EXCIPIENT),
    ):
        lot = resources.receive_material_lot(
            db.session,
            resources.MaterialLotInput(name, category, "Supplier AG", f"{key}-001", soon),
            actor=lab.tech,
            now=now,
        )
        resources.release_material_lot(db.session, lot, actor=lab.qa, now=now)
        materials[key] = lot
    equipment = {
        code: register_in_date(
            db.session, code=code, kind=kind, name=code, actor=lab.tech, now=now
        )
        for code, kind in (
            ("BSC-01", EquipmentKind.BIOSAFETY_CABINET),
            ("INC-01", EquipmentKind.INCUBATOR),
            ("CRF-01", EquipmentKind.CONTROLLED_RATE_FREEZER),
            ("LN2-01", EquipmentKind.LN2_TANK),
        )
    }
    db.session.commit()
    return Bench(lab=lab, materials=materials, equipment=equipment)
