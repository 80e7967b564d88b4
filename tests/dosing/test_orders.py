"""Dose orders: every hard block refused with its reason and nothing saved; the arithmetic on
real bags; atomic allocation; the independent second check; the month-3 fresh weight."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from cellchain.chain.models import LineageEdge, UnitStatus
from cellchain.core import signatures
from cellchain.core.types import utcnow
from cellchain.dosing import orders, patients, service
from cellchain.dosing.defaults import NCT01420432_PARAMETERS
from cellchain.dosing.models import DoseOrder
from cellchain.errors import Conflict, PermissionDenied
from cellchain.extensions import db
from cellchain.manufacturing.models import Deviation
from cellchain.manufacturing.processing import processing
from tests.conftest import TEST_PASSWORD, at_once
from tests.support.clinic import UTC


def order(
    clinic: Any,
    patient: Any,
    visit: str = "D0",
    *,
    now: dt.datetime | None = None,
    override: Any = None,
) -> DoseOrder:
    placed = orders.order_dose(
        db.session,
        patient,
        visit,
        actor=clinic.lab.tech,
        now=now or utcnow(),
        zone=UTC,
        override=override,
    )
    db.session.commit()
    return placed


def check(
    order_: DoseOrder, checker: Any, *, volume: float | None = None, bags: list[str] | None = None
) -> DoseOrder:
    checked = orders.second_check(
        db.session,
        order_,
        checker=checker,
        password=TEST_PASSWORD,
        volume_ml=order_.volume_ml if volume is None else volume,
        bag_codes=[b.unit.code for b in order_.bags] if bags is None else bags,
        now=utcnow(),
    )
    db.session.commit()
    return checked


def test_a_70_kg_day_0_dose_is_computed_from_a_released_bag_and_allocates_it(
    clinic: Any, released: Any
) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0)
    placed = order(clinic, patient)
    assert placed.status == "allocated" and placed.visit == "D0"
    assert placed.target_cells == pytest.approx(7.0e7)
    (bag,) = placed.bags
    assert bag.volume_ml == 15.1  # 7.0e7 / (5.0e6 × 93 %) = 15.05 mL
    assert placed.delivered_cells == pytest.approx(15.1 * 5.0e6 * 0.93)
    assert placed.endotoxin_eu_per_kg == pytest.approx(15.1 * 0.12 / 70)
    assert bag.unit.status == UnitStatus.ALLOCATED
    assert any("15.1 mL" in line for line in placed.working)
    assert processing.bags_of(db.session, released)[0].id == bag.unit_id  # first bag first


def test_the_control_arm_can_never_get_a_dose(clinic: Any, released: Any) -> None:
    patient = clinic.enrol(arm="CONTROL")
    clinic.weigh(patient, 70.0)
    with pytest.raises(orders.DoseRefused, match="never receives cells"):
        order(clinic, patient)


@pytest.mark.parametrize(
    ("hours_ago", "message"), [(None, "No weight is on file"), (24 * 8, "more than 7 days ago")]
)
def test_a_missing_or_old_weight_refuses_the_dose_and_nothing_is_allocated(
    clinic: Any, released: Any, hours_ago: float | None, message: str
) -> None:
    patient = clinic.enrol()
    patient.enrolled_at -= dt.timedelta(days=10)  # a weight before enrolment is refused
    db.session.commit()
    if hours_ago is not None:
        clinic.weigh(patient, 70.0, hours_ago=hours_ago)
    with pytest.raises(orders.DoseRefused, match=message):
        order(clinic, patient)
    db.session.rollback()
    assert db.session.execute(select(DoseOrder)).first() is None
    statuses = {bag.status for bag in processing.bags_of(db.session, released)}
    assert UnitStatus.ALLOCATED not in statuses


def test_a_visit_outside_its_window_is_refused(clinic: Any, released: Any) -> None:
    patient = clinic.enrol(day0=utcnow().date() + dt.timedelta(days=2))
    clinic.weigh(patient, 70.0)
    with pytest.raises(orders.DoseRefused, match="outside its window"):
        order(clinic, patient)


def test_no_released_bag_means_no_dose(clinic: Any, desk: Any) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0)
    with pytest.raises(orders.DoseRefused, match="No donation has enough"):
        order(clinic, patient)  # the desk's lot is still in quarantine


def test_a_dose_outside_tolerance_needs_an_investigators_signed_override(
    clinic: Any, released: Any
) -> None:
    strict = dict(NCT01420432_PARAMETERS, dose_tolerance_percent=0.1)
    draft = service.PROTOCOLS.draft(
        db.session,
        actor=clinic.lab.qa,
        now=utcnow(),
        code=clinic.protocol.code,
        title=clinic.protocol.title,
        parameters=strict,
    )
    service.PROTOCOLS.approve(
        db.session, draft, user=clinic.lab.qa, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
    clinic.protocol = draft
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0)
    with pytest.raises(orders.DoseRefused, match=r"outside ± 0\.1 %"):
        order(clinic, patient)  # +0.31 % after rounding to 0.1 mL
    db.session.rollback()
    nurse = orders.Override(clinic.clinician, TEST_PASSWORD, "syringe graduation")
    with pytest.raises(PermissionDenied):
        order(clinic, patient, override=nurse)
    db.session.rollback()
    accepted = order(
        clinic,
        patient,
        override=orders.Override(clinic.investigator, TEST_PASSWORD, "rounding to 0.1 mL"),
    )
    assert accepted.override_reason == "rounding to 0.1 mL"
    deviation = db.session.get(Deviation, accepted.deviation_id)
    assert deviation.status == "open" and "AS-001" in deviation.description
    (signed,) = signatures.manifest(db.session, accepted)
    assert signed.meaning == orders.OVERRIDE_MEANING and signed.valid


def test_an_override_by_a_non_investigator_is_refused_before_anything_is_allocated(
    clinic: Any, released: Any, make_user: Any
) -> None:
    """Issue 16 item 5: the investigator is checked (effective roles) before the order is made
    and its bags allocated, not after; an administrator holding Investigator is refused too."""
    from cellchain.core.models import User, UserRole

    strict = dict(NCT01420432_PARAMETERS, dose_tolerance_percent=0.1)
    draft = service.PROTOCOLS.draft(
        db.session,
        actor=clinic.lab.qa,
        now=utcnow(),
        code=clinic.protocol.code,
        title=clinic.protocol.title,
        parameters=strict,
    )
    service.PROTOCOLS.approve(
        db.session, draft, user=clinic.lab.qa, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
    clinic.protocol = draft
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0)
    admin = make_user("ada", "admin")
    db.session.add(UserRole(user_id=admin.id, role="investigator"))
    db.session.commit()
    db.session.expire_all()
    both = db.session.get(User, admin.id)
    statuses = sorted(bag.status for bag in processing.bags_of(db.session, released))
    assert UnitStatus.AVAILABLE in statuses
    for signer in (clinic.clinician, both):
        with pytest.raises(PermissionDenied, match="investigator"):
            orders.order_dose(
                db.session,
                patient,
                "D0",
                actor=clinic.lab.tech,
                now=utcnow(),
                zone=UTC,
                override=orders.Override(signer, TEST_PASSWORD, "syringe graduation"),
            )
        # Read through the session before any rollback: nothing was flushed either.
        assert db.session.scalars(select(DoseOrder)).all() == []
        assert sorted(bag.status for bag in processing.bags_of(db.session, released)) == statuses
        db.session.rollback()


def test_the_second_check_by_another_person_prepares_the_dose_as_a_unit(
    clinic: Any, released: Any, make_user: Any
) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0)
    placed = order(clinic, patient)
    with pytest.raises(orders.DoseRefused, match="someone other than the preparer"):
        check(placed, clinic.lab.tech)
    db.session.rollback()
    second = make_user("sam", "technician")
    with pytest.raises(orders.DoseRefused) as wrong:
        check(placed, second, volume=15.0, bags=[])
    assert set(wrong.value.errors) == {"volume_ml", "bags"}
    db.session.rollback()
    checked = check(placed, second)
    assert checked.status == "prepared" and checked.checked_by_id == second.id
    dose = checked.dose_unit
    assert dose.kind == "prepared_dose" and dose.status == UnitStatus.ALLOCATED
    parents = db.session.execute(
        select(LineageEdge.parent_id).where(LineageEdge.child_id == dose.id)
    ).scalars()
    assert list(parents) == [checked.bags[0].unit_id]
    (signed,) = signatures.manifest(db.session, checked)
    assert signed.meaning == orders.SECOND_CHECK_MEANING and signed.valid
    with pytest.raises(Conflict):
        check(checked, second)


def test_a_second_dose_for_the_same_visit_is_refused(clinic: Any, released: Any) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0)
    order(clinic, patient)
    with pytest.raises(orders.DoseRefused, match="already has a dose order"):
        order(clinic, patient)


def test_the_month_3_dose_needs_a_fresh_weight_and_flags_a_10_percent_change(
    clinic: Any, released: Any
) -> None:
    start = utcnow() - dt.timedelta(days=91)
    patient = clinic.enrol()
    patient.day0 = start.date()
    patient.enrolled_at = start - dt.timedelta(days=1)
    db.session.commit()
    patients.record_weight(
        db.session,
        patient,
        weight_kg=70.0,
        measured_at=start - dt.timedelta(hours=2),
        source="scale",
        actor=clinic.clinician,
        now=start,
        zone=UTC,
    )
    db.session.commit()
    order(clinic, patient, "D0", now=start)
    clinic.recheck(patient)  # eligibility re-confirmed before month 3
    with pytest.raises(orders.DoseRefused, match="never copied from an earlier dose"):
        order(clinic, patient, "M3")
    db.session.rollback()
    heavier = clinic.weigh(patient, 77.5)
    assert heavier.needs_confirmation  # +10.7 % from the previous weight and the D0 dose's
    with pytest.raises(orders.DoseRefused, match="not confirmed"):
        order(clinic, patient, "M3")
    db.session.rollback()
    patients.confirm_weight(
        db.session, heavier, user=clinic.investigator, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
    month3 = order(clinic, patient, "M3")
    assert month3.weight.weight_kg == 77.5
    assert month3.weight_change_percent == pytest.approx(10.714, abs=1e-3)
    assert month3.weight_change_flag
    assert month3.target_cells == pytest.approx(7.75e7)


@pytest.mark.postgres_only
def test_two_orders_racing_for_the_last_bag_end_with_one_allocation(
    app: Any, clinic: Any, released: Any
) -> None:
    from cellchain.chain import service as chain

    bags = [b for b in processing.bags_of(db.session, released) if b.status == "available"]
    for extra in bags[1:]:
        chain.change_status(
            db.session,
            extra,
            UnitStatus.QUARANTINE,
            actor=clinic.lab.qa,
            now=utcnow(),
            reason="held for the test",
        )
    first, second = clinic.enrol(study_id="AS-001"), clinic.enrol(study_id="AS-002")
    for patient in (first, second):
        clinic.weigh(patient, 70.0)
    ids, tech_id = [first.id, second.id], clinic.lab.tech.id

    def ordering(patient_id: int):
        def job() -> str:
            from cellchain.core.models import User
            from cellchain.dosing.models import Patient

            try:
                orders.order_dose(
                    db.session,
                    db.session.get(Patient, patient_id),
                    "D0",
                    actor=db.session.get(User, tech_id),
                    now=utcnow(),
                    zone=UTC,
                )
                db.session.commit()
                return "allocated"
            except Conflict:
                db.session.rollback()
                return "conflict"

        return job

    assert at_once(app, [ordering(pid) for pid in ids]) == ["allocated", "conflict"]
    db.session.expire_all()
    assert len(db.session.execute(select(DoseOrder)).scalars().all()) == 1


@pytest.mark.parametrize("problem", ["expired", "recalled to quarantine"])
def test_bags_of_an_expired_lot_or_back_in_quarantine_are_never_chosen(
    clinic: Any, released: Any, problem: str
) -> None:
    from cellchain.chain import service as chain

    if problem == "expired":
        released.expires_at = utcnow() - dt.timedelta(minutes=1)
    else:
        for bag in processing.bags_of(db.session, released):
            if bag.status == "available":
                chain.change_status(
                    db.session,
                    bag,
                    UnitStatus.QUARANTINE,
                    actor=clinic.lab.qa,
                    now=utcnow(),
                    reason="held",
                )
    db.session.commit()
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0)
    with pytest.raises(orders.DoseRefused, match="No donation has enough"):
        order(clinic, patient)


@pytest.mark.postgres_only
def test_two_people_second_checking_at_once_prepare_one_dose(
    app: Any, clinic: Any, released: Any, make_user: Any
) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0)
    placed = order(clinic, patient)
    checkers = [make_user("sam", "technician").id, make_user("kim", "qa").id]
    order_id, codes = placed.id, [b.unit.code for b in placed.bags]

    def checking(user_id: int):
        def job() -> str:
            from cellchain.core.models import User

            try:
                orders.second_check(
                    db.session,
                    db.session.get(DoseOrder, order_id),
                    checker=db.session.get(User, user_id),
                    password=TEST_PASSWORD,
                    volume_ml=15.1,
                    bag_codes=codes,
                    now=utcnow(),
                )
                db.session.commit()
                return "prepared"
            except Conflict:
                db.session.rollback()
                return "conflict"

        return job

    assert at_once(app, [checking(uid) for uid in checkers]) == ["conflict", "prepared"]
    db.session.expire_all()
    doses = (
        db.session.execute(
            select(LineageEdge.child_id).where(LineageEdge.operation == "prepare_dose")
        )
        .scalars()
        .all()
    )
    assert len(doses) == 1
    assert len(signatures.manifest(db.session, db.session.get(DoseOrder, order_id))) == 1
