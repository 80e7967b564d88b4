"""The batch record: isolation, passages, banks, fill; PD/CPD computed; every refusal."""

from __future__ import annotations

import math
from datetime import UTC

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cellchain.chain import service as chain
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing.models import ProcessingStep
from cellchain.manufacturing.processing import processing
from cellchain.manufacturing.processing.doublings import cumulative_after, population_doublings

counts = st.floats(min_value=1.0, max_value=1e12, allow_nan=False, allow_infinity=False)


@settings(max_examples=200)
@given(counts, counts)
def test_population_doublings_is_log2_of_the_fold_expansion(seeded, harvested):
    pd = population_doublings(seeded, harvested)
    assert math.isclose(2**pd * seeded, harvested, rel_tol=1e-9)


@settings(max_examples=200)
@given(counts, counts, counts)
def test_doublings_of_consecutive_passages_add_up(a, b, c):
    # seeding a, harvesting b, then seeding b and harvesting c: as one expansion a → c
    a, b, c = sorted((a, b, c))  # expansions; a loss adds nothing (next tests)
    total = cumulative_after(
        [cumulative_after([0.0], population_doublings(a, b))], population_doublings(b, c)
    )
    assert math.isclose(total, population_doublings(a, c), rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=100)
@given(
    st.lists(st.one_of(st.none(), st.floats(0, 60)), min_size=1, max_size=5),
    st.one_of(st.none(), st.floats(-5, 15)),
)
def test_the_highest_parent_cpd_is_carried_on(parents, pd):
    expected = max([p for p in parents if p is not None], default=0.0) + max(pd or 0.0, 0.0)
    assert cumulative_after(parents, pd) == expected


def test_a_harvest_below_the_seeding_never_lowers_the_cpd(bench):
    # 39.5 doublings, then a passage losing cells: the CPD stays 39.5, it does not drop to
    # 38.5 and hide a later excursion beyond 40
    assert cumulative_after([39.5], population_doublings(2.0e6, 1.0e6)) == 39.5
    donation = bench.lab.eligible_donation()
    vessels = bench.outputs(bench.isolate(donation, vessels=1, cells=1.0e6))
    up = bench.passage(vessels, harvested=8.0e6, seed=[2.0e6])
    down = bench.passage(bench.outputs(up), harvested=1.0e6, seed=[1.0e6])
    assert math.isclose(down.population_doublings, -1.0)  # recorded as counted
    assert math.isclose(down.cumulative_pd, up.cumulative_pd)  # not lowered


@pytest.mark.parametrize(("seeded", "harvested"), [(0, 1), (1, 0), (-1, 5), (math.nan, 2)])
def test_population_doublings_refuses_counts_that_are_not_positive(seeded, harvested):
    with pytest.raises(InvalidInput):
        population_doublings(seeded, harvested)


def test_p0_to_p3_and_a_fill_of_ten_bags(bench):
    lab = bench.lab
    donation = lab.eligible_donation()
    iso = bench.isolate(donation, vessels=2, cells=1.0e6)
    p0 = bench.outputs(iso)
    assert [chain.get_unit(db.session, v.id).status for v in p0] == ["quarantine"] * 2
    assert donation.status == "processing"
    p1_step = bench.passage(p0, harvested=8.0e6, seed=[1.0e6] * 4)
    assert math.isclose(p1_step.population_doublings, 2.0)  # 2e6 seeded → 8e6
    assert p1_step.passage == 1 and math.isclose(p1_step.cumulative_pd, 2.0)
    p1 = bench.outputs(p1_step)
    assert {u.status for u in p0} == {"consumed"}
    p2_step = bench.passage(p1, harvested=3.2e7, seed=[2.0e6] * 8)
    assert math.isclose(p2_step.population_doublings, 3.0)
    assert math.isclose(p2_step.cumulative_pd, 5.0)
    p3_step = bench.passage(bench.outputs(p2_step), harvested=1.2e8, seed=[1.0e7] * 8, fmt="CS2")
    assert math.isclose(p3_step.cumulative_pd, 5.0 + math.log2(1.2e8 / 1.6e7))
    lot = bench.fill(bench.outputs(p3_step), harvested=1.0e9, bags=10)
    bags = processing.bags_of(db.session, lot)
    assert len(bags) == 10 and {b.kind for b in bags} == {"cryobag"}
    assert lot.status == "quarantine" and lot.final_passage == 3 and lot.limit_flags == []
    assert lot.lot_number == donation.din + "-L01"
    records = processing.cell_records(db.session, bags)
    assert {r.cells for r in records.values()} == {1.0e8}
    back = chain.trace_back(db.session, bags[0])
    assert donation.units[0].id in {step.unit.id for step in back}


def test_a_passage_beyond_the_limit_is_authorised_by_qa_and_flags_the_lot(bench):
    donation = bench.lab.eligible_donation()
    vessels = bench.p5(donation)
    deviation = bench.authorised_excursion(donation, max_passage=6)
    step = bench.passage(vessels, harvested=4.0e5, seed=[1.0e5], deviation_id=deviation.id)
    assert step.passage == 6 and step.deviation_id == deviation.id
    lot = bench.fill(
        bench.outputs(step),
        harvested=4.0e5,
        bags=1,
        volume_ml=0.01,
        dmso_percent=12,
        deviation_id=deviation.id,
    )
    assert lot.final_passage == 6
    assert lot.limit_flags == [
        "passage P6 exceeds the maximum P5",
        "DMSO 12 % is outside 5–10 %",
    ]
    fill_step = db.session.scalars(
        select(ProcessingStep).where(ProcessingStep.lot_id == lot.id)
    ).one()
    assert fill_step.deviation_id == deviation.id


def test_cpd_limit_flags_the_lot(bench):
    donation = bench.lab.eligible_donation()
    vessels = bench.outputs(bench.isolate(donation, vessels=1, cells=100.0))
    for _ in range(2):  # 100 → 1.6e7 cells is 17.3 doublings a passage
        vessels = bench.outputs(bench.passage(vessels, harvested=1.6e7, seed=[100.0]))
    with pytest.raises(Conflict, match=r"cumulative PD 51\.9 \(maximum 40\)") as refused:
        bench.passage(vessels, harvested=1.6e7, seed=[100.0])
    assert refused.value.errors["deviation_id"]
    db.session.rollback()
    deviation = bench.authorised_excursion(donation, max_cumulative_pd=70)
    step = bench.passage(vessels, harvested=1.6e7, seed=[100.0], deviation_id=deviation.id)
    assert step.cumulative_pd > 40 and step.deviation_id == deviation.id
    lot = bench.fill(
        bench.outputs(step), harvested=1.6e7, bags=1, volume_ml=0.01, deviation_id=deviation.id
    )
    assert lot.limit_flags == [
        f"cumulative PD {lot.final_cumulative_pd:.1f} exceeds the maximum 40"
    ]


def test_bank_freeze_and_thaw_carry_the_cpd_on(bench):
    donation = bench.lab.eligible_donation()
    p0 = bench.outputs(bench.isolate(donation, vessels=1, cells=1.0e6))
    bank = processing.bank_freeze(
        db.session,
        vessels_in=p0,
        harvest=processing.Harvest(4.0e6, 96),
        vial_count=4,
        cells_per_vial=1.0e6,
        volume_ml=1.0,
        context=bench.context(),
        actor=bench.lab.tech,
        now=utcnow(),
    )
    db.session.commit()
    vials = bench.outputs(bank)
    assert [v.kind for v in vials] == ["bank_vial"] * 4 and math.isclose(bank.cumulative_pd, 2.0)
    thaw = processing.bank_thaw(
        db.session,
        vial=vials[0],
        viability_percent=90,
        vessels_out=[processing.Vessel("T175", 9e5)],
        context=bench.context(),
        actor=bench.lab.tech,
        now=utcnow(),
        zone=UTC,
    )
    db.session.commit()
    assert thaw.passage == 1 and math.isclose(thaw.cumulative_pd, 2.0)
    assert chain.get_unit(db.session, vials[0].id).status == "consumed"


# --- refusals -----------------------------------------------------------------------------


def test_implausible_harvest_is_refused_and_nothing_saved(bench):
    donation = bench.lab.eligible_donation()
    p0 = bench.outputs(bench.isolate(donation, vessels=1))
    with pytest.raises(InvalidInput, match="physically plausible") as refused:
        bench.passage(p0, harvested=175 * 1.0e5 + 1, seed=[1.0e6])
    assert "cells_harvested" in refused.value.errors
    db.session.rollback()
    assert chain.get_unit(db.session, p0[0].id).status == "quarantine"


@pytest.mark.parametrize(
    ("harvested", "viability", "seed", "field"),
    [
        (4.0e6, 101.0, [1.0e6], "viability_percent"),
        (4.0e6, -1.0, [1.0e6], "viability_percent"),
        (0.0, 95.0, [1.0e6], "cells_harvested"),
        (4.0e6, 95.0, [0.0], "cells_seeded"),
        (4.0e6, 95.0, [-5.0], "cells_seeded"),
        (4.0e6, 95.0, [3.0e6, 3.0e6], "cells_harvested"),  # seeding more than harvested
    ],
)
def test_bad_counts_are_refused(bench, harvested, viability, seed, field):
    donation = bench.lab.eligible_donation()
    p0 = bench.outputs(bench.isolate(donation, vessels=1))
    with pytest.raises(InvalidInput) as refused:
        processing.passage(
            db.session,
            vessels_in=p0,
            harvest=processing.Harvest(harvested, viability),
            vessels_out=[processing.Vessel("T175", c) for c in seed],
            context=bench.context(),
            actor=bench.lab.tech,
            now=utcnow(),
        )
    assert field in refused.value.errors
    db.session.rollback()


def test_a_vessel_of_another_donation_is_refused(bench):
    first = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1))
    second = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1))
    with pytest.raises(Conflict, match="never combined"):
        bench.passage(first + second, harvested=4.0e6, seed=[1.0e6])


def test_a_consumed_vessel_is_refused(bench):
    p0 = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1))
    bench.passage(p0, harvested=4.0e6, seed=[1.0e6])
    with pytest.raises(Conflict, match="consumed"):
        bench.passage(p0, harvested=4.0e6, seed=[1.0e6])


def test_an_expired_or_unreleased_reagent_is_refused(bench):
    import datetime as dt

    from cellchain.manufacturing.models import MaterialCategory
    from cellchain.manufacturing.processing import resources

    lab = bench.lab
    p0 = bench.outputs(bench.isolate(lab.eligible_donation(), vessels=1))
    unreleased = resources.receive_material_lot(
        db.session,
        resources.MaterialLotInput(
            "Trypsin", MaterialCategory.ENZYME, "S", "T-9", utcnow().date() + dt.timedelta(days=30)
        ),
        actor=lab.tech,
        now=utcnow(),
    )
    expired = resources.receive_material_lot(
        db.session,
        resources.MaterialLotInput(
            "Trypsin", MaterialCategory.ENZYME, "S", "T-1", utcnow().date() - dt.timedelta(days=1)
        ),
        actor=lab.tech,
        now=utcnow(),
    )
    expired.released_at = utcnow()  # released before it expired
    db.session.commit()
    for lot, words in ((unreleased, "not been released"), (expired, "expired")):
        with pytest.raises(Conflict, match=words):
            processing.passage(
                db.session,
                vessels_in=p0,
                harvest=processing.Harvest(4.0e6, 95),
                vessels_out=[processing.Vessel("T175", 1.0e6)],
                context=bench.context(material_lot_ids=(lot.id,)),
                actor=lab.tech,
                now=utcnow(),
            )
        db.session.rollback()


def test_processing_is_refused_for_rejected_or_ineligible_donations(bench):
    lab = bench.lab
    rejected = lab.receive(lab.register(), accept=False, note="leaking")
    with pytest.raises(Conflict, match="rejected at receipt"):
        bench.isolate(rejected)
    db.session.rollback()
    ineligible = lab.receive(lab.register())
    lab.full_panel(ineligible, results={"HBSAG": processing.donors.InfectiousResult.REACTIVE})
    lab.determine(ineligible, eligible=False, reason="HBsAg reactive")
    with pytest.raises(Conflict, match="ineligible"):
        bench.isolate(ineligible)


def test_thawing_a_stored_vial_frees_its_slot(bench):
    from cellchain.manufacturing.storage import storage

    p0 = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1, cells=1.0e6))
    bank = processing.bank_freeze(
        db.session,
        vessels_in=p0,
        harvest=processing.Harvest(4.0e6, 96),
        vial_count=2,
        cells_per_vial=1.0e6,
        volume_ml=1.0,
        context=bench.context(),
        actor=bench.lab.tech,
        now=utcnow(),
    )
    [vial, _other] = bench.outputs(bank)
    tank = bench.equipment["LN2-01"]
    storage.store_unit(
        db.session,
        vial,
        tank=tank,
        rack="1",
        box="1",
        slot="1",
        actor=bench.lab.tech,
        now=utcnow(),
        zone=UTC,
    )
    db.session.commit()
    processing.bank_thaw(
        db.session,
        vial=vial,
        viability_percent=90,
        vessels_out=[processing.Vessel("T175", 9e5)],
        context=bench.context(),
        actor=bench.lab.tech,
        now=utcnow(),
        zone=UTC,
    )
    db.session.commit()
    assert storage.position_of(db.session, vial) is None
    assert [p.unit_id for p in storage.tank_contents(db.session, tank)] in ([], [None])
