"""The clinic over HTTP: the API a bedside device integrates with, and the pages (ship,
receive, thaw, bedside check, sign, start, end), with refusals audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cellchain.clinic.bedside.bedside import Check
from cellchain.core.models import AuditEntry
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.ward import Clock, Ward, payload


def audited(action: str) -> list[AuditEntry]:
    return list(db.session.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars())


def test_api_takes_a_dose_from_dispatch_to_the_end_of_its_infusion(
    ward: Ward, clients: Any, clock: Clock
) -> None:
    order = ward.prepared()
    tech = clients.api(ward.lab.tech)
    shipped = tech.post(
        "/api/v1/shipments",
        json={
            "shipper_id": "DS-42",
            "logger_id": "TL-9",
            "destination": "Clinic",
            "courier": "courier: J. Doe",
            "doses": [payload(order.dose_unit.code)],
        },
    )
    assert shipped.status_code == 201, shipped.get_json()
    shipment = shipped.get_json()
    assert shipment["status"] == "in_transit"
    assert shipment["doses"] == [{"dose_order_id": order.id, "dose_unit": order.dose_unit.code}]
    nurse = clients.api(ward.clinic.clinician)
    receipt = {"scan": "DS-42", "temperature_c": -180.0, "condition": "intact"}
    received = nurse.post(f"/api/v1/shipments/{shipment['id']}/receipt", json=receipt)
    assert received.status_code == 200 and received.get_json()["status"] == "received"
    twice = nurse.post(f"/api/v1/shipments/{shipment['id']}/receipt", json=receipt)
    assert twice.status_code == 409 and "already received" in twice.get_json()["detail"]
    assert audited("shipment.receipt_refused")
    for expected in ("started", "completed"):
        thawed = nurse.post("/api/v1/thaw", json={"scan": payload(order.bags[0].unit.code)})
        assert thawed.status_code == 200 and thawed.get_json()[expected] == [
            order.bags[0].unit.code
        ]
        if expected == "started":  # a second scan at once cannot be a completed thaw
            twice = nurse.post("/api/v1/thaw", json={"scan": payload(order.bags[0].unit.code)})
            assert twice.status_code == 409 and twice.mimetype == "application/problem+json"
            assert "at least 2 min to thaw" in twice.get_json()["detail"]
            assert audited("thaw.refused")
            clock.advance(minutes=3)
    assert thawed.get_json()["expires_at"] and thawed.get_json()["window_minutes"] == 60
    checked = nurse.post(
        "/api/v1/bedside/checks",
        json={"wristband": payload(order.patient.coi), "label": payload(order.dose_unit.code)},
    )
    assert checked.status_code == 201
    check = checked.get_json()
    assert check["verdict"] == "go" and check["thaw_expires_at"]
    assert [c["code"] for c in check["checks"]] == [c.value for c in Check]
    alone = nurse.post(
        f"/api/v1/bedside/checks/{check['id']}/signatures",
        json={
            "password": TEST_PASSWORD,
            "second_username": "cleo",
            "second_password": TEST_PASSWORD,
        },
    )
    assert alone.status_code == 422 and "same clinician" in alone.get_json()["detail"]
    assert audited("bedside.sign_refused")
    early = nurse.post(f"/api/v1/bedside/checks/{check['id']}/start")
    assert early.status_code == 409
    signed = nurse.post(
        f"/api/v1/bedside/checks/{check['id']}/signatures",
        json={
            "password": TEST_PASSWORD,
            "second_username": "nina",
            "second_password": TEST_PASSWORD,
        },
    )
    assert signed.status_code == 200 and signed.get_json()["signed_by_two"]
    started = nurse.post(f"/api/v1/bedside/checks/{check['id']}/start")
    assert started.status_code == 201, started.get_json()
    infusion = started.get_json()
    assert infusion["status"] == "in_progress" and infusion["administered_by"] == "cleo"
    again = nurse.post(f"/api/v1/bedside/checks/{check['id']}/start")
    assert again.status_code == 409 and "newer bedside check" in again.get_json()["detail"]
    ended = nurse.post(
        f"/api/v1/infusions/{infusion['id']}/end",
        json={"volume_infused_ml": order.volume_ml, "rate_ml_per_h": 60},
    )
    assert ended.status_code == 200 and ended.get_json()["status"] == "completed"
    # the full dose at 60 mL/h, ended a moment after the start: flagged, not refused
    assert ended.get_json()["time_flag_open"] and "mL/h" in ended.get_json()["time_flag"]
    acknowledge = f"/api/v1/infusions/{infusion['id']}/acknowledge"
    own = nurse.post(acknowledge, json={"note": "fine", "password": TEST_PASSWORD})
    assert own.status_code == 422 and own.mimetype == "application/problem+json"
    assert audited("infusion.acknowledge_refused")
    second = clients.api(ward.nurse).post(
        acknowledge, json={"note": "Pump log: 15 min; end typed late.", "password": TEST_PASSWORD}
    )
    assert second.status_code == 200, second.get_json()
    assert not second.get_json()["time_flag_open"]
    assert second.get_json()["time_flag_acknowledged_by"] == "nina"
    listed = nurse.get(f"/api/v1/patients/{order.patient_id}/infusions").get_json()
    assert [i["id"] for i in listed] == [infusion["id"]]


def test_api_wrong_patient_is_a_stop_that_cannot_be_signed(ward: Ward, clients: Any) -> None:
    _patient, order = ward.at_bedside()
    other = ward.patient(study_id="AS-090", randomization_number="R-090")
    nurse = clients.api(ward.clinic.clinician)
    check = nurse.post(
        "/api/v1/bedside/checks",
        json={"wristband": payload(other.coi), "label": payload(order.dose_unit.code)},
    ).get_json()
    assert check["verdict"] == "stop"
    assert [c["code"] for c in check["checks"] if not c["passed"]] == ["patient"]
    refused = nurse.post(
        f"/api/v1/bedside/checks/{check['id']}/signatures",
        json={
            "password": TEST_PASSWORD,
            "second_username": "nina",
            "second_password": TEST_PASSWORD,
        },
    )
    assert refused.status_code == 409


def test_pages_receive_thaw_check_sign_start_and_end(
    ward: Ward, clients: Any, clock: Clock
) -> None:
    order = ward.prepared()
    tech = clients.web(ward.lab.tech)
    listing = tech.get("/shipments")
    assert listing.status_code == 200 and order.dose_unit.code in listing.get_data(as_text=True)
    dispatched = tech.post(
        "/shipments",
        data={
            "doses": payload(order.dose_unit.code) + "\n",
            "shipper_id": "DS-7",
            "logger_id": "TL-7",
            "destination": "Clinic",
            "courier": "courier",
        },
    )
    assert dispatched.status_code == 302
    shipment_url = dispatched.headers["Location"]
    nurse = clients.web(ward.clinic.clinician)
    assert nurse.get(shipment_url).status_code == 200
    bad = nurse.post(
        shipment_url + "/receipt", data={"scan": "DS-7", "temperature_c": "", "condition": "intact"}
    )
    assert bad.status_code == 422 and "temperature" in bad.get_data(as_text=True)
    held = nurse.post(
        shipment_url + "/receipt",
        data={"scan": "DS-7", "temperature_c": "-100", "condition": "intact"},
    )
    assert held.status_code == 302
    page = nurse.get(shipment_url).get_data(as_text=True)
    assert "HELD FOR QA" in page
    qa = clients.web(ward.lab.qa)
    decided = qa.post(
        shipment_url + "/decision",
        data={
            "accept": "true",
            "reason": "Probe misread; logger in range.",
            "password": TEST_PASSWORD,
        },
    )
    assert decided.status_code == 302
    assert nurse.post("/thaw", data={"scan": payload(order.dose_unit.code)}).status_code == 200
    too_soon = nurse.post("/thaw", data={"scan": payload(order.dose_unit.code)})
    assert too_soon.status_code == 409 and "at least 2 min to thaw" in too_soon.get_data(
        as_text=True
    )
    clock.advance(minutes=3)
    assert nurse.post("/thaw", data={"scan": payload(order.dose_unit.code)}).status_code == 200
    overview = nurse.get("/clinic").get_data(as_text=True)
    assert f"{order.patient.study_id} · D0" in overview  # thawing, with its deadline
    step2 = nurse.post("/bedside/wristband", data={"wristband": payload(order.patient.coi)})
    assert step2.status_code == 200 and order.patient.study_id in step2.get_data(as_text=True)
    checked = nurse.post(
        "/bedside/checks",
        data={"wristband": payload(order.patient.coi), "label": payload(order.bags[0].unit.code)},
    )
    assert checked.status_code == 302
    check_url = checked.headers["Location"]
    page = nurse.get(check_url).get_data(as_text=True)
    assert 'class="verdict go"' in page and "left to start" in page
    signed = nurse.post(
        check_url + "/signatures",
        data={
            "password": TEST_PASSWORD,
            "second_username": "nina",
            "second_password": TEST_PASSWORD,
        },
    )
    assert signed.status_code == 302
    started = nurse.post(check_url + "/start")
    assert started.status_code == 302 and "/bedside/infusions/" in started.headers["Location"]
    infusion_url = started.headers["Location"]
    refused = nurse.post(
        infusion_url + "/end", data={"volume_infused_ml": "999", "rate_ml_per_h": "60"}
    )
    assert refused.status_code == 422 and "more than the" in refused.get_data(as_text=True)
    ended = nurse.post(
        infusion_url + "/end",
        data={"volume_infused_ml": str(order.volume_ml), "rate_ml_per_h": "60"},
    )
    assert ended.status_code == 302
    page = nurse.get(infusion_url).get_data(as_text=True)
    assert "completed" in page and "FLAGGED" in page and "acknowledge-form" not in page
    second = clients.web(ward.nurse)
    assert "acknowledge-form" in second.get(infusion_url).get_data(as_text=True)
    blank = second.post(infusion_url + "/acknowledge", data={"note": "", "password": "x"})
    assert blank.status_code == 422
    done = second.post(
        infusion_url + "/acknowledge",
        data={"note": "Pump log: 15 min, as prescribed.", "password": TEST_PASSWORD},
    )
    assert done.status_code == 302
    page = second.get(infusion_url).get_data(as_text=True)
    assert "flag acknowledged" in page and "Pump log: 15 min" in page


def test_a_page_scan_of_something_else_than_a_wristband_is_refused_and_audited(
    ward: Ward, clients: Any
) -> None:
    order = ward.prepared()
    nurse = clients.web(ward.clinic.clinician)
    refused = nurse.post("/bedside/wristband", data={"wristband": payload(order.dose_unit.code)})
    assert refused.status_code == 422
    assert "NOT A WRISTBAND" in refused.get_data(as_text=True)
    assert audited("bedside.wristband_refused")
    garbage = nurse.post("/bedside/wristband", data={"wristband": "CC1.X99"})
    assert garbage.status_code == 422


def test_a_wrong_patient_scan_on_the_pages_shows_stop(ward: Ward, clients: Any) -> None:
    _, order = ward.at_bedside()
    other = ward.patient(study_id="AS-091", randomization_number="R-091")
    nurse = clients.web(ward.clinic.clinician)
    checked = nurse.post(
        "/bedside/checks",
        data={"wristband": payload(other.coi), "label": payload(order.dose_unit.code)},
    )
    page = nurse.get(checked.headers["Location"]).get_data(as_text=True)
    assert 'class="verdict stop"' in page and "WRONG PATIENT" in page
    assert 'id="sign-form"' not in page and 'id="start-form"' not in page
