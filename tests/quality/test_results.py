"""QC samples and results: recorded once, evaluated against the version in force, OOS opens an
investigation, a retest needs QA's invalidation (DOMAIN.md §5)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cellchain.chain.models import LineageEdge, Unit, UnitKind, UnitStatus
from cellchain.core import signatures
from cellchain.core.accounts import CredentialsRejected
from cellchain.core.identifiers import InvalidIdentifier
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing.deviations import deviations
from cellchain.quality import results
from cellchain.quality.models import QcResult
from tests.conftest import TEST_PASSWORD
from tests.support.tamper import outside_the_trail


def test_samples_are_labelled_units_drawn_from_a_bag_of_the_lot(desk: Any) -> None:
    tubes = desk.sample(tubes=3)
    bag = tubes[0].taken_from
    assert bag.status == UnitStatus.CONSUMED.value
    for sample in tubes:
        assert sample.unit.kind == UnitKind.SAMPLE_TUBE.value
        assert sample.unit.code.startswith(desk.lot.lot_number[:13])
        edge = db.session.get(LineageEdge, (bag.id, sample.unit.id))
        assert edge is not None and edge.operation == "sample"


def test_a_sample_from_a_bag_of_another_lot_is_refused(desk: Any) -> None:
    vessel = (
        db.session.execute(db.select(Unit).where(Unit.kind == UnitKind.CULTURE_VESSEL.value))
        .scalars()
        .first()
    )
    with pytest.raises(InvalidInput, match="not a bag of lot"):
        results.take_samples(
            db.session,
            desk.lot,
            results.SampleRequest(bag_code=vessel.code),
            actor=desk.lab.qc,
            now=utcnow(),
        )


def test_a_passing_panel_is_recorded_with_the_version_in_force_and_verdicts(
    desk: Any, spec: Any
) -> None:
    recorded = desk.full_panel()
    assert len(recorded) == 15
    assert all(result.passes and result.valid for result in recorded)
    assert {result.specification_id for result in recorded} == {spec.id}
    cells = next(r for r in recorded if r.test_code == "VIABLE-CELLS")
    # the bag is labelled 1.00e8 TOTAL cells at 93 % viable: 9.3e7 viable, viability once
    assert cells.labelled_value == pytest.approx(9.3e7)
    assert cells.criterion == (
        "within ± 20 % of the labelled viable cells (total × viability at fill)"
    )
    assert results.out_of_specification_lot_ids(db.session) == set()


def test_an_oos_result_is_flagged_and_opens_an_investigation(desk: Any) -> None:
    (result,) = desk.record(desk.entry("VIABILITY", 72.0))
    assert not result.passes
    assert results.out_of_specification_lot_ids(db.session) == {desk.lot.id}
    (opened,) = deviations.open_deviations_of(db.session, desk.lot)
    assert opened.category == "out_of_specification"
    assert "Viability 72 %" in opened.description and "≥ 80 %" in opened.description


@pytest.mark.parametrize(
    ("code", "value", "unit", "field", "message"),
    [
        ("STERILITY", 3.0, None, "value", "one of: no growth, growth"),
        ("KARYOTYPE", "abnormal-ish", None, "value", "one of: normal, abnormal"),
        ("VIABILITY", "high", None, "value", "numeric test"),
        ("ENDOTOXIN", 0.1, "EU/kg", "unit", "reported in EU/mL"),
        ("MYCOPLASMA", "negative", "%", "unit", "has no unit"),
    ],
)
def test_a_value_of_the_wrong_kind_or_unit_is_refused_and_nothing_is_saved(
    desk: Any, code: str, value: Any, unit: str | None, field: str, message: str
) -> None:
    sample = desk.sample()[0]
    good = desk.entry("CD73")
    with pytest.raises(InvalidInput, match=message) as refused:
        desk.record(good, desk.entry(code, value, unit=unit), sample=sample)
    assert f"{code}.{field}" in refused.value.errors
    db.session.rollback()
    assert results.results_of(db.session, desk.lot) == []


def test_a_test_not_in_the_specification_is_refused(desk: Any) -> None:
    with pytest.raises(InvalidInput, match="not a test of specification UC-MSC"):
        desk.record(desk.entry("CD73", test_code="CD200"))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"instrument": "  "}, "instrument"),
        ({"tested_on": utcnow().date() + dt.timedelta(days=1)}, "tested_on"),
        ({"tested_on": utcnow().date() - dt.timedelta(days=30)}, "tested_on"),
    ],
)
def test_instrument_and_test_date_are_checked(desk: Any, changes: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        desk.record(desk.entry("CD90", **changes))
    assert f"CD90.{field}" in refused.value.errors


def test_the_sample_must_be_a_qc_sample_of_this_lot(desk: Any) -> None:
    bag = results.processing.bags_of(db.session, desk.lot)[0]
    with pytest.raises(InvalidInput, match="not a QC sample tube"):
        results.record_results(
            db.session,
            desk.lot,
            sample_code=bag.code,
            entries=[desk.entry("CD73")],
            actor=desk.lab.qc,
            now=utcnow(),
            site_zone=dt.UTC,
        )
    with pytest.raises(InvalidIdentifier):
        results.record_results(
            db.session,
            desk.lot,
            sample_code=bag.code[:-1] + ("A" if bag.code[-1] != "A" else "B"),
            entries=[desk.entry("CD73")],
            actor=desk.lab.qc,
            now=utcnow(),
            site_zone=dt.UTC,
        )


def test_a_result_is_never_overwritten_a_retest_needs_a_signed_invalidation(desk: Any) -> None:
    (first,) = desk.record(desk.entry("ENDOTOXIN", 0.7))
    assert not first.passes
    with pytest.raises(Conflict, match="never overwritten"):
        desk.record(desk.entry("ENDOTOXIN", 0.1))
    db.session.rollback()

    with pytest.raises(InvalidInput, match="why the result is invalid"):
        results.invalidate_result(
            db.session, first, reason=" ", user=desk.lab.qa, password=TEST_PASSWORD, now=utcnow()
        )
    signature = results.invalidate_result(
        db.session,
        first,
        reason="Phase I investigation: LAL reader calibration lapsed (DEV report 7).",
        user=desk.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    assert signature.meaning == results.INVALIDATION_MEANING
    (second,) = desk.record(desk.entry("ENDOTOXIN", 0.1))
    both = results.results_of(db.session, desk.lot)
    assert [(r.id, r.status) for r in both] == [(first.id, "invalidated"), (second.id, "valid")]
    assert results.valid_results(db.session, desk.lot)["ENDOTOXIN"].id == second.id
    assert results.out_of_specification_lot_ids(db.session) == set()
    with pytest.raises(Conflict, match="already invalidated"):
        results.invalidate_result(
            db.session,
            first,
            reason="again",
            user=desk.lab.qa,
            password=TEST_PASSWORD,
            now=utcnow(),
        )


def test_a_wrong_password_invalidates_nothing(desk: Any) -> None:
    (first,) = desk.record(desk.entry("CD34", 3.5))
    with pytest.raises(CredentialsRejected):
        results.invalidate_result(
            db.session,
            first,
            reason="pipetting error",
            user=desk.lab.qa,
            password="wrong",
            now=utcnow(),
        )
    db.session.rollback()
    assert db.session.get(QcResult, first.id).status == "valid"


def test_the_invalidation_signature_is_shown_invalid_after_the_result_is_edited(
    desk: Any,
) -> None:
    (first,) = desk.record(desk.entry("POTENCY", 12.0))
    results.invalidate_result(
        db.session,
        first,
        reason="assay control failed",
        user=desk.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    assert [m.valid for m in signatures.manifest(db.session, first)] == [True]
    db.session.execute(
        outside_the_trail(
            db.update(QcResult).where(QcResult.id == first.id).values(value_number=25.0)
        )
    )
    db.session.commit()
    db.session.expire_all()
    tampered = db.session.get(QcResult, first.id)
    assert [m.valid for m in signatures.manifest(db.session, tampered)] == [False]
