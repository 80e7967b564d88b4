"""The answer of a bedside check is dumped by hand (``schemas.bedside_check_answer``, issue 20:
marshmallow's field-by-field dump was a measurable part of the request): it must be what
``BedsideCheckOut`` dumps, byte for byte, on go and stop checks, signed, started or not."""

from __future__ import annotations

from typing import Any

import pytest
from flask import current_app

from cellchain.clinic.bedside import bedside
from cellchain.clinic.bedside.schemas import BedsideCheckOut, bedside_check_answer
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.support.ward import Ward, payload


def same_bytes(summary: Any) -> None:
    by_hand = current_app.json.dumps(bedside_check_answer(summary))
    by_schema = current_app.json.dumps(BedsideCheckOut().dump(summary))
    assert by_hand == by_schema


def test_the_answer_by_hand_is_the_schemas_dump_for_go_signed_started_and_stop(
    ward: Ward,
) -> None:
    patient, order = ward.at_bedside()
    go = ward.verify(patient, order)
    assert go.verdict == "go"
    same_bytes(bedside.summary(db.session, go, now=utcnow()))
    ward.sign(go)
    signed = bedside.summary(db.session, go, now=utcnow())
    assert signed.signed_by_two and len(signed.signatures) == 2
    same_bytes(signed)
    started = ward.start(go)
    assert started.infusion is not None
    after = bedside.summary(db.session, go, now=utcnow())
    assert after.infusion is not None
    same_bytes(after)
    other = ward.patient(study_id="AS-077", randomization_number="R-077")
    stop = ward.verify(other, order)  # another patient's wristband, and the dose infused
    assert stop.verdict == "stop"
    same_bytes(bedside.summary(db.session, stop, now=utcnow()))


@pytest.mark.parametrize(
    ("wristband", "label", "verdict"),
    [
        (None, None, "go"),
        (None, "bag", "go"),  # a bag's label
        ("other", None, "stop"),  # another patient's wristband
        ("CC1.GARBAGE", None, "stop"),  # unreadable wristband: no patient
        (None, "CC9.X999926000001C0018T", "stop"),  # unreadable label: no dose
    ],
)
def test_the_answer_over_http_is_what_reading_the_check_answers(
    ward: Ward, clients: Any, wristband: str | None, label: str | None, verdict: str
) -> None:
    """Byte for byte: the POST's answer (by hand, from the gathered facts) and the GET's (the
    schema, from the check as read back)."""
    patient, order = ward.at_bedside()
    if wristband == "other":
        wristband = payload(ward.patient(study_id="AS-078", randomization_number="R-078").coi)
    if label == "bag":
        label = payload(order.bags[0].unit.code)
    body = {
        "wristband": wristband or payload(patient.coi),
        "label": label or payload(order.dose_unit.code),
    }
    db.session.commit()
    nurse = clients.api(ward.clinic.clinician)
    made = nurse.post("/api/v1/bedside/checks", json=body)
    assert made.status_code == 201, made.get_json()
    assert made.mimetype == "application/json"
    assert made.get_json()["verdict"] == verdict
    read = nurse.get(f"/api/v1/bedside/checks/{made.get_json()['id']}")
    assert read.status_code == 200
    assert made.data == read.data
