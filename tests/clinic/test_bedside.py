"""Bedside verification on real records: each check green and red, the stop recorded, the
two-person sign-off and the start from a signed go only (DOMAIN.md §8)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from cellchain.chain.models import UnitEvent, UnitStatus
from cellchain.clinic.bedside import bedside, infusions
from cellchain.clinic.bedside.bedside import Check
from cellchain.core.accounts import CredentialsRejected
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput, PermissionDenied
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.ward import Ward, payload


def failed(check: Any) -> set[str]:
    return {c["code"] for c in check.failed}


def test_the_right_dose_for_the_right_patient_now_is_go_with_every_check_listed(
    ward: Ward,
) -> None:
    patient, order = ward.at_bedside()
    check = ward.verify(patient, order)
    assert check.verdict == "go", check.failed
    assert [c["code"] for c in check.checks] == [c.value for c in Check]
    assert all(c["passed"] for c in check.checks)
    assert check.patient_id == patient.id and check.dose_order_id == order.id
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "bedside.go")
    ).scalar_one()
    assert entry.entity_id == str(check.id)


def test_a_bag_label_identifies_its_dose_as_well_as_the_dose_label(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    check = ward.verify(patient, order, label=payload(order.bags[0].unit.code))
    assert check.verdict == "go" and check.dose_order_id == order.id


def test_another_patients_wristband_is_a_red_stop_recorded_with_the_failed_check(
    ward: Ward,
) -> None:
    patient, order = ward.at_bedside()
    other = ward.patient(study_id="AS-077", randomization_number="R-077")
    check = ward.verify(other, order)
    assert check.verdict == "stop"
    assert "patient" in failed(check)
    detail = next(c["detail"] for c in check.failed if c["code"] == "patient")
    assert "WRONG PATIENT" in detail and other.coi in detail and patient.coi in detail
    stop = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "bedside.stopped")
    ).scalar_one()
    assert "patient" in stop.changes
    event = db.session.execute(
        select(UnitEvent).where(
            UnitEvent.unit_id == order.dose_unit_id, UnitEvent.note.like("bedside STOP%")
        )
    ).scalar_one()
    assert "patient" in event.note


@pytest.mark.parametrize(
    ("wristband", "label", "problem"),
    [
        ("CC1.GARBAGE", None, "Wristband"),
        (None, "CC9.X999926000001C0018T", "Label"),
        ("", None, None),
    ],
)
def test_a_malformed_scan_is_a_stop_or_a_clear_refusal(
    ward: Ward, wristband: str | None, label: str | None, problem: str | None
) -> None:
    patient, order = ward.at_bedside()
    wristband_scan = payload(patient.coi) if wristband is None else wristband
    label_scan = payload(order.dose_unit.code) if label is None else label
    if problem is None:
        with pytest.raises(InvalidInput):
            bedside.verify(
                db.session,
                wristband_scan,
                label_scan,
                actor=ward.clinic.clinician,
                now=utcnow(),
                zone=dt.UTC,  # type: ignore[arg-type]
            )
        return
    check = bedside.verify(
        db.session,
        wristband_scan,
        label_scan,
        actor=ward.clinic.clinician,
        now=utcnow(),
        zone=dt.UTC,  # type: ignore[arg-type]
    )
    db.session.commit()
    assert check.verdict == "stop"
    assert "patient" in failed(check)
    assert check.failed[0]["detail"].startswith(problem)
    # what depends on the unreadable scan cannot pass
    needs = {"Wristband": {"visit", "weight", "arm"}, "Label": {"prepared", "thaw", "not_infused"}}
    assert needs[problem] <= failed(check)


def test_the_bag_scanned_first_in_place_of_the_wristband_is_a_stop(ward: Ward) -> None:
    _patient, order = ward.at_bedside()
    check = bedside.verify(
        db.session,
        payload(order.dose_unit.code),
        payload(order.dose_unit.code),
        actor=ward.clinic.clinician,
        now=utcnow(),
        zone=dt.UTC,  # type: ignore[arg-type]
    )
    assert check.verdict == "stop"
    assert "not a patient's wristband" in check.failed[0]["detail"]


def day_over(first: dt.datetime, then: dt.datetime) -> set[str]:
    """The checks that also fail when ``then`` is on the next day (UTC, the tests' site zone)
    of ``first``: a test run in the last hour of a day sees the day-0 visit over as well."""
    return {"visit", "visit_window"} if then.date() != first.date() else set()


def test_the_thaw_window_closed_is_a_stop(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    thawed_at = utcnow()
    check = ward.verify(patient, order, now=thawed_at + dt.timedelta(minutes=61))
    assert failed(check) == {"thaw"} | day_over(thawed_at, check.checked_at)


def test_a_dose_not_yet_thawed_is_a_stop(ward: Ward) -> None:
    order = ward.prepared()
    ward.receive(ward.ship(order))
    check = ward.verify(order.patient, order)
    assert failed(check) == {"thaw"}


def test_a_dose_still_in_transit_is_a_stop(ward: Ward) -> None:
    order = ward.prepared()
    ward.ship(order)
    check = ward.verify(order.patient, order)
    assert {"not_recalled", "thaw"} <= failed(check)


def test_a_weight_changed_by_10_percent_since_preparation_is_a_stop(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    ward.clinic.weigh(patient, 77.0, hours_ago=0.1)  # +10 %
    check = ward.verify(patient, order)
    assert failed(check) == {"weight"}
    assert "+10.0 %" in check.failed[0]["detail"]


def test_an_unconfirmed_weight_is_a_stop_until_a_second_person_countersigns_it(
    ward: Ward,
) -> None:
    """64 kg is −8.6 % from the dose's 70 kg; 70.5 kg is +0.7 % from the dose's weight but
    +10.2 % from the previous 64 kg: unconfirmed, so the bedside (and the start) stops."""
    from cellchain.dosing import patients

    patient, order = ward.at_bedside()
    ward.clinic.weigh(patient, 64.0, hours_ago=0.2)
    changed = ward.clinic.weigh(patient, 70.5, hours_ago=0.1)
    assert changed.needs_confirmation
    check = ward.verify(patient, order)
    assert failed(check) == {"weight"}
    assert "not confirmed" in check.failed[0]["detail"]
    patients.confirm_weight(
        db.session, changed, user=ward.nurse, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
    assert ward.verify(patient, order).verdict == "go"


def test_a_small_weight_change_within_tolerance_is_go(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    ward.clinic.weigh(patient, 71.0, hours_ago=0.1)
    assert ward.verify(patient, order).verdict == "go"


def test_an_old_weight_is_a_stop(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    check = ward.verify(patient, order, now=utcnow() + dt.timedelta(days=8))
    assert "weight" in failed(check)


def test_a_dose_for_another_visit_is_a_stop(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    check = ward.verify(patient, order, now=utcnow() + dt.timedelta(days=91))
    assert {"visit", "visit_window"} <= failed(check)
    assert "today is the Month 3 visit" in next(
        c["detail"] for c in check.failed if c["code"] == "visit"
    )


def test_an_expired_lot_is_a_stop(ward: Ward, released: Any) -> None:
    patient, order = ward.at_bedside()
    released.expires_at = utcnow() - dt.timedelta(minutes=1)
    db.session.commit()
    assert "released" in failed(ward.verify(patient, order))


def test_a_quarantined_bag_is_a_stop(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    order.bags[0].unit.status = UnitStatus.QUARANTINE.value
    db.session.commit()
    # its released label is not the one a quarantined bag requires either
    assert failed(ward.verify(patient, order)) == {"not_recalled", "labelled"}


def test_a_second_check_whose_content_changed_is_a_stop(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    order.volume_ml = order.volume_ml + 1  # the dose is not what was signed
    db.session.commit()
    assert "prepared" in failed(ward.verify(patient, order))


def test_a_control_arm_patient_is_a_stop_even_with_their_own_wristband(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    patient.arm = "CONTROL"
    db.session.commit()
    assert failed(ward.verify(patient, order)) == {"arm"}


def test_two_clinicians_sign_a_go_and_one_of_them_starts_the_infusion(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    check = ward.sign(ward.verify(patient, order))
    assert {s.username for s in bedside.bedside_signatures(db.session, check)} == {"cleo", "nina"}
    started = ward.start(check)
    assert started.stop is None and started.infusion is not None
    assert started.infusion.status == "in_progress"
    assert order.status == "infused"
    assert {u.status for u in [order.dose_unit, *(b.unit for b in order.bags)]} == {"infused"}
    again = ward.verify(patient, order)
    assert "not_infused" in failed(again)


def test_the_same_clinician_cannot_sign_twice(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    check = ward.verify(patient, order)
    with pytest.raises(InvalidInput, match="same clinician cannot sign twice"):
        bedside.sign_off(
            db.session,
            check,
            first=bedside.Signer(ward.clinic.clinician, TEST_PASSWORD),
            second=bedside.Signer(ward.clinic.clinician, TEST_PASSWORD),
            now=utcnow(),
        )


def test_a_technician_is_not_a_second_clinician(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    check = ward.verify(patient, order)
    with pytest.raises(PermissionDenied):
        bedside.sign_off(
            db.session,
            check,
            first=bedside.Signer(ward.clinic.clinician, TEST_PASSWORD),
            second=bedside.Signer(ward.lab.tech, TEST_PASSWORD),
            now=utcnow(),
        )


def test_a_wrong_password_signs_nothing(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    check = ward.verify(patient, order)
    with pytest.raises(CredentialsRejected):
        bedside.sign_off(
            db.session,
            check,
            first=bedside.Signer(ward.clinic.clinician, TEST_PASSWORD),
            second=bedside.Signer(ward.nurse, "not the password"),
            now=utcnow(),
        )


def test_a_stop_can_be_neither_signed_nor_started(ward: Ward) -> None:
    _patient, order = ward.at_bedside()
    other = ward.patient(study_id="AS-078", randomization_number="R-078")
    stop = ward.verify(other, order)
    with pytest.raises(Conflict, match="stop cannot be signed"):
        ward.sign(stop)
    db.session.rollback()
    with pytest.raises(Conflict, match="Nothing can be started from a stop"):
        ward.start(stop)


def test_an_unsigned_go_cannot_start(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    with pytest.raises(Conflict, match="Two different clinicians must sign"):
        ward.start(ward.verify(patient, order))


def test_a_signed_go_whose_thaw_window_closed_since_records_a_stop_and_starts_nothing(
    ward: Ward,
) -> None:
    patient, order = ward.at_bedside()
    check = ward.sign(ward.verify(patient, order))
    later = utcnow() + dt.timedelta(minutes=75)
    started = ward.start(check, now=later)
    assert started.infusion is None and started.stop is not None
    expected = {"thaw"} | day_over(check.checked_at, later)
    assert started.stop.recheck_of_id == check.id and failed(started.stop) == expected
    assert order.status == "prepared"
    assert infusions.infusion_of(db.session, order) is None


def test_a_go_followed_by_another_check_of_the_dose_is_no_longer_current(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    go = ward.sign(ward.verify(patient, order))
    assert bedside.summary(db.session, go, now=utcnow()).actionable
    other = ward.patient(study_id="AS-079", randomization_number="R-079")
    ward.verify(other, order)  # someone scans the dose with the wrong wristband meanwhile
    shown = bedside.summary(db.session, go, now=utcnow())
    assert not shown.actionable and "newer bedside check" in shown.superseded
    with pytest.raises(Conflict, match="newer bedside check"):
        ward.start(go)


def test_a_go_whose_thaw_window_closed_is_no_longer_current(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    go = ward.verify(patient, order)
    later = bedside.summary(db.session, go, now=utcnow() + dt.timedelta(minutes=61))
    assert not later.actionable and "thaw window has closed" in later.superseded


def test_an_unreadable_scan_is_never_stored_or_repeated(ward: Ward) -> None:
    _patient, order = ward.at_bedside()
    hospital_band = "MRN-0012345678"  # another system's barcode on the same wristband
    check = bedside.verify(
        db.session,
        hospital_band,
        payload(order.dose_unit.code),
        actor=ward.clinic.clinician,
        now=utcnow(),
        zone=dt.UTC,  # type: ignore[arg-type]
    )
    db.session.commit()
    assert check.verdict == "stop"
    assert check.wristband_scan.startswith("[unreadable: 14 characters")
    assert hospital_band not in check.checks_json
    assert check.label_scan == payload(order.dose_unit.code)
    entries = db.session.execute(select(AuditEntry)).scalars().all()
    assert not any(hospital_band in entry.changes for entry in entries)


def test_a_withdrawn_patient_is_a_stop(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    patient.status = "withdrawn"
    db.session.commit()
    assert failed(ward.verify(patient, order)) == {"arm"}
