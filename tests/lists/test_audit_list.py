"""The audit trail as a list that scales (issue 21): newest first, paged, sorted, searched
and filtered in the database, two statements for the list whatever its length; bad paging
values are a 422 on the API and a corrected page with a note on the page. The earlier
``limit``/``offset`` paging (oldest first) still answers as before."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update

from cellchain.core.models import AuditChainHead, AuditEntry
from cellchain.core.types import UTCDateTime, utcnow
from cellchain.extensions import db
from tests.lists.support import cells, pagination, statements_of


def add_entries(count: int, *, action: str = "lot.noted", actor: str = "bulk") -> list[int]:
    """``count`` entries appended in one bulk insert (not hash-chained: the list reads them,
    nobody verifies them here), a second apart, the newest last; their seqs."""
    first = (db.session.execute(select(func.max(AuditEntry.seq))).scalar() or 0) + 1
    start = utcnow() - dt.timedelta(seconds=count)
    rows = [
        {
            "seq": first + n,
            "at": start + dt.timedelta(seconds=n),
            "actor_id": None,
            "actor_username": actor,
            "action": action,
            "entity_type": "lot",
            "entity_id": f"LOT-{first + n:06d}",
            "changes": "{}",
            "reason": None,
            "prev_hash": f"{first + n - 1:064x}",
            "entry_hash": f"{first + n:064x}",
            "key_id": None,
        }
        for n in range(count)
    ]
    db.session.execute(insert(AuditEntry), rows)
    # the chain's head moves past them, so that the entries written next follow them
    db.session.execute(
        update(AuditChainHead).values(last_seq=rows[-1]["seq"], last_hash=rows[-1]["entry_hash"])
    )
    db.session.commit()
    return [row["seq"] for row in rows]


#: ``count`` entries made by the database itself from a series of numbers (one statement,
#: no rows through Python): the 100,000 of the scale test.
_SERIES = {
    "postgresql": "SELECT n FROM generate_series(0, :count - 1) AS s(n)",
    "sqlite": "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s "
    "WHERE n < :count - 1) SELECT n FROM s",
}
_HEX = {"postgresql": "lpad(to_hex({}), 64, '0')", "sqlite": "printf('%064x', {})"}
_PADDED = {"postgresql": "lpad(({})::text, 6, '0')", "sqlite": "printf('%06d', {})"}


def add_many_entries(count: int) -> None:
    """``count`` entries like ``add_entries``', made in the database in one statement."""
    dialect = db.session.get_bind().dialect.name
    first = (db.session.execute(select(func.max(AuditEntry.seq))).scalar() or 0) + 1
    seq = ":first + n"
    statement = text(
        "INSERT INTO audit_entries (seq, at, actor_id, actor_username, action, entity_type, "
        "entity_id, changes, reason, prev_hash, entry_hash, key_id) "
        f"SELECT {seq}, :at, NULL, 'bulk', 'lot.noted', 'lot', "
        f"'LOT-' || {_PADDED[dialect].format(seq)}, '{{}}', NULL, "
        f"{_HEX[dialect].format(seq + ' - 1')}, {_HEX[dialect].format(seq)}, NULL "
        f"FROM ({_SERIES[dialect]}) AS series"
    ).bindparams(bindparam("at", type_=UTCDateTime()))
    db.session.execute(statement, {"first": first, "count": count, "at": utcnow()})
    last = first + count - 1
    db.session.execute(update(AuditChainHead).values(last_seq=last, last_hash=f"{last:064x}"))
    db.session.commit()


def seqs(response: Any) -> list[int]:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return [entry["seq"] for entry in response.get_json()]


def test_the_api_pages_newest_first_without_repeating_or_skipping(clients, make_user):
    qa = make_user("quinn", "qa")
    added = add_entries(45)
    api = clients.api(qa)
    query = {"action": "lot.noted", "page_size": 20}
    first = api.get("/api/v1/audit", query_string=query)
    assert pagination(first) == {
        "total": 45,
        "total_pages": 3,
        "first_page": 1,
        "last_page": 3,
        "page": 1,
        "page_size": 20,
        "next_page": 2,
    }
    pages = [seqs(first)] + [
        seqs(api.get("/api/v1/audit", query_string={**query, "page": n})) for n in (2, 3)
    ]
    assert [len(p) for p in pages] == [20, 20, 5]
    # newest first, each once
    assert [seq for page in pages for seq in page] == sorted(added, reverse=True)
    last = pagination(api.get("/api/v1/audit", query_string={**query, "page": 3}))
    assert last["previous_page"] == 2 and "next_page" not in last
    beyond = api.get("/api/v1/audit", query_string={**query, "page": 9})
    assert seqs(beyond) == [] and pagination(beyond)["total"] == 45


def test_sorting_by_a_column_with_ties_keeps_one_order_across_pages(clients, make_user):
    """Every entry has the same action: the seq breaks the tie, so the pages of a sort by
    action hold each entry once."""
    qa = make_user("quinn", "qa")
    added = add_entries(30)
    api = clients.api(qa)
    query = {"action": "lot.noted", "sort": "action", "direction": "asc", "page_size": 7}
    shown = [
        seq
        for n in range(1, 6)
        for seq in seqs(api.get("/api/v1/audit", query_string={**query, "page": n}))
    ]
    assert shown == sorted(added)
    by_time = api.get("/api/v1/audit", query_string={"sort": "at", "direction": "asc"})
    times = [entry["at"] for entry in by_time.get_json()]
    assert times == sorted(times) and seqs(by_time)[0] == added[0]  # written back-dated


def test_the_search_finds_a_record_id_and_a_user(clients, make_user):
    qa = make_user("quinn", "qa")
    added = add_entries(30)
    add_entries(3, actor="zhang.wei", action="lot.weighed")
    api = clients.api(qa)
    one = api.get("/api/v1/audit", query_string={"q": f"lot-{added[6]:06d}"})
    assert seqs(one) == [added[6]]
    assert pagination(api.get("/api/v1/audit", query_string={"q": "ZHANG"}))["total"] == 3
    wildcard = api.get("/api/v1/audit", query_string={"q": "%"})
    assert seqs(wildcard) == []  # a % is a percent sign, not "anything"


def test_bad_paging_values_are_422_on_the_api(clients, make_user):
    qa = make_user("quinn", "qa")
    api = clients.api(qa)
    for query, field in (
        ({"page": 0}, "page"),
        ({"page": "two"}, "page"),
        ({"page_size": 10000}, "page_size"),
        ({"page_size": 0}, "page_size"),
        ({"direction": "sideways"}, "direction"),
        ({"sort": "entry_hash"}, "sort"),
        ({"q": "x" * 101}, "q"),
    ):
        response = api.get("/api/v1/audit", query_string=query)
        assert response.status_code == 422, (query, response.get_data(as_text=True))
        assert field in response.get_json()["errors"], (query, response.get_json())
    unknown = api.get("/api/v1/audit", query_string={"sort": "entry_hash"}).get_json()
    assert "seq, at, actor, action, record" in unknown["errors"]["sort"][0]


def test_the_page_shows_newest_first_with_a_pager_and_corrects_bad_values(clients, make_user):
    qa = make_user("quinn", "qa")
    added = add_entries(60)
    web = clients.web(qa)
    html = web.get("/audit?action=lot.noted").get_data(as_text=True)
    shown = [int(seq) for seq in cells(html, "audit-entries", 0)]
    assert shown == sorted(added, reverse=True)[:50]
    assert 'data-pages="2"' in html and "Page 1 of 2" in html and "1–50 of 60" in html
    assert 'rel="next"' in html and "action=lot.noted" in html.split('rel="next"')[0][-300:]
    second = web.get("/audit?action=lot.noted&page=2").get_data(as_text=True)
    assert [int(s) for s in cells(second, "audit-entries", 0)] == sorted(added, reverse=True)[50:]
    for bad in ("page=0", "page=abc", "page_size=10000", "sort=entry_hash", "direction=up"):
        response = web.get(f"/audit?action=lot.noted&{bad}")
        assert response.status_code == 200, bad
        page = response.get_data(as_text=True)
        assert "list-note" in page, bad
        assert len(cells(page, "audit-entries", 0)) == 50, bad
    beyond = web.get("/audit?action=lot.noted&page=40").get_data(as_text=True)
    assert "There is no page 40" in beyond and "Page 2 of 2" in beyond


def test_the_page_sorts_by_a_header_and_searches(clients, make_user):
    qa = make_user("quinn", "qa")
    added = add_entries(10)
    web = clients.web(qa)
    html = web.get("/audit?action=lot.noted&sort=seq&direction=asc").get_data(as_text=True)
    assert [int(s) for s in cells(html, "audit-entries", 0)] == added
    assert 'aria-sort="ascending"' in html
    found = web.get(f"/audit?q=LOT-{added[3]:06d}").get_data(as_text=True)
    assert [int(s) for s in cells(found, "audit-entries", 0)] == [added[3]]


def test_the_earlier_limit_and_offset_still_page_oldest_first(clients, make_user):
    qa = make_user("quinn", "qa")
    added = add_entries(12)
    api = clients.api(qa)
    query = {"action": "lot.noted", "limit": 5, "offset": 5}
    response = api.get("/api/v1/audit", query_string=query)
    assert seqs(response) == added[5:10] and "X-Pagination" not in response.headers


def test_a_page_of_the_trail_costs_as_many_statements_with_100k_entries(clients, make_user):
    """Two statements for the list (its count and its rows) with a few entries or with
    100,000: the page and the API send the same number either way. Counts, not times."""
    qa = make_user("quinn", "qa")
    web, api = clients.web(qa), clients.api(qa)
    add_entries(10)
    paths = (
        "/audit",
        "/audit?page=3&sort=at&q=LOT",
        "/api/v1/audit",
        "/api/v1/audit?page=3&sort=action&direction=asc&q=lot",
    )
    few = {path: len(statements_of(web if path[1] == "a" else api, path)) for path in paths}
    add_many_entries(100_000)
    assert db.session.execute(select(func.count()).select_from(AuditEntry)).scalar_one() > 100_000
    many = {path: len(statements_of(web if path[1] == "a" else api, path)) for path in paths}
    assert many == few
    listing = [
        s for s in statements_of(api, "/api/v1/audit?page=2") if "audit_entries" in s.lower()
    ]
    assert len(listing) == 2, listing  # the count and the page's rows
    page = api.get("/api/v1/audit?page=2&page_size=500")
    assert pagination(page)["total"] > 100_000 and len(page.get_json()) == 500


def test_the_pager_and_the_notes_read_in_chinese(clients, make_user):
    qa = make_user("quinn", "qa")
    add_entries(60)
    zh = {"Accept-Language": "zh-CN"}
    html = clients.web(qa).get("/audit?page=0", headers=zh).get_data(as_text=True)
    assert "第 1 页，共 2 页" in html and "下一页" in html and "已忽略筛选条件" in html
    refused = clients.api(qa).get("/api/v1/audit?sort=x", headers=zh).get_json()
    assert "此列表不能按“x”排序" in refused["errors"]["sort"][0]
