"""A session cookie copied before logout, a password change, a deactivation, a role change or a
lockout no longer opens a page afterwards: sessions are ended on the server (docs/security.md).

Each test captures the session cookie of a logged-in browser, copies it into a second client
(as an attacker replaying a stolen cookie would), lets the event happen, and replays it."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from cellchain.cli import users
from cellchain.core import accounts
from cellchain.core.accounts import AccountPolicy, CredentialsRejected
from cellchain.core.models import UserSession
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD

NEW_PASSWORD = "a brand new long passphrase"


def replay(app: Flask, client: FlaskClient) -> FlaskClient:
    """A second client holding a copy of ``client``'s session cookie as it is now."""
    cookie = client.get_cookie("session")
    assert cookie is not None, "the client has no session cookie"
    copy = app.test_client()
    copy.set_cookie("session", cookie.value)
    return copy


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and urlsplit(response.location).path == "/login"


def login(app: Flask, username: str, password: str = TEST_PASSWORD) -> FlaskClient:
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def open_sessions(user_id: int) -> int:
    db.session.rollback()  # see what the requests committed
    return db.session.execute(
        select(func.count()).select_from(UserSession).where(UserSession.user_id == user_id)
    ).scalar_one()


def test_a_copied_cookie_reaches_pages_until_an_event(app, make_user, clients):
    tess = clients.web(make_user("tess", "technician"))
    copy = replay(app, tess)

    # the copy is as good as the original: what every test below takes away
    assert copy.get("/").status_code == 200
    assert copy.get("/account").status_code == 200


# --- logout ---------------------------------------------------------------------------------


def test_logout_ends_the_session_on_the_server(app, make_user, clients):
    user = make_user("tess", "technician")
    tess = clients.web(user)
    copy = replay(app, tess)
    elsewhere = clients.web(user)  # the same person on another workstation

    assert tess.post("/logout").status_code == 302

    assert is_login_redirect(copy.get("/"))
    assert is_login_redirect(copy.get("/account"))
    # logging out one browser ends that session only: the other workstation stays logged in
    assert elsewhere.get("/").status_code == 200
    assert open_sessions(user.id) == 1
    # and a fresh login works
    assert login(app, "tess").get("/").status_code == 200


def test_an_idle_timeout_ends_the_session_on_the_server(app, make_user, clients):
    user = make_user("tess", "technician")
    tess = clients.web(user)
    assert open_sessions(user.id) == 1
    with tess.session_transaction() as s:
        s["last_seen"] -= 16 * 60

    assert is_login_redirect(tess.get("/"))

    assert open_sessions(user.id) == 0


# --- password change ------------------------------------------------------------------------


def test_a_password_change_ends_every_session_of_the_user(app, make_user, clients):
    user = make_user("tess", "technician")
    tess = clients.web(user)
    copy = replay(app, tess)
    elsewhere = clients.web(user)

    changed = tess.post(
        "/account/password",
        data={"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 302

    assert is_login_redirect(copy.get("/"))
    assert is_login_redirect(elsewhere.get("/"))
    # the browser that changed it too: its user logs in again, with the new password
    assert is_login_redirect(tess.get("/account"))
    assert open_sessions(user.id) == 0
    assert login(app, "tess", NEW_PASSWORD).get("/").status_code == 200


def test_a_refused_password_change_ends_no_session(app, make_user, clients):
    user = make_user("tess", "technician")
    tess = clients.web(user)

    tess.post(
        "/account/password", data={"current_password": TEST_PASSWORD, "new_password": "short"}
    )

    assert tess.get("/account").status_code == 200
    assert open_sessions(user.id) == 1


# --- deactivation ---------------------------------------------------------------------------


def test_deactivation_ends_every_session_of_the_user(app, make_user, clients):
    user = make_user("tess", "technician")
    tess = clients.web(user)
    copy = replay(app, tess)
    admin = clients.web(make_user("ada", "admin"))

    done = admin.post(f"/users/{user.id}/deactivate", data={"reason": "left the company"})
    assert done.status_code == 302

    assert is_login_redirect(copy.get("/"))
    assert is_login_redirect(tess.get("/"))
    assert open_sessions(user.id) == 0
    # the administrator's own session is untouched
    assert admin.get("/").status_code == 200


def test_deactivation_from_the_command_line_ends_the_sessions_too(app, make_user, clients):
    user = make_user("tess", "technician")
    copy = replay(app, clients.web(user))

    result = app.test_cli_runner().invoke(
        users, ["deactivate", "tess", "--reason", "left the company"]
    )
    assert result.exit_code == 0, result.output

    assert is_login_redirect(copy.get("/"))
    assert open_sessions(user.id) == 0


def test_deactivation_refuses_the_users_api_tokens(app, make_user, clients):
    user = make_user("tess", "technician")
    api = clients.api(user)
    assert api.get("/api/v1/me").status_code == 200

    admin = clients.web(make_user("ada", "admin"))
    admin.post(f"/users/{user.id}/deactivate", data={"reason": "left the company"})

    assert api.get("/api/v1/me").status_code == 401


# --- role change ----------------------------------------------------------------------------


def test_a_role_change_ends_every_session_of_the_user(app, make_user, clients):
    user = make_user("tess", "technician")
    tess = clients.web(user)
    copy = replay(app, tess)
    admin = clients.web(make_user("ada", "admin"))

    done = admin.post(
        f"/users/{user.id}/roles", data={"roles": ["qa"], "reason": "moved to quality"}
    )
    assert done.status_code == 302

    assert is_login_redirect(copy.get("/"))
    assert is_login_redirect(tess.get("/"))
    assert open_sessions(user.id) == 0
    assert admin.get("/").status_code == 200
    # the next login holds the new role
    assert login(app, "tess").get("/").status_code == 200


def test_a_role_change_through_the_api_ends_the_sessions_too(app, make_user, clients):
    user = make_user("tess", "technician")
    copy = replay(app, clients.web(user))
    admin = clients.api(make_user("ada", "admin"))

    done = admin.put(
        f"/api/v1/users/{user.id}/roles", json={"roles": ["qa"], "reason": "moved to quality"}
    )
    assert done.status_code == 200, done.get_json()

    assert is_login_redirect(copy.get("/"))


def test_a_refused_role_change_ends_no_session(app, make_user, clients):
    user = make_user("tess", "technician")
    tess = clients.web(user)
    admin = clients.web(make_user("ada", "admin"))

    # administration is never combined with a signing role: refused, nothing changed
    admin.post(f"/users/{user.id}/roles", data={"roles": ["admin", "qa"], "reason": "try it"})

    assert tess.get("/").status_code == 200


# --- lockout --------------------------------------------------------------------------------


def test_a_lockout_ends_the_sessions_so_an_unlock_does_not_revive_them(app, make_user, clients):
    user = make_user("tess", "technician")
    make_user("theo", "technician")  # no lock leaves a role without an active holder
    copy = replay(app, clients.web(user))
    policy = AccountPolicy.from_config(app.config)
    for _ in range(5):  # wrong e-signature passwords lock; wrong logins only make the name wait
        failure = CredentialsRejected("wrong guess", username="tess", purpose="signature")
        accounts.record_failed_authentication(
            db.session, failure=failure, now=utcnow(), policy=policy
        )
    db.session.commit()
    admin = clients.web(make_user("ada", "admin"))
    assert (
        admin.post(f"/users/{user.id}/unlock", data={"reason": "helpdesk call"}).status_code == 302
    )

    assert is_login_redirect(copy.get("/"))
    assert open_sessions(user.id) == 0
    assert login(app, "tess").get("/").status_code == 200


# --- API tokens -----------------------------------------------------------------------------


def test_logout_leaves_the_users_api_tokens_working(app, make_user, clients):
    user = make_user("tess", "technician")
    api = clients.api(user)
    tess = clients.web(user)

    tess.post("/logout")

    assert api.get("/api/v1/me").status_code == 200
