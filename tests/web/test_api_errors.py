"""API errors have one shape (DESIGN.md rule 4), tokens work as documented, and CSRF guards
cookie sessions but not bearer tokens."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from cellchain.core import accounts
from cellchain.core.identifiers import check_character
from cellchain.core.models import ApiToken, AuditEntry, User
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD, issue_din

PROBLEM = "application/problem+json"


# --- helpers --------------------------------------------------------------------------------


def assert_problem(response, status: int) -> dict:
    """The response is an RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    for key in ("type", "title", "status", "detail"):
        assert key in body, f"problem body lacks {key!r}: {body}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def counts() -> tuple[int, int, int]:
    """(users, audit entries, API tokens) as committed."""
    db.session.rollback()
    return (
        db.session.execute(select(func.count(User.id))).scalar_one(),
        db.session.execute(select(func.count(AuditEntry.seq))).scalar_one(),
        db.session.execute(select(func.count(ApiToken.id))).scalar_one(),
    )


def bearer_client(app, token: str):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def new_token(user: User) -> tuple[ApiToken, str]:
    row, token = accounts.create_token(db.session, user=user, now=utcnow(), name="tests")
    db.session.commit()
    return row, token


def valid_user_body(**changes: object) -> dict:
    body = {
        "username": "newbie",
        "full_name": "New Bie",
        "password": "a long enough password",
        "roles": ["technician"],
    }
    body.update(changes)
    return body


@pytest.fixture
def admin(make_user):
    return make_user("ada", "admin")


@pytest.fixture
def admin_api(clients, admin):
    return clients.api(admin)


# --- who: 401 and 403 -----------------------------------------------------------------------


def test_no_token_is_401_problem(app):
    response = app.test_client().get("/api/v1/me")

    body = assert_problem(response, 401)
    assert response.headers.get("WWW-Authenticate") == "Bearer"
    assert "log in" in body["detail"].lower()


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ccpat_not-a-real-token",
        "Bearer ",
        "Bearer",
        "Basic dGVzczpjb3JyZWN0",
        "ccpat_no-scheme",
    ],
)
def test_bad_token_is_401_problem(app, make_user, header):
    make_user("tess", "technician")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = header

    assert_problem(client.get("/api/v1/me"), 401)


def test_good_token_reaches_me(app, make_user, clients):
    tess = make_user("tess", "technician")

    response = clients.api(tess).get("/api/v1/me")

    assert response.status_code == 200
    assert response.get_json()["username"] == "tess"


def test_revoked_token_is_401(app, make_user):
    tess = make_user("tess", "technician")
    row, token = new_token(tess)
    client = bearer_client(app, token)
    assert client.get("/api/v1/me").status_code == 200

    assert client.post(f"/api/v1/tokens/{row.id}/revoke").status_code == 200

    assert_problem(client.get("/api/v1/me"), 401)


def test_token_of_a_deactivated_user_is_401(app, make_user, admin_api):
    tess = make_user("tess", "technician")
    _row, token = new_token(tess)
    client = bearer_client(app, token)
    assert client.get("/api/v1/me").status_code == 200

    done = admin_api.post(f"/api/v1/users/{tess.id}/deactivate", json={"reason": "left"})
    assert done.status_code == 200 and done.get_json()["active"] is False

    assert_problem(client.get("/api/v1/me"), 401)


def test_token_of_an_inactive_user_is_401_even_if_not_revoked(app, make_user):
    """The token check itself refuses an inactive account, not only the revocation that
    deactivation does."""
    tess = make_user("tess", "technician")
    row, token = new_token(tess)
    tess.active = False
    db.session.commit()
    assert not db.session.get(ApiToken, row.id).revoked

    assert_problem(bearer_client(app, token).get("/api/v1/me"), 401)


def test_token_of_a_locked_user_is_401(app, make_user):
    tess = make_user("tess", "technician")
    _row, token = new_token(tess)
    tess.locked_at = utcnow()
    db.session.commit()

    assert_problem(bearer_client(app, token).get("/api/v1/me"), 401)


def test_role_not_allowed_is_403_problem(make_user, clients):
    tech = clients.api(make_user("tess", "technician"))

    body = assert_problem(tech.get("/api/v1/users"), 403)
    assert "roles" in body["detail"].lower()
    assert_problem(tech.post("/api/v1/users", json=valid_user_body()), 403)


def test_403_writes_nothing(make_user, clients):
    tech = clients.api(make_user("tess", "technician"))
    before = counts()

    assert_problem(tech.post("/api/v1/users", json=valid_user_body()), 403)

    assert counts() == before


# --- bad input: 400, 422, 409 ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b'{"username": "x",', b"not json at all", b"{'single': 'quotes'}", b"\xff\xfe\x00"],
)
def test_malformed_json_is_400_and_writes_nothing(admin_api, raw):
    before = counts()

    response = admin_api.post("/api/v1/users", data=raw, content_type="application/json")

    body = assert_problem(response, 400)
    assert "json" in body["detail"].lower()
    assert counts() == before


def test_unknown_field_is_422_naming_it(admin_api):
    before = counts()

    response = admin_api.post("/api/v1/users", json=valid_user_body(shoe_size=44))

    body = assert_problem(response, 422)
    assert "shoe_size" in body["errors"]
    assert counts() == before


@pytest.mark.parametrize("missing", ["username", "full_name", "password", "roles"])
def test_missing_required_field_is_422_naming_it(admin_api, missing):
    data = valid_user_body()
    del data[missing]
    before = counts()

    body = assert_problem(admin_api.post("/api/v1/users", json=data), 422)

    assert missing in body["errors"]
    assert counts() == before


@pytest.mark.parametrize("roles", [["emperor"], ["technician", "emperor"], [], "admin"])
def test_invalid_roles_are_422(admin_api, roles):
    before = counts()

    body = assert_problem(admin_api.post("/api/v1/users", json=valid_user_body(roles=roles)), 422)

    assert any(field.split(".")[0] == "roles" for field in body["errors"]), body
    assert counts() == before


def test_wrong_type_is_422(admin_api):
    body = assert_problem(
        admin_api.post("/api/v1/users", json=valid_user_body(full_name=["not", "a", "name"])),
        422,
    )
    assert "full_name" in body["errors"]


def test_body_that_is_not_an_object_is_422(admin_api):
    before = counts()
    assert_problem(admin_api.post("/api/v1/users", json=["a", "list"]), 422)
    assert counts() == before


def test_create_user_works_then_duplicate_username_is_409(admin_api):
    created = admin_api.post("/api/v1/users", json=valid_user_body())
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.get_json()["username"] == "newbie"
    assert "password" not in created.get_json()
    before = counts()

    again = admin_api.post("/api/v1/users", json=valid_user_body(username="NewBie"))

    body = assert_problem(again, 409)
    assert "newbie" in body["detail"]
    assert "username" in body["errors"]
    assert counts() == before


def test_password_too_short_is_422(admin_api):
    before = counts()

    body = assert_problem(
        admin_api.post("/api/v1/users", json=valid_user_body(password="short")), 422
    )

    assert "password" in body["errors"]
    assert "12" in body["detail"]
    assert counts() == before


def test_invalid_username_is_422(admin_api):
    body = assert_problem(
        admin_api.post("/api/v1/users", json=valid_user_body(username="9 lives")), 422
    )
    assert "username" in body["errors"]


# --- scan -----------------------------------------------------------------------------------


@pytest.fixture
def tech_api(make_user, clients):
    return clients.api(make_user("tess", "technician"))


def wrong_check(code: str) -> str:
    body, check = code[:-1], code[-1]
    other = next(c for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*" if c != check)
    return body + other


def test_scan_an_issued_din(app, tech_api):
    code = issue_din(app)

    response = tech_api.get("/api/v1/scan", query_string={"code": code})

    assert response.status_code == 200
    body = response.get_json()
    assert body["code"] == code and body["kind"] == "DIN"
    assert body["url"].endswith(f"/identifiers/{code}")


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("wrong-check", "Check character mismatch"),
        ("G12349865432", "A DIN has 13 characters"),
        ("G1234986543#1", "'#' at position 12"),
        ("G1234 98 654321 [*]", "Check character mismatch"),
        ("G12O498654321", "letter O is never used"),
        ("=G123498654321&&", "not a DIN"),
        ("   ", "No identifier was entered"),
    ],
)
def test_scan_invalid_code_is_422_saying_what_is_wrong(app, tech_api, code, words):
    if code == "wrong-check":
        code = wrong_check(issue_din(app))

    body = assert_problem(tech_api.get("/api/v1/scan", query_string={"code": code}), 422)

    assert words in body["detail"], body["detail"]


def test_scan_missing_or_too_long_code_is_422(tech_api):
    assert "code" in assert_problem(tech_api.get("/api/v1/scan"), 422)["errors"]
    too_long = assert_problem(tech_api.get("/api/v1/scan", query_string={"code": "A" * 201}), 422)
    assert "code" in too_long["errors"]


def test_scan_a_valid_never_issued_din_is_404(app, tech_api):
    body_13 = "G123498654321"
    code = body_13 + check_character(body_13)

    body = assert_problem(tech_api.get("/api/v1/scan", query_string={"code": code}), 404)

    assert "not issued" in body["detail"]


def test_scan_without_token_is_401(app):
    assert_problem(app.test_client().get("/api/v1/scan", query_string={"code": "x"}), 401)


# --- OpenAPI document -----------------------------------------------------------------------


def test_openapi_document_for_a_logged_in_client(make_user, clients):
    client = clients.web(make_user("tess", "technician"))

    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/scan" in doc["paths"]
    assert "/api/v1/users" in doc["paths"]


def test_openapi_document_with_a_token(make_user, clients):
    response = clients.api(make_user("tess", "technician")).get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert "/api/v1/scan" in response.get_json()["paths"]


def test_openapi_document_needs_login(app):
    assert_problem(app.test_client().get("/api/v1/openapi.json"), 401)


# --- API tokens -----------------------------------------------------------------------------


def test_token_is_shown_once_listed_without_it_and_revocable_once(app, make_user, clients):
    tess = make_user("tess", "technician")
    client = clients.api(tess)

    created = client.post("/api/v1/tokens", json={"name": "bench scanner 3"})

    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    token = body["token"]
    assert token.startswith("ccpat_") and len(token) > 30
    assert body["name"] == "bench scanner 3"
    assert token.startswith(body["prefix"])

    listed = client.get("/api/v1/tokens")
    assert listed.status_code == 200
    assert token not in listed.get_data(as_text=True)
    rows = listed.get_json()
    assert all("token" not in row for row in rows)
    assert body["id"] in [row["id"] for row in rows]
    # the new token authenticates
    assert bearer_client(app, token).get("/api/v1/me").get_json()["username"] == "tess"

    revoked = client.post(f"/api/v1/tokens/{body['id']}/revoke")
    assert revoked.status_code == 200
    assert revoked.get_json()["revoked_at"] is not None
    assert_problem(bearer_client(app, token).get("/api/v1/me"), 401)

    before = counts()
    again = assert_problem(client.post(f"/api/v1/tokens/{body['id']}/revoke"), 409)
    assert "already revoked" in again["detail"]
    assert counts() == before


def test_revoking_someone_elses_token_is_404(make_user, clients):
    tess = make_user("tess", "technician")
    row, _token = new_token(make_user("tom", "technician"))

    body = assert_problem(clients.api(tess).post(f"/api/v1/tokens/{row.id}/revoke"), 404)

    assert str(row.id) in body["detail"]
    db.session.rollback()
    assert not db.session.get(ApiToken, row.id).revoked


@pytest.mark.parametrize("data", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 81}])
def test_token_without_a_usable_name_is_422(make_user, clients, data):
    client = clients.api(make_user("tess", "technician"))
    before = counts()

    body = assert_problem(client.post("/api/v1/tokens", json=data), 422)

    assert "name" in body["errors"]
    assert counts() == before


# --- CSRF -----------------------------------------------------------------------------------


CSRF_MESSAGE = "missing its security token"


def csrf_token_in(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def csrf_app(make_app):
    return make_app(WTF_CSRF_ENABLED=True)


def web_login_with_csrf(csrf_app, username: str):
    client = csrf_app.test_client()
    token = csrf_token_in(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": TEST_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def test_login_form_without_csrf_token_is_refused(csrf_app, make_user):
    make_user("tess", "technician")
    client = csrf_app.test_client()
    before = counts()

    response = client.post("/login", data={"username": "tess", "password": TEST_PASSWORD})

    assert response.status_code == 400
    assert CSRF_MESSAGE in response.get_data(as_text=True)
    assert counts() == before
    assert client.get("/").status_code == 302


def test_logout_without_csrf_token_is_400_and_changes_nothing(csrf_app, make_user):
    make_user("tess", "technician")
    client = web_login_with_csrf(csrf_app, "tess")
    before = counts()

    response = client.post("/logout")

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Form expired" in page and CSRF_MESSAGE in page
    assert counts() == before
    home = client.get("/")
    assert home.status_code == 200  # still logged in

    # with the page's token the same form works: the refusal above was the token
    done = client.post("/logout", data={"csrf_token": csrf_token_in(home.get_data(as_text=True))})
    assert done.status_code == 302
    assert client.get("/").status_code == 302


def test_create_token_form_without_csrf_token_is_400_and_writes_nothing(csrf_app, make_user):
    make_user("tess", "technician")
    client = web_login_with_csrf(csrf_app, "tess")
    before = counts()

    response = client.post("/account/tokens", data={"name": "forged"})

    assert response.status_code == 400
    assert CSRF_MESSAGE in response.get_data(as_text=True)
    assert counts() == before

    page = client.get("/account").get_data(as_text=True)
    ok = client.post("/account/tokens", data={"name": "real", "csrf_token": csrf_token_in(page)})
    assert ok.status_code == 200 and 'id="new-token"' in ok.get_data(as_text=True)
    assert counts()[2] == before[2] + 1


def test_cookie_session_api_post_without_csrf_is_a_400_problem(csrf_app, make_user):
    make_user("tess", "technician")
    client = web_login_with_csrf(csrf_app, "tess")
    before = counts()

    assert_problem(client.post("/api/v1/tokens", json={"name": "forged"}), 400)

    assert counts() == before


def test_bearer_token_api_post_needs_no_csrf(csrf_app, make_user):
    tess = make_user("tess", "technician")
    _row, token = new_token(tess)
    client = bearer_client(csrf_app, token)
    before = counts()

    response = client.post("/api/v1/tokens", json={"name": "from a script"})

    assert response.status_code == 201, response.get_data(as_text=True)
    assert counts()[2] == before[2] + 1
