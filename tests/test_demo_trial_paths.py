"""Issue 19's "Done when", on the demo site as ``cellchain demo`` builds it, as the investigator:
AS-009's day-0 dose, thawed and stopped at the bedside when its thaw window closed, is destroyed
(witnessed) and replaced by a dose prepared the same day; a serious adverse event shows its
sponsor-report deadline, and one the investigator records shows its own; month-6 endpoints are
recorded into the table over time of AS-002, the control-arm patient whose month-6 window is
open (AS-003's, infused today, is refused).

The demo is built here at the real time in a site zone where it is late morning, so its
morning is never squeezed into the minutes after midnight and day 0 lasts the whole test.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select

from cellchain.clinic.endpoints import endpoints
from cellchain.clinic.models import BedsideCheck
from cellchain.core.accounts import AccountPolicy
from cellchain.core.types import utcnow
from cellchain.demo import DEMO_USERS, DemoSite, seed_demo
from cellchain.dosing.models import DoseOrder
from cellchain.extensions import db
from tests.conftest import Clients
from tests.support.scenes import scene

PASSWORDS = {user.username: user.password for user in DEMO_USERS}


def late_morning_zone(now: dt.datetime) -> ZoneInfo:
    """A fixed-offset zone (``Etc/GMT±n``) in which ``now`` is between 10:00 and 11:00."""
    offset = 10 - now.hour  # hours east of UTC
    if offset < -12:
        offset += 24
    elif offset > 14:
        offset -= 24
    return ZoneInfo(f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT")


@scene
def late_morning_demo(app: Flask, policy: AccountPolicy) -> tuple[DemoSite, ZoneInfo]:
    """The demo seeded now in a zone where it is late morning, once per worker (a scene: each
    test gets a copy of the snapshot); seeding it per test took a few seconds each."""
    now = utcnow()
    zone = late_morning_zone(now)
    before = app.config["SITE_TIMEZONE"]
    app.config["SITE_TIMEZONE"] = zone.key
    try:
        site = seed_demo(
            db.session,
            now=now,
            facility_code=app.config["FACILITY_CODE"],
            policy=policy,
            site_zone=zone,
        )
        db.session.commit()
    finally:
        app.config["SITE_TIMEZONE"] = before
    return site, zone


@pytest.fixture
def demo(
    app: Flask, late_morning_demo: tuple[DemoSite, ZoneInfo]
) -> tuple[Flask, DemoSite, ZoneInfo]:
    """The app in the demo's zone (``make_app`` puts the shared app's config back after the
    test), the demo site and the zone."""
    site, zone = late_morning_demo
    app.config["SITE_TIMEZONE"] = zone.key
    return app, site, zone


def api(app: Flask, site: DemoSite, username: str) -> Any:
    return Clients(app, make_user=lambda *a, **k: None).api(site.users[username])


def test_the_zone_makes_it_late_morning() -> None:
    for hour in range(24):
        now = dt.datetime(2026, 6, 1, hour, 30, tzinfo=dt.UTC)
        assert now.astimezone(late_morning_zone(now)).hour == 10


def test_the_missed_thaw_is_destroyed_and_replaced_the_same_day(
    demo: tuple[Flask, DemoSite, ZoneInfo],
) -> None:
    app, site, zone = demo
    patient = site.patients["AS-009"]
    (order,) = db.session.execute(
        select(DoseOrder).where(DoseOrder.patient_id == patient.id)
    ).scalars()
    (stop,) = db.session.execute(
        select(BedsideCheck).where(BedsideCheck.dose_order_id == order.id)
    ).scalars()
    assert not stop.go and [check["code"] for check in stop.failed] == ["thaw"]
    investigator = api(app, site, "investigator")
    shown = investigator.get(f"/api/v1/doses/{order.id}").get_json()
    assert shown["status"] == "prepared" and shown["actions"] == ["destroy"]
    page = Clients(app, make_user=lambda *a, **k: None).web(
        site.users["investigator"], PASSWORDS["investigator"]
    )
    html = page.get(f"/doses/{order.id}").get_data(as_text=True)
    assert 'id="destroy-form"' in html and "STOP" in html

    held = api(app, site, "tech").post(f"/api/v1/patients/{patient.id}/doses", json={"visit": "D0"})
    assert held.status_code == 422 and "already has a dose order" in held.get_json()["detail"]
    destroyed = investigator.post(
        f"/api/v1/doses/{order.id}/destroy",
        json={
            "reason": "thaw window exceeded before the infusion started",
            "password": PASSWORDS["investigator"],
            "witness": "nurse",
            "witness_password": PASSWORDS["nurse"],
        },
    )
    assert destroyed.status_code == 200, destroyed.get_json()
    assert destroyed.get_json()["status"] == "cancelled"

    today = utcnow().astimezone(zone).date()
    ordered = api(app, site, "tech").post(
        f"/api/v1/patients/{patient.id}/doses", json={"visit": "D0"}
    )
    assert ordered.status_code == 201, ordered.get_json()
    replacement = ordered.get_json()
    assert replacement["planned_on"] == today.isoformat() and replacement["id"] != order.id
    checked = api(app, site, "qa").post(
        f"/api/v1/doses/{replacement['id']}/check",
        json={
            "volume_ml": replacement["volume_ml"],
            "bags": [bag["unit"]["code"] for bag in replacement["bags"]],
            "password": PASSWORDS["qa"],
        },
    )
    assert checked.status_code == 200, checked.get_json()
    assert checked.get_json()["status"] == "prepared"


def test_a_serious_event_shows_its_reporting_deadline(
    demo: tuple[Flask, DemoSite, ZoneInfo],
) -> None:
    app, site, _zone = demo
    investigator = api(app, site, "investigator")
    (seeded,) = investigator.get("/api/v1/adverse-events/reports-due").get_json()
    assert seeded["event"]["patient"] == "AS-004" and seeded["event"]["seriousness"] == "serious"
    aware = dt.datetime.fromisoformat(seeded["event"]["aware_at"])
    assert dt.datetime.fromisoformat(seeded["initial_due"]) == aware + dt.timedelta(hours=24)
    assert seeded["initial_overdue"] is False and seeded["event"]["causality"] is None

    now = utcnow()
    recorded = investigator.post(
        f"/api/v1/patients/{site.patients['AS-003'].id}/adverse-events",
        json={
            "onset_at": (now - dt.timedelta(minutes=5)).isoformat(),
            "description": "Rigors and hypotension after the infusion; admitted for observation.",
            "grade": 3,
            "seriousness": "serious",
            "serious_criteria": ["hospitalisation"],
            "outcome": "recovering",
            "term": "Infusion related reaction",
        },
    )
    assert recorded.status_code == 201, recorded.get_json()
    due = {
        row["event"]["id"]: row
        for row in investigator.get("/api/v1/adverse-events/reports-due").get_json()
    }
    mine = due[recorded.get_json()["id"]]
    recorded_at = dt.datetime.fromisoformat(recorded.get_json()["recorded_at"])
    assert dt.datetime.fromisoformat(mine["initial_due"]) == recorded_at + dt.timedelta(hours=24)
    page = Clients(app, make_user=lambda *a, **k: None).web(
        site.users["investigator"], PASSWORDS["investigator"]
    )
    html = page.get("/adverse-events").get_data(as_text=True)
    listed = html.split('id="reports-due"', 1)[1].split("</table>", 1)[0]
    assert "AS-004" in listed and "AS-003" in listed


def test_month_6_endpoints_are_recorded_into_the_table_over_time(
    demo: tuple[Flask, DemoSite, ZoneInfo],
) -> None:
    app, site, zone = demo
    investigator = api(app, site, "investigator")
    values = {
        **dict.fromkeys(endpoints.BASDAI_FIELDS, 3.0),
        **dict.fromkeys(endpoints.BASFI_FIELDS, 2.5),
        "patient_global": 3.0,
        "crp_mg_l": 6.0,
        "esr_mm_h": 15.0,
    }
    today = utcnow().astimezone(zone).date()
    # AS-003 was infused this morning: its month 6 is half a year away
    early = investigator.post(
        f"/api/v1/patients/{site.patients['AS-003'].id}/endpoints",
        json={"visit": "M6", "assessed_on": today.isoformat(), **values},
    )
    assert early.status_code == 422 and "assessed_on" in early.get_json()["errors"]
    # AS-002 (control arm) started its treatment on day 0, 183 days ago: month 6 is open
    patient = site.patients["AS-002"]
    schedule = investigator.get(f"/api/v1/patients/{patient.id}/follow-up").get_json()
    assert next(v for v in schedule if v["code"] == "M6")["status"] == "due"
    url = f"/api/v1/patients/{patient.id}/endpoints"
    before = investigator.get(url).get_json()
    assert [row["visit"] for row in before][:2] == [endpoints.BASELINE, "M6"]
    assert before[0]["scores"] is not None and before[1]["scores"] is None
    baseline_on = dt.date.fromisoformat(before[0]["assessment"]["assessed_on"])
    assert baseline_on <= dt.date.fromisoformat(before[0]["closes_on"])  # before day 0
    assert dt.date.fromisoformat(before[1]["opens_on"]) <= today
    assert today <= dt.date.fromisoformat(before[1]["closes_on"])
    out_of_range = investigator.post(
        url, json={"visit": "M6", "assessed_on": today.isoformat(), **values, "crp_mg_l": -1.0}
    )
    assert out_of_range.status_code == 422 and "crp_mg_l" in out_of_range.get_json()["errors"]
    recorded = investigator.post(
        url, json={"visit": "M6", "assessed_on": today.isoformat(), **values}
    )
    assert recorded.status_code == 201, recorded.get_json()
    assert recorded.get_json()["outside_window"] is False
    after = investigator.get(url).get_json()
    assert after[1]["visit"] == "M6" and after[1]["scores"]["basdai"] < after[0]["scores"]["basdai"]
    assert baseline_on < dt.date.fromisoformat(after[1]["assessment"]["assessed_on"])
    page = Clients(app, make_user=lambda *a, **k: None).web(
        site.users["investigator"], PASSWORDS["investigator"]
    )
    html = page.get(f"/patients/{patient.id}/endpoints").get_data(as_text=True)
    row = html.split('data-visit="M6"', 1)[1].split("</tr>", 1)[0]
    assert today.isoformat() in row and "not recorded" not in row and "outside window" not in row


def test_a_visit_is_rescheduled_with_a_signed_deviation(
    demo: tuple[Flask, DemoSite, ZoneInfo],
) -> None:
    app, site, zone = demo
    investigator = api(app, site, "investigator")
    today = utcnow().astimezone(zone).date()
    seeded = site.patients["AS-010"]
    (moved,) = investigator.get(f"/api/v1/patients/{seeded.id}/visit-reschedules").get_json()
    assert moved["visit"] == "D0" and moved["planned_on"] == (today + dt.timedelta(21)).isoformat()
    assert moved["outside_protocol"] and moved["deviation_signed_by"] == "investigator"
    patient = site.patients["AS-007"]
    rescheduled = investigator.post(
        f"/api/v1/patients/{patient.id}/visit-reschedules",
        json={
            "visit": "D0",
            "planned_on": (today + dt.timedelta(days=20)).isoformat(),
            "reason": "Patient has a fever; infusion postponed.",
        },
    )
    assert rescheduled.status_code == 201, rescheduled.get_json()
    row = rescheduled.get_json()
    assert row["outside_protocol"] and row["deviation_pending"]
    signed = investigator.post(
        f"/api/v1/visit-reschedules/{row['id']}/deviation-signature",
        json={"password": PASSWORDS["investigator"]},
    )
    assert signed.status_code == 200, signed.get_json()
    assert not signed.get_json()["deviation_pending"]
