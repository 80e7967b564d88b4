"""CSRF is skipped only for a request a bearer token really authenticated, and such a request
never uses the session cookie (issue 18): a junk or revoked ``Authorization: Bearer`` header
added to a logged-in browser's request is refused, on the API (401 problem+json) and on pages
(400, the CSRF refusal: pages ignore bearer tokens). See docs/security.md."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from cellchain.core import accounts
from cellchain.core.models import ApiToken, User
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD

PROBLEM = "application/problem+json"
CSRF_MESSAGE = "missing its security token"


def tokens() -> int:
    db.session.rollback()
    return db.session.execute(select(func.count(ApiToken.id))).scalar_one()


def new_token(user: User) -> tuple[ApiToken, str]:
    row, token = accounts.create_token(db.session, user=user, now=utcnow(), name="tests")
    db.session.commit()
    return row, token


def csrf_token_in(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


def logged_in(app: Flask, username: str) -> FlaskClient:
    """A browser logged in through the login form (with its CSRF token when CSRF is on)."""
    client = app.test_client()
    data = {"username": username, "password": TEST_PASSWORD}
    if app.config["WTF_CSRF_ENABLED"]:
        data["csrf_token"] = csrf_token_in(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def with_bearer(client: FlaskClient, token: str) -> FlaskClient:
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def assert_401_problem(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert response.headers.get("WWW-Authenticate") == "Bearer"


@pytest.fixture
def csrf_app(make_app) -> Flask:  # type: ignore[no-untyped-def]
    return make_app(WTF_CSRF_ENABLED=True)


def test_junk_bearer_with_a_session_cookie_cannot_post_to_the_api(csrf_app, make_user):
    make_user("tess", "technician")
    browser = with_bearer(logged_in(csrf_app, "tess"), "junk")
    before = tokens()

    assert_401_problem(browser.post("/api/v1/tokens", json={"name": "forged"}))

    assert tokens() == before


def test_revoked_bearer_with_a_session_cookie_cannot_post_to_the_api(csrf_app, make_user):
    tess = make_user("tess", "technician")
    row, token = new_token(tess)
    accounts.revoke_token(db.session, actor=tess, now=utcnow(), token_id=row.id)
    db.session.commit()
    browser = with_bearer(logged_in(csrf_app, "tess"), token)
    before = tokens()

    assert_401_problem(browser.post("/api/v1/tokens", json={"name": "forged"}))
    assert_401_problem(browser.get("/api/v1/me"))

    assert tokens() == before


def test_junk_bearer_never_falls_back_to_the_cookie_even_with_csrf_off(app, make_user):
    make_user("tess", "technician")
    browser = with_bearer(logged_in(app, "tess"), "junk")
    before = tokens()

    assert_401_problem(browser.get("/api/v1/me"))
    assert_401_problem(browser.post("/api/v1/tokens", json={"name": "forged"}))

    assert tokens() == before


def test_a_good_bearer_acts_as_its_own_user_not_the_cookies(csrf_app, make_user):
    make_user("tess", "technician")
    quinn = make_user("quinn", "qa")
    _row, token = new_token(quinn)
    browser = with_bearer(logged_in(csrf_app, "tess"), token)

    me = browser.get("/api/v1/me")
    assert me.status_code == 200 and me.get_json()["username"] == "quinn"

    created = browser.post("/api/v1/tokens", json={"name": "from a script"})
    assert created.status_code == 201, created.get_data(as_text=True)
    db.session.rollback()
    row = db.session.get(ApiToken, created.get_json()["id"])
    assert row is not None and row.user_id == quinn.id


def test_junk_bearer_on_a_page_form_is_still_a_csrf_refusal(csrf_app, make_user):
    make_user("tess", "technician")
    browser = with_bearer(logged_in(csrf_app, "tess"), "junk")
    before = tokens()

    response = browser.post("/account/tokens", data={"name": "forged"})

    assert response.status_code == 400
    assert CSRF_MESSAGE in response.get_data(as_text=True)
    assert tokens() == before


def test_a_good_bearer_does_not_exempt_a_page_form_from_csrf(csrf_app, make_user):
    tess = make_user("tess", "technician")
    _row, token = new_token(tess)
    browser = with_bearer(logged_in(csrf_app, "tess"), token)
    before = tokens()

    response = browser.post("/account/tokens", data={"name": "forged"})

    assert response.status_code == 400
    assert CSRF_MESSAGE in response.get_data(as_text=True)
    assert tokens() == before
