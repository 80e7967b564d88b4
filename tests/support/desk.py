"""A filled lot in quarantine, the UC-MSC specification in force, and helpers for QC and QA."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.quality import results, service
from cellchain.quality.defaults import UC_MSC_TESTS
from tests.conftest import TEST_PASSWORD
from tests.support.bench import Bench
from tests.support.scenes import scene

UTC = dt.UTC

#: A value inside every criterion of the default specification (viable cells: the label's
#: 1 × 10^8 total cells × 93 % viable at fill).
PASSING: dict[str, Any] = {
    "STERILITY": "no growth",
    "MYCOPLASMA": "negative",
    "ENDOTOXIN": 0.12,
    "VIABILITY": 93.0,
    "VIABLE-CELLS": 9.3e7,
    "CD73": 99.1,
    "CD90": 98.7,
    "CD105": 97.5,
    "CD34": 0.4,
    "CD45": 0.6,
    "CD14": 0.3,
    "CD19": 0.2,
    "HLA-DR": 0.9,
    "KARYOTYPE": "normal",
    "POTENCY": 41.0,
}
assert set(PASSING) == {test["code"] for test in UC_MSC_TESTS}


@dataclass
class Desk:
    """The QC lab and QA office for one lot made on the bench."""

    bench: Bench
    lot: Any

    @property
    def lab(self) -> Any:
        return self.bench.lab

    def sample(self, *, tubes: int = 1, used_up: bool = True) -> list[Any]:
        """Draw tubes from the last bag still in quarantine."""
        bags = results.processing.bags_of(db.session, self.lot)
        bag = [bag for bag in bags if bag.status == "quarantine"][-1]
        taken = results.take_samples(
            db.session,
            self.lot,
            results.SampleRequest(bag_code=bag.code, tubes=tubes, bag_used_up=used_up),
            actor=self.lab.qc,
            now=utcnow(),
        )
        db.session.commit()
        return taken

    def entry(self, code: str, value: Any = None, **changes: Any) -> results.ResultEntry:
        values: dict[str, Any] = {
            "test_code": code,
            "value": PASSING[code] if value is None else value,
            "instrument": "FLOW-01",
            "tested_on": utcnow().date(),
        }
        values.update(changes)
        return results.ResultEntry(**values)

    def record(self, *entries: results.ResultEntry, sample: Any = None, actor: Any = None):
        sample = sample or self.sample()[0]
        recorded = results.record_results(
            db.session,
            self.lot,
            sample_code=sample.unit.code,
            entries=list(entries),
            actor=actor or self.lab.qc,
            now=utcnow(),
            site_zone=UTC,
        )
        db.session.commit()
        return recorded

    def full_panel(self, **overrides: Any) -> list[Any]:
        """Record every test of the specification, passing unless ``overrides`` says otherwise
        (a value of ``None`` in ``overrides`` leaves that test out)."""
        entries = [
            self.entry(code, overrides.get(code, PASSING[code]))
            for code in PASSING
            if not (code in overrides and overrides[code] is None)
        ]
        return self.record(*entries)


@scene
def spec(lab: Any) -> Any:
    """The default UC-MSC specification, approved by QA."""
    draft = service.SPECIFICATIONS.load_default(db.session, actor=lab.qa, now=utcnow())
    service.SPECIFICATIONS.approve(
        db.session, draft, user=lab.qa, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
    return draft


@scene
def desk(bench: Bench, spec: Any) -> Desk:
    """A lot of 10 bags in quarantine: 20 mL at 5 × 10^6 total cells/mL, 1 × 10^8 total cells
    each, 93 % viable at fill (9.3 × 10^7 viable cells)."""
    donation = bench.lab.eligible_donation()
    step = bench.isolate(donation, vessels=2)
    step = bench.passage(bench.outputs(step), harvested=3.0e7, seed=[5.0e6] * 4, fmt="CS5")
    lot = bench.fill(bench.outputs(step), harvested=1.1e9)
    return Desk(bench=bench, lot=lot)
