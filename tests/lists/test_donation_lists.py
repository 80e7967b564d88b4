"""The donations list and the eligibility queue as lists that scale (issue 21): paged,
sorted, filtered and searched in the database; the queue shows the longest waiting first
and no longer every donation in one page; a page costs as many statements with a few
donations as with thousands. Counts, not times."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, insert, inspect, select

from cellchain.donors.models import Donation, DonationStatus
from cellchain.extensions import db
from tests.lists.support import cells, pagination, statements_of


def copies(donation: Donation, count: int, *, start: int = 1) -> list[str]:
    """``count`` copies of ``donation`` (same donor, new DINs), pending eligibility, inserted
    in one statement, collected a minute apart, the earliest first; their DINs."""
    columns = {c.key: getattr(donation, c.key) for c in inspect(Donation).column_attrs}
    first = db.session.execute(select(func.max(Donation.id))).scalar_one() + 1
    rows = []
    for n in range(count):
        row = dict(columns)
        row.update(
            id=first + n,
            din=f"Q{start + n:012d}X",
            collected_at=donation.collected_at - dt.timedelta(days=30) + dt.timedelta(minutes=n),
            status=DonationStatus.REGISTERED.value,
        )
        rows.append(row)
    # on the session's connection, below the ORM: test rows, not changes the trail records
    db.session.connection().execute(insert(Donation.__table__), rows)
    db.session.commit()
    return [row["din"] for row in rows]


def dins(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return [row["din"] for row in response.get_json()]


def test_the_queue_pages_the_longest_waiting_first(lab: Any, clients: Any) -> None:
    added = copies(lab.register(), 30)
    api = clients.api(lab.qa)
    first = api.get("/api/v1/donations/eligibility-queue", query_string={"page_size": 12})
    assert pagination(first)["total"] == 31 and pagination(first)["total_pages"] == 3
    shown = dins(first) + [
        din
        for n in (2, 3)
        for din in dins(
            api.get(
                "/api/v1/donations/eligibility-queue", query_string={"page_size": 12, "page": n}
            )
        )
    ]
    assert shown[:30] == added and len(shown) == len(set(shown)) == 31  # the copies collected first
    newest = api.get(
        "/api/v1/donations/eligibility-queue",
        query_string={"sort": "collected", "direction": "desc", "page_size": 5},
    )
    assert dins(newest)[1:] == added[::-1][:4]
    web = clients.web(lab.qa).get("/eligibility").get_data(as_text=True)
    assert len(cells(web, "queue", 0)) == 25 and "Page 1 of 2" in web and "1–25 of 31" in web


def test_the_queue_and_the_donations_search_the_din_and_filter_the_status(
    lab: Any, clients: Any
) -> None:
    original = lab.register()
    added = copies(original, 5)
    api = clients.api(lab.qa)
    found = api.get("/api/v1/donations/eligibility-queue", query_string={"q": added[2][4:]})
    assert dins(found) == [added[2]]
    by_donor = api.get("/api/v1/donations", query_string={"q": original.donor.code.lower()})
    assert by_donor.get_json()["total"] == 6
    registered = api.get(
        "/api/v1/donations/eligibility-queue", query_string={"status": "registered"}
    )
    assert set(dins(registered)) == {*added, original.din} - (
        set() if original.status == "registered" else {original.din}
    )
    page = clients.web(lab.qa).get(f"/eligibility?q={added[4]}").get_data(as_text=True)
    assert [din.replace(" ", "") for din in cells(page, "queue", 0)] == [added[4]]


def test_the_donations_api_keeps_its_body_and_adds_the_header(lab: Any, clients: Any) -> None:
    copies(lab.register(), 7)
    api = clients.api(lab.qa)
    response = api.get("/api/v1/donations", query_string={"per_page": 3, "page": 2})
    body = response.get_json()
    assert (body["page"], body["per_page"], body["total"], body["pages"]) == (2, 3, 8, 3)
    assert pagination(response)["next_page"] == 3 and len(body["items"]) == 3
    by_din = api.get("/api/v1/donations", query_string={"sort": "din", "direction": "asc"})
    listed = [item["din"] for item in by_din.get_json()["items"]]
    assert listed == sorted(listed)


def test_bad_paging_values_are_422_on_the_api_and_corrected_on_the_page(
    lab: Any, clients: Any
) -> None:
    copies(lab.register(), 3)
    api, web = clients.api(lab.qa), clients.web(lab.qa)
    for path in ("/api/v1/donations", "/api/v1/donations/eligibility-queue"):
        for query, field in (
            ({"page": 0}, "page"),
            ({"page_size": 10000}, "page_size"),
            ({"sort": "password"}, "sort"),
            ({"page": "x"}, "page"),
            ({"status": "lost"}, "status"),
        ):
            response = api.get(path, query_string=query)
            assert response.status_code == 422, (path, query)
            assert field in response.get_json()["errors"], (path, query, response.get_json())
    for path in ("/donations", "/eligibility"):
        for bad in ("page=0", "page_size=10000", "sort=password", "page=x", "page=99"):
            response = web.get(f"{path}?{bad}")
            assert response.status_code == 200, (path, bad)
            assert "list-note" in response.get_data(as_text=True), (path, bad)


def test_a_page_costs_as_many_statements_with_a_few_or_thousands_of_donations(
    lab: Any, clients: Any
) -> None:
    """Both pages full (the page size is 25): every donor, result and definition read once
    for the page, never per row."""
    original = lab.register()
    copies(original, 30)
    api, web = clients.api(lab.qa), clients.web(lab.qa)
    paths = (
        "/eligibility",
        "/eligibility?sort=din&q=Q0&page=2",
        "/donations",
        "/donations?status=registered&sort=status&page=2",
        "/api/v1/donations/eligibility-queue?page=2",
        "/api/v1/donations?q=Q0&page=2",
    )
    few = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    copies(original, 5000, start=100)
    many = {p: len(statements_of(api if "/api/" in p else web, p)) for p in paths}
    assert many == few
