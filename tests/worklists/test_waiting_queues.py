"""The queue lines of ``worklists.waiting`` (issue 21): the clinician's doses to thaw today,
the investigator's post-thaw decisions awaited, the technician's labels to apply. Each count
is right for a scene, zero when nothing waits, lists the same records on the page it links
to, and costs the same statements with few or many records."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from cellchain.chain.models import Unit
from cellchain.clinic.bedside import queues
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.labels import outstanding, service
from cellchain.manufacturing.processing import processing
from tests.clinic.test_post_thaw_count import count_body
from tests.conftest import TEST_PASSWORD
from tests.support.labels import print_units
from tests.worklists.test_home_queues import counts, home
from tests.worklists.test_worklist_statements import statements_of


def page(client: Any, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def rows(html: str, attribute: str) -> list[int]:
    return [int(n) for n in re.findall(rf'<tr {attribute}="(\d+)"', html)]


# --- clinician: doses to thaw today -------------------------------------------------------------


def test_the_clinician_sees_the_doses_received_and_not_thawed_planned_today(
    ward: Any, clients: Any
) -> None:
    nurse = clients.web(ward.clinic.clinician)
    assert counts(nurse)["doses_to_thaw_today"] == 0
    assert rows(page(nurse, "/clinic/to-thaw-today"), "data-dose") == []

    _patient, thawed = ward.at_bedside()  # received and thawed: not to thaw any more
    waiting = ward.prepared()
    ward.receive(ward.ship(waiting, shipper="DS-0002"))
    ward.ship(ward.prepared(), shipper="DS-0003")  # on its way, not received
    held = ward.receive(ward.ship(ward.prepared(), shipper="DS-0004"), temperature_c=-100.0)
    assert held.status == "held"
    later = ward.prepared()
    later.planned_on = later.planned_on + dt.timedelta(days=1)  # its visit is tomorrow
    db.session.commit()
    ward.receive(ward.ship(later, shipper="DS-0005"))

    assert counts(nurse)["doses_to_thaw_today"] == 1
    listed = page(nurse, "/clinic/to-thaw-today")
    assert rows(listed, "data-dose") == [waiting.id]
    assert re.search(
        r'data-queue="doses_to_thaw_today">.*?href="/clinic/to-thaw-today"', home(nurse)
    )
    # the day is the one given: tomorrow's dose is tomorrow's
    today = waiting.planned_on
    assert queues.count_to_thaw_on(db.session, today + dt.timedelta(days=1)) == 1
    assert [o.id for o in queues.to_thaw_on(db.session, today + dt.timedelta(days=1))] == [later.id]

    ward.thaw(waiting)  # scanned into the bath: off the queue
    assert counts(nurse)["doses_to_thaw_today"] == 0
    assert thawed.id not in rows(page(nurse, "/clinic/to-thaw-today"), "data-dose")


def test_today_is_the_sites_calendar_day_not_utcs(
    app: Any, ward: Any, clients: Any, monkeypatch: Any
) -> None:
    from cellchain import http

    nurse = clients.web(ward.clinic.clinician)
    dose = ward.prepared()
    ward.receive(ward.ship(dose, shipper="DS-0002"))
    # 20:00 UTC the evening before the dose's day is 04:00 on its day in Shanghai
    evening = dt.datetime.combine(dose.planned_on - dt.timedelta(days=1), dt.time(20), dt.UTC)
    monkeypatch.setattr(http, "utcnow", lambda: evening)

    # a clinician's calendar is their clinical site's (issue 22, docs/sites.md)
    from cellchain.sites.service import sites_of

    site = sites_of(db.session, ward.clinic.clinician)[0]
    site.time_zone = "UTC"
    db.session.commit()
    assert counts(nurse)["doses_to_thaw_today"] == 0
    assert rows(page(nurse, "/clinic/to-thaw-today"), "data-dose") == []
    site.time_zone = "Asia/Shanghai"
    db.session.commit()
    assert counts(nurse)["doses_to_thaw_today"] == 1
    assert rows(page(nurse, "/clinic/to-thaw-today"), "data-dose") == [dose.id]


# --- investigator: post-thaw decisions awaited --------------------------------------------------


def test_the_investigator_sees_the_post_thaw_counts_outside_tolerance_to_decide(
    ward: Any, clients: Any
) -> None:
    doctor = clients.web(ward.clinic.investigator)
    assert counts(doctor)["post_thaw_decisions"] == 0
    _patient, order = ward.at_bedside()
    nurse = clients.api(ward.clinic.clinician)
    url = f"/api/v1/doses/{order.id}/post-thaw-counts"
    inside = nurse.post(url, json=count_body(5.0e6, 90))
    assert inside.status_code == 201 and inside.get_json()["within_tolerance"]
    assert counts(doctor)["post_thaw_decisions"] == 0  # within tolerance: nothing to decide

    outside = nurse.post(url, json=count_body(4.1e6, 82, reason="Recounted"))
    assert outside.status_code == 201 and not outside.get_json()["within_tolerance"]
    assert counts(doctor)["post_thaw_decisions"] == 1
    listed = page(doctor, "/clinic/post-thaw-decisions")
    assert rows(listed, "data-count") == [outside.get_json()["id"]]
    assert f'href="/doses/{order.id}/post-thaw-count"' in listed
    assert re.search(
        r'data-queue="post_thaw_decisions">.*?href="/clinic/post-thaw-decisions"', home(doctor)
    )

    again = nurse.post(url, json=count_body(5.0e6, 90, reason="Clumped sample"))
    assert again.status_code == 201
    assert counts(doctor)["post_thaw_decisions"] == 0  # the latest count is within tolerance

    last = nurse.post(url, json=count_body(4.0e6, 80, reason="Third count")).get_json()
    assert counts(doctor)["post_thaw_decisions"] == 1
    signed = clients.api(ward.clinic.investigator).post(
        f"/api/v1/doses/{order.id}/post-thaw-decision",
        json={
            "count_id": last["id"],
            "decision": "proceed",
            "reason": "Benefit outweighs",
            "password": TEST_PASSWORD,
        },
    )
    assert signed.status_code == 200, signed.get_json()
    assert counts(doctor)["post_thaw_decisions"] == 0
    assert rows(page(doctor, "/clinic/post-thaw-decisions"), "data-count") == []


# --- technician: labels to apply ----------------------------------------------------------------


def bags(desk: Any) -> list[Unit]:
    return list(processing.bags_of(db.session, desk.lot))


def test_the_technician_sees_the_labels_printed_not_yet_applied(desk: Any, clients: Any) -> None:
    tech = clients.web(desk.lab.tech)
    assert counts(tech)["labels_to_apply"] == 0
    assert rows(page(tech, "/labels/outstanding"), "data-print") == []
    first, second, third = bags(desk)[:3]
    printed = print_units([first, second, third], desk.lab.tech).prints
    assert counts(tech)["labels_to_apply"] == 3

    service.record_applied(
        db.session, None, printed[0].payload, actor=desk.lab.tech, now=utcnow(), unit=first
    )
    service.destroy_labels(db.session, printed[1], 1, "Smudged", actor=desk.lab.tech, now=utcnow())
    db.session.commit()
    assert counts(tech)["labels_to_apply"] == 1
    listed = page(tech, "/labels/outstanding")
    assert rows(listed, "data-print") == [printed[2].id]
    assert third.code in listed and first.code not in listed
    assert re.search(
        r'data-queue="labels_to_apply">.*?href="/labels/outstanding#to-apply"', home(tech)
    )

    two = print_units([first], desk.lab.tech, copies=2, reason="Torn").prints[0]
    service.record_applied(
        db.session, None, two.payload, actor=desk.lab.tech, now=utcnow(), unit=first
    )
    db.session.commit()
    assert counts(tech)["labels_to_apply"] == 2  # a spare copy is still to account for
    assert outstanding.count_outstanding_prints(db.session) == len(
        outstanding.outstanding_prints(db.session)
    )


# --- statements ---------------------------------------------------------------------------------


def test_the_added_lines_cost_as_many_statements_with_few_or_many_records(
    ward: Any, make_user: Any, clients: Any
) -> None:
    everyone = make_user("eve", "technician", "clinician", "investigator")
    web, api = clients.web(everyone), clients.api(everyone)
    # the released lot's 9 bags (the tenth went to QC): the doses below take the first
    lot_bags = [bag for bag in bags_of_lot(ward) if bag.status != "consumed"]
    print_units(lot_bags[-1:], ward.lab.tech)
    # a patient from the start: the visits' schedule is read once there is one (its reads
    # are the same for one patient or many, ``test_worklist_statements``)
    ward.receive(ward.ship(ward.prepared(), shipper="DS-0100"))
    few = counts(web)
    few_page, few_api = statements_of(web, "/"), statements_of(api, "/api/v1/worklist")

    for number in range(2):
        order = ward.prepared()
        ward.receive(ward.ship(order, shipper=f"DS-020{number}"))
    print_units(lot_bags[-5:-1], ward.lab.tech)
    many = counts(web)
    many_page, many_api = statements_of(web, "/"), statements_of(api, "/api/v1/worklist")

    assert many["labels_to_apply"] == few["labels_to_apply"] + 4
    assert many["doses_to_thaw_today"] == few["doses_to_thaw_today"] + 2
    assert len(many_page) == len(few_page), "\n\n".join(set(many_page) - set(few_page))
    assert len(many_api) == len(few_api), "\n\n".join(many_api)


def bags_of_lot(ward: Any) -> list[Unit]:
    from cellchain.chain.models import UnitKind

    return list(
        db.session.execute(
            db.select(Unit).where(Unit.kind == UnitKind.CRYOBAG.value).order_by(Unit.id)
        ).scalars()
    )


def test_the_added_lines_and_pages_read_in_chinese(ward: Any, make_user: Any, clients: Any) -> None:
    everyone = clients.web(make_user("eve", "technician", "clinician", "investigator"))
    zh = {"Accept-Language": "zh-CN"}
    home_zh = everyone.get("/", headers=zh).get_data(as_text=True)
    for text in (
        "已打印、尚未贴上的标签",
        "今日待复苏的剂量",
        "复苏后超出允许范围、等待您决定的剂量",
    ):
        assert text in home_zh
    assert "doses to thaw today" not in home_zh
    for path, title in (
        ("/clinic/to-thaw-today", "今日待复苏的剂量"),
        ("/clinic/post-thaw-decisions", "等待决定的复苏后计数"),
        ("/labels/outstanding", "待打印和待贴的标签"),
    ):
        response = everyone.get(path, headers=zh)
        assert response.status_code == 200 and title in response.get_data(as_text=True)
