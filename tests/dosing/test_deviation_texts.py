"""Deviation texts the system writes name no person (issue 19 review): a trial's deviations are
exported with the subject's pseudonymised data, so the signer is named by the e-signature record
the text points to, never in the text itself."""

from __future__ import annotations

from typing import Any

from cellchain.core.models import User
from cellchain.core.types import utcnow
from cellchain.dosing import service
from cellchain.dosing.defaults import NCT01420432_PARAMETERS
from cellchain.extensions import db
from tests.clinic.test_post_thaw_count import count_body
from tests.conftest import TEST_PASSWORD
from tests.support.enrolment import enrol_body
from tests.support.ward import Ward


def names_no_one(text: str) -> list[str]:
    """The full names and usernames of every account that occur in ``text``."""
    return [
        name
        for user in db.session.query(User).all()
        for name in (user.full_name, user.username)
        if name and name in text
    ]


def test_the_deviation_of_a_post_thaw_decision_to_proceed_names_no_one(
    ward: Ward, clients: Any
) -> None:
    _patient, order = ward.at_bedside()
    nurse = clients.api(ward.clinic.clinician)
    count = nurse.post(f"/api/v1/doses/{order.id}/post-thaw-counts", json=count_body(4.1e6, 82))
    assert count.status_code == 201, count.get_json()
    signed = clients.api(ward.clinic.investigator).post(
        f"/api/v1/doses/{order.id}/post-thaw-decision",
        json={
            "decision": "proceed",
            "reason": "Benefit outweighs",
            "password": TEST_PASSWORD,
            "count_id": count.get_json()["id"],
        },
    )
    assert signed.status_code == 200, signed.get_json()
    deviation = clients.api(ward.lab.qa).get(
        f"/api/v1/deviations/{signed.get_json()['deviation_id']}"
    )
    assert deviation.status_code == 200, deviation.get_json()
    text = deviation.get_json()["description"]
    counts = nurse.get(f"/api/v1/doses/{order.id}/post-thaw-counts").get_json()
    (signature,) = counts["signatures"]
    assert "post-thaw count" in text and "Benefit outweighs" in text
    assert f"signature {signature['signature_id']}" in text, text
    assert not names_no_one(text), (names_no_one(text), text)


def test_the_deviation_of_a_dose_override_names_no_one(
    clinic: Any, released: Any, clients: Any
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
    clinic.randomize("MSC")
    nurse = clients.api(clinic.clinician)
    patient = nurse.post("/api/v1/patients", json=enrol_body()).get_json()
    nurse.post(f"/api/v1/patients/{patient['id']}/weights", json={"weight_kg": 70})
    accepted = clients.api(clinic.lab.tech).post(
        f"/api/v1/patients/{patient['id']}/doses",
        json={
            "visit": "D0",
            "override": {
                "investigator": clinic.investigator.username,
                "reason": "graduation",
                "password": TEST_PASSWORD,
            },
        },
    )
    assert accepted.status_code == 201, accepted.get_json()
    body = accepted.get_json()
    deviation = clients.api(clinic.lab.qa).get(f"/api/v1/deviations/{body['deviation_id']}")
    assert deviation.status_code == 200, deviation.get_json()
    text = deviation.get_json()["description"]
    (signature,) = body["signatures"]
    assert "outside the protocol's tolerance" in text and "graduation" in text
    assert f"signature {signature['signature_id']}" in text, text
    assert not names_no_one(text), (names_no_one(text), text)
