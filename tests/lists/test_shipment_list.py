"""The shipments list as a list that scales (issue 21): newest first, 100 a page as before,
paged, filtered by status, searched (shipper, logger, destination, a patient's study ID) in
the database; bad values a 422 on the API and a note on the page; the doses and patients of
a page read once for the page, as many statements with thousands of shipments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, inspect, select

from cellchain.clinic.models import Shipment
from cellchain.extensions import db
from tests.lists.support import cells, pagination, statements_of
from tests.support.ward import Ward


def copies(shipment: Shipment, count: int, *, first_shipper: int = 100) -> list[int]:
    """``count`` copies of ``shipment`` without doses, in one insert (below the ORM: test
    rows), shipper IDs DS-0100…; their ids."""
    columns = {c.key: getattr(shipment, c.key) for c in inspect(Shipment).column_attrs}
    first = db.session.execute(select(func.max(Shipment.id))).scalar_one() + 1
    rows = [
        {**columns, "id": first + n, "shipper_id": f"DS-{first_shipper + n:04d}"}
        for n in range(count)
    ]
    db.session.connection().execute(insert(Shipment.__table__), rows)
    db.session.commit()
    return [row["id"] for row in rows]


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return [row["id"] for row in response.get_json()]


def test_newest_first_paged_filtered_and_searched_by_study_id(ward: Ward, clients: Any) -> None:
    order = ward.prepared()
    real = ward.ship(order)
    added = copies(real, 130)
    api = clients.api(ward.lab.qa)
    first = api.get("/api/v1/shipments")
    assert pagination(first)["total"] == 131 and len(ids(first)) == 100  # 100 a page, as before
    pages = [
        ids(api.get("/api/v1/shipments", query_string={"page_size": 40, "page": n}))
        for n in (1, 2, 3, 4)
    ]
    assert [i for page in pages for i in page] == sorted([*added, real.id], reverse=True)
    study = order.patient.study_id
    assert ids(api.get("/api/v1/shipments", query_string={"q": study.lower()})) == [real.id]
    assert ids(api.get("/api/v1/shipments", query_string={"q": "DS-0107"})) == [added[7]]
    assert (
        pagination(api.get("/api/v1/shipments", query_string={"status": "received"}))["total"] == 0
    )
    for query, field in (
        ({"page": 0}, "page"),
        ({"sort": "courier"}, "sort"),
        ({"status": "lost"}, "status"),
    ):
        response = api.get("/api/v1/shipments", query_string=query)
        assert response.status_code == 422 and field in response.get_json()["errors"], query
    web = clients.web(ward.lab.qa)
    html = web.get(f"/shipments?q={study}").get_data(as_text=True)
    assert cells(html, "shipments", 0) == [str(real.id)]
    for bad in ("page=0", "sort=courier", "page_size=100000", "page=9", "status=lost"):
        response = web.get(f"/shipments?{bad}")
        assert response.status_code == 200 and "list-note" in response.get_data(as_text=True), bad


def test_a_page_costs_as_many_statements_with_thousands(ward: Ward, clients: Any) -> None:
    """The page holding the shipment with a dose (the oldest, sorted first) in both runs."""
    real = ward.ship(ward.prepared())
    copies(real, 60)
    web, api = clients.web(ward.lab.qa), clients.api(ward.lab.qa)
    paths = (
        "/shipments?sort=dispatched&direction=asc&page_size=50",
        "/api/v1/shipments?sort=dispatched&direction=asc&page_size=50",
        "/api/v1/shipments?q=DS&page=2&page_size=20",
    )
    for path in paths:
        statements_of(api if "/api/" in path else web, path)
    few = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    copies(real, 3000, first_shipper=1000)
    many = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    assert many == few
