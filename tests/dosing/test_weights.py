"""Weights that cannot be true are refused, and a weight that changed by the protocol's flag is
confirmed (re-weighed or countersigned by a second person) before a dose is computed from it
(issue 16 item 6; DOMAIN.md §7): through the service, the API and the patient page."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cellchain.core import signatures
from cellchain.core.accounts import CredentialsRejected
from cellchain.core.audit import AuditEntry
from cellchain.core.types import utcnow
from cellchain.dosing import orders, patients
from cellchain.dosing.models import WeightConfirmation
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.clinic import UTC


def order(clinic: Any, patient: Any, visit: str = "D0") -> Any:
    placed = orders.order_dose(
        db.session, patient, visit, actor=clinic.lab.tech, now=utcnow(), zone=UTC
    )
    db.session.commit()
    return placed


def weigh_at(clinic: Any, patient: Any, kg: float, measured_at: dt.datetime) -> Any:
    return patients.record_weight(
        db.session,
        patient,
        weight_kg=kg,
        measured_at=measured_at,
        source="calibrated clinic scale",
        actor=clinic.clinician,
        now=utcnow(),
        zone=UTC,
    )


# --- plausibility and dates ---------------------------------------------------------------------


@pytest.mark.parametrize("kg", [7.0, 29.9, 0.07])
def test_an_adult_under_30_kg_is_asked_grams_or_pounds_and_nothing_is_saved(
    clinic: Any, kg: float
) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0)
    with pytest.raises(InvalidInput) as refused:
        clinic.weigh(patient, kg)
    (message,) = refused.value.errors["weight_kg"]
    assert "below 30 kg" in message and "18–60 years" in message
    assert "grams or pounds" in message
    db.session.rollback()
    assert [w.weight_kg for w in patients.get_patient(db.session, patient.id).weights] == [70.0]


def test_the_bounds_are_the_protocols_parameters_with_adult_defaults_by_age_range() -> None:
    assert patients.weight_bounds({"plausible_weight_kg": {"min": 2, "max": 90}}) == (2.0, 90.0)
    assert patients.weight_bounds({"age_years": {"min": 18, "max": 60}}) == (30.0, 250.0)
    assert patients.weight_bounds({"age_years": {"min": 2, "max": 12}})[0] < 30.0


def test_a_weight_dated_before_birth_before_enrolment_or_in_the_future_is_refused(
    clinic: Any,
) -> None:
    patient = clinic.enrol()
    born = dt.datetime.combine(patient.date_of_birth, dt.time(12), tzinfo=dt.UTC)
    cases = [
        (born - dt.timedelta(days=1), "before AS-001 was born"),
        (patient.enrolled_at - dt.timedelta(days=1), "before AS-001 was enrolled"),
        (utcnow() + dt.timedelta(hours=1), "future"),
    ]
    for measured_at, message in cases:
        with pytest.raises(InvalidInput) as refused:
            weigh_at(clinic, patient, 70.0, measured_at)
        assert message in refused.value.errors["measured_at"][0]
        db.session.rollback()


# --- a change of 10 % or more is confirmed before a dose ----------------------------------------


def test_70_kg_then_7_kg_never_orders_a_tenfold_smaller_dose(clinic: Any, released: Any) -> None:
    """The review's case: 7.0 kg is refused outright; a plausible but changed 60 kg is held
    unconfirmed, refuses the dose with what to do, and a re-weigh that agrees confirms it."""
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0, hours_ago=3)
    with pytest.raises(InvalidInput, match="grams or pounds"):
        clinic.weigh(patient, 7.0, hours_ago=2)
    db.session.rollback()
    lighter = clinic.weigh(patient, 60.0, hours_ago=2)
    assert lighter.needs_confirmation
    assert lighter.change_percent == pytest.approx(-14.286, abs=1e-3)
    assert "previous weight, 70 kg" in lighter.change_reference
    with pytest.raises(orders.DoseRefused) as refused:
        order(clinic, patient)
    (message,) = refused.value.errors["weight"]
    assert (
        "60 kg" in message and "not confirmed" in message and "weigh the patient again" in message
    )
    db.session.rollback()
    again = clinic.weigh(patient, 60.4, hours_ago=1)  # within 10 % of 60: a re-weigh
    db.session.refresh(lighter)
    assert not again.needs_confirmation and not lighter.needs_confirmation
    assert lighter.confirmation == WeightConfirmation.REWEIGHED
    assert lighter.confirmed_by_weight_id == again.id
    placed = order(clinic, patient)
    assert placed.weight_id == again.id and placed.target_cells == pytest.approx(6.04e7)


def test_a_mistyped_weight_stays_unconfirmed_and_the_next_true_one_is_compared_with_the_last_good(
    clinic: Any, released: Any
) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0, hours_ago=3)
    typo = clinic.weigh(patient, 62.0, hours_ago=2)
    assert typo.needs_confirmation
    right = clinic.weigh(patient, 70.2, hours_ago=1)  # +0.3 % from 70, the last confirmed
    assert not right.needs_confirmation
    db.session.refresh(typo)
    assert typo.needs_confirmation  # never confirmed, never used: the latest weight is 70.2
    assert order(clinic, patient).weight_id == right.id


def test_a_weight_is_also_compared_with_the_weight_of_the_last_dose(
    clinic: Any, released: Any
) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0, hours_ago=3)
    order(clinic, patient)
    step = clinic.weigh(patient, 64.0, hours_ago=2)  # −8.6 % from both: no flag
    assert not step.needs_confirmation
    drift = clinic.weigh(patient, 62.5, hours_ago=1)  # −2.3 % from 64, but −10.7 % from 70
    assert drift.needs_confirmation
    assert drift.change_reference == "the weight of the D0 dose, 70 kg"
    assert drift.change_percent == pytest.approx(-10.714, abs=1e-3)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(min_value=300, max_value=2000).map(lambda tenths: tenths / 10),
    st.sampled_from([1.1, 0.9, 1.15, 0.85, 1.099, 0.901]),
)
def test_a_change_of_exactly_10_percent_counts_whatever_floating_point_says(
    previous: float, factor: float
) -> None:
    latest = round(previous * factor, 1)  # what a scale shows
    assume(30 <= latest <= 250 and latest != previous)
    exact = (Fraction(str(latest)) - Fraction(str(previous))) / Fraction(str(previous)) * 100
    assert patients.changed_by_flag(latest, previous, 10) == (abs(exact) >= 10)


def test_68_to_74_8_kg_is_10_percent_exactly_and_needs_confirmation(clinic: Any) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 68.0, hours_ago=2)
    assert clinic.weigh(patient, 74.8, hours_ago=1).needs_confirmation
    assert not patients.changed_by_flag(74.7, 68.0, 10)


def test_a_second_person_countersigns_with_their_own_password(clinic: Any, released: Any) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0, hours_ago=2)
    changed = clinic.weigh(patient, 80.0, hours_ago=1)
    with pytest.raises(InvalidInput, match="you recorded this one"):
        patients.confirm_weight(
            db.session, changed, user=clinic.clinician, password=TEST_PASSWORD, now=utcnow()
        )
    db.session.rollback()
    with pytest.raises(CredentialsRejected):
        patients.confirm_weight(
            db.session, changed, user=clinic.investigator, password="wrong", now=utcnow()
        )
    db.session.rollback()
    assert changed.needs_confirmation
    patients.confirm_weight(
        db.session, changed, user=clinic.investigator, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
    assert changed.confirmation == WeightConfirmation.COUNTERSIGNED
    assert changed.confirmed_by_id == clinic.investigator.id
    (signed,) = signatures.manifest(db.session, changed)
    assert signed.meaning == patients.WEIGHT_CONFIRMATION_MEANING and signed.valid
    with pytest.raises(Conflict, match="needs no confirmation"):
        patients.confirm_weight(
            db.session, changed, user=clinic.investigator, password=TEST_PASSWORD, now=utcnow()
        )
    db.session.rollback()
    assert order(clinic, patient).weight_id == changed.id


# --- over HTTP ----------------------------------------------------------------------------------


def test_api_refuses_an_implausible_weight_and_holds_a_changed_one_until_countersigned(
    clinic: Any, released: Any, clients: Any
) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0, hours_ago=2)
    nurse = clients.api(clinic.clinician)
    url = f"/api/v1/patients/{patient.id}/weights"
    typo = nurse.post(url, json={"weight_kg": 7.0})
    assert typo.status_code == 422 and typo.mimetype == "application/problem+json"
    assert "grams or pounds" in typo.get_json()["errors"]["weight_kg"][0]
    refusals = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "weight.refused")
    ).scalars()
    assert any("grams or pounds" in entry.changes for entry in refusals)
    changed = nurse.post(url, json={"weight_kg": 60.0})
    assert changed.status_code == 201
    weight = changed.get_json()
    assert weight["needs_confirmation"] and weight["change_percent"] == pytest.approx(-14.29, 0.01)
    tech = clients.api(clinic.lab.tech)
    plan = tech.get(f"/api/v1/patients/{patient.id}/doses/D0/plan")
    assert plan.status_code == 422 and "not confirmed" in plan.get_json()["errors"]["weight"][0]
    ordered = tech.post(f"/api/v1/patients/{patient.id}/doses", json={"visit": "D0"})
    assert ordered.status_code == 422
    confirm = f"{url}/{weight['id']}/confirm"
    own = nurse.post(confirm, json={"password": TEST_PASSWORD})
    assert own.status_code == 422 and own.mimetype == "application/problem+json"
    signed = clients.api(clinic.investigator).post(confirm, json={"password": TEST_PASSWORD})
    assert signed.status_code == 200, signed.get_json()
    assert signed.get_json()["confirmation"] == "countersigned"
    assert signed.get_json()["confirmed_by"] == clinic.investigator.username
    ordered = tech.post(f"/api/v1/patients/{patient.id}/doses", json={"visit": "D0"})
    assert ordered.status_code == 201, ordered.get_json()


def test_the_patient_page_keeps_a_refused_weight_and_offers_the_countersignature(
    clinic: Any, clients: Any
) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0, hours_ago=2)
    nurse = clients.web(clinic.clinician)
    url = f"/patients/{patient.id}/weights"
    refused = nurse.post(url, data={"weight_kg": "7.0", "source": "ward scale"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "grams or pounds" in page
    assert 'value="7.0"' in page and 'value="ward scale"' in page
    assert nurse.post(url, data={"weight_kg": "80", "source": "ward scale"}).status_code == 302
    own = nurse.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "unconfirmed" in own and "confirm-weight-form" not in own  # not by the recorder
    doctor = clients.web(clinic.investigator)
    shown = doctor.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "confirm-weight-form" in shown
    (latest, *_) = patients.get_patient(db.session, patient.id).weights
    wrong = doctor.post(f"{url}/{latest.id}/confirm", data={"password": "wrong"})
    assert wrong.status_code in (401, 403, 422)
    done = doctor.post(f"{url}/{latest.id}/confirm", data={"password": TEST_PASSWORD})
    assert done.status_code == 302
    shown = doctor.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "countersigned by" in shown and "confirm-weight-form" not in shown
