"""The units list and the vessels in culture as lists that scale (issue 21): paged, sorted,
filtered and searched in the database; the units newest first, the vessels the longest in
culture first with their days in culture on the site's calendar; bad values a 422 on the API
and a note on the page; as many statements per page with 100,000 units as with a few."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, insert, inspect, literal, select, text

from cellchain.chain.models import Unit
from cellchain.core.identifiers import identifier_of_body, make_unit_code
from cellchain.core.types import UTCDateTime, utcnow
from cellchain.donors.models import Donation
from cellchain.extensions import db
from cellchain.manufacturing.models import CellRecord
from cellchain.manufacturing.vessels import days_in_culture
from tests.lists.support import cells, pagination, statements_of
from tests.support.storage import make_lot
from tests.support.untranslated import assert_translated

#: codes one donation may number (``core.identifiers.UNIT_SEQUENCE_MAX``, with room left)
PER_DONATION = 9000


#: the numbers 1 to ``:count``, made by the database (no rows through Python)
_SERIES = {
    "postgresql": "SELECT n FROM generate_series(1, :count) AS s(n)",
    "sqlite": "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s "
    "WHERE n < :count) SELECT n FROM s",
}
_FOUR_DIGITS = {"postgresql": "lpad((n)::text, 4, '0')", "sqlite": "printf('%04d', n)"}
#: ISO/IEC 7064 MOD 37-2 (``core.identifiers.check_character``)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"


def _state(body: str) -> int:
    """The MOD 37-2 running value after ``body``: the database carries it on over the
    sequence's four digits (``t = ((t + v) * 2) % 37`` for each)."""
    total = 0
    for char in body:
        total = ((total + _ALPHABET.index(char)) * 2) % 37
    return total


def _check_sql() -> str:
    """The check character of ``:prefix`` + the four digits of ``n``, in SQL."""
    total = ":state"
    for place in (1000, 100, 10, 1):
        total = f"((({total}) + ((n / {place}) % 10)) * 2) % 37"
    return f"substr('{_ALPHABET}', ((38 - {total}) % 37) + 1, 1)"


def add_vessels(
    donation: Donation, count: int, *, passage: int = 1, by: int | None = None
) -> list[str]:
    """``count`` culture vessels in culture with their cell records, on copies of
    ``donation`` (new DINs: a donation numbers at most 9999 units), made by the database in
    a few statements (test rows below the ORM: the codes with their check characters, the
    cell records from the vessels), all created and seeded at one moment just after the
    newest unit (their ids break the tie). Their codes, the newest last."""
    dialect = db.session.get_bind().dialect.name
    columns = {c.key: getattr(donation, c.key) for c in inspect(Donation).column_attrs}
    first_donation = db.session.execute(select(func.max(Donation.id))).scalar_one() + 1
    first_unit = db.session.execute(select(func.max(Unit.id))).scalar_one() + 1
    latest = db.session.execute(select(func.max(Unit.created_at))).scalar_one()
    prefix = donation.din[:7]
    donations = [
        {
            **columns,
            "id": first_donation + n,
            "din": identifier_of_body(f"{prefix}{900000 + first_donation + n:06d}").canonical,
        }
        for n in range(math.ceil(count / PER_DONATION))
    ]
    connection = db.session.connection()
    connection.execute(insert(Donation.__table__), donations)
    statement = text(
        "INSERT INTO units (id, code, kind, status, donation_id, location, created_at, "
        "created_by_id) "
        f"SELECT :first + n - 1, :prefix || {_FOUR_DIGITS[dialect]} || {_check_sql()}, "
        "'culture_vessel', 'quarantine', :donation, 'INC-01', :at, CAST(:by AS INTEGER) "
        f"FROM ({_SERIES[dialect]}) AS series"
    ).bindparams(bindparam("at", type_=UTCDateTime()))
    at = latest + dt.timedelta(milliseconds=1)
    for n, made in enumerate(donations):
        prefix = made["din"][:13] + "V"
        connection.execute(
            statement,
            {
                "first": first_unit + n * PER_DONATION,
                "prefix": prefix,
                "state": _state(prefix),
                "donation": made["id"],
                "at": at,
                "by": by,
                "count": min(PER_DONATION, count - n * PER_DONATION),
            },
        )
    # each vessel's cell record made by the database from the vessel: seeded when made
    seeded = select(
        Unit.id,
        literal(passage),
        literal(1.0e6),
        literal(1.0),
        Unit.created_at,
        literal("T175"),
        literal(175.0),
    ).where(Unit.id >= first_unit)
    fields = ["unit_id", "passage", "cells", "cumulative_pd", "made_at", "vessel_format"]
    connection.execute(insert(CellRecord.__table__).from_select([*fields, "area_cm2"], seeded))
    db.session.commit()
    added = list(
        db.session.scalars(select(Unit.code).where(Unit.id >= first_unit).order_by(Unit.id))
    )
    last = donations[-1]["din"]
    assert added[0] == make_unit_code(donations[0]["din"], "V", 1).canonical
    assert added[-1] == make_unit_code(last, "V", (count - 1) % PER_DONATION + 1).canonical
    return added


def codes(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return [row["code"] for row in response.get_json()]


def lab_units() -> list[Unit]:
    return list(db.session.scalars(select(Unit)))


# --- the units --------------------------------------------------------------------------------


def test_the_units_api_pages_newest_first_filters_and_searches(bench: Any, clients: Any) -> None:
    lot, bags = make_lot(bench)
    donation = bags[0].donation
    existing = lab_units()
    added = add_vessels(donation, 45)
    api = clients.api(bench.lab.qa)
    total = len(existing) + 45
    first = api.get("/api/v1/units", query_string={"page_size": 20})
    assert pagination(first)["total"] == total and pagination(first)["next_page"] == 2
    pages = [
        codes(api.get("/api/v1/units", query_string={"page_size": 20, "page": n}))
        for n in range(1, math.ceil(total / 20) + 1)
    ]
    shown = [code for page in pages for code in page]
    # newest first, each once: the bulk vessels (the newest) first, none repeated or skipped
    assert shown[:45] == added[::-1] and sorted(shown) == sorted(
        [*added, *(u.code for u in existing)]
    )
    # a unit's row: its code as printed, its DIN and, for a bag, its lot number
    rows = {row["code"]: row for row in api.get("/api/v1/units?kind=cryobag").get_json()}
    assert set(rows) == {bag.code for bag in bags}
    bag = rows[bags[0].code]
    assert bag["lot_number"] == lot.lot_number and bag["din"] == donation.din
    assert bag["display"].endswith("]") and bag["status"] == "quarantine"
    # searched by unit code (as printed, with spaces), by DIN and by lot number
    printed = bag["display"].replace("[", "").replace("]", "")
    assert codes(api.get("/api/v1/units", query_string={"q": printed})) == [bags[0].code]
    by_din = codes(api.get("/api/v1/units", query_string={"q": donation.din, "page_size": 500}))
    assert sorted(by_din) == sorted(u.code for u in existing if u.donation_id == donation.id)
    by_lot = codes(api.get("/api/v1/units", query_string={"q": lot.lot_number.lower()}))
    assert sorted(by_lot) == sorted(b.code for b in bags)
    # filtered by status and kind; sorted by code
    none = api.get("/api/v1/units", query_string={"status": "infused"})
    assert pagination(none)["total"] == 0
    vessels = api.get("/api/v1/units", query_string={"kind": "culture_vessel", "sort": "code"})
    listed = codes(vessels)
    assert listed == sorted(listed, reverse=True) and set(added) <= set(listed)


def test_the_units_api_refuses_bad_values(bench: Any, clients: Any) -> None:
    api = clients.api(bench.lab.qa)
    for query, field in (
        ({"page": 0}, "page"),
        ({"page": "two"}, "page"),
        ({"page_size": 10000}, "page_size"),
        ({"sort": "din"}, "sort"),
        ({"direction": "up"}, "direction"),
        ({"q": "x" * 101}, "q"),
        ({"kind": "flask"}, "kind"),
        ({"status": "lost"}, "status"),
    ):
        response = api.get("/api/v1/units", query_string=query)
        assert response.status_code == 422 and field in response.get_json()["errors"], query


def test_the_units_page_lists_sorts_and_corrects(bench: Any, clients: Any) -> None:
    lot, bags = make_lot(bench)
    added = add_vessels(bags[0].donation, 60)
    web = clients.web(bench.lab.tech)
    html = web.get("/units").get_data(as_text=True)
    shown = cells(html, "units", 0)
    assert len(shown) == 50 and shown[0].replace(" ", "") == added[-1]
    assert 'href="/units"' in web.get("/").get_data(as_text=True)  # in the navigation
    found = web.get(f"/units?q={lot.lot_number}&kind=cryobag").get_data(as_text=True)
    assert sorted(c.replace(" ", "") for c in cells(found, "units", 0)) == sorted(
        b.code for b in bags
    )
    assert cells(found, "units", 4) == [lot.lot_number] * len(bags)
    by_code = web.get("/units?sort=code&direction=asc").get_data(as_text=True)
    assert 'aria-sort="ascending"' in by_code
    for bad in ("page=0", "sort=din", "page_size=999999", "page=9", "kind=flask", "status=x"):
        response = web.get(f"/units?{bad}")
        assert response.status_code == 200 and "list-note" in response.get_data(as_text=True), bad


# --- the vessels in culture -------------------------------------------------------------------


def test_vessels_in_culture_the_longest_first_harvested_ones_left_out(
    bench: Any, clients: Any
) -> None:
    donation = bench.lab.eligible_donation()
    p0 = bench.outputs(bench.isolate(donation, vessels=2))
    p1 = bench.outputs(bench.passage(p0[:1], harvested=4.0e6, seed=[1.0e6, 1.0e6]))
    api = clients.api(bench.lab.tech)
    rows = api.get("/api/v1/vessels/in-culture").get_json()
    # the harvested P0 vessel is consumed: no longer in culture
    assert {row["code"] for row in rows} == {p0[1].code, *(v.code for v in p1)}
    seeded = [row["seeded_at"] for row in rows]
    assert seeded == sorted(seeded)  # the longest in culture first
    row = {r["code"]: r for r in rows}[p1[0].code]
    record = db.session.get(CellRecord, p1[0].id)
    assert row["passage"] == 1 and row["vessel_format"] == "T175" and row["din"] == donation.din
    assert row["days_in_culture"] == days_in_culture(record.made_at, utcnow(), ZoneInfo("UTC"))
    assert row["days_in_culture"] >= 21  # the bench ages its vessels three weeks
    # filtered by passage, searched by code and by DIN, sorted
    at_p1 = codes(api.get("/api/v1/vessels/in-culture", query_string={"passage": 1}))
    assert sorted(at_p1) == sorted(v.code for v in p1)
    assert codes(api.get("/api/v1/vessels/in-culture", query_string={"q": p1[1].code})) == [
        p1[1].code
    ]
    by_din = api.get("/api/v1/vessels/in-culture", query_string={"q": donation.din[:-1]})
    assert pagination(by_din)["total"] == 3
    by_passage = codes(
        api.get("/api/v1/vessels/in-culture", query_string={"sort": "passage", "direction": "desc"})
    )
    assert by_passage[-1] == p0[1].code
    for query, field in (
        ({"page": 0}, "page"),
        ({"sort": "days"}, "sort"),
        ({"passage": "one"}, "passage"),
        ({"passage": -1}, "passage"),
        ({"direction": "sideways"}, "direction"),
    ):
        response = api.get("/api/v1/vessels/in-culture", query_string=query)
        assert response.status_code == 422 and field in response.get_json()["errors"], query


def test_days_in_culture_count_the_site_days(app: Any, bench: Any, clients: Any) -> None:
    """Seeded at 00:30 in Shanghai (16:30 UTC the day before) and read at 23:00 the same
    Shanghai day: 0 days in culture on the site's calendar, where UTC dates would say 1."""
    shanghai = ZoneInfo("Asia/Shanghai")
    seeded = dt.datetime(2026, 12, 5, 16, 30, tzinfo=dt.UTC)
    assert days_in_culture(seeded, dt.datetime(2026, 12, 6, 15, 0, tzinfo=dt.UTC), shanghai) == 0
    assert days_in_culture(seeded, dt.datetime(2026, 12, 6, 15, 0, tzinfo=dt.UTC), dt.UTC) == 1
    assert days_in_culture(seeded, dt.datetime(2026, 12, 6, 16, 0, tzinfo=dt.UTC), shanghai) == 1
    # the list counts in the site's zone: a vessel seeded just after the site's midnight
    donation = bench.lab.eligible_donation()
    vessel = bench.outputs(bench.isolate(donation, vessels=1))[0]
    app.config["SITE_TIMEZONE"] = "Asia/Shanghai"
    try:
        record = db.session.get(CellRecord, vessel.id)
        today = utcnow().astimezone(shanghai).date()
        midnight = dt.datetime.combine(today - dt.timedelta(days=3), dt.time(0, 1), shanghai)
        record.made_at = midnight.astimezone(dt.UTC)
        db.session.commit()
        row = clients.api(bench.lab.tech).get("/api/v1/vessels/in-culture").get_json()[0]
        assert row["days_in_culture"] == 3 and row["seeded_on"] == midnight.date().isoformat()
    finally:
        app.config["SITE_TIMEZONE"] = "UTC"


def test_the_vessels_page_lists_and_corrects(bench: Any, clients: Any) -> None:
    donation = bench.lab.eligible_donation()
    vessels = bench.outputs(bench.isolate(donation, vessels=2))
    added = add_vessels(donation, 55, passage=2)
    web = clients.web(bench.lab.tech)
    html = web.get("/manufacturing/vessels").get_data(as_text=True)
    assert 'href="/manufacturing/vessels"' in html  # in the navigation
    shown = [c.replace(" ", "") for c in cells(html, "vessels", 0)]
    # the isolated vessels were aged three weeks: the longest in culture, first
    assert shown[:2] == sorted(v.code for v in vessels) and shown[2:] == added[:48]
    assert "Page 1 of 2" in html
    at_p2 = web.get("/manufacturing/vessels?passage=2&page=2").get_data(as_text=True)
    assert [c.replace(" ", "") for c in cells(at_p2, "vessels", 0)] == added[50:]
    for bad in ("page=0", "sort=days", "page_size=999999", "page=9", "passage=two"):
        response = web.get(f"/manufacturing/vessels?{bad}")
        assert response.status_code == 200 and "list-note" in response.get_data(as_text=True), bad


# --- in Chinese -------------------------------------------------------------------------------


def test_both_pages_read_in_chinese(app: Any, bench: Any, clients: Any) -> None:
    make_lot(bench)
    donation = bench.lab.eligible_donation()
    bench.outputs(bench.isolate(donation, vessels=2))
    web = clients.web(bench.lab.tech)
    zh = {"Accept-Language": "zh-CN"}
    pages = {}
    for path in (
        "/units",
        "/units?page=9&sort=din&kind=cryobag",
        "/units?q=nothing-like-this",
        "/manufacturing/vessels",
        "/manufacturing/vessels?page=9&sort=days&passage=0",
        "/manufacturing/vessels?q=nothing-like-this",
    ):
        response = web.get(path, headers=zh)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        assert ">单位<" in html and ">培养中的培养容器<" in html  # the navigation's links
        # the page's own text: the navigation's other links are other pages' to translate
        pages[path] = html.split("<main", 1)[1].split(">", 1)[1].split("</main>", 1)[0]
    assert "没有第 9 页" in pages["/units?page=9&sort=din&kind=cryobag"]
    assert "未找到培养容器。" in pages["/manufacturing/vessels?q=nothing-like-this"]
    user = bench.lab.tech
    data = [app.config["SITE_NAME"], user.full_name, user.username, "nothing-like-this"]
    # the sort keys asked for, and those the notes name (the address's own words)
    data += ["din", "created", "code", "kind", "status", "days", "seeded", "passage", "format"]
    assert_translated(pages, data=data)


# --- at scale ---------------------------------------------------------------------------------


def test_a_page_costs_as_many_statements_with_100k_units(bench: Any, clients: Any) -> None:
    """The units list and the vessels in culture send the same number of statements for a
    page with a few units or with 100,000 (the list's count and rows, and one for the users
    shown): counts, not times."""
    _lot, bags = make_lot(bench)
    donation = bags[0].donation
    add_vessels(donation, 10, by=bench.lab.tech.id)
    web, api = clients.web(bench.lab.qa), clients.api(bench.lab.qa)
    paths = (
        "/units",
        "/units?page=2&page_size=5&sort=code&q=V0&kind=culture_vessel",
        "/api/v1/units",
        "/api/v1/units?page=2&page_size=5&sort=status&direction=asc&q=V0&status=quarantine",
        "/manufacturing/vessels",
        "/manufacturing/vessels?page=2&page_size=5&sort=code&q=V0&passage=1",
        "/api/v1/vessels/in-culture",
        "/api/v1/vessels/in-culture?page=2&page_size=5&sort=passage&direction=desc&q=V0",
    )

    def counted() -> dict[str, int]:
        return {path: len(statements_of(api if "/api/" in path else web, path)) for path in paths}

    counted()  # first requests warm what is read once per process
    few = counted()
    add_vessels(donation, 100_000, by=bench.lab.tech.id)
    assert db.session.execute(select(func.count()).select_from(Unit)).scalar_one() > 100_000
    assert counted() == few
    units = [s for s in statements_of(api, "/api/v1/units?page=3") if "units" in s.lower()]
    assert len(units) == 2, units  # the count and the page's rows
    page = api.get("/api/v1/vessels/in-culture?page=2&page_size=500")
    assert pagination(page)["total"] > 100_000 and len(page.get_json()) == 500
