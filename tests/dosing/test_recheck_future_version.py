"""Issue 22: the version of a protocol in force is always read at a time. A version QA signs
to take effect later, whose pre-infusion re-check is stricter, does not apply to an order or
a bedside check before its effective time, and does after it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cellchain.core.types import utcnow
from cellchain.documents import versioning
from cellchain.dosing import orders, patients, service
from cellchain.dosing.defaults import NCT01420432_PARAMETERS
from cellchain.dosing.models import DoseOrder, Patient, Protocol
from cellchain.dosing.rechecks import rechecks
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.ward import payload

#: the stricter version's re-check holds a day, not seven
STRICTER_VALID_DAYS = 1


def _month_3_patient(ward: Any) -> Patient:
    """An MSC patient whose month-3 window is open today, weighed this morning."""
    patient = ward.patient(weight_kg=0)
    patient.day0 = utcnow().date() - dt.timedelta(days=91)
    patient.enrolled_at = utcnow() - dt.timedelta(days=92)
    db.session.commit()
    ward.clinic.weigh(patient, 70.0)
    return patient


def _sign_stricter_version(ward: Any, old: Protocol, effective_at: dt.datetime) -> Protocol:
    """QA signs a version of the patient's protocol whose re-check holds for one day only and
    whose ECOG limit is 0, in force from ``effective_at``."""
    parameters = dict(NCT01420432_PARAMETERS)
    recheck = dict(parameters["pre_infusion_recheck"])
    recheck["valid_days"] = STRICTER_VALID_DAYS
    recheck["items"] = [
        {**item, "measure": {**item["measure"], "limit": 0}} if item["code"] == "ecog" else item
        for item in recheck["items"]
    ]
    parameters["pre_infusion_recheck"] = recheck
    qa = ward.lab.qa
    new = service.PROTOCOLS.draft(
        db.session, actor=qa, now=utcnow(), code=old.code, title=old.title, parameters=parameters
    )
    service.PROTOCOLS.approve(
        db.session, new, user=qa, password=TEST_PASSWORD, now=utcnow(), effective_at=effective_at
    )
    db.session.commit()
    return new


def test_in_force_needs_a_time_and_a_future_version_is_not_in_force_before_it(
    ward: Any,
) -> None:
    patient = _month_3_patient(ward)
    old = patient.protocol
    effective = utcnow() + dt.timedelta(hours=2)
    new = _sign_stricter_version(ward, old, effective)
    with pytest.raises(TypeError):
        versioning.in_force(db.session, Protocol, old.code)  # type: ignore[call-arg]
    assert patients.protocol_in_force(db.session, old.code, at=utcnow()).id == old.id
    assert patients.protocol_in_force(db.session, old.code, at=effective).id == new.id
    assert rechecks.valid_days(db.session, patient, at=utcnow()) == 7
    assert rechecks.valid_days(db.session, patient, at=effective) == STRICTER_VALID_DAYS


def test_a_stricter_re_check_signed_for_later_applies_to_orders_only_from_its_time(
    ward: Any, clients: Any, clock: Any
) -> None:
    patient = _month_3_patient(ward)
    # a passing re-check of two days ago: within the 7 days of the version in force now
    ward.clinic.recheck(patient, now=utcnow() - dt.timedelta(days=2))
    effective = utcnow() + dt.timedelta(hours=2)
    _sign_stricter_version(ward, patient.protocol, effective)
    assert rechecks.problem(db.session, patient, "M3", now=utcnow(), zone=dt.UTC) is None
    orders.plan_dose(db.session, patient, "M3", now=utcnow(), zone=dt.UTC)  # not refused
    later = effective + dt.timedelta(minutes=1)
    with pytest.raises(orders.DoseRefused, match="more than 1 days ago"):
        orders.plan_dose(db.session, patient, "M3", now=later, zone=dt.UTC)
    # through the API, whose clock is moved past the effective time
    tech = clients.api(ward.lab.tech)
    url = f"/api/v1/patients/{patient.id}/doses/M3/plan"
    assert tech.get(url).status_code == 200, tech.get(url).get_json()
    clock.advance(hours=2, minutes=1)
    refused = tech.get(url)
    assert refused.status_code == 422
    assert "more than 1 days ago" in refused.get_json()["errors"]["recheck"][0]


def test_a_stricter_re_check_signed_for_later_applies_at_the_bedside_only_from_its_time(
    ward: Any, clients: Any, clock: Any
) -> None:
    patient = _month_3_patient(ward)
    ward.clinic.recheck(patient, now=utcnow() - dt.timedelta(days=2))
    order: DoseOrder = ward.prepared(patient, visit="M3")
    ward.receive(ward.ship(order))
    ward.thaw(order)
    effective = utcnow() + dt.timedelta(hours=2)
    _sign_stricter_version(ward, patient.protocol, effective)
    nurse = clients.api(ward.clinic.clinician)
    scans = {"wristband": payload(patient.coi), "label": payload(order.dose_unit.code)}

    def recheck_result() -> dict[str, Any]:
        answer = nurse.post("/api/v1/bedside/checks", json=scans)
        assert answer.status_code == 201, answer.get_json()
        (result,) = [c for c in answer.get_json()["checks"] if c["code"] == "recheck"]
        return dict(result)

    before = recheck_result()
    assert before["passed"], before
    assert "Month 3 re-check passed" in before["detail"]
    clock.advance(hours=2, minutes=1)
    after = recheck_result()
    assert not after["passed"], after
    assert "more than 1 days ago" in after["detail"]
    # a re-check recorded after the effective time is asked the stricter items: ECOG 1 fails
    recorded = ward.clinic.recheck(patient, now=effective + dt.timedelta(minutes=2))
    assert not recorded.passed
    assert [text for text in rechecks.failed_items(recorded) if "ECOG" in text], recorded.answers
