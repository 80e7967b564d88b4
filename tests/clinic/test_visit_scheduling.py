"""Visit scheduling (issue 19): day 0 rescheduled with a reason, later visits counted from the
actual first infusion, a move outside the protocol window as a protocol deviation signed by an
investigator (and no dose until it is), and visits recorded as missed; through the API and
the patient's follow-up page."""

from __future__ import annotations

import datetime as dt
import types
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from cellchain.clinic.models import MissedVisit, VisitReschedule
from cellchain.core.models import AuditEntry, Signature
from cellchain.core.types import utcnow
from cellchain.dosing import defaults, patients
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.follow_up import back_date, infuse


def day(offset: int = 0) -> dt.date:
    return utcnow().date() + dt.timedelta(days=offset)


def schedule_of(client: Any, patient: Any) -> dict[str, dict[str, Any]]:
    body = client.get(f"/api/v1/patients/{patient.id}/follow-up").get_json()
    return {v["code"]: v for v in body}


def move(client: Any, patient: Any, visit: str, planned_on: dt.date, reason: str = "x") -> Any:
    return client.post(
        f"/api/v1/patients/{patient.id}/visit-reschedules",
        json={"visit": visit, "planned_on": planned_on.isoformat(), "reason": reason},
    )


def missed(client: Any, patient: Any, visit: str, reason: str = "Did not come") -> Any:
    return client.post(
        f"/api/v1/patients/{patient.id}/missed-visits", json={"visit": visit, "reason": reason}
    )


def order_dose(clinic: Any, clients: Any, patient: Any, visit: str) -> Any:
    return clients.api(clinic.lab.tech).post(
        f"/api/v1/patients/{patient.id}/doses", json={"visit": visit}
    )


def count(model: Any) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


# --- day 0 rescheduled --------------------------------------------------------------------------


def test_day_0_rescheduled_within_the_protocol_moves_the_schedule_and_is_audited(
    clinic: Any, clients: Any
) -> None:
    patient = clinic.enrol()
    nurse = clients.api(clinic.clinician)
    moved = move(nurse, patient, "D0", day(3), "  Patient has a fever  ")
    assert moved.status_code == 201, moved.get_json()
    row = moved.get_json()
    assert (row["visit"], row["previous_on"], row["planned_on"]) == (
        "D0",
        day(0).isoformat(),
        day(3).isoformat(),
    )
    assert row["reason"] == "Patient has a fever" and not row["outside_protocol"]
    assert (row["protocol_earliest"], row["protocol_latest"]) == (
        day(-14).isoformat(),
        day(14).isoformat(),
    )
    db.session.refresh(patient)
    assert patient.day0 == day(3)
    visits = schedule_of(nurse, patient)
    assert visits["D0"]["planned_on"] == day(3).isoformat() and visits["D0"]["rescheduled"]
    assert visits["D0"]["status"] == "planned"
    # later visits are provisional, from the scheduled day 0, until the first infusion
    assert visits["M3"]["provisional"] and visits["M3"]["planned_on"] == day(94).isoformat()
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "visit.rescheduled")
    ).scalar_one()
    assert entry.entity_id == str(patient.id) and "Patient has a fever" in entry.changes
    listed = nurse.get(f"/api/v1/patients/{patient.id}/visit-reschedules").get_json()
    assert [r["id"] for r in listed] == [row["id"]]


def test_a_reschedule_into_the_past_or_without_a_reason_is_refused_and_nothing_saved(
    clinic: Any, clients: Any
) -> None:
    patient = back_date(clinic.enrol(), 2)  # day 0 was two days ago, not infused
    nurse = clients.api(clinic.clinician)
    past = move(nurse, patient, "D0", day(-1), "Came a day late")
    assert past.status_code == 422
    assert "in the past" in past.get_json()["errors"]["planned_on"][0]
    blank = move(nurse, patient, "D0", day(1), "   ")
    assert blank.status_code == 422 and "reason" in blank.get_json()["errors"]
    unknown = move(nurse, patient, "M9", day(1), "typo")
    assert unknown.status_code == 422 and "visit" in unknown.get_json()["errors"]
    db.session.refresh(patient)
    assert patient.day0 == day(-2)
    assert count(VisitReschedule) == 0
    assert (
        db.session.execute(
            select(AuditEntry).where(AuditEntry.action == "visit.rescheduled")
        ).first()
        is None
    )
    # today is not in the past: the overdue day 0 is moved to today
    assert move(nurse, patient, "D0", day(0), "Came back").status_code == 201
    assert schedule_of(nurse, patient)["D0"]["status"] == "due"


def test_later_visits_move_only_once_the_first_infusion_has_started(
    clinic: Any, clients: Any
) -> None:
    patient = back_date(clinic.enrol(), 10)
    nurse = clients.api(clinic.clinician)
    early = move(nurse, patient, "M3", day(85), "Holiday")
    assert early.status_code == 409 and "Reschedule day 0 instead" in early.get_json()["detail"]
    infuse(clinic, patient, "D0", at=utcnow() - dt.timedelta(days=10))
    done = move(nurse, patient, "D0", day(1), "again")
    assert done.status_code == 409 and "is done" in done.get_json()["detail"]
    # M3 is day 91 ± 14 from the first infusion (10 days ago): day 81 is inside the window
    inside = move(nurse, patient, "M3", day(81 - 10 + 5), "Holiday")
    assert inside.status_code == 201 and not inside.get_json()["outside_protocol"]
    m3 = schedule_of(nurse, patient)["M3"]
    assert m3["planned_on"] == day(76).isoformat()
    assert (m3["earliest"], m3["latest"]) == (day(67).isoformat(), day(95).isoformat())


# --- the anchor: the actual first infusion ------------------------------------------------------


def test_months_3_6_and_12_count_from_the_actual_first_infusion(clinic: Any, clients: Any) -> None:
    patient = back_date(clinic.enrol(), 100)  # scheduled day 0: 100 days ago
    nurse = clients.api(clinic.clinician)
    before = schedule_of(nurse, patient)
    assert before["M3"]["provisional"] and before["M3"]["planned_on"] == day(-9).isoformat()
    infuse(clinic, patient, "D0", at=utcnow() - dt.timedelta(days=95))  # given 5 days late
    after = schedule_of(nurse, patient)
    assert after["D0"]["planned_on"] == day(-100).isoformat()  # the day it was scheduled for
    for code, offset, window in (("M3", 91, 14), ("M6", 182, 14), ("M12", 365, 28)):
        visit = after[code]
        assert not visit["provisional"]
        assert visit["planned_on"] == day(-95 + offset).isoformat(), code
        assert visit["earliest"] == day(-95 + offset - window).isoformat(), code
        assert visit["latest"] == day(-95 + offset + window).isoformat(), code


def _visit_days(parameters: dict[str, Any]) -> dict[str, tuple[int, int]]:
    items = [*parameters["infusions"], *parameters["follow_up"]]
    return {item["code"]: (int(item["day"]), int(item.get("window_days", 0))) for item in items}


@given(
    scheduled=st.dates(dt.date(2020, 1, 1), dt.date(2035, 12, 31)),
    late_by=st.one_of(st.none(), st.integers(-30, 60)),
    arm=st.sampled_from(["MSC", "CONTROL"]),
)
def test_visit_windows_are_always_computed_from_the_actual_first_infusion(
    scheduled: dt.date, late_by: int | None, arm: str
) -> None:
    """Whatever day 0 was scheduled for and whenever the first infusion actually started
    (earlier, later, not yet): every later visit of an arm receiving cells is planned, and
    its window placed, from the first infusion; before it, provisionally from the scheduled
    day 0; an arm without cells counts from its scheduled day 0."""
    parameters = defaults.NCT01420432_PARAMETERS
    patient = types.SimpleNamespace(
        day0=scheduled, arm=arm, protocol=types.SimpleNamespace(parameters=parameters, code="T")
    )
    first = None if late_by is None else scheduled + dt.timedelta(days=late_by)
    facts = patients.ScheduleFacts(first_infusion_on=first if arm == "MSC" else None)
    visits = {v.code: v for v in patients.schedule(patient, facts)}  # type: ignore[arg-type]
    anchor = first if arm == "MSC" and first is not None else scheduled
    for code, (offset, window) in _visit_days(parameters).items():
        visit = visits[code]
        expected = scheduled if offset == 0 else anchor + dt.timedelta(days=offset)
        assert visit.planned_on == expected
        assert visit.earliest == expected - dt.timedelta(days=window)
        assert visit.latest == expected + dt.timedelta(days=window)
        assert visit.provisional == (offset != 0 and arm == "MSC" and first is None)


# --- a move outside the protocol: a deviation the investigator signs ---------------------------


def test_day_0_moved_outside_the_protocol_needs_the_investigators_signature_before_a_dose(
    clinic: Any, clients: Any, released: Any
) -> None:
    patient = clinic.enrol(day0=day(20))  # planned in 20 days; moved to today: 20 > 14 days
    clinic.weigh(patient, 70.0)
    nurse = clients.api(clinic.clinician)
    moved = move(nurse, patient, "D0", day(0), "The cleanroom slot moved")
    assert moved.status_code == 201
    row = moved.get_json()
    assert row["outside_protocol"] and row["deviation_pending"]
    assert schedule_of(nurse, patient)["D0"]["deviation_pending"]
    refused = order_dose(clinic, clients, patient, "D0")
    assert refused.status_code == 422
    assert "sign the protocol deviation" in " ".join(refused.get_json()["errors"]["visit"])
    sign_url = f"/api/v1/visit-reschedules/{row['id']}/deviation-signature"
    # a clinician is not an investigator; a wrong password signs nothing
    assert nurse.post(sign_url, json={"password": TEST_PASSWORD}).status_code == 403
    doctor = clients.api(clinic.investigator)
    assert doctor.post(sign_url, json={"password": "wrong"}).status_code in (401, 403)
    assert (
        db.session.execute(
            select(Signature).where(Signature.entity_type == "visit_reschedule")
        ).first()
        is None
    )
    signed = doctor.post(sign_url, json={"password": TEST_PASSWORD})
    assert signed.status_code == 200, signed.get_json()
    assert signed.get_json()["deviation_signed_by"] == "ivan"
    assert not signed.get_json()["deviation_pending"]
    again = doctor.post(sign_url, json={"password": TEST_PASSWORD})
    assert again.status_code == 409
    ordered = order_dose(clinic, clients, patient, "D0")
    assert ordered.status_code == 201, ordered.get_json()


def test_a_move_within_the_window_has_no_deviation_to_sign(clinic: Any, clients: Any) -> None:
    patient = clinic.enrol()
    row = move(clients.api(clinic.clinician), patient, "D0", day(2)).get_json()
    url = f"/api/v1/visit-reschedules/{row['id']}/deviation-signature"
    response = clients.api(clinic.investigator).post(url, json={"password": TEST_PASSWORD})
    assert response.status_code == 409 and "no deviation" in response.get_json()["detail"]


def test_an_evaluation_moved_outside_its_window_opens_a_deviation(
    clinic: Any, clients: Any
) -> None:
    patient = back_date(clinic.enrol(), 170)
    infuse(clinic, patient, "D0", at=utcnow() - dt.timedelta(days=170))
    nurse = clients.api(clinic.clinician)
    # M6: day 182 ± 14 from the first infusion → 12 days from now, window to day 26
    row = move(nurse, patient, "M6", day(40), "Patient abroad").get_json()
    assert row["outside_protocol"]
    m6 = schedule_of(nurse, patient)["M6"]
    assert m6["deviation_pending"] and m6["earliest"] == m6["latest"] == day(40).isoformat()


# --- missed visits ------------------------------------------------------------------------------


def test_an_overdue_visit_recorded_missed_leaves_the_due_list_and_takes_no_dose(
    clinic: Any, clients: Any, released: Any
) -> None:
    patient = back_date(clinic.enrol(), 120)
    infuse(clinic, patient, "D0", at=utcnow() - dt.timedelta(days=120))  # M3 closed on day 105
    nurse = clients.api(clinic.clinician)
    due = nurse.get("/api/v1/follow-up/due").get_json()
    assert ("M3", "overdue") in [(v["code"], v["status"]) for v in due]
    recorded = missed(nurse, patient, "M3", "  Patient withdrew consent for the second dose ")
    assert recorded.status_code == 201, recorded.get_json()
    assert recorded.get_json()["reason"] == "Patient withdrew consent for the second dose"
    assert schedule_of(nurse, patient)["M3"]["status"] == "missed"
    assert "M3" not in [v["code"] for v in nurse.get("/api/v1/follow-up/due").get_json()]
    assert missed(nurse, patient, "M3").status_code == 409
    clinic.weigh(patient, 70.0, hours_ago=0)
    refused = order_dose(clinic, clients, patient, "M3")
    assert refused.status_code == 422
    assert "recorded as missed" in " ".join(refused.get_json()["errors"]["visit"])
    assert (
        db.session.execute(select(AuditEntry).where(AuditEntry.action == "visit.missed")).first()
        is not None
    )


def test_only_an_overdue_visit_is_missed_and_day_0_is_rescheduled_instead(
    clinic: Any, clients: Any
) -> None:
    patient = back_date(clinic.enrol(), 30)  # day 0 overdue, M3 planned
    nurse = clients.api(clinic.clinician)
    day0 = missed(nurse, patient, "D0")
    assert day0.status_code == 422
    assert "Reschedule it instead" in day0.get_json()["errors"]["visit"][0]
    ahead = missed(nurse, patient, "M3")
    assert ahead.status_code == 422 and "window" in ahead.get_json()["errors"]["visit"][0]
    blank = missed(nurse, patient, "M3", " ")
    assert blank.status_code == 422 and "reason" in blank.get_json()["errors"]
    assert count(MissedVisit) == 0
    moved = move(nurse, patient, "D0", day(0), "Missed day 0: rescheduled")
    assert moved.status_code == 201
    missed_twice = missed(nurse, patient, "D0")
    assert missed_twice.status_code == 422


def test_a_missed_visit_cannot_be_rescheduled_nor_recorded_done(clinic: Any, clients: Any) -> None:
    patient = back_date(clinic.enrol(), 230)
    infuse(clinic, patient, "D0", at=utcnow() - dt.timedelta(days=230))
    nurse = clients.api(clinic.clinician)
    assert missed(nurse, patient, "M6").status_code == 201  # day 182 ± 14: closed on day 196
    assert move(nurse, patient, "M6", day(3)).status_code == 409
    done = nurse.post(
        f"/api/v1/patients/{patient.id}/follow-up",
        json={"visit": "M6", "done_on": day(0).isoformat()},
    )
    assert done.status_code == 422 and "missed" in done.get_json()["errors"]["visit"][0]


# --- the page -----------------------------------------------------------------------------------


def test_the_follow_up_page_reschedules_signs_and_records_missed(clinic: Any, clients: Any) -> None:
    patient = clinic.enrol(day0=day(20))
    url = f"/patients/{patient.id}/follow-up"
    nurse = clients.web(clinic.clinician)
    page = nurse.get(url).get_data(as_text=True)
    assert 'id="reschedule-form"' in page and 'data-status="planned"' in page
    refused = nurse.post(
        f"/patients/{patient.id}/visit-reschedules",
        data={"visit": "D0", "planned_on": day(-1).isoformat(), "reason": "typed reason"},
    )
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "in the past" in html and "typed reason" in html
    moved = nurse.post(
        f"/patients/{patient.id}/visit-reschedules",
        data={"visit": "D0", "planned_on": day(0).isoformat(), "reason": "Slot moved"},
    )
    assert moved.status_code == 302
    page = nurse.get(url).get_data(as_text=True)
    assert "protocol deviation is open" in page and "deviation to sign" in page
    assert 'class="deviation-form"' not in page  # a clinician does not sign it
    (row,) = db.session.execute(select(VisitReschedule)).scalars()
    doctor = clients.web(clinic.investigator)
    assert 'class="deviation-form"' in doctor.get(url).get_data(as_text=True)
    wrong = doctor.post(
        f"/visit-reschedules/{row.id}/deviation-signature", data={"password": "nope"}
    )
    assert wrong.status_code in (401, 403, 422)
    signed = doctor.post(
        f"/visit-reschedules/{row.id}/deviation-signature", data={"password": TEST_PASSWORD}
    )
    assert signed.status_code == 302
    page = doctor.get(url).get_data(as_text=True)
    assert "Protocol deviation signed" in page and "deviation to sign" not in page


def test_the_page_records_a_missed_visit(clinic: Any, clients: Any) -> None:
    patient = back_date(clinic.enrol(), 120)
    infuse(clinic, patient, "D0", at=utcnow() - dt.timedelta(days=120))
    nurse = clients.web(clinic.clinician)
    url = f"/patients/{patient.id}/follow-up"
    assert 'id="missed-form"' in nurse.get(url).get_data(as_text=True)
    refused = nurse.post(f"/patients/{patient.id}/missed-visits", data={"visit": "M3"})
    assert refused.status_code == 422
    done = nurse.post(
        f"/patients/{patient.id}/missed-visits", data={"visit": "M3", "reason": "No show"}
    )
    assert done.status_code == 302
    page = nurse.get(url).get_data(as_text=True)
    assert 'data-visit="M3" data-status="missed"' in page and "No show" in page


@pytest.mark.parametrize("visit", ["D0"])
def test_the_bedside_refuses_a_visit_whose_deviation_is_not_signed(ward: Any, visit: str) -> None:
    from cellchain.clinic.models import VisitReschedule as Row

    patient, order = ward.at_bedside()
    db.session.add(
        Row(
            patient_id=patient.id,
            visit=visit,
            previous_on=day(-30),
            planned_on=patient.day0,
            reason="moved",
            protocol_earliest=day(-44),
            protocol_latest=day(-16),
            outside_protocol=True,
            recorded_at=utcnow(),
            recorded_by_id=ward.clinic.clinician.id,
        )
    )
    db.session.commit()
    check = ward.verify(patient, order)
    failed = {c["code"]: c["detail"] for c in check.failed}
    assert "sign the protocol deviation" in failed["visit_window"]
