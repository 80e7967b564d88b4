"""An adverse event is related to the MSC only if an infusion had started before its onset
(issue 19 review): never for a patient of the control arm, never for an event before a
patient's first infusion. Refused on the ``causality`` field with nothing saved, through the API
and the page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from cellchain.clinic.models import AdverseEvent
from cellchain.core.models import AuditEntry, Signature
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.clinic.test_adverse_event_reporting import body
from tests.conftest import TEST_PASSWORD
from tests.support.follow_up import back_date, infuse

RELATED_MSC = {"causality": "related_msc", "expected": False, "password": TEST_PASSWORD}


def record(doctor: Any, patient: Any) -> int:
    """An event with its onset 40 hours ago."""
    event = doctor.post(f"/api/v1/patients/{patient.id}/adverse-events", json=body())
    assert event.status_code == 201, event.get_json()
    return int(event.get_json()["id"])


def assess(doctor: Any, event_id: int, **changes: Any) -> Any:
    return doctor.post(
        f"/api/v1/adverse-events/{event_id}/assessment", json={**RELATED_MSC, **changes}
    )


def nothing_saved(event_id: int) -> bool:
    db.session.expire_all()
    signed = db.session.scalar(
        select(func.count())
        .select_from(Signature)
        .where(Signature.entity_type == "adverse_event", Signature.entity_id == str(event_id))
    )
    assessed = db.session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "adverse_event.assessed")
    )
    event = db.session.get(AdverseEvent, event_id)
    return event is not None and event.causality is None and signed == 0 and assessed == 0


def test_an_event_of_a_control_patient_is_never_assessed_related_to_msc(
    clinic: Any, clients: Any
) -> None:
    patient = back_date(clinic.enrol(arm="CONTROL"), 10)
    doctor = clients.api(clinic.investigator)
    event_id = record(doctor, patient)
    refused = assess(doctor, event_id)
    assert refused.status_code == 422, refused.get_json()
    assert "causality" in refused.get_json()["errors"]
    assert "no MSC infusion" in refused.get_json()["detail"]
    assert nothing_saved(event_id)
    dmard = assess(doctor, event_id, causality="related_dmard")
    assert dmard.status_code == 200, dmard.get_json()
    assert dmard.get_json()["causality"] == "related_dmard"


def test_an_event_before_the_first_infusion_is_not_related_to_msc_one_after_it_may_be(
    clinic: Any, clients: Any
) -> None:
    patient = back_date(clinic.enrol(), 10)  # an MSC patient, day 0 not given yet
    doctor = clients.api(clinic.investigator)
    before_any = record(doctor, patient)
    refused = assess(doctor, before_any)
    assert refused.status_code == 422 and "causality" in refused.get_json()["errors"]
    assert nothing_saved(before_any)
    infuse(clinic, patient, at=utcnow() - dt.timedelta(hours=30))  # after the onset (40 h ago)
    still = assess(doctor, before_any)
    assert still.status_code == 422, still.get_json()
    other = back_date(clinic.enrol(study_id="AS-002"), 10)
    infuse(clinic, other, at=utcnow() - dt.timedelta(hours=50))  # before the onset
    after = record(doctor, other)
    signed = assess(doctor, after)
    assert signed.status_code == 200, signed.get_json()
    assert signed.get_json()["causality"] == "related_msc"


def test_the_page_form_refuses_related_to_msc_for_a_control_patient(
    clinic: Any, clients: Any
) -> None:
    patient = back_date(clinic.enrol(arm="CONTROL"), 10)
    event_id = record(clients.api(clinic.investigator), patient)
    web = clients.web(clinic.investigator)
    refused = web.post(
        f"/adverse-events/{event_id}/assessment",
        data={"causality": "related_msc", "expected": "false", "password": TEST_PASSWORD},
    )
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "No MSC infusion had started before the onset" in html
    assert nothing_saved(event_id)
