"""Patients and doses over HTTP: enrol, weigh, plan, order, second-check (API and pages)."""

from __future__ import annotations

from typing import Any

from cellchain.core.types import utcnow
from cellchain.dosing.defaults import NCT01420432_PARAMETERS
from tests.conftest import TEST_PASSWORD
from tests.support.enrolment import enrol_body


def test_api_enrols_weighs_orders_and_second_checks_a_dose(
    clinic: Any, released: Any, clients: Any, make_user: Any
) -> None:
    clinic.randomize("MSC")
    nurse = clients.api(clinic.clinician)
    enrolled = nurse.post("/api/v1/patients", json=enrol_body())
    assert enrolled.status_code == 201, enrolled.get_json()
    patient = enrolled.get_json()
    assert patient["coi"].startswith("CHX9999") and patient["receives_cells"]
    assert [v["code"] for v in patient["visits"]] == ["D0", "M3", "M6", "M12"]
    weighed = nurse.post(f"/api/v1/patients/{patient['id']}/weights", json={"weight_kg": 70})
    assert weighed.status_code == 201
    tech = clients.api(clinic.lab.tech)
    plan = tech.get(f"/api/v1/patients/{patient['id']}/doses/D0/plan").get_json()
    assert plan["volume_ml"] == 15.1 and plan["acceptable"]
    ordered = tech.post(f"/api/v1/patients/{patient['id']}/doses", json={"visit": "D0"})
    assert ordered.status_code == 201, ordered.get_json()
    order = ordered.get_json()
    assert order["status"] == "allocated" and order["bags"][0]["unit"]["status"] == "allocated"
    same = tech.post(
        f"/api/v1/doses/{order['id']}/check",
        json={
            "volume_ml": 15.1,
            "bags": [order["bags"][0]["unit"]["code"]],
            "password": TEST_PASSWORD,
        },
    )
    assert same.status_code == 422 and "checker" in same.get_json()["errors"]
    checker = clients.api(make_user("sam", "technician"))
    checked = checker.post(
        f"/api/v1/doses/{order['id']}/check",
        json={
            "volume_ml": 15.1,
            "bags": [f"CC1.{order['bags'][0]['unit']['code']}"],
            "password": TEST_PASSWORD,
        },
    )
    assert checked.status_code == 200, checked.get_json()
    done = checked.get_json()
    assert done["status"] == "prepared" and done["dose_unit"]["kind"] == "prepared_dose"
    assert [s["meaning"] for s in done["signatures"]] == [
        "verification: dose independently second-checked"
    ]


def test_api_refuses_bad_enrolment_and_a_control_arm_dose_with_reasons(
    clinic: Any, released: Any, clients: Any
) -> None:
    clinic.randomize("CONTROL")
    nurse = clients.api(clinic.clinician)
    young = enrol_body(date_of_birth=utcnow().date().replace(year=utcnow().year - 16).isoformat())
    refused = nurse.post("/api/v1/patients", json=young)
    assert refused.status_code == 422 and "date_of_birth" in refused.get_json()["errors"]
    control = nurse.post("/api/v1/patients", json=enrol_body()).get_json()
    nurse.post(f"/api/v1/patients/{control['id']}/weights", json={"weight_kg": 70})
    tech = clients.api(clinic.lab.tech)
    dose = tech.post(f"/api/v1/patients/{control['id']}/doses", json={"visit": "D0"})
    assert dose.status_code == 422
    assert "never receives cells" in dose.get_json()["detail"]
    assert (
        nurse.post(f"/api/v1/patients/{control['id']}/doses", json={"visit": "D0"}).status_code
        == 403
    )


def test_pages_enrol_from_the_checklist_form_and_show_the_working(
    clinic: Any, released: Any, clients: Any
) -> None:
    clinic.randomize("MSC")
    web = clients.web(clinic.clinician)
    form = {
        "study_id": "AS-102",
        "date_of_birth": utcnow().date().replace(year=utcnow().year - 30).isoformat(),
        "sex": "female",
        "day0": utcnow().date().isoformat(),
        "value.ejection_fraction": "40",
        "answer.ejection_fraction": "yes",
        "value.creatinine": "90",
        "answer.creatinine": "yes",
        "value.ecog": "1",
    }
    for item in NCT01420432_PARAMETERS["inclusion"]:
        form.setdefault(f"answer.{item['code']}", "yes")
    for item in NCT01420432_PARAMETERS["exclusion"]:
        form[f"answer.{item['code']}"] = "no"
    refused = web.post("/patients/enrol", data=form)
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert "40 % does not meet &gt; 45 %" in body and 'value="AS-102"' in body
    form["value.ejection_fraction"] = "55"
    enrolled = web.post("/patients/enrol", data=form)
    assert enrolled.status_code == 302
    page = web.get(enrolled.headers["Location"]).get_data(as_text=True)
    assert "AS-102 enrolled" in page and "MSC + DMARDs" in page
    patient_id = enrolled.headers["Location"].rsplit("/", 1)[-1]
    web.post(f"/patients/{patient_id}/weights", data={"weight_kg": "70", "source": "scale"})
    tech = clients.web(clinic.lab.tech)
    plan = tech.get(f"/patients/{patient_id}/doses/D0").get_data(as_text=True)
    assert "15.1 mL" in plan and 'id="working"' in plan
    ordered = tech.post(f"/patients/{patient_id}/doses/D0", data={})
    assert ordered.status_code == 302
    dose = tech.get(ordered.headers["Location"]).get_data(as_text=True)
    assert "allocated" in dose and 'id="check-form"' in dose


def test_api_override_names_the_investigator_and_a_wrong_password_signs_nothing(
    clinic: Any, released: Any, clients: Any
) -> None:
    from cellchain.dosing import service
    from cellchain.extensions import db

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
    tech = clients.api(clinic.lab.tech)
    url = f"/api/v1/patients/{patient['id']}/doses"
    refused = tech.post(url, json={"visit": "D0"})
    assert refused.status_code == 422 and "override" in refused.get_json()["errors"]
    override = {"investigator": clinic.investigator.username, "reason": "graduation"}
    wrong = tech.post(url, json={"visit": "D0", "override": {**override, "password": "nope"}})
    assert wrong.status_code == 401
    accepted = tech.post(
        url, json={"visit": "D0", "override": {**override, "password": TEST_PASSWORD}}
    )
    assert accepted.status_code == 201, accepted.get_json()
    body = accepted.get_json()
    assert body["override_reason"] == "graduation" and body["deviation_id"]
    assert body["signatures"][0]["username"] == clinic.investigator.username
