"""A clinician reading Chinese takes a dose from receipt to the end of its infusion (issue 21):
every page of the bedside flow, its refusals and its STOP reasons read in Chinese, with no
English word left but codes, units and what the records hold."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from cellchain.chain.models import UnitEvent
from cellchain.clinic.bedside.bedside import BEDSIDE_MEANING
from cellchain.clinic.bedside.infusions import TIME_FLAG_MEANING
from cellchain.clinic.bedside.post_thaw import DECISION_MEANINGS
from cellchain.clinic.endpoints.endpoints import BASELINE
from cellchain.clinic.models import Infusion
from cellchain.core.models import User
from cellchain.core.types import utcnow
from cellchain.dosing.defaults import NCT01420432_PARAMETERS
from cellchain.dosing.models import DoseOrder
from cellchain.dosing.orders import SECOND_CHECK_MEANING
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.untranslated import assert_translated, english_words
from tests.support.ward import Clock, Ward, payload

CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-CN"}


def in_chinese(client: Any) -> Any:
    """The same browser, asking for Simplified Chinese from now on."""
    client.environ_base.update(CHINESE)
    return client


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def recorded_values(app: Flask, *users: User) -> list[str]:
    """What the records hold and pages show as stored: the site's name, people's names, what
    the custody events noted and where, the meanings signed, the infusion's stored time flag,
    the protocol's arms and visits, the doses' stored working."""
    values: list[str] = [app.config["SITE_NAME"], BEDSIDE_MEANING, TIME_FLAG_MEANING]
    values.append(SECOND_CHECK_MEANING)
    for arm in NCT01420432_PARAMETERS["arms"]:
        values.append(arm["name"])
    for visit in [*NCT01420432_PARAMETERS["infusions"], *NCT01420432_PARAMETERS["follow_up"]]:
        values += [visit["name"], visit["code"]]
    values.append(BASELINE)
    for order in db.session.execute(select(DoseOrder)).scalars():
        values += order.working
    values += [str(meaning) for meaning in DECISION_MEANINGS.values()]
    for user in users:
        values += [user.full_name, user.username]
    for event in db.session.execute(select(UnitEvent)).scalars():
        values += [
            event.note or "",
            event.location or "",
            event.from_location or "",
            event.counterparty or "",
        ]
        if event.actor is not None:
            values.append(event.actor.full_name)
    for infusion in db.session.execute(select(Infusion)).scalars():
        values.append(infusion.time_flag or "")
    return values


def test_a_clinician_reading_chinese_takes_a_dose_through_the_bedside_flow(
    ward: Ward, clients: Any, clock: Clock, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = ward.prepared()
    patient = order.patient
    other = ward.patient(study_id="AS-091", randomization_number="R-091")
    tech = clients.web(ward.lab.tech)
    dispatched = tech.post(
        "/shipments",
        data={
            "doses": payload(order.dose_unit.code) + "\n",
            "shipper_id": "DS-7",
            "logger_id": "TL-7",
            "destination": "Ward",
            "courier": "Lee",
        },
    )
    assert dispatched.status_code == 302
    shipment_url = dispatched.headers["Location"]
    nurse = in_chinese(clients.web(ward.clinic.clinician))
    pages: dict[str, str] = {}

    pages["clinic"] = text(nurse.get("/clinic"))
    pages["shipments"] = text(nurse.get("/shipments"))
    pages["shipment to receive"] = text(nurse.get(shipment_url))
    refused = nurse.post(
        shipment_url + "/receipt",
        data={"scan": "DS-7", "temperature_c": "500", "condition": "intact"},
    )
    assert refused.status_code == 422
    pages["receipt refused"] = text(refused)
    assert "接收未记录：" in pages["receipt refused"]
    received = nurse.post(
        shipment_url + "/receipt",
        data={"scan": "DS-7", "temperature_c": "-180", "condition": "intact"},
    )
    assert received.status_code == 302
    pages["shipment received"] = text(nurse.get(shipment_url))

    assert nurse.post("/thaw", data={"scan": payload(order.dose_unit.code)}).status_code == 200
    too_soon = nurse.post("/thaw", data={"scan": payload(order.dose_unit.code)})
    assert too_soon.status_code == 409
    pages["thaw refused"] = text(too_soon)
    assert "复苏未完成" in pages["thaw refused"]
    clock.advance(minutes=3)
    pages["thaw completed"] = text(
        nurse.post("/thaw", data={"scan": payload(order.dose_unit.code)})
    )
    # the site's time, with its offset: the thaw's deadline in Shanghai reads +08:00 (a
    # clinician reads their clinical site's zone, docs/sites.md)
    from cellchain.sites.service import sites_of

    site = sites_of(db.session, ward.clinic.clinician)[0]
    site.time_zone = "Asia/Shanghai"
    db.session.commit()
    pages["thaw in Shanghai"] = text(nurse.get("/thaw"))
    assert "+08:00" in pages["thaw in Shanghai"]
    site.time_zone = "UTC"
    db.session.commit()
    pages["post-thaw count"] = text(nurse.get(f"/doses/{order.id}/post-thaw-count"))

    pages["wristband"] = text(nurse.get("/bedside"))
    pages["label"] = text(
        nurse.post("/bedside/wristband", data={"wristband": payload(patient.coi)})
    )
    wrong = nurse.post(
        "/bedside/checks",
        data={"wristband": payload(other.coi), "label": payload(order.dose_unit.code)},
    )
    pages["STOP: wrong patient"] = text(nurse.get(wrong.headers["Location"]))
    stop = pages["STOP: wrong patient"]
    assert 'class="verdict stop"' in stop
    assert "患者错误。腕带为 AS-091" in stop and "身份不符绝不允许研究者特批" in stop
    assert "WRONG PATIENT" not in stop
    checked = nurse.post(
        "/bedside/checks",
        data={"wristband": payload(patient.coi), "label": payload(order.bags[0].unit.code)},
    )
    check_url = checked.headers["Location"]
    pages["GO"] = text(nurse.get(check_url))
    assert 'class="verdict go"' in pages["GO"]
    signed = nurse.post(
        check_url + "/signatures",
        data={
            "password": TEST_PASSWORD,
            "second_username": "nina",
            "second_password": TEST_PASSWORD,
        },
    )
    assert signed.status_code == 302
    pages["signed"] = text(nurse.get(check_url))
    started = nurse.post(check_url + "/start")
    assert started.status_code == 302
    infusion_url = started.headers["Location"]
    pages["infusion running"] = text(nurse.get(infusion_url))
    too_much = nurse.post(
        infusion_url + "/end", data={"volume_infused_ml": "999", "rate_ml_per_h": "60"}
    )
    assert too_much.status_code == 422
    pages["end refused"] = text(too_much)
    ended = nurse.post(
        infusion_url + "/end",
        data={"volume_infused_ml": str(order.volume_ml), "rate_ml_per_h": "60"},
    )
    assert ended.status_code == 302
    pages["infusion ended"] = text(nurse.get(infusion_url))

    event = {
        "description": "Fever",
        "grade": "2",
        "seriousness": "non_serious",
        "outcome": "recovering",
    }
    before = (utcnow() - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    refused = nurse.post(
        f"/patients/{patient.id}/adverse-events", data={**event, "onset_at": before}
    )
    assert refused.status_code == 422
    pages["adverse event refused"] = text(refused)
    assert "不良事件未记录：" in pages["adverse event refused"]
    recorded = nurse.post(
        f"/patients/{patient.id}/adverse-events",
        data={
            # the requests' clock is 3 minutes ahead: a minute ago for them, after enrolment
            "onset_at": (utcnow() + dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M"),
            "description": "Fever",
            "grade": "2",
            "seriousness": "non_serious",
            "outcome": "recovering",
        },
    )
    assert recorded.status_code == 302, text(recorded)
    pages["follow-up"] = text(nurse.get(f"/patients/{patient.id}/follow-up"))
    pages["visits due"] = text(nurse.get("/follow-up"))
    pages["adverse events"] = text(nurse.get("/adverse-events"))
    pages["endpoints"] = text(nurse.get(f"/patients/{patient.id}/endpoints"))

    assert_translated(
        pages,
        data=[
            *recorded_values(app, ward.clinic.clinician, ward.nurse, ward.lab.tech),
            "Ward",
            "Lee",
            "Fever",
        ],
    )


def test_the_helper_finds_english_words_and_leaves_codes_units_and_data() -> None:
    page = (
        "<html><head><title>剂量 AS-001</title><style>.x{color:red}</style></head><body>"
        '<script>var label = "Dose";</script>'
        '<p title="Scan the bag">扫描 DIN W1234 26 123456 7 · 4.5 mL · COI</p>'
        '<input type="submit" value="Save"><input type="hidden" value="secret">'
        "<p>Cleo Tester 签名 — Not done</p></body></html>"
    )
    assert english_words(page, data=["Cleo Tester"]) == [
        "Scan",
        "the",
        "bag",
        "Save",
        "Not",
        "done",
    ]
