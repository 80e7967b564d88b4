"""The deviations list as a list that scales (issue 21): newest first, paged, sorted,
filtered (status, category) and searched (number, lot number, text) in the database, bad
values a 422 on the API and a note on the page, as many statements for thousands."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, inspect, select

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import Deviation, DeviationCategory
from tests.lists.support import cells, pagination, statements_of


def opened(description: str = "Tank T-1 read −120 °C for 20 minutes", **kw: Any) -> Deviation:
    found = deviations.open_deviation(
        db.session,
        lot=None,
        category=kw.get("category", DeviationCategory.PROCESS),
        description=description,
        actor=None,
        now=utcnow(),
    )
    db.session.commit()
    return found


def copies(deviation: Deviation, count: int) -> list[int]:
    """``count`` copies of ``deviation`` in one insert (below the ORM: test rows); their ids."""
    columns = {c.key: getattr(deviation, c.key) for c in inspect(Deviation).column_attrs}
    first = db.session.execute(select(func.max(Deviation.id))).scalar_one() + 1
    rows = [{**columns, "id": first + n, "description": f"copy {n}"} for n in range(count)]
    db.session.connection().execute(insert(Deviation.__table__), rows)
    db.session.commit()
    return [row["id"] for row in rows]


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return [row["id"] for row in response.get_json()]


def test_the_api_pages_newest_first_filters_and_searches(clients: Any, make_user: Any) -> None:
    qa = make_user("quinn", "qa")
    first = opened("Freezer alarm at 02:00", category=DeviationCategory.STORAGE_EXCURSION)
    added = copies(opened(), 24)
    api = clients.api(qa)
    pages = [
        ids(api.get("/api/v1/deviations", query_string={"page_size": 10, "page": n}))
        for n in (1, 2, 3)
    ]
    assert [i for page in pages for i in page] == sorted(
        [*added, first.id, first.id + 1], reverse=True
    )
    assert pagination(api.get("/api/v1/deviations"))["total"] == 26
    assert ids(api.get("/api/v1/deviations", query_string={"q": "freezer"})) == [first.id]
    assert ids(api.get("/api/v1/deviations", query_string={"q": f"#{added[3]}"})) == [added[3]]
    storage = api.get("/api/v1/deviations", query_string={"category": "storage_excursion"})
    assert ids(storage) == [first.id]
    assert (
        pagination(api.get("/api/v1/deviations", query_string={"status": "closed"}))["total"] == 0
    )
    for query, field in (
        ({"page": 0}, "page"),
        ({"sort": "x"}, "sort"),
        ({"page_size": 501}, "page_size"),
    ):
        response = api.get("/api/v1/deviations", query_string=query)
        assert response.status_code == 422 and field in response.get_json()["errors"], query


def test_the_page_pages_searches_and_corrects(clients: Any, make_user: Any) -> None:
    qa = make_user("quinn", "qa")
    added = copies(opened(), 60)
    web = clients.web(qa)
    html = web.get("/deviations").get_data(as_text=True)
    assert cells(html, "deviations", 0)[:2] == [f"#{added[-1]}", f"#{added[-2]}"]
    assert len(cells(html, "deviations", 0)) == 50 and "Page 1 of 2" in html
    found = web.get("/deviations?q=copy 7").get_data(as_text=True)
    assert sorted(cells(found, "deviations", 0)) == sorted(f"#{added[n]}" for n in (7,))
    ascending = web.get("/deviations?sort=opened&direction=asc").get_data(as_text=True)
    assert cells(ascending, "deviations", 0)[0] == f"#{added[0] - 1}"
    for bad in ("page=0", "sort=x", "page_size=9999", "page=70"):
        response = web.get(f"/deviations?{bad}")
        assert response.status_code == 200 and "list-note" in response.get_data(as_text=True), bad


def test_a_page_costs_as_many_statements_with_thousands(clients: Any, make_user: Any) -> None:
    qa = make_user("quinn", "qa")
    original = opened()
    copies(original, 60)
    web, api = clients.web(qa), clients.api(qa)
    paths = ("/deviations", "/deviations?page=2&q=copy", "/api/v1/deviations?page=2&status=open")
    few = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    copies(original, 5000)
    many = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    assert many == few
