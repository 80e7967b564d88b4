"""The lots list as a list that scales (issue 21): newest first, paged, sorted, filtered by
status and searched by lot number in the database; bad values a 422 on the API and a note
on the page; the page costs as many statements with thousands of lots."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, inspect, select

from cellchain.extensions import db
from cellchain.manufacturing.models import Lot
from tests.lists.support import cells, pagination, statements_of
from tests.support.storage import make_lot


def copies(lot: Lot, count: int, *, start: int = 1) -> list[str]:
    """``count`` copies of ``lot`` (new lot numbers) in one insert (below the ORM: test
    rows); their lot numbers, the newest last."""
    columns = {c.key: getattr(lot, c.key) for c in inspect(Lot).column_attrs}
    first = db.session.execute(select(func.max(Lot.id))).scalar_one() + 1
    rows = [{**columns, "id": first + n, "lot_number": f"LX-{start + n:06d}"} for n in range(count)]
    db.session.connection().execute(insert(Lot.__table__), rows)
    db.session.commit()
    return [row["lot_number"] for row in rows]


def test_the_page_pages_newest_first_searches_and_corrects(bench: Any, clients: Any) -> None:
    lot, _bags = make_lot(bench)
    added = copies(lot, 60)
    web = clients.web(bench.lab.qa)
    html = web.get("/manufacturing").get_data(as_text=True)
    assert cells(html, "lots", 0)[:50] == added[::-1][:50] and "Page 1 of 2" in html
    last = web.get("/manufacturing?page=2").get_data(as_text=True)
    assert cells(last, "lots", 0) == [*added[::-1][50:], lot.lot_number]
    found = web.get("/manufacturing?q=lx-000007").get_data(as_text=True)
    assert cells(found, "lots", 0) == ["LX-000007"]
    for bad in ("page=0", "sort=dmso", "page_size=999999", "page=9", "status=lost"):
        response = web.get(f"/manufacturing?{bad}")
        assert response.status_code == 200 and "list-note" in response.get_data(as_text=True), bad


def test_the_api_pages_filters_and_refuses_bad_values(bench: Any, clients: Any) -> None:
    lot, _bags = make_lot(bench)
    added = copies(lot, 5)
    api = clients.api(bench.lab.qa)
    response = api.get("/api/v1/lots", query_string={"page_size": 4, "sort": "lot"})
    assert pagination(response)["total"] == 6 and pagination(response)["next_page"] == 2
    assert [row["lot_number"] for row in response.get_json()] == sorted(
        [*added, lot.lot_number], reverse=True
    )[:4]
    released = api.get("/api/v1/lots", query_string={"status": "released"})
    assert pagination(released)["total"] == 0
    for query, field in (
        ({"page": 0}, "page"),
        ({"sort": "dmso"}, "sort"),
        ({"status": "x"}, "status"),
    ):
        bad = api.get("/api/v1/lots", query_string=query)
        assert bad.status_code == 422 and field in bad.get_json()["errors"], query


def test_the_page_costs_as_many_statements_with_thousands(bench: Any, clients: Any) -> None:
    lot, _bags = make_lot(bench)
    copies(lot, 120)
    web = clients.web(bench.lab.qa)
    paths = ("/manufacturing", "/manufacturing?page=2&q=LX&sort=lot&direction=asc")
    for path in paths:
        statements_of(web, path)
    few = {path: len(statements_of(web, path)) for path in paths}
    copies(lot, 5000, start=1000)
    many = {path: len(statements_of(web, path)) for path in paths}
    assert many == few
