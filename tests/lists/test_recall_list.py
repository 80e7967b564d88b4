"""The recalls list as a list that scales (issue 21): open recalls first, then the newest,
paged, filtered by status, searched (number, target, reason) in the database; bad values a
422 on the API and a note on the page; as many statements with thousands."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, insert, select

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.traceability.models import Recall
from tests.lists.support import cells, pagination, statements_of


def add_recalls(opened_by: int, count: int, *, closed_every: int = 3) -> list[dict[str, Any]]:
    """``count`` recalls in one insert (below the ORM: test rows), one in ``closed_every``
    closed, the newest last."""
    first = (db.session.execute(select(func.max(Recall.id))).scalar() or 0) + 1
    now = utcnow()
    rows = [
        {
            "id": first + n,
            "number": f"RC-2026-{first + n:05d}",
            "target_type": "donation",
            "target_id": first + n,
            "target_label": f"W0000 26 {first + n:06d} K",
            "reason": "Late donor test" if n % 2 else "Mould in the incubator",
            "status": "closed" if n % closed_every == 0 else "open",
            "opened_at": now - dt.timedelta(minutes=count - n),
            "opened_by_id": opened_by,
            "closed_at": now if n % closed_every == 0 else None,
            "closed_by_id": opened_by if n % closed_every == 0 else None,
        }
        for n in range(count)
    ]
    db.session.connection().execute(insert(Recall.__table__), rows)
    db.session.commit()
    return rows


def numbers(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return [row["number"] for row in response.get_json()]


def test_open_first_then_newest_paged_filtered_searched(clients: Any, make_user: Any) -> None:
    qa = make_user("quinn", "qa")
    rows = add_recalls(qa.id, 30)
    api = clients.api(qa)
    shown = [
        number
        for n in (1, 2, 3)
        for number in numbers(api.get("/api/v1/recalls", query_string={"page_size": 12, "page": n}))
    ]
    expected = [r["number"] for r in sorted(rows, key=lambda r: (r["status"] != "open", -r["id"]))]
    assert shown == expected
    closed = api.get("/api/v1/recalls", query_string={"status": "closed"})
    assert pagination(closed)["total"] == 10 and set(numbers(closed)) == {
        r["number"] for r in rows if r["status"] == "closed"
    }
    assert pagination(api.get("/api/v1/recalls", query_string={"q": "mould"}))["total"] == 15
    one = rows[7]["number"]
    assert numbers(api.get("/api/v1/recalls", query_string={"q": one})) == [one]
    for query, field in (
        ({"page": -1}, "page"),
        ({"sort": "reason"}, "sort"),
        ({"status": "x"}, "status"),
    ):
        response = api.get("/api/v1/recalls", query_string=query)
        assert response.status_code == 422 and field in response.get_json()["errors"], query


def test_the_page_pages_and_corrects(clients: Any, make_user: Any) -> None:
    qa = make_user("quinn", "qa")
    rows = add_recalls(qa.id, 60)
    web = clients.web(qa)
    html = web.get("/recalls").get_data(as_text=True)
    assert len(cells(html, "recall-list", 0)) == 50 and "Page 1 of 2" in html
    newest_open = max((r for r in rows if r["status"] == "open"), key=lambda r: r["id"])
    assert cells(html, "recall-list", 0)[0] == newest_open["number"]
    oldest = web.get("/recalls?sort=opened&direction=asc").get_data(as_text=True)
    assert cells(oldest, "recall-list", 0)[0] == rows[0]["number"]
    for bad in ("page=0", "sort=reason", "page_size=100000", "page=9", "status=x"):
        response = web.get(f"/recalls?{bad}")
        assert response.status_code == 200 and "list-note" in response.get_data(as_text=True), bad


def test_a_page_costs_as_many_statements_with_thousands(clients: Any, make_user: Any) -> None:
    qa = make_user("quinn", "qa")
    add_recalls(qa.id, 160)  # every page asked for is full
    web, api = clients.web(qa), clients.api(qa)
    paths = ("/recalls", "/recalls?page=2&q=RC", "/api/v1/recalls?page=2&status=open")
    for path in paths:  # what a client's first request reads once
        statements_of(api if "/api/" in path else web, path)
    few = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    add_recalls(qa.id, 3000)
    many = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    assert many == few
