"""The dose arithmetic of DOMAIN.md §7 against hand-worked examples, and its invariants."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellchain.dosing.calculation import (
    Bag,
    DoseParameters,
    NotEnoughCells,
    calculate,
    choose_bags,
    round_volume,
)
from cellchain.dosing.defaults import NCT01420432_PARAMETERS

PARAMETERS = DoseParameters.from_protocol(NCT01420432_PARAMETERS)
SOON = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def bag(
    code: str = "B1",
    *,
    conc: float = 5.0e6,
    viability: float = 90.0,
    volume: float = 20.0,
    dmso: float = 10.0,
    endotoxin: float | None = 0.1,
    expires: dt.datetime = SOON,
) -> Bag:
    return Bag(code, conc, viability, volume, dmso, endotoxin, expires)


def test_the_domain_example_70_kg_draws_15_6_ml_and_delivers_7_02e7_cells() -> None:
    dose = calculate(70.0, [bag()], PARAMETERS)
    assert dose.target_cells == pytest.approx(7.0e7)
    (draw,) = dose.draws
    assert draw.volume_ml == 15.6 and not draw.whole_bag
    assert dose.delivered_cells == pytest.approx(7.02e7)
    assert dose.deviation_percent == pytest.approx(0.2857, abs=1e-4)
    assert dose.within_tolerance
    assert dose.dmso_g_per_kg == pytest.approx(15.6 * 0.10 * 1.10 / 70)
    assert dose.endotoxin_eu_per_kg == pytest.approx(15.6 * 0.1 / 70)
    assert dose.acceptable
    assert any("15.556 mL → 15.6 mL" in line for line in dose.working)


def test_a_heavy_patient_takes_a_whole_bag_and_the_rest_from_a_second() -> None:
    first = bag("B1", expires=SOON)
    second = bag("B2", expires=SOON + dt.timedelta(days=1))
    chosen = choose_bags([second, first], PARAMETERS.dose_per_kg * 120)
    assert [b.code for b in chosen] == ["B1", "B2"]  # first-expiring first
    dose = calculate(120.0, chosen, PARAMETERS)
    whole, partial = dose.draws
    assert whole.whole_bag and whole.volume_ml == 20.0 and whole.cells == pytest.approx(9.0e7)
    assert partial.volume_ml == 6.7  # 3.0e7 / 4.5e6 = 6.667 mL
    assert dose.delivered_cells == pytest.approx(9.0e7 + 6.7 * 4.5e6)
    assert dose.deviation_percent == pytest.approx(0.125)
    assert dose.volume_ml == 26.7


def test_a_draw_never_takes_more_than_the_bag_holds_and_then_falls_short() -> None:
    small = bag(conc=1.0e6, viability=100.0, volume=5.0)
    dose = calculate(5.2, [small], PARAMETERS)  # 5.2 mL needed, 5.0 mL in the bag
    (draw,) = dose.draws
    assert draw.volume_ml == 5.0 and draw.whole_bag
    assert dose.deviation_percent == pytest.approx(-3.846, abs=1e-3) and dose.within_tolerance
    short = calculate(6.0, [small], PARAMETERS)
    assert short.deviation_percent == pytest.approx(-16.667, abs=1e-3)
    assert not short.within_tolerance and not short.acceptable


def test_ceilings_dmso_and_endotoxin_refuse_when_exceeded_or_unknown() -> None:
    dilute = bag(conc=1.0e6, viability=80.0, volume=100.0, dmso=10.0, endotoxin=0.49)
    dose = calculate(60.0, [dilute], PARAMETERS)  # 75 mL of 10 % DMSO for 60 kg
    assert dose.dmso_g_per_kg == pytest.approx(75 * 0.1 * 1.1 / 60)
    assert dose.dmso_within  # 0.1375 g/kg < 1 g/kg
    assert dose.endotoxin_eu_per_kg == pytest.approx(75 * 0.49 / 60)
    assert dose.endotoxin_within
    strong = bag(conc=1.0e6, viability=80.0, volume=100.0, dmso=95.0, endotoxin=5.0)
    heavy = calculate(60.0, [strong], PARAMETERS)
    assert not heavy.dmso_within and not heavy.endotoxin_within and not heavy.acceptable
    unknown = calculate(70.0, [bag(endotoxin=None)], PARAMETERS)
    assert unknown.endotoxin_eu_per_kg is None and not unknown.acceptable


def test_fewest_bags_wins_over_expiry_and_too_few_cells_is_refused() -> None:
    early_small = bag("EARLY", volume=5.0, expires=SOON)
    late_large = bag("LATE", volume=40.0, expires=SOON + dt.timedelta(days=30))
    assert [b.code for b in choose_bags([early_small, late_large], 7.0e7)] == ["LATE"]
    assert [b.code for b in choose_bags([early_small, late_large], 1.0e7)] == ["EARLY"]
    with pytest.raises(NotEnoughCells):
        choose_bags([early_small], 1.0e9)


def test_rounding_is_half_up_to_the_graduation() -> None:
    assert round_volume(15.55, 0.1) == 15.6
    assert round_volume(15.549, 0.1) == 15.5
    assert round_volume(0.05, 0.1) == 0.1


bags_strategy = st.lists(
    st.builds(
        bag,
        code=st.text("ABCDEFGH", min_size=1, max_size=4),
        conc=st.floats(1.0e6, 1.0e7),
        viability=st.floats(70.0, 100.0),
        volume=st.sampled_from([5.0, 10.0, 20.0, 50.0]),
        expires=st.integers(0, 400).map(lambda days: SOON + dt.timedelta(days=days)),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(weight=st.floats(30.0, 150.0), bags=bags_strategy)
def test_invariants_of_every_dose_that_can_be_made(weight: float, bags: list[Bag]) -> None:
    target = PARAMETERS.dose_per_kg * weight
    try:
        chosen = choose_bags(bags, target)
    except NotEnoughCells:
        assert sum(b.viable_cells for b in bags) < target
        return
    assert sum(b.viable_cells for b in chosen) >= target
    fewer = sorted((b.viable_cells for b in bags), reverse=True)[: len(chosen) - 1]
    assert sum(fewer) < target  # no smaller set of bags would do
    dose = calculate(weight, chosen, PARAMETERS)
    for draw in dose.draws:
        assert draw.volume_ml <= draw.bag.volume_ml + 1e-9  # never more than the bag
    last = dose.draws[-1]
    if last.volume_ml < last.bag.volume_ml:  # not capped: only the rounding is off
        half_step = PARAMETERS.graduation_ml / 2 * last.bag.viable_per_ml
        assert abs(dose.delivered_cells - target) <= half_step * (1 + 1e-9)
    if dose.acceptable:
        assert abs(dose.deviation_percent) <= PARAMETERS.tolerance_percent + 1e-9


@settings(max_examples=300, deadline=None)
@given(
    weight=st.floats(30.0, 150.0),
    total=st.floats(1.0e6, 2.0e7),
    viability=st.floats(50.0, 100.0),
    others=bags_strategy,
)
def test_viability_is_applied_exactly_once_to_the_total_concentration(
    weight: float, total: float, viability: float, others: list[Bag]
) -> None:
    """Delivered viable cells = rounded volume × TOTAL cells per mL × viability, once per draw
    (DOMAIN.md §7): from one bag, and from the bags the dose chooses."""
    target = PARAMETERS.dose_per_kg * weight
    one = bag(conc=total, viability=viability, volume=1000.0)  # holds any dose
    dose = calculate(weight, [one], PARAMETERS)
    (draw,) = dose.draws
    assert draw.volume_ml == round_volume(target / (total * viability / 100), 0.1)
    assert dose.delivered_cells == pytest.approx(draw.volume_ml * total * viability / 100)
    assert any(f"{viability:g} % viable" in line for line in dose.working)
    try:
        chosen = choose_bags(others, target)
    except NotEnoughCells:
        return
    several = calculate(weight, chosen, PARAMETERS)
    assert several.delivered_cells == pytest.approx(
        sum(
            d.volume_ml * d.bag.total_cells_per_ml * d.bag.viability_percent / 100
            for d in several.draws
        )
    )
