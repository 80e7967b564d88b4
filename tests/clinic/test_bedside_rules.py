"""The bedside rules as a pure function of facts: go only when every check passes.

A known-good set of facts is go. Each *corruption* below breaks one check; hypothesis draws
random combinations of them and the verdict must be stop with every broken check failed.
Each corruption alone fails exactly its own check, so no rule leans on another.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from fractions import Fraction
from zoneinfo import ZoneInfo

from hypothesis import assume, given
from hypothesis import strategies as st

from cellchain.clinic.bedside.bedside import (
    BedsideFacts,
    Check,
    DoseFacts,
    LotFacts,
    PatientFacts,
    ProtocolLimits,
    evaluate,
    verdict_of,
)
from cellchain.clinic.models import Verdict
from cellchain.dosing.rechecks.rechecks import RecheckFacts

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
COI = "X999926000007P"

GOOD = BedsideFacts(
    now=NOW,
    zone=ZoneInfo("UTC"),
    patient=PatientFacts(
        id=1,
        study_id="AS-001",
        coi=COI,
        arm_name="MSC + DMARDs",
        receives_cells=True,
        enrolled=True,
        open_visits=(("D0", "Day 0"),),
        latest_weight_kg=70.0,
        latest_weight_at=NOW - dt.timedelta(hours=1),
    ),
    wristband_problem=None,
    dose=DoseFacts(
        order_id=5,
        dose_code="X999926000001P0001X",
        patient_id=1,
        patient_study_id="AS-001",
        patient_coi=COI,
        visit="D0",
        visit_name="Day 0",
        visit_earliest=TODAY,
        visit_latest=TODAY,
        status="prepared",
        second_check_valid=True,
        lots=(LotFacts("X999926000001R-L01", "released", NOW + dt.timedelta(days=100)),),
        units=(("X999926000001P0001X", "dispensed"), ("X999926000001C0003Y", "dispensed")),
        shipment_status="received",
        hold_reason=None,
        bags=1,
        bags_thawed=1,
        thaw_expires_at=NOW + dt.timedelta(minutes=30),
        thaw_window_minutes=60,
        delivered_cells=7.02e7,
        weight_used_kg=70.0,
        override=False,
        infused=False,
    ),
    label_problem=None,
    limits=ProtocolLimits(
        dose_per_kg=1.0e6,
        tolerance_percent=10,
        weight_recency_days=7,
        weight_change_flag_percent=10,
    ),
)

Corruption = Callable[[BedsideFacts], BedsideFacts]

#: A month-3 dose's re-check: none recorded, and one that passed an hour ago.
MONTH_3 = RecheckFacts(visit_name="Month 3", valid_days=7)
RECHECKED = dataclasses.replace(
    MONTH_3,
    recorded_at=NOW - dt.timedelta(hours=1),
    recorded_by="Cleo Clinician",
    passed=True,
    failed_items=(),
)


def _patient(f: BedsideFacts, **changes: object) -> BedsideFacts:
    if f.patient is None:
        return f
    return dataclasses.replace(f, patient=dataclasses.replace(f.patient, **changes))


def _dose(f: BedsideFacts, **changes: object) -> BedsideFacts:
    if f.dose is None:
        return f
    return dataclasses.replace(f, dose=dataclasses.replace(f.dose, **changes))


def _unit(f: BedsideFacts, index: int, status: str) -> BedsideFacts:
    if f.dose is None:
        return f
    units = list(f.dose.units)
    units[index] = (units[index][0], status)
    return _dose(f, units=tuple(units))


def _lot(f: BedsideFacts, **changes: object) -> BedsideFacts:
    if f.dose is None:
        return f
    return _dose(f, lots=(dataclasses.replace(f.dose.lots[0], **changes),))


#: Check → ways to break it (and only it).
CORRUPTIONS: dict[Check, list[Corruption]] = {
    Check.PATIENT: [
        lambda f: _dose(f, patient_id=2, patient_study_id="AS-002", patient_coi="X999926000008M"),
        lambda f: _dose(f, patient_coi=COI[:-1] + "Q"),  # same record, COI differs by one char
        lambda f: _dose(f, patient_coi=COI[:-1]),  # a prefix is not the identifier
    ],
    Check.VISIT: [
        lambda f: _patient(f, open_visits=(("M3", "Month 3"),)),
        lambda f: _patient(f, open_visits=()),
    ],
    Check.PREPARED: [
        lambda f: _dose(f, status="allocated"),
        lambda f: _dose(f, status="cancelled"),
        lambda f: _dose(f, second_check_valid=False),
    ],
    Check.RELEASED: [
        lambda f: _lot(f, status="quarantine"),
        lambda f: _lot(f, status="rejected"),
        lambda f: _lot(f, expires_at=NOW),
        lambda f: _lot(f, expires_at=None),
        lambda f: _dose(f, lots=()),
    ],
    Check.NOT_RECALLED: [
        lambda f: _unit(f, 1, "quarantine"),
        lambda f: _unit(f, 1, "blocked"),
        lambda f: _unit(f, 1, "discarded"),
        lambda f: _dose(f, shipment_status="held", hold_reason="Arrived at −100 °C."),
        lambda f: _dose(f, shipment_status="in_transit"),
        lambda f: _dose(f, shipment_status="rejected"),
        lambda f: _dose(f, shipment_status=None),
    ],
    Check.LABELLED: [
        lambda f: _dose(f, label_problems=("X (prepared dose) has no label: …",)),
        lambda f: _dose(f, label_problems=("X (cryobag) … says “QUARANTINE …”: superseded",)),
    ],
    Check.THAW: [
        lambda f: _dose(f, bags_thawed=0, thaw_expires_at=None),
        lambda f: _dose(f, bags_thawed=0),  # started (the clock runs), not completed
        lambda f: _dose(f, thaw_expires_at=NOW - dt.timedelta(seconds=1)),
        lambda f: _dose(f, bags=2),  # the second bag is not thawed
    ],
    Check.WEIGHT: [
        lambda f: _patient(f, latest_weight_kg=None, latest_weight_at=None),
        lambda f: _patient(f, latest_weight_at=NOW - dt.timedelta(days=7, minutes=1)),
        lambda f: _patient(f, latest_weight_kg=77.0),  # +10 % since preparation
        lambda f: _patient(f, latest_weight_kg=63.0),  # −10 %
        # +10 % exactly, which floating point computes as 9.999999999999996 %; the dose is
        # still within tolerance for the new weight, so only the change itself can fail it
        lambda f: _patient(
            _dose(f, weight_used_kg=68.0, delivered_cells=6.8e7), latest_weight_kg=74.8
        ),
        lambda f: _dose(f, delivered_cells=6.2e7),  # −11.4 % of the target
        # the latest weight changed by the flag from the previous one and is not confirmed
        lambda f: _patient(f, latest_weight_unconfirmed="The latest weight is not confirmed."),
    ],
    Check.ARM: [
        lambda f: _patient(f, receives_cells=False, arm_name="DMARDs only"),
        lambda f: _patient(f, enrolled=False),  # withdrawn after the dose was prepared
    ],
    Check.RECHECK: [
        # a month-3 dose: no re-check recorded, one not met, one older than its 7 days
        lambda f: _dose(f, recheck=MONTH_3),
        lambda f: _dose(f, recheck=dataclasses.replace(RECHECKED, passed=False)),
        lambda f: _dose(
            f,
            recheck=dataclasses.replace(
                RECHECKED, recorded_at=NOW - dt.timedelta(days=7, seconds=1)
            ),
        ),
    ],
    Check.VISIT_WINDOW: [
        lambda f: _dose(
            f,
            visit_earliest=TODAY - dt.timedelta(days=30),
            visit_latest=TODAY - dt.timedelta(days=2),
        ),
        lambda f: _dose(f, visit_earliest=TODAY + dt.timedelta(days=1)),
    ],
    Check.NOT_INFUSED: [
        lambda f: _dose(f, infused=True),
        lambda f: _unit(f, 0, "infused"),
    ],
}

SINGLE = [(check, corrupt) for check, ways in CORRUPTIONS.items() for corrupt in ways]


def failed(facts: BedsideFacts) -> set[Check]:
    return {result.code for result in evaluate(facts) if not result.passed}


def test_the_good_facts_are_go_with_every_check_passed() -> None:
    results = evaluate(GOOD)
    assert [r.code for r in results] == list(Check)
    assert verdict_of(results) == Verdict.GO and failed(GOOD) == set()


def test_each_corruption_alone_fails_exactly_its_own_check() -> None:
    for check, corrupt in SINGLE:
        facts = corrupt(GOOD)
        assert failed(facts) == {check}, (check, facts)
        assert verdict_of(evaluate(facts)) == Verdict.STOP


@given(st.sets(st.sampled_from(range(len(SINGLE))), min_size=1))
def test_the_verdict_is_never_go_when_any_combination_of_checks_fails(chosen: set[int]) -> None:
    facts = GOOD
    for index in sorted(chosen):
        facts = SINGLE[index][1](facts)
    expected = {SINGLE[index][0] for index in chosen}
    assert verdict_of(evaluate(facts)) == Verdict.STOP
    assert expected <= failed(facts)


def test_unreadable_scans_are_stop_whatever_else_holds() -> None:
    for facts in (
        dataclasses.replace(GOOD, patient=None, wristband_problem="not a wristband"),
        dataclasses.replace(GOOD, dose=None, label_problem="not a dose"),
    ):
        assert verdict_of(evaluate(facts)) == Verdict.STOP
        assert Check.PATIENT in failed(facts)


def test_a_verdict_needs_every_check_made() -> None:
    results = evaluate(GOOD)
    assert verdict_of(results[:-1]) == Verdict.STOP
    assert verdict_of([]) == Verdict.STOP


@given(
    st.integers(min_value=300, max_value=2000).map(lambda tenths: tenths / 10),
    st.sampled_from([1.1, 0.9, 1.15, 0.8]),
)
def test_a_weight_change_of_10_percent_or_more_is_never_go(used_kg: float, factor: float) -> None:
    latest = round(used_kg * factor, 1)  # what a scale shows
    exact = (Fraction(str(latest)) - Fraction(str(used_kg))) / Fraction(str(used_kg)) * 100
    assume(abs(exact) >= 10)  # the rule, in exact arithmetic
    facts = _patient(_dose(GOOD, weight_used_kg=used_kg), latest_weight_kg=latest)
    assert Check.WEIGHT in failed(facts)


def test_a_month_3_dose_is_go_with_a_passing_re_check_up_to_its_last_valid_moment() -> None:
    assert failed(_dose(GOOD, recheck=RECHECKED)) == set()
    last = dataclasses.replace(RECHECKED, recorded_at=NOW - dt.timedelta(days=7))
    assert failed(_dose(GOOD, recheck=last)) == set()
    (result,) = [r for r in evaluate(_dose(GOOD, recheck=last)) if r.code == Check.RECHECK]
    assert "Month 3 re-check passed" in result.detail and "valid until" in result.detail
    not_met = dataclasses.replace(RECHECKED, passed=False, failed_items=("ECOG 0–2",))
    (result,) = [r for r in evaluate(_dose(GOOD, recheck=not_met)) if r.code == Check.RECHECK]
    assert "was not met: ECOG 0–2" in result.detail and "not eligible" in result.detail


def test_an_override_outside_tolerance_holds_only_at_the_weight_it_was_made_for() -> None:
    accepted = _dose(GOOD, delivered_cells=6.2e7, override=True)
    assert failed(accepted) == set()
    assert failed(_patient(accepted, latest_weight_kg=71.0)) == {Check.WEIGHT}
