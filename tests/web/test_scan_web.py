"""The global scan box: a code leads to its record; a bad code says why and keeps the text."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from markupsafe import escape

from cellchain.core.identifiers import check_character, parse_identifier
from tests.conftest import issue_din


@pytest.fixture
def web(make_user, clients):
    return clients.web(make_user("tess", "technician"))


@pytest.fixture
def din(app) -> str:
    return issue_din(app)


def scan_box_value(page: str) -> str | None:
    tag = re.search(r'<input[^>]*id="scan-box"[^>]*>', page, re.S)
    assert tag, "no scan box in the page"
    value = re.search(r'value="([^"]*)"', tag.group(0))
    return value.group(1) if value else None


def test_scan_issued_din_redirects_to_its_page(web, din):
    response = web.get("/scan", query_string={"code": din})

    assert response.status_code == 302
    assert urlsplit(response.location).path == f"/identifiers/{din}"
    page = web.get(response.location)
    assert page.status_code == 200
    assert din[:-1] in page.get_data(as_text=True)


def spaced_lower_without_check(code: str) -> str:
    body = code[:-1]
    return f"  {body[:5].lower()} {body[5:7]} {body[7:].lower()}  "


def spaced_lower_with_check(code: str) -> str:
    return f"{spaced_lower_without_check(code)} [{code[-1].lower()}]"


def boxed_display(code: str) -> str:
    return parse_identifier(code).display.lower()


@pytest.mark.parametrize(
    "typing",
    [spaced_lower_with_check, boxed_display, lambda c: c.lower(), lambda c: f"CC1.{c}"],
    ids=["lower-spaced-boxed-check", "display-form", "lower-with-check", "label-payload"],
)
def test_scan_accepts_what_people_type(web, din, typing):
    response = web.get("/scan", query_string={"code": typing(din)})

    assert response.status_code == 302
    assert urlsplit(response.location).path == f"/identifiers/{din}"


@pytest.mark.parametrize(
    "typing",
    [spaced_lower_without_check, lambda c: c[:-1], lambda c: f"={c[:-1]}00"],
    ids=["lower-spaced-no-check", "no-check", "isbt-flag-00"],
)
def test_scan_refuses_a_code_without_its_check_character(web, din, typing):
    response = web.get("/scan", query_string={"code": typing(din)})

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "needs its check character" in page
    assert scan_box_value(page) == str(escape(typing(din)))


@pytest.mark.parametrize(
    "typed",
    ["G1234 98 65432", "g1234<98>654321", 'G1234"9865432 1', "G1234986543211"],
)
def test_invalid_code_is_a_422_page_keeping_the_text(web, typed):
    response = web.get("/scan", query_string={"code": typed})

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Invalid code" in page
    assert scan_box_value(page) == str(escape(typed))
    assert "<98>" not in page  # kept as text, never as markup


def test_invalid_check_character_is_named(web, din):
    body, check = din[:-1], din[-1]
    wrong = body + ("0" if check != "0" else "1")

    response = web.get("/scan", query_string={"code": wrong})

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Check character mismatch" in page
    assert scan_box_value(page) == wrong


def test_valid_but_not_issued_is_a_404_page_keeping_the_text(web, din):
    body = "G123498654321"
    typed = f"{body.lower()} {check_character(body)}"

    response = web.get("/scan", query_string={"code": typed})

    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Not found" in page
    assert "has not issued it" in page
    assert scan_box_value(page) == typed


def test_empty_scan_shows_the_scan_page(web):
    response = web.get("/scan", query_string={"code": "   "})

    assert response.status_code == 200
    assert "Invalid code" not in response.get_data(as_text=True)


def test_scan_needs_login(app, din):
    response = app.test_client().get("/scan", query_string={"code": din})

    assert response.status_code == 302
    assert urlsplit(response.location).path == "/login"
