"""A harvest that cannot be true is refused (issue 16 item 8): at the moment of seeding, or with
counts that imply the cells doubled faster than the product's minimum doubling time."""

from __future__ import annotations

import datetime as dt

import pytest

from cellchain.errors import InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing.models import CellRecord
from cellchain.manufacturing.processing import processing
from cellchain.manufacturing.processing.doublings import culture_time_problem


@pytest.mark.parametrize(
    ("days", "doublings", "refused"),
    [
        (0.0, 2.0, "at the moment they were seeded"),
        (-0.1, None, "at the moment they were seeded"),
        (0.0, None, "at the moment they were seeded"),  # an uncounted explant culture too
        (1.0, 2.0, None),  # one doubling every 12 h: the fastest allowed
        (0.99, 2.0, "one every 11.9 h"),
        (1 / 24, 0.0, None),  # no growth claimed, nothing implied
        (1 / 24, -0.5, None),  # cells lost
        (7.0, 3.0, None),
    ],
)
def test_culture_time_against_the_doublings_it_implies(
    days: float, doublings: float | None, refused: str | None
) -> None:
    problem = culture_time_problem(days, doublings, 12.0)
    if refused is None:
        assert problem is None
    else:
        assert problem is not None and refused in problem


def passage_at(bench, vessels, performed_at, harvested=4.0e6):
    return processing.passage(
        db.session,
        vessels_in=vessels,
        harvest=processing.Harvest(harvested, 95.0),
        vessels_out=[processing.Vessel("T175", 1.0e6)],
        context=bench.context(performed_at=performed_at),
        actor=bench.lab.tech,
        now=performed_at + dt.timedelta(minutes=1),
    )


def test_a_passage_harvested_when_it_was_seeded_or_doubling_too_fast_is_refused(bench) -> None:
    p0 = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1, cells=1.0e6))
    seeded_at = db.session.get(CellRecord, p0[0].id).made_at
    unit_made = max(seeded_at, p0[0].created_at)
    db.session.get(CellRecord, p0[0].id).made_at = unit_made  # seeded when the flask was made
    db.session.commit()
    with pytest.raises(InvalidInput, match="at the moment they were seeded") as refused:
        passage_at(bench, p0, unit_made)
    assert "performed_at" in refused.value.errors
    db.session.rollback()
    # 1e6 → 4e6 is 2 doublings: in 20 h that is one every 10 h, faster than MSC grow
    db.session.get(CellRecord, p0[0].id).made_at = unit_made - dt.timedelta(hours=20)
    db.session.commit()
    with pytest.raises(InvalidInput, match=r"one every 10\.0 h"):
        passage_at(bench, p0, unit_made)
    db.session.rollback()
    db.session.get(CellRecord, p0[0].id).made_at = unit_made - dt.timedelta(days=3)
    db.session.commit()
    step = passage_at(bench, p0, unit_made)
    assert step.days_in_culture == pytest.approx(3.0)
    assert step.population_doublings == pytest.approx(2.0)
