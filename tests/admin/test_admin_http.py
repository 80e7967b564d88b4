"""Administration's pages and API: reserving DINs, the audit viewer's filter."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from cellchain.core.identifiers import parse_identifier
from cellchain.core.types import utcnow


def test_reserving_dins_through_the_api_and_the_page(clients, make_user):
    tech = make_user("tomas", "technician")
    response = clients.api(tech).post("/api/v1/identifiers/din", json={"count": 3})
    assert response.status_code == 201
    codes = [row["code"] for row in response.get_json()]
    assert [parse_identifier(c).sequence for c in codes] == [1, 2, 3]
    assert {row["issued_by"] for row in response.get_json()} == {"tomas"}
    web = clients.web(tech)
    page = web.post(
        "/identifiers/reserve",
        data={"count": "2", "purpose": "label roll 7"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Reserved 2 DIN(s)" in page and "label roll 7" in page
    too_many = clients.api(tech).post("/api/v1/identifiers/din", json={"count": 101})
    assert too_many.status_code == 422 and "count" in too_many.get_json()["errors"]


def test_audit_page_explains_a_bad_date_filter(clients, make_user):
    qa = make_user("quinn", "qa")
    response = clients.web(qa).get("/audit?since=yesterday")
    assert response.status_code == 422
    assert "in the site&#39;s time, e.g. 2026-11-24 08:00" in response.get_data(as_text=True)
    api = clients.api(qa).get("/api/v1/audit?since=yesterday")
    assert api.status_code == 422 and "since" in api.get_json()["errors"]


def test_an_audit_filter_typed_without_an_offset_is_the_site_time(app, clients, make_user):
    """The page's datetime-local fields send the site's wall clock: an hour ago in Shanghai
    finds the entries just written; read as UTC it would be seven hours ahead and find none."""
    qa = make_user("quinn", "qa")
    wall = (utcnow() - dt.timedelta(hours=1)).astimezone(ZoneInfo("Asia/Shanghai"))
    typed = wall.strftime("%Y-%m-%dT%H:%M")
    app.config["SITE_TIMEZONE"] = "Asia/Shanghai"
    try:
        found = clients.api(qa).get(f"/api/v1/audit?since={typed}").get_json()
        page = clients.web(qa).get(f"/audit?since={typed}")
    finally:
        app.config["SITE_TIMEZONE"] = "UTC"
    assert any(entry["action"].startswith("user.") for entry in found), found
    assert page.status_code == 200 and f'value="{typed}"' in page.get_data(as_text=True)
