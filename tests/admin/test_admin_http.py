"""Administration's pages and API: reserving DINs, the audit viewer's filter."""

from __future__ import annotations

from cellchain.core.identifiers import parse_identifier


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
    assert "dates need a time zone" in response.get_data(as_text=True)
    api = clients.api(qa).get("/api/v1/audit?since=yesterday")
    assert api.status_code == 422 and "since" in api.get_json()["errors"]
