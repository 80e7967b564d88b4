"""The re-check before each infusion after the first (issue 19), red and green through the API
and the pages: ECOG as a score 0–5 against its limit at enrolment; the pre-infusion re-check
(every item answered, values possible, who/when, audited, a failed item recorded as such);
and the gate on every path to a month-3 dose ordered or infused: the order (API, page, a
replacement after a cancel), the bedside verdict and the start of the infusion."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import func, select, text

from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.dosing import orders, patients, service
from cellchain.dosing.defaults import NCT01420432_PARAMETERS
from cellchain.dosing.models import DoseOrder, Patient, PreInfusionRecheck
from cellchain.dosing.rechecks import rechecks
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.clinic import all_rechecked
from tests.support.enrolment import enrol_body
from tests.support.ward import payload

ITEMS = [item["code"] for item in NCT01420432_PARAMETERS["pre_infusion_recheck"]["items"]]


def body(visit: str = "M3", **changes: Any) -> dict[str, Any]:
    """A re-check request with every item met; ``changes`` replace an item's answer."""
    answers = {
        code: {k: v for k, v in vars(answer).items() if v is not None}
        for code, answer in all_rechecked().items()
    }
    answers.update(changes)
    return {"visit": visit, "answers": answers}


def month_3_patient(ward: Any, **changes: Any) -> Patient:
    """An MSC patient enrolled 92 days ago whose day 0 was 91 days ago: the month-3 window
    is open today; weighed this morning."""
    patient = ward.patient(weight_kg=0, **changes)
    patient.day0 = utcnow().date() - dt.timedelta(days=91)
    patient.enrolled_at = utcnow() - dt.timedelta(days=92)
    db.session.commit()
    ward.clinic.weigh(patient, 70.0)
    return patient


def rechecks_saved() -> int:
    return int(
        db.session.execute(select(func.count()).select_from(PreInfusionRecheck)).scalar_one()
    )


def audited(action: str) -> list[AuditEntry]:
    return list(db.session.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars())


# --- ECOG as a score at enrolment -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ecog", "status", "message"),
    [
        (0, 201, None),
        (2, 201, None),
        (3, 422, "3 ECOG score does not meet <= 2 ECOG score"),
        (5, 422, "5 ECOG score does not meet <= 2"),
        (6, 422, "Invalid ECOG score: 6 is not a whole number on the scale (0–5)"),
        (-1, 422, "Invalid ECOG score: -1"),
        (1.5, 422, "Invalid ECOG score: 1.5 is not a whole number (0–5)"),
        (None, 422, "Enter the measured value (ECOG score)"),
    ],
)
def test_the_api_takes_ecog_as_a_score_0_to_5_against_its_limit_of_2(
    clinic: Any, clients: Any, ecog: float | None, status: int, message: str | None
) -> None:
    if hasattr(clinic, "randomize"):  # the arm is drawn from a signed randomization list
        clinic.randomize("MSC")
    enrolment = enrol_body()
    enrolment["answers"]["ecog"] = {"answer": True, "value": ecog}
    answer = clients.api(clinic.clinician).post("/api/v1/patients", json=enrolment)
    assert answer.status_code == status, answer.get_json()
    if message is None:
        saved = db.session.get(Patient, answer.get_json()["id"])
        assert saved is not None and saved.checklist["ecog"]["value"] == ecog
        return
    assert message in answer.get_json()["errors"]["inclusion.ecog"][0]
    assert db.session.execute(select(Patient)).first() is None


def test_the_enrol_page_asks_ecog_as_a_number_0_to_5_and_refuses_7_as_invalid(
    clinic: Any, clients: Any
) -> None:
    if hasattr(clinic, "randomize"):  # the arm is drawn from a signed randomization list
        clinic.randomize("MSC")
    web = clients.web(clinic.clinician)
    page = web.get("/patients/enrol").get_data(as_text=True)
    ecog = page[page.index('data-item="ecog"') :].split("</div>")[0]
    assert 'type="number" step="1" min="0" max="5" id="value.ecog"' in ecog
    assert 'type="radio"' not in ecog
    today = utcnow().date()
    form = {
        "study_id": "AS-120",
        "date_of_birth": today.replace(year=today.year - 30).isoformat(),
        "sex": "male",
        "day0": today.isoformat(),
        "value.ejection_fraction": "60",
        "value.creatinine": "80",
        "value.ecog": "7",
    }
    if 'id="arm"' in page:  # the enroller picks the arm from the trial's list
        form["arm"] = "MSC"
    for item in NCT01420432_PARAMETERS["inclusion"]:
        form[f"answer.{item['code']}"] = "yes"
    for item in NCT01420432_PARAMETERS["exclusion"]:
        form[f"answer.{item['code']}"] = "no"
    refused = web.post("/patients/enrol", data=form)
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "Invalid ECOG score: 7 is not a whole number on the scale (0–5)" in text
    assert 'value="7"' in text  # what was typed is kept
    form["value.ecog"] = "3"
    unmet = web.post("/patients/enrol", data=form).get_data(as_text=True)
    assert "3 ECOG score does not meet &lt;= 2 ECOG score" in unmet
    assert db.session.execute(select(Patient)).first() is None


def test_a_checklist_answered_before_ecog_was_a_score_still_shows(ward: Any, clients: Any) -> None:
    patient = ward.patient()
    old = patient.checklist
    old["ecog"] = {"answer": True, "value": None}  # as stored when ECOG was a yes/no box
    patient.checklist_json = json.dumps(old)
    db.session.commit()
    page = clients.web(ward.clinic.clinician).get(f"/patients/{patient.id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    row = text[text.index("ECOG performance status 0–2") :].split("</tr>")[0]
    assert "yes" in row


def test_the_protocol_page_shows_the_re_check_items_with_their_limits(
    clinic: Any, clients: Any
) -> None:
    page = clients.web(clinic.clinician).get(f"/protocols/{clinic.protocol.id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="pre-infusion-recheck"' in text
    row = text[text.index('id="pre-infusion-recheck"') :].split("</tr>")[0]
    assert "Month 3" in row and "7 days" in row
    assert "ECOG score 0–5, must be &lt;= 2" in row and "µmol/L, must be &lt; 176" in row
    inclusion = text[text.index("<th>Inclusion</th>") :].split("</tr>")[0]
    assert 'ECOG performance status 0–2 <span class="muted">(ECOG score 0–5, must be &lt;= 2)' in (
        inclusion
    )


# --- recording a re-check ----------------------------------------------------------------------


def test_a_clinician_records_a_passing_re_check_with_who_and_when_audited(
    ward: Any, clients: Any
) -> None:
    patient = month_3_patient(ward)
    url = f"/api/v1/patients/{patient.id}/rechecks"
    assert clients.api(ward.lab.tech).post(url, json=body()).status_code == 403
    assert rechecks_saved() == 0
    answer = clients.api(ward.clinic.clinician).post(url, json=body())
    assert answer.status_code == 201, answer.get_json()
    saved = answer.get_json()
    assert saved["passed"] and saved["failed_items"] == [] and saved["recorded_by"] == "cleo"
    assert set(saved["answers"]) == set(ITEMS)
    assert saved["answers"]["ecog"] == {"value": 1.0, "met": True}
    recorded = dt.datetime.fromisoformat(saved["recorded_at"])
    assert dt.datetime.fromisoformat(saved["valid_until"]) - recorded == dt.timedelta(days=7)
    (entry,) = audited("recheck.passed")
    assert entry.entity_id == str(patient.id) and entry.actor_username == "cleo"
    listed = clients.api(ward.lab.tech).get(url).get_json()
    assert [r["id"] for r in listed] == [saved["id"]]
    (state,) = clients.api(ward.lab.tech).get(url + "/visits").get_json()
    assert state["visit"] == "M3" and state["ok"] and state["problem"] is None


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"ecog": {"value": 7}}, "answers.ecog", "Invalid ECOG score: 7"),
        ({"ecog": {"value": 2.5}}, "answers.ecog", "2.5 is not a whole number"),
        ({"ecog": {}}, "answers.ecog", "Enter the measured value (ECOG score)"),
        ({"creatinine": {"value": -3}}, "answers.creatinine", "Invalid µmol/L: -3"),
        ({"ejection_fraction": {"value": 130}}, "answers.ejection_fraction", "Invalid %: 130"),
        ({"no_active_infection": {}}, "answers.no_active_infection", "Answer yes or no"),
        ({"pregnancy_test": {}}, "answers.pregnancy_test", "Choose one: negative, positive"),
        ({"pregnancy_test": {"option": "maybe"}}, "answers.pregnancy_test", "Choose one"),
        (
            {"pregnancy_test": {"option": "not_applicable"}},
            "answers.pregnancy_test",
            "Say why it is not applicable",
        ),
        ({"hair_colour": {"answer": True}}, "answers", "Not an item of the re-check"),
    ],
)
def test_an_unanswered_item_or_an_impossible_value_refuses_the_re_check_with_nothing_saved(
    ward: Any, clients: Any, changes: dict[str, Any], field: str, message: str
) -> None:
    patient = month_3_patient(ward)
    request = body(**changes)
    for code, answer in changes.items():
        request["answers"][code] = answer
    answer = clients.api(ward.clinic.clinician).post(
        f"/api/v1/patients/{patient.id}/rechecks", json=request
    )
    assert answer.status_code == 422, answer.get_json()
    assert message in answer.get_json()["errors"][field][0]
    assert rechecks_saved() == 0 and audited("recheck.passed") == []


@pytest.mark.parametrize(
    ("visit", "message"), [("D0", "before M3, not 'D0'"), ("M6", "before M3, not 'M6'")]
)
def test_a_re_check_is_for_an_infusion_after_the_first(
    ward: Any, clients: Any, visit: str, message: str
) -> None:
    patient = month_3_patient(ward)
    answer = clients.api(ward.clinic.clinician).post(
        f"/api/v1/patients/{patient.id}/rechecks", json=body(visit=visit)
    )
    assert answer.status_code == 422 and message in answer.get_json()["errors"]["visit"][0]
    assert rechecks_saved() == 0


def test_not_applicable_with_its_reason_passes(ward: Any, clients: Any) -> None:
    patient = month_3_patient(ward)
    answer = clients.api(ward.clinic.clinician).post(
        f"/api/v1/patients/{patient.id}/rechecks",
        json=body(pregnancy_test={"option": "not_applicable", "reason": "male"}),
    )
    assert answer.status_code == 201 and answer.get_json()["passed"]
    assert answer.get_json()["answers"]["pregnancy_test"] == {
        "option": "not_applicable",
        "reason": "male",
        "met": True,
    }


@pytest.mark.parametrize(
    ("changes", "failed"),
    [
        ({"ecog": {"value": 3}}, "ECOG performance status 0–2"),
        ({"pregnancy_test": {"option": "positive"}}, "Pregnancy test negative"),
        ({"no_active_infection": {"answer": False}}, "No active infection"),
        ({"no_new_trial": {"answer": False}}, "Not enrolled in another clinical trial"),
        ({"creatinine": {"value": 176}}, "Creatinine < 176 µmol/L"),
        ({"ejection_fraction": {"value": 45}}, "Ejection fraction > 45 %"),
    ],
)
def test_an_item_not_met_is_recorded_as_failed_and_the_month_3_dose_is_refused(
    ward: Any, clients: Any, changes: dict[str, Any], failed: str
) -> None:
    patient = month_3_patient(ward)
    answer = clients.api(ward.clinic.clinician).post(
        f"/api/v1/patients/{patient.id}/rechecks", json=body(**changes)
    )
    assert answer.status_code == 201, answer.get_json()
    saved = answer.get_json()
    assert not saved["passed"] and len(saved["failed_items"]) == 1
    assert saved["failed_items"][0].startswith(failed)
    (entry,) = audited("recheck.failed")
    assert entry.entity_id == str(patient.id)
    ordered = clients.api(ward.lab.tech).post(
        f"/api/v1/patients/{patient.id}/doses", json={"visit": "M3"}
    )
    assert ordered.status_code == 422
    (problem,) = ordered.get_json()["errors"]["recheck"]
    assert "was not met" in problem and failed in problem and "not eligible" in problem
    assert db.session.execute(select(DoseOrder)).first() is None


def test_the_page_records_a_re_check_and_keeps_what_was_typed_after_a_refusal(
    ward: Any, clients: Any
) -> None:
    patient = month_3_patient(ward)
    url = f"/patients/{patient.id}/rechecks"
    patient_page = clients.web(ward.lab.tech).get(f"/patients/{patient.id}").get_data(as_text=True)
    assert f'href="{url}" id="rechecks-link"' in patient_page
    reader = clients.web(ward.lab.tech).get(url).get_data(as_text=True)
    assert 'data-visit="M3" data-ok="no"' in reader and 'id="recheck-form"' not in reader
    web = clients.web(ward.clinic.clinician)
    page = web.get(url).get_data(as_text=True)
    assert 'id="recheck-form"' in page
    ecog = page[page.index('data-item="ecog"') :].split("</div>")[0]
    assert 'type="number" step="1" min="0" max="5"' in ecog
    form = {
        "visit": "M3",
        "option.pregnancy_test": "not_applicable",
        "reason.pregnancy_test": "",
        "answer.no_active_infection": "yes",
        "answer.no_new_trial": "yes",
        "value.creatinine": "80",
        "value.ejection_fraction": "60",
        "value.ecog": "9",
    }
    refused = web.post(url, data=form)
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "Invalid ECOG score: 9" in text and "Say why it is not applicable" in text
    assert 'value="80"' in text and rechecks_saved() == 0
    unmet = web.post(url, data=dict(form, **{"value.ecog": "3", "reason.pregnancy_test": "male"}))
    assert unmet.status_code == 302
    failed = web.get(url).get_data(as_text=True)
    assert 'data-passed="no"' in failed and 'data-visit="M3" data-ok="no"' in failed
    done = web.post(url, data=dict(form, **{"value.ecog": "1", "reason.pregnancy_test": "male"}))
    assert done.status_code == 302
    passed = web.get(url).get_data(as_text=True)
    assert "M3 re-check recorded: every item met." in passed
    assert 'data-visit="M3" data-ok="yes"' in passed and passed.count("data-recheck=") == 2


# --- the gate: ordering -------------------------------------------------------------------------


def test_a_month_3_dose_is_ordered_only_after_a_passing_re_check_within_7_days(
    ward: Any, clients: Any
) -> None:
    patient = month_3_patient(ward)
    tech = clients.api(ward.lab.tech)
    url = f"/api/v1/patients/{patient.id}/doses"
    refused = tech.post(url, json={"visit": "M3"})
    assert refused.status_code == 422
    assert "No pre-infusion re-check for Month 3" in refused.get_json()["errors"]["recheck"][0]
    plan = tech.get(f"/api/v1/patients/{patient.id}/doses/M3/plan")
    assert plan.status_code == 422 and "recheck" in plan.get_json()["errors"]
    # recorded 7 days and a minute ago: expired
    ward.clinic.recheck(patient, now=utcnow() - dt.timedelta(days=7, minutes=1))
    stale = tech.post(url, json={"visit": "M3"})
    assert stale.status_code == 422
    assert "more than 7 days ago" in stale.get_json()["errors"]["recheck"][0]
    # a later re-check not met replaces it; a later one that passes replaces that
    ward.clinic.recheck(patient, ecog=rechecks.RecheckAnswer(value=3))
    assert "was not met" in tech.post(url, json={"visit": "M3"}).get_json()["detail"]
    ward.clinic.recheck(patient)
    ordered = tech.post(url, json={"visit": "M3"})
    assert ordered.status_code == 201, ordered.get_json()
    assert ordered.get_json()["visit"] == "M3"


def test_day_0_relies_on_the_enrolment_checklist(ward: Any, clients: Any) -> None:
    patient = ward.patient()
    assert rechecks.problem(db.session, patient, "D0", now=utcnow(), zone=dt.UTC) is None
    ordered = clients.api(ward.lab.tech).post(
        f"/api/v1/patients/{patient.id}/doses", json={"visit": "D0"}
    )
    assert ordered.status_code == 201, ordered.get_json()
    assert rechecks_saved() == 0


def test_the_order_page_refuses_a_month_3_dose_without_a_re_check(ward: Any, clients: Any) -> None:
    patient = month_3_patient(ward)
    web = clients.web(ward.lab.tech)
    plan = web.get(f"/patients/{patient.id}/doses/M3").get_data(as_text=True)
    assert "No pre-infusion re-check for Month 3" in plan
    assert f'href="/patients/{patient.id}/rechecks" id="recheck-link"' in plan
    refused = web.post(f"/patients/{patient.id}/doses/M3", data={})
    assert refused.status_code == 422
    assert "No pre-infusion re-check for Month 3" in refused.get_data(as_text=True)
    assert db.session.execute(select(DoseOrder)).first() is None
    ward.clinic.recheck(patient)
    assert web.post(f"/patients/{patient.id}/doses/M3", data={}).status_code == 302


def test_a_replacement_month_3_dose_after_a_cancel_needs_a_re_check_still_valid(
    ward: Any, clients: Any
) -> None:
    patient = month_3_patient(ward)
    ward.clinic.recheck(patient, now=utcnow() - dt.timedelta(days=6, hours=23))
    tech = clients.api(ward.lab.tech)
    url = f"/api/v1/patients/{patient.id}/doses"
    first = tech.post(url, json={"visit": "M3"})
    assert first.status_code == 201, first.get_json()
    cancelled = tech.post(
        f"/api/v1/doses/{first.get_json()['id']}/cancel",
        json={"reason": "patient unwell today", "password": TEST_PASSWORD},
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    # the re-check of 6 days 23 hours ago expires in an hour: tomorrow the replacement waits
    tomorrow = utcnow() + dt.timedelta(days=1)
    with pytest.raises(orders.DoseRefused, match="more than 7 days ago"):
        orders.plan_dose(db.session, patient, "M3", now=tomorrow, zone=dt.UTC)
    ward.clinic.recheck(patient, pregnancy_test=rechecks.RecheckAnswer(option="positive"))
    refused = tech.post(url, json={"visit": "M3"})
    assert refused.status_code == 422 and "Pregnancy test" in refused.get_json()["detail"]
    ward.clinic.recheck(patient)
    assert tech.post(url, json={"visit": "M3"}).status_code == 201


# --- the gate: the bedside and the start of the infusion ---------------------------------------


def _at_bedside(ward: Any) -> tuple[Patient, DoseOrder]:
    """A month-3 dose prepared (after a passing re-check), shipped, received and thawed."""
    patient = month_3_patient(ward)
    order = ward.prepared(patient, visit="M3")
    assert rechecks.latest(db.session, patient, "M3") is not None  # recorded first
    ward.receive(ward.ship(order))
    ward.thaw(order)
    return patient, order


def _verify(client: Any, patient: Patient, order: DoseOrder) -> Any:
    answer = client.post(
        "/api/v1/bedside/checks",
        json={"wristband": payload(patient.coi), "label": payload(order.dose_unit.code)},
    )
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def _recheck_result(check: dict[str, Any]) -> dict[str, Any]:
    (result,) = [c for c in check["checks"] if c["code"] == "recheck"]
    return result


def test_the_bedside_check_of_a_month_3_dose_is_stop_without_a_passing_re_check(
    ward: Any, clients: Any
) -> None:
    patient, order = _at_bedside(ward)
    nurse = clients.api(ward.clinic.clinician)
    go = _verify(nurse, patient, order)
    assert go["verdict"] == "go", go
    assert "Month 3 re-check passed" in _recheck_result(go)["detail"]
    # the patient has an infection this morning: recorded, and the bedside says stop
    ward.clinic.recheck(patient, no_active_infection=rechecks.RecheckAnswer(answer=False))
    stop = _verify(nurse, patient, order)
    assert stop["verdict"] == "stop"
    assert [c["code"] for c in stop["checks"] if not c["passed"]] == ["recheck"]
    assert "No active infection" in _recheck_result(stop)["detail"]
    page = clients.web(ward.clinic.clinician).get(f"/bedside/checks/{stop['id']}")
    assert "Eligibility re-checked before this infusion" in page.get_data(as_text=True)
    assert "No active infection" in page.get_data(as_text=True)


def test_a_month_3_infusion_does_not_start_when_the_re_check_fails_after_the_go(
    ward: Any, clients: Any
) -> None:
    patient, order = _at_bedside(ward)
    check = ward.sign(ward.verify(patient, order))
    assert check.go
    ward.clinic.recheck(patient, ecog=rechecks.RecheckAnswer(value=4))
    started = clients.api(ward.clinic.clinician).post(f"/api/v1/bedside/checks/{check.id}/start")
    assert started.status_code == 409
    assert "re-check" in started.get_json()["detail"] and "ECOG" in started.get_json()["detail"]
    db.session.expire_all()
    assert db.session.get(DoseOrder, order.id).status == "prepared"  # type: ignore[union-attr]


def test_the_re_check_validity_is_the_protocols(ward: Any) -> None:
    patient = month_3_patient(ward)
    recheck = ward.clinic.recheck(patient, now=utcnow() - dt.timedelta(days=7))
    assert rechecks.valid_until(recheck) == recheck.recorded_at + dt.timedelta(days=7)
    now = recheck.recorded_at + dt.timedelta(days=7)
    assert rechecks.problem(db.session, patient, "M3", now=now, zone=dt.UTC) is None
    later = now + dt.timedelta(seconds=1)
    assert "more than 7 days ago" in str(
        rechecks.problem(db.session, patient, "M3", now=later, zone=dt.UTC)
    )
    assert patients.receives_cells(patient)


def test_a_control_arm_patient_has_no_infusion_to_re_check_for(ward: Any, clients: Any) -> None:
    patient = ward.patient(arm="CONTROL")
    assert not patients.receives_cells(patient)
    nurse = clients.api(ward.clinic.clinician)
    assert nurse.get(f"/api/v1/patients/{patient.id}/rechecks/visits").get_json() == []
    refused = nurse.post(f"/api/v1/patients/{patient.id}/rechecks", json=body())
    assert refused.status_code == 422
    assert "never receives cells" in refused.get_json()["errors"]["patient"][0]
    assert rechecks_saved() == 0
    page = clients.web(ward.clinic.clinician).get(f"/patients/{patient.id}/rechecks")
    text = page.get_data(as_text=True)
    assert 'id="no-recheck"' in text and 'id="recheck-form"' not in text


# --- a site upgraded from before issue 19 -------------------------------------------------------


def _pre_issue_19(patient: Patient) -> Any:
    """The patient's protocol version as approved before issue 19: no pre-infusion re-check
    (an upgraded site keeps its approved version; its enrolled patients keep theirs)."""
    protocol = patient.protocol
    params = json.loads(protocol.parameters_json)
    params.pop("pre_infusion_recheck")
    db.session.execute(
        text("UPDATE protocols SET parameters_json = :p WHERE id = :id"),
        {"p": json.dumps(params), "id": protocol.id},
    )
    db.session.commit()
    db.session.expire_all()
    return protocol


def _qa_signs_the_re_check(ward: Any, old: Any) -> Any:
    """QA signs a new version of the same protocol with the re-check: it is in force."""
    qa = ward.lab.qa
    new = service.PROTOCOLS.draft(
        db.session,
        actor=qa,
        now=utcnow(),
        code=old.code,
        title=old.title,
        parameters=dict(NCT01420432_PARAMETERS),
    )
    service.PROTOCOLS.approve(db.session, new, user=qa, password=TEST_PASSWORD, now=utcnow())
    db.session.commit()
    return new


def test_an_upgraded_site_whose_version_asks_for_no_re_check_is_told_so(
    ward: Any, clients: Any
) -> None:
    patient = month_3_patient(ward)
    old = _pre_issue_19(patient)
    web = clients.web(ward.clinic.clinician)
    warning = "asks for no re-check before Month 3"
    page = web.get(f"/patients/{patient.id}/rechecks").get_data(as_text=True)
    assert 'id="no-recheck-protocol"' in page and warning in page
    assert "QA must sign a version that does" in page
    protocol_page = web.get(f"/protocols/{old.id}").get_data(as_text=True)
    assert 'id="no-pre-infusion-recheck"' in protocol_page
    assert "QA must sign a version that does" in protocol_page
    _qa_signs_the_re_check(ward, old)
    page = web.get(f"/patients/{patient.id}/rechecks").get_data(as_text=True)
    assert 'id="no-recheck-protocol"' not in page and 'data-visit="M3"' in page


def test_a_patient_enrolled_under_a_pre_issue_19_version_is_rechecked_once_qa_signs_one(
    ward: Any, clients: Any
) -> None:
    """The requirement is the patient's version and the version in force together: a version
    QA signs with the re-check applies to the patients already enrolled."""
    patient = month_3_patient(ward)
    old = _pre_issue_19(patient)
    new = _qa_signs_the_re_check(ward, old)
    assert patient.protocol_id == old.id  # enrolled under the old version, and stays so
    tech = clients.api(ward.lab.tech)
    refused = tech.post(f"/api/v1/patients/{patient.id}/doses", json={"visit": "M3"})
    assert refused.status_code == 422, refused.get_json()
    assert "No pre-infusion re-check for Month 3" in refused.get_json()["errors"]["recheck"][0]
    web = clients.web(ward.lab.tech)
    assert web.post(f"/patients/{patient.id}/doses/M3", data={}).status_code == 422
    assert db.session.execute(select(DoseOrder)).first() is None
    states = tech.get(f"/api/v1/patients/{patient.id}/rechecks/visits").get_json()
    assert [s["visit"] for s in states] == ["M3"], states
    # recorded against the version in force, whose items were answered
    recheck = ward.clinic.recheck(patient)
    assert recheck.protocol_id == new.id and recheck.passed
    assert rechecks.valid_until(recheck) == recheck.recorded_at + dt.timedelta(days=7)
    order = ward.prepared(patient, visit="M3")
    ward.receive(ward.ship(order))
    ward.thaw(order)
    nurse = clients.api(ward.clinic.clinician)
    assert _verify(nurse, patient, order)["verdict"] == "go"
    ward.clinic.recheck(patient, no_active_infection=rechecks.RecheckAnswer(answer=False))
    stop = _verify(nurse, patient, order)
    assert stop["verdict"] == "stop"
    assert "No active infection" in _recheck_result(stop)["detail"]


def test_the_re_check_asked_is_whichever_version_asks_for_more() -> None:
    """Visit by visit, the shorter validity, item by item the stricter limit and an option
    passing only where both let it pass."""
    base = NCT01420432_PARAMETERS["pre_infusion_recheck"]
    by_code = {item["code"]: item for item in base["items"]}
    ecog = by_code["ecog"]
    looser_ecog = {**ecog, "measure": {**ecog["measure"], "limit": 3}}
    pregnancy = by_code["pregnancy_test"]
    strict_pregnancy = {
        **pregnancy,
        "options": [
            {**o, "passes": False} if o["value"] == "not_applicable" else o
            for o in pregnancy["options"]
        ],
    }
    older = {"visits": ["M3"], "valid_days": 5, "items": [looser_ecog, strict_pregnancy]}
    newer = {"visits": ["M3", "M6"], "valid_days": 7, "items": base["items"]}

    class Version:
        def __init__(self, config: dict[str, Any]) -> None:
            self.parameters = {"pre_infusion_recheck": config}

    merged = rechecks.merged([Version(older), Version(newer)])  # type: ignore[list-item]
    assert merged is not None
    assert merged["visits"] == ["M3", "M6"] and merged["valid_days"] == 5
    items = {item["code"]: item for item in merged["items"]}
    assert set(items) == set(by_code)
    assert items["ecog"]["measure"]["limit"] == 2
    options = {o["value"]: o for o in items["pregnancy_test"]["options"]}
    assert options["not_applicable"]["passes"] is False and options["negative"]["passes"]
    assert rechecks.merged([Version({}), Version({})]) is None  # type: ignore[list-item]
