"""A rescheduling refused reads in the reader's language (issue 21): Simplified Chinese with
``Accept-Language: zh-CN``, English without it; nothing is saved either way."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from cellchain.clinic.models import VisitReschedule
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.support.follow_up import back_date

CHINESE = {"Accept-Language": "zh-CN"}


def day(offset: int = 0) -> dt.date:
    return utcnow().date() + dt.timedelta(days=offset)


def move(
    client: Any, patient: Any, visit: str, planned_on: dt.date, headers: dict[str, str]
) -> Any:
    return client.post(
        f"/api/v1/patients/{patient.id}/visit-reschedules",
        json={"visit": visit, "planned_on": planned_on.isoformat(), "reason": "Holiday"},
        headers=headers,
    )


def test_a_rescheduling_refused_reads_in_chinese_when_asked_and_in_english_otherwise(
    clinic: Any, clients: Any
) -> None:
    patient = back_date(clinic.enrol(), 10)  # day 0 ten days ago, no infusion yet
    nurse = clients.api(clinic.clinician)

    # month 3 is provisional until the first infusion: day 0 is moved instead (409)
    chinese = move(nurse, patient, "M3", day(85), CHINESE)
    assert chinese.status_code == 409
    detail = chinese.get_json()["detail"]
    assert "自首次输注起算" in detail and "请改为将第 0 天改期" in detail
    assert "Reschedule day 0 instead" not in detail
    english = move(nurse, patient, "M3", day(85), {})
    assert english.status_code == 409
    assert "Reschedule day 0 instead" in english.get_json()["detail"]

    # a day in the past (422): the summary and the field's problem, each in its language
    past = move(nurse, patient, "D0", day(-1), CHINESE)
    assert past.status_code == 422
    body = past.get_json()
    assert body["detail"].startswith("访视未改期：")
    assert "是过去的日期" in body["errors"]["planned_on"][0]
    assert "in the past" not in body["errors"]["planned_on"][0]
    past = move(nurse, patient, "D0", day(-1), {})
    assert past.status_code == 422
    assert past.get_json()["detail"].startswith("The visit was not rescheduled: ")
    assert "in the past" in past.get_json()["errors"]["planned_on"][0]

    assert db.session.execute(select(func.count()).select_from(VisitReschedule)).scalar_one() == 0
