"""Vessels due for their harvest (issue 21's technician queue): the product definition's
``harvest_due_days`` counted from each vessel's seeding, on the site's calendar day."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cellchain.chain.models import UnitStatus
from cellchain.core.i18n import english_of, using_language
from cellchain.core.types import utcnow
from cellchain.errors import InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing import culture_schedule
from cellchain.manufacturing.culture_schedule import DueDays, check_parameters, due_days
from cellchain.manufacturing.defaults import UC_MSC_PARAMETERS
from cellchain.manufacturing.models import CellRecord
from cellchain.manufacturing.vessels import days_in_culture
from tests.support.tamper import outside_the_trail

SHANGHAI = ZoneInfo("Asia/Shanghai")


def seeded(vessels: list[Any], at: dt.datetime) -> None:
    for vessel in vessels:
        db.session.get(CellRecord, vessel.id).made_at = at
    db.session.commit()


def due_on(day: dt.date) -> int:
    return culture_schedule.count_vessels_due(db.session, today=day, zone=SHANGHAI)


def test_the_default_product_sets_ten_days_for_p0_and_four_after_a_passage() -> None:
    assert due_days(UC_MSC_PARAMETERS) == DueDays(primary=10, subculture=4)
    assert due_days({"max_passage": 5}) is None  # a version signed before the parameter


def test_a_vessel_is_due_from_the_site_day_its_days_in_culture_are_reached(bench: Any) -> None:
    p0 = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=2, cells=1.0e6))
    p1 = bench.outputs(bench.passage(p0[:1], harvested=4.0e6, seed=[1.0e6, 1.0e6, 1.0e6]))
    # the P0 vessel left: seeded 2026-01-01 18:00 +08:00, due from 2026-01-11 (10 days)
    seeded(p0[1:], dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC))
    # the P1 vessels: seeded 2026-01-08 04:00 +08:00 (still the 7th in UTC), due from the 12th
    seeded(p1, dt.datetime(2026, 1, 7, 20, 0, tzinfo=dt.UTC))
    assert due_on(dt.date(2026, 1, 10)) == 0
    assert due_on(dt.date(2026, 1, 11)) == 1  # in UTC the P1 vessels would be due today too
    assert due_on(dt.date(2026, 1, 12)) == 4
    assert due_on(dt.date(2026, 3, 1)) == 4  # due until harvested, however late
    # the harvested P0 vessel was consumed by the passage: never counted
    assert db.session.get(type(p0[0]), p0[0].id).status == UnitStatus.CONSUMED.value


def test_a_harvested_vessel_is_no_longer_due(bench: Any) -> None:
    p0 = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=3, cells=1.0e6))
    seeded(p0, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert due_on(dt.date(2026, 2, 1)) == 3
    bench.passage(p0[:2], harvested=8.0e6, seed=[1.0e6])
    assert due_on(dt.date(2026, 2, 1)) == 1
    bench.passage([p0[2]], harvested=4.0e6, seed=[1.0e6])
    # the three are harvested; the new vessels were seeded after 2026-02-01
    assert due_on(dt.date(2026, 2, 1)) == 0


def test_a_product_version_without_a_schedule_counts_no_vessel_due(bench: Any) -> None:
    donation = bench.lab.eligible_donation()
    p0 = bench.outputs(bench.isolate(donation, vessels=2, cells=1.0e6))
    seeded(p0, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert due_on(dt.date(2026, 2, 1)) == 2
    definition = donation.product_definition
    parameters = definition.parameters
    del parameters["harvest_due_days"]
    # a signed version is never changed through the application: set up behind its back
    table = type(definition).__table__
    db.session.execute(
        outside_the_trail(
            table.update()
            .where(table.c.id == definition.id)
            .values(parameters_json=json.dumps(parameters))
        )
    )
    db.session.commit()
    db.session.expire_all()
    assert due_on(dt.date(2026, 2, 1)) == 0


@pytest.mark.parametrize(
    ("days", "refused"),
    [
        ({"primary": 10}, "and nothing else"),
        ({"primary": 10, "subculture": 4, "bank": 3}, "and nothing else"),
        ([10, 4], "and nothing else"),
        ({"primary": 0, "subculture": 4}, "harvest_due_days.primary is a whole number of days"),
        ({"primary": 10, "subculture": "4"}, "harvest_due_days.subculture is a whole number"),
        ({"primary": True, "subculture": 4}, "harvest_due_days.primary is a whole number"),
        ({"primary": 10.5, "subculture": 4}, "harvest_due_days.primary is a whole number"),
        ({"primary": float("nan"), "subculture": 4}, "from 1 to 365, not nan"),
        ({"primary": float("inf"), "subculture": 4}, "from 1 to 365, not inf"),
        ({"primary": 10, "subculture": 10_000_000}, "from 1 to 365, not 10000000"),
    ],
)
def test_a_product_definition_with_a_schedule_that_cannot_apply_is_refused(
    days: object, refused: str
) -> None:
    with pytest.raises(InvalidInput, match=refused) as refusal:
        check_parameters({**UC_MSC_PARAMETERS, "harvest_due_days": days})
    assert refusal.value.errors is not None and "parameters" in refusal.value.errors


def test_a_schedule_of_positive_days_or_none_at_all_is_accepted() -> None:
    check_parameters(UC_MSC_PARAMETERS)
    check_parameters({"max_passage": 5})
    check_parameters({"harvest_due_days": {"primary": 14, "subculture": 3}})


@pytest.mark.parametrize(
    "days",
    [
        {"primary": float("nan"), "subculture": 4},
        {"primary": 1e7, "subculture": 4},
        {"primary": 10},
        "ten",
    ],
)
def test_a_stored_schedule_that_cannot_apply_counts_nothing_rather_than_fail(days: object) -> None:
    """Written some other way than through ``check_parameters``: logged, never a failed page."""
    assert due_days({"harvest_due_days": days}) is None


def test_a_refusal_of_several_values_is_one_sentence_per_value_and_english_on_record() -> None:
    with using_language("zh_Hans"), pytest.raises(InvalidInput) as refusal:
        check_parameters({"harvest_due_days": {"primary": 0, "subculture": 0.5}})
    assert "整数" in refusal.value.detail
    english = english_of(refusal.value.detail)
    assert english.count("is a whole number of days from 1 to 365") == 2
    assert not any("\u4e00" <= c <= "\u9fff" for c in english)


def test_due_on_the_site_calendar_across_a_daylight_saving_change(bench: Any) -> None:
    """Seeded 2026-03-27 23:30 in Berlin (22:30 UTC, before the change to summer time on the
    29th): 4 days make it due on the 31st, the day the vessels' list shows 4 days in culture."""
    berlin = ZoneInfo("Europe/Berlin")
    p0 = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1, cells=1.0e6))
    p1 = bench.outputs(bench.passage(p0, harvested=4.0e6, seed=[1.0e6]))
    seeded_at = dt.datetime(2026, 3, 27, 22, 30, tzinfo=dt.UTC)
    seeded(p1, seeded_at)
    count = culture_schedule.count_vessels_due
    assert count(db.session, today=dt.date(2026, 3, 30), zone=berlin) == 0
    assert count(db.session, today=dt.date(2026, 3, 31), zone=berlin) == 1
    on_the_31st = dt.datetime(2026, 3, 31, 8, 0, tzinfo=berlin)
    assert days_in_culture(seeded_at, on_the_31st, berlin) == 4


def test_the_vessels_list_filters_the_vessels_due_today(bench: Any, clients: Any) -> None:
    p0 = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=3, cells=1.0e6))
    now = utcnow()
    seeded(p0[:2], now - dt.timedelta(days=12))  # P0: due after 10 days
    seeded(p0[2:], now - dt.timedelta(days=3))
    tech = clients.web(bench.lab.tech)
    page = tech.get("/manufacturing/vessels?due=1").get_data(as_text=True)
    assert sorted(re.findall(r'<tr data-unit="(\d+)"', page)) == sorted(str(v.id) for v in p0[:2])
    assert 'id="vessel-search-due" name="due" value="1" checked' in page
    api = clients.api(bench.lab.tech).get("/api/v1/vessels/in-culture?due=true").get_json()
    assert sorted(row["id"] for row in api) == sorted(v.id for v in p0[:2])
    home = tech.get("/").get_data(as_text=True)
    line = re.search(
        r'data-queue="vessels_due"[^>]*><span class="worklist-count">(\d+)</span> · '
        r'<a href="([^"]+)"',
        home,
    )
    assert line and line[1] == "2" and line[2] == "/manufacturing/vessels?due=1"
