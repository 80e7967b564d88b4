"""The dosing patient page shows where each visit of the calendar stands (issue 19): planned
provisionally before the first infusion, moved outside the protocol with the investigator's
signature awaited, missed; and links to the follow-up calendar where those acts are made."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cellchain.core.types import utcnow
from tests.support.follow_up import back_date, infuse


def _day(offset: int = 0) -> dt.date:
    return utcnow().date() + dt.timedelta(days=offset)


def _visit_row(page: str, code: str) -> str:
    start = page.index(f'data-visit="{code}"')
    return page[start : page.index("</tr>", start)]


def test_before_the_first_infusion_later_visits_are_provisional(clinic: Any, clients: Any) -> None:
    patient = clinic.enrol(day0=_day(5))
    page = clients.web(clinic.clinician).get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "provisional" not in _visit_row(page, "D0")
    assert "provisional" in _visit_row(page, "M3") and "provisional" in _visit_row(page, "M6")
    assert 'id="calendar-link"' in page


def test_a_move_outside_the_protocol_shows_the_signature_awaited(clinic: Any, clients: Any) -> None:
    patient = clinic.enrol(day0=_day(20))
    nurse = clients.api(clinic.clinician)
    moved = nurse.post(
        f"/api/v1/patients/{patient.id}/visit-reschedules",
        json={"visit": "D0", "planned_on": _day(0).isoformat(), "reason": "Slot moved"},
    )
    assert moved.status_code == 201, moved.get_json()
    page = clients.web(clinic.clinician).get(f"/patients/{patient.id}").get_data(as_text=True)
    row = _visit_row(page, "D0")
    assert "rescheduled" in row and "signature is awaited" in row


def test_a_missed_visit_is_shown_missed(clinic: Any, clients: Any) -> None:
    patient = back_date(clinic.enrol(), 230)
    infuse(clinic, patient, "D0", at=utcnow() - dt.timedelta(days=230))
    nurse = clients.api(clinic.clinician)
    recorded = nurse.post(
        f"/api/v1/patients/{patient.id}/missed-visits", json={"visit": "M6", "reason": "Away"}
    )
    assert recorded.status_code == 201, recorded.get_json()
    page = clients.web(clinic.clinician).get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "missed" in _visit_row(page, "M6") and "missed" not in _visit_row(page, "M12")
