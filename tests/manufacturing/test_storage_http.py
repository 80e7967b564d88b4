"""LN2 storage and deviations through HTTP: the API's statuses and problem bodies, the pages
and their forms (CSRF is off in the test configuration), and who may do what."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import Deviation, StoragePosition, TankReading
from cellchain.manufacturing.storage import storage
from tests.conftest import TEST_PASSWORD
from tests.support.storage import add_tank, make_lot, store

PROBLEM = "application/problem+json"


def problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def text(response: Any) -> str:
    return response.get_data(as_text=True)


def committed(model: Any) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


def local(value: dt.datetime) -> str:
    """A datetime-local value as a browser sends it (the site is on UTC in tests)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def rig(bench, clients) -> Any:
    """A lot of three bags and API clients for the technician, QC and QA."""
    lot, bags = make_lot(bench, bags=3)
    lab = bench.lab

    class Rig:
        tank = bench.equipment["LN2-01"]
        tank_id = bench.equipment["LN2-01"].id
        freezer_id = bench.equipment["CRF-01"].id
        tech = clients.api(lab.tech)
        qc = clients.api(lab.qc)
        qa = clients.api(lab.qa)

    Rig.lot, Rig.lot_id, Rig.lot_number = lot, lot.id, lot.lot_number
    Rig.bags = bags
    Rig.bag_ids = [bag.id for bag in bags]
    Rig.codes = [bag.code for bag in bags]
    return Rig


# --- storage API --------------------------------------------------------------------------------


def test_storing_through_the_api(rig):
    url = f"/api/v1/storage/units/{rig.bag_ids[0]}"
    response = rig.tech.post(
        url, json={"tank_id": rig.tank_id, "rack": "2", "box": "3", "slot": "14"}
    )
    assert response.status_code == 201, text(response)
    body = response.get_json()
    assert body["label"] == "LN2-01 / rack 2 / box 3 / slot 14" and body["tank"] == "LN2-01"
    assert body["unit"]["code"] == rig.codes[0] and body["lot_number"] == rig.lot_number
    assert body["unit"]["location"] == body["label"]

    taken = problem(
        rig.tech.post(
            f"/api/v1/storage/units/{rig.bag_ids[1]}",
            json={"tank_id": rig.tank_id, "rack": "2", "box": "3", "slot": "14"},
        ),
        409,
    )
    assert rig.codes[0] in taken["detail"] and taken["errors"]["slot"]
    missing = problem(rig.tech.post(url, json={"tank_id": rig.tank_id}), 422)
    assert set(missing["errors"]) == {"rack", "box", "slot"}
    freezer = problem(
        rig.tech.post(url, json={"tank_id": rig.freezer_id, "rack": "1", "box": "1", "slot": "1"}),
        422,
    )
    assert "not an LN2 tank" in freezer["detail"]
    problem(
        rig.tech.post(
            "/api/v1/storage/units/999999",
            json={"tank_id": rig.tank_id, "rack": "1", "box": "1", "slot": "1"},
        ),
        404,
    )
    future = (utcnow() + dt.timedelta(hours=1)).isoformat()
    late = problem(
        rig.tech.post(
            url, json={"tank_id": rig.tank_id, "rack": "1", "box": "1", "slot": "1", "at": future}
        ),
        422,
    )
    assert "at" in late["errors"]
    assert committed(StoragePosition) == 1


def test_a_qc_analyst_cannot_store_or_read_tanks_but_can_see_them(rig):
    body = {"tank_id": rig.tank_id, "rack": "1", "box": "1", "slot": "1"}
    problem(rig.qc.post(f"/api/v1/storage/units/{rig.bag_ids[0]}", json=body), 403)
    url = f"/api/v1/storage/tanks/{rig.tank_id}/readings"
    problem(rig.qc.post(url, json={"temperature_c": -190}), 403)
    problem(rig.qa.post(url, json={"temperature_c": -190}), 403)
    assert committed(StoragePosition) == 0 and committed(TankReading) == 0
    assert rig.qc.get("/api/v1/storage/tanks").status_code == 200


def test_tanks_and_their_contents(bench, rig):
    add_tank(bench, "LN2-02")
    for number, bag in enumerate(rig.bags[:2], start=1):
        store(bench, bag, "1", "1", str(number))
    rig.tech.post(f"/api/v1/storage/tanks/{rig.tank_id}/readings", json={"temperature_c": -190.5})
    tanks = rig.qc.get("/api/v1/storage/tanks").get_json()
    assert [(t["code"], t["occupied"]) for t in tanks] == [("LN2-01", 2), ("LN2-02", 0)]
    assert tanks[0]["last_reading"]["temperature_c"] == -190.5 and tanks[1]["last_reading"] is None
    detail = rig.qc.get(f"/api/v1/storage/tanks/{rig.tank_id}").get_json()
    assert [p["unit"]["code"] for p in detail["positions"]] == rig.codes[:2]
    assert {p["lot_number"] for p in detail["positions"]} == {rig.lot_number}
    assert [r["temperature_c"] for r in detail["readings"]] == [-190.5]
    problem(rig.qc.get("/api/v1/storage/tanks/999999"), 404)
    problem(rig.qc.get(f"/api/v1/storage/tanks/{bench.equipment['INC-01'].id}"), 404)


def test_a_reading_above_the_limit_answers_with_the_deviations_it_opened(bench, rig):
    store(bench, rig.bags[0])
    url = f"/api/v1/storage/tanks/{rig.tank_id}/readings"
    quiet = rig.tech.post(url, json={"temperature_c": -180})
    assert quiet.status_code == 201 and quiet.get_json()["deviations"] == []
    response = rig.tech.post(url, json={"temperature_c": -110.0})
    assert response.status_code == 201, text(response)
    body = response.get_json()
    assert body["reading"]["temperature_c"] == -110.0 and body["reading"]["tank_id"] == rig.tank_id
    [opened] = body["deviations"]
    assert opened["lot_number"] == rig.lot_number and opened["category"] == "storage_excursion"
    assert opened["status"] == "open" and "-110 °C" in opened["description"]
    for bad in ({"temperature_c": "cold"}, {"temperature_c": "NaN"}, {}):
        assert "temperature_c" in problem(rig.tech.post(url, json=bad), 422)["errors"]
    assert (
        "temperature_c" in problem(rig.tech.post(url, json={"temperature_c": -300}), 422)["errors"]
    )
    future = (utcnow() + dt.timedelta(hours=1)).isoformat()
    problem(rig.tech.post(url, json={"temperature_c": -190, "at": future}), 422)
    problem(rig.tech.post("/api/v1/storage/tanks/999999/readings", json={"temperature_c": 1}), 404)
    assert committed(TankReading) == 2


# --- deviations API -----------------------------------------------------------------------------


def test_anyone_opens_a_deviation_only_qa_closes_it(bench, rig, clients, make_user):
    nurse = clients.api(make_user("nora", "clinician"))
    response = nurse.post(
        "/api/v1/deviations",
        json={"lot_id": rig.lot_id, "category": "process", "description": "Label smudged."},
    )
    assert response.status_code == 201, text(response)
    opened = response.get_json()
    assert opened["lot_number"] == rig.lot_number and opened["opened_by"] == "nora"
    assert opened["status"] == "open" and opened["signatures"] == []
    loose = rig.qc.post("/api/v1/deviations", json={"category": "other", "description": "x"})
    assert loose.status_code == 201 and loose.get_json()["lot_id"] is None

    bad = problem(rig.tech.post("/api/v1/deviations", json={"category": "weather"}), 422)
    assert set(bad["errors"]) == {"category", "description"}
    problem(
        rig.tech.post(
            "/api/v1/deviations", json={"lot_id": 999999, "category": "other", "description": "x"}
        ),
        404,
    )

    listed = rig.qc.get("/api/v1/deviations?status=open").get_json()
    assert [d["id"] for d in listed] == [loose.get_json()["id"], opened["id"]]
    problem(rig.qc.get("/api/v1/deviations?status=maybe"), 422)

    url = f"/api/v1/deviations/{opened['id']}/close"
    body = {"resolution": "Relabelled under QA supervision.", "password": TEST_PASSWORD}
    problem(rig.tech.post(url, json=body), 403)
    problem(nurse.post(url, json=body), 403)
    wrong = problem(rig.qa.post(url, json={**body, "password": "nope"}), 401)
    assert "password" in wrong["detail"]
    assert rig.qc.get(f"/api/v1/deviations/{opened['id']}").get_json()["status"] == "open"
    assert (
        "resolution" in problem(rig.qa.post(url, json={"password": TEST_PASSWORD}), 422)["errors"]
    )

    closed = rig.qa.post(url, json=body)
    assert closed.status_code == 200, text(closed)
    closed_body = closed.get_json()
    assert closed_body["status"] == "closed" and closed_body["closed_by"] == "alex"
    [signature] = closed_body["signatures"]
    assert signature["meaning"] == "approval: deviation closed" and signature["valid"]
    assert "password" not in closed_body
    again = problem(rig.qa.post(url, json=body), 409)
    assert "already closed" in again["detail"]
    detail = rig.qc.get(f"/api/v1/deviations/{opened['id']}").get_json()
    assert detail["resolution"] == body["resolution"] and len(detail["signatures"]) == 1
    problem(rig.qc.get("/api/v1/deviations/999999"), 404)
    assert [d["id"] for d in rig.qc.get("/api/v1/deviations?status=closed").get_json()] == [
        opened["id"]
    ]


# --- pages --------------------------------------------------------------------------------------


def test_the_tank_pages_store_a_scanned_bag_and_record_readings(bench, rig, clients):
    web = clients.web(bench.lab.tech)
    tanks = web.get("/storage")
    assert tanks.status_code == 200 and "LN2-01" in text(tanks)
    page = web.get(f"/storage/tanks/{rig.tank_id}")
    assert page.status_code == 200 and 'id="store-form"' in text(page)
    assert "Nothing is stored" in text(page)

    stored = web.post(
        f"/storage/tanks/{rig.tank_id}/store",
        data={"code": rig.codes[0], "rack": "2", "box": "3", "slot": "14", "at": ""},
        follow_redirects=True,
    )
    assert stored.status_code == 200
    assert "stored in LN2-01 / rack 2 / box 3 / slot 14" in text(stored)
    assert rig.lot_number in text(stored)

    refused = web.post(
        f"/storage/tanks/{rig.tank_id}/store",
        data={"code": rig.codes[1], "rack": "2", "box": "3", "slot": "14"},
    )
    assert refused.status_code == 409
    page = text(refused)
    assert "Not saved" in page and str(escape(f"Occupied by {rig.codes[0]}.")) in page
    assert f'value="{rig.codes[1]}"' in page and 'value="14"' in page

    unknown = web.post(
        f"/storage/tanks/{rig.tank_id}/store",
        data={"code": "not a code", "rack": "1", "box": "1", "slot": "1"},
    )
    assert unknown.status_code == 422 and "Not a unit&#39;s code." in text(unknown)
    incomplete = web.post(f"/storage/tanks/{rig.tank_id}/store", data={"code": rig.codes[1]})
    assert incomplete.status_code == 422 and "Some fields need attention" in text(incomplete)

    quiet = web.post(
        f"/storage/tanks/{rig.tank_id}/readings",
        data={"temperature_c": "-185.5", "at": local(utcnow() - dt.timedelta(minutes=5))},
        follow_redirects=True,
    )
    assert "Reading of LN2-01 recorded: -185.5 °C." in text(quiet)
    excursion = web.post(
        f"/storage/tanks/{rig.tank_id}/readings",
        data={"temperature_c": "-120"},
        follow_redirects=True,
    )
    assert "EXCURSION" in text(excursion) and f"lot {rig.lot_number}" in text(excursion)
    impossible = web.post(f"/storage/tanks/{rig.tank_id}/readings", data={"temperature_c": "500"})
    assert impossible.status_code == 422 and 'value="500"' in text(impossible)
    assert committed(TankReading) == 2 and committed(Deviation) == 1


def test_a_qc_analyst_sees_the_tank_page_without_the_forms_and_cannot_post_them(
    bench, rig, clients
):
    web = clients.web(bench.lab.qc)
    page = web.get(f"/storage/tanks/{rig.tank_id}")
    assert page.status_code == 200 and 'id="store-form"' not in text(page)
    refused = web.post(
        f"/storage/tanks/{rig.tank_id}/store",
        data={"code": rig.codes[0], "rack": "1", "box": "1", "slot": "1"},
    )
    assert refused.status_code == 403
    assert (
        web.post(
            f"/storage/tanks/{rig.tank_id}/readings", data={"temperature_c": "-190"}
        ).status_code
        == 403
    )
    assert web.get("/storage/tanks/999999").status_code == 404
    assert committed(StoragePosition) == 0


def test_the_deviation_pages_open_and_close(bench, rig, clients):
    tech = clients.web(bench.lab.tech)
    listing = tech.get("/deviations")
    assert listing.status_code == 200 and 'id="open-form"' in text(listing)

    unknown = tech.post(
        "/deviations",
        data={"category": "process", "lot_number": "NO-SUCH-LOT", "description": "Spill in BSC."},
    )
    assert unknown.status_code == 404 and "Unknown lot." in text(unknown)
    assert "Spill in BSC." in text(unknown)
    blank = tech.post("/deviations", data={"category": "process", "description": ""})
    assert blank.status_code == 422 and "description" in text(blank)
    assert committed(Deviation) == 0

    opened = tech.post(
        "/deviations",
        data={"category": "process", "lot_number": rig.lot_number.lower(), "description": "Spill"},
    )
    assert opened.status_code == 302
    deviation_id = int(re.search(r"/deviations/(\d+)$", opened.headers["Location"]).group(1))
    page = tech.get(f"/deviations/{deviation_id}")
    assert page.status_code == 200 and rig.lot_number in text(page)
    assert 'id="close-form"' not in text(page)  # technicians do not close
    assert tech.post(f"/deviations/{deviation_id}/close", data={}).status_code == 403
    filtered = tech.get("/deviations?status=closed")
    assert f'data-deviation="{deviation_id}"' not in text(filtered)
    assert f'data-deviation="{deviation_id}"' in text(tech.get("/deviations?status=open"))

    qa = clients.web(bench.lab.qa)
    page = qa.get(f"/deviations/{deviation_id}")
    assert 'id="close-form"' in text(page) and "approval: deviation closed" in text(page)
    wrong = qa.post(
        f"/deviations/{deviation_id}/close",
        data={"resolution": "Cleaned and assessed.", "password": "wrong"},
    )
    assert wrong.status_code == 401 and "Not closed" in text(wrong)
    assert "Cleaned and assessed." in text(wrong) and "wrong" not in re.findall(
        r'value="([^"]*)"', text(wrong)
    )
    db.session.rollback()
    assert deviations.get_deviation(db.session, deviation_id).status == "open"

    closed = qa.post(
        f"/deviations/{deviation_id}/close",
        data={"resolution": "Cleaned and assessed.", "password": TEST_PASSWORD},
        follow_redirects=True,
    )
    assert closed.status_code == 200
    page = text(closed)
    assert f"Signed: deviation #{deviation_id} closed." in page
    assert "approval: deviation closed" in page and 'id="close-form"' not in page
    again = qa.post(
        f"/deviations/{deviation_id}/close",
        data={"resolution": "Again", "password": TEST_PASSWORD},
    )
    assert again.status_code == 409 and "already closed" in text(again)
    db.session.rollback()
    lot = db.session.get(type(rig.lot), rig.lot_id)
    assert not deviations.has_open_deviation(db.session, lot)
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.entity_type == "deviation")
    ).all()
    assert actions.count("deviation.closed") == 1


def test_anyone_may_open_a_deviation_from_the_page(bench, clients, make_user):
    nurse = clients.web(make_user("nora", "clinician"))
    response = nurse.post("/deviations", data={"category": "other", "description": "Cooler late."})
    assert response.status_code == 302
    assert storage.list_tanks(db.session)  # the bench's tank is listed for everyone
    assert nurse.get("/storage").status_code == 200
