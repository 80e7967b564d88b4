"""API tokens have an expiry and a scope, are listed and revocable by their owner and by an
administrator, and a site mints one from the command line after the user's password (issue 18,
"API tokens"; docs/security.md)."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select

from cellchain.cli import main
from cellchain.core import accounts
from cellchain.core.models import ApiToken, AuditEntry, User
from cellchain.core.throttle import LoginThrottle, Scope
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.tokens import mint

PROBLEM = "application/problem+json"


def bearer(app, token: str) -> FlaskClient:  # type: ignore[no-untyped-def]
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def audit_actions(entity_type: str, entity_id: object) -> list[str]:
    db.session.rollback()
    return list(
        db.session.execute(
            select(AuditEntry.action)
            .where(AuditEntry.entity_type == entity_type, AuditEntry.entity_id == str(entity_id))
            .order_by(AuditEntry.seq)
        ).scalars()
    )


# --- expiry --------------------------------------------------------------------------------


def test_an_expired_token_is_refused_like_a_revoked_one(app, make_user):
    tess = make_user("tess", "technician")
    old = mint(tess, days=90, at=utcnow() - dt.timedelta(days=91))
    response = bearer(app, old).get("/api/v1/me")
    assert response.status_code == 401 and response.mimetype == PROBLEM
    fresh = mint(tess, days=1)
    assert bearer(app, fresh).get("/api/v1/me").status_code == 200


def test_a_new_token_expires_after_the_configured_days_and_never_beyond_the_maximum(
    clients, make_user, app
):
    tess = make_user("tess", "technician")
    api = clients.api(tess)
    default = api.post("/api/v1/tokens", json={"name": "scanner"})
    assert default.status_code == 201, default.get_json()
    body = default.get_json()
    created = dt.datetime.fromisoformat(body["created_at"])
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert expires - created == dt.timedelta(days=app.config["API_TOKEN_DAYS"])
    assert body["scope"] == "full"
    short = api.post("/api/v1/tokens", json={"name": "lims", "scope": "read", "days": 7})
    assert short.status_code == 201 and short.get_json()["scope"] == "read"
    too_long = api.post(
        "/api/v1/tokens", json={"name": "x", "days": app.config["API_TOKEN_MAX_DAYS"] + 1}
    )
    assert too_long.status_code in (409, 422) and too_long.mimetype == PROBLEM
    assert "days" in too_long.get_json()["errors"]
    bad_scope = api.post("/api/v1/tokens", json={"name": "x", "scope": "admin"})
    assert bad_scope.status_code == 422 and "scope" in bad_scope.get_json()["errors"]


# --- scope ---------------------------------------------------------------------------------


def test_a_read_token_reads_but_changes_nothing(app, make_user):
    tess = make_user("tess", "technician")
    reader = bearer(app, mint(tess, scope="read"))
    assert reader.get("/api/v1/me").status_code == 200
    assert reader.get("/api/v1/tokens").status_code == 200
    refused = reader.post("/api/v1/tokens", json={"name": "escalate"})
    assert refused.status_code == 403 and refused.mimetype == PROBLEM
    assert "read" in refused.get_json()["detail"]
    din = reader.post("/api/v1/identifiers/din", json={"count": 1})
    assert din.status_code == 403
    db.session.rollback()
    assert len(accounts.list_tokens(db.session, tess)) == 1  # nothing was created
    writer = bearer(app, mint(tess, scope="full"))
    assert writer.post("/api/v1/identifiers/din", json={"count": 1}).status_code == 201


# --- listed and revoked by the owner and by an administrator --------------------------------


def test_the_owner_lists_and_revokes_their_tokens(clients, make_user, app):
    tess = make_user("tess", "technician")
    mint(tess, scope="read", days=30)
    api = bearer(app, mint(tess))
    listed = api.get("/api/v1/tokens").get_json()
    assert {(t["scope"], "expires_at" in t) for t in listed} == {("read", True), ("full", True)}
    read_id = next(t["id"] for t in listed if t["scope"] == "read")
    assert api.post(f"/api/v1/tokens/{read_id}/revoke").status_code == 200
    assert audit_actions("api_token", read_id) == ["api_token.created", "api_token.revoked"]
    page = clients.web(tess).get("/account").get_data(as_text=True)
    assert "Scope" in page and "Expires" in page and "read" in page


def test_an_administrator_lists_and_revokes_another_users_tokens(clients, make_user, app):
    tess = make_user("tess", "technician")
    ada = make_user("ada", "admin")
    token = mint(tess, scope="read")
    row_id = accounts.list_tokens(db.session, tess)[0].id
    admin_api = clients.api(ada)
    listed = admin_api.get(f"/api/v1/users/{tess.id}/tokens")
    assert listed.status_code == 200
    assert [(t["id"], t["scope"]) for t in listed.get_json()] == [(row_id, "read")]
    assert clients.api(tess).get(f"/api/v1/users/{ada.id}/tokens").status_code == 403
    page = clients.web(ada).get(f"/users/{tess.id}").get_data(as_text=True)
    assert "user-tokens" in page and f"/users/{tess.id}/tokens/{row_id}/revoke" in page
    revoked = clients.web(ada).post(f"/users/{tess.id}/tokens/{row_id}/revoke")
    assert revoked.status_code == 302
    assert bearer(app, token).get("/api/v1/me").status_code == 401
    db.session.rollback()
    row = db.session.get(ApiToken, row_id)
    assert row is not None and row.revoked_by_id == ada.id
    assert audit_actions("api_token", row_id)[-1] == "api_token.revoked"
    # and through the API, another of tess's tokens
    mint(tess)
    other = accounts.list_tokens(db.session, tess)[-1].id
    assert admin_api.post(f"/api/v1/tokens/{other}/revoke").status_code == 200


def test_a_user_cannot_revoke_someone_elses_token(clients, make_user, app):
    tess = make_user("tess", "technician")
    carl = make_user("carl", "clinician")
    mint(tess)
    row_id = accounts.list_tokens(db.session, tess)[0].id
    assert clients.api(carl).post(f"/api/v1/tokens/{row_id}/revoke").status_code == 404


# --- the command line ----------------------------------------------------------------------


@pytest.fixture
def run(app, database_url, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CELLCHAIN_ENV", "testing")
    monkeypatch.setenv("CELLCHAIN_DATABASE_URL", database_url)
    monkeypatch.setenv("CELLCHAIN_PASSWORD_HASH_METHOD", "pbkdf2:sha256:1000")
    runner = CliRunner()

    def invoke(*args: str, **kwargs):  # type: ignore[no-untyped-def]
        return runner.invoke(main, list(args), catch_exceptions=False, **kwargs)

    return invoke


def test_the_cli_mints_a_token_after_the_users_password(run, make_user, app):
    tess = make_user("tess", "technician")
    result = run(
        "tokens",
        "create",
        "tess",
        "--name",
        "LIMS",
        "--scope",
        "read",
        "--days",
        "30",
        input=f"{TEST_PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith(accounts.TOKEN_PREFIX)
    client = bearer(app, token)
    assert client.get("/api/v1/me").get_json()["username"] == "tess"
    assert client.post("/api/v1/identifiers/din", json={"count": 1}).status_code == 403
    db.session.rollback()
    row = accounts.list_tokens(db.session, tess)[0]
    assert row.scope == "read" and row.expires_at - row.created_at == dt.timedelta(days=30)
    assert audit_actions("api_token", row.id) == ["api_token.created"]
    piped = run(
        "tokens", "create", "tess", "--name", "cron", "--password-stdin", input=f"{TEST_PASSWORD}\n"
    )
    assert piped.exit_code == 0 and piped.output.strip().startswith(accounts.TOKEN_PREFIX)
    listed = run("tokens", "list", "tess")
    assert "LIMS" in listed.output and "read" in listed.output and "cron" in listed.output
    revoked = run("tokens", "revoke", str(row.id), "--reason", "integration retired")
    assert revoked.exit_code == 0, revoked.output
    assert client.get("/api/v1/me").status_code == 401
    assert audit_actions("api_token", row.id)[-1] == "api_token.revoked"
    assert "revoked" in run("tokens", "list", "tess").output


def test_the_cli_refuses_a_wrong_password_and_audits_it(run, make_user, app):
    tess = make_user("tess", "technician")
    result = run("tokens", "create", "tess", "--name", "LIMS", input="not-her-password\n")
    assert result.exit_code != 0
    assert accounts.TOKEN_PREFIX not in result.output
    db.session.rollback()
    assert accounts.list_tokens(db.session, tess) == []
    # counted like a failed login: toward the name's back-off, never toward the lockout
    assert db.session.get(User, tess.id).failed_attempts == 0  # type: ignore[union-attr]
    counted = db.session.get(LoginThrottle, (Scope.ACCOUNT.value, "tess"))
    assert counted is not None and counted.failures == 1
    assert audit_actions("user", tess.id)[-1] == "token_creation.failed"
