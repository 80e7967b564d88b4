"""Login, lockout, unlock, deactivation, logout and the idle timeout, through HTTP.

The login back-off that replaced the lockout at login is in test_login_throttle.py."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
from flask import current_app
from sqlalchemy import func, select

from cellchain.core import accounts
from cellchain.core.accounts import AccountPolicy, CredentialsRejected
from cellchain.core.models import AuditEntry, User
from cellchain.core.throttle import LoginThrottle, Scope
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD

WRONG_PASSWORD = "not the right one"
GENERIC_FAILURE = "The username or password is not correct."


# --- helpers --------------------------------------------------------------------------------


def entries(action: str, entity_id: object | None = None) -> list[AuditEntry]:
    """Committed audit entries with ``action`` (and ``entity_id``), oldest first."""
    db.session.rollback()  # end any open transaction: see what the requests committed
    query = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == str(entity_id))
    return list(db.session.execute(query).scalars())


def audit_count() -> int:
    db.session.rollback()
    return db.session.execute(select(func.count(AuditEntry.seq))).scalar_one()


def reload(user: User) -> User:
    db.session.rollback()
    fresh = db.session.get(User, user.id)
    assert fresh is not None
    return fresh


def login(client, username: str, password: str, next_: str | None = None):
    url = "/login" if next_ is None else f"/login?next={next_}"
    return client.post(url, data={"username": username, "password": password})


def text_of(response) -> str:
    return response.get_data(as_text=True)


def input_value(page: str, input_id: str) -> str | None:
    """The value attribute of the <input id=...> in ``page`` (HTML-escaped as served)."""
    tag = re.search(rf'<input[^>]*id="{input_id}"[^>]*>', page)
    assert tag, f"no input #{input_id} in the page"
    value = re.search(r'value="([^"]*)"', tag.group(0))
    return value.group(1) if value else None


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and urlsplit(response.location).path == "/login"


# --- login ----------------------------------------------------------------------------------


def test_login_with_the_right_password_opens_a_session(app, make_user):
    tess = make_user("tess", "technician")
    client = app.test_client()

    response = login(client, "tess", TEST_PASSWORD)

    assert response.status_code == 302
    assert urlsplit(response.location).path == "/"
    assert client.get("/").status_code == 200
    assert len(entries("login.succeeded", tess.id)) == 1


def test_login_username_is_case_and_space_insensitive(app, make_user):
    make_user("tess", "technician")
    client = app.test_client()

    assert login(client, "  TESS ", TEST_PASSWORD).status_code == 302
    assert client.get("/").status_code == 200


def test_wrong_password_is_refused_with_a_clear_message_and_audited(app, make_user):
    tess = make_user("tess", "technician")
    client = app.test_client()

    response = login(client, "tess", WRONG_PASSWORD)

    assert response.status_code == 401
    page = text_of(response)
    assert GENERIC_FAILURE in page
    assert input_value(page, "username") == "tess"
    assert WRONG_PASSWORD not in page  # the password is never echoed
    failed = entries("login.failed", tess.id)
    assert len(failed) == 1
    assert '"failures_in_window":[0,1]' in failed[0].changes.replace(" ", "")
    # counted toward the name's back-off (test_login_throttle.py), never toward the lockout
    assert reload(tess).failed_attempts == 0
    assert entries("login.succeeded", tess.id) == []
    # no session was opened
    assert is_login_redirect(client.get("/"))


def test_a_successful_login_resets_the_failure_count(app, make_user):
    make_user("tess", "technician")
    client = app.test_client()
    login(client, "tess", WRONG_PASSWORD)
    login(client, "tess", WRONG_PASSWORD)
    assert login_failures("tess") == 2

    assert login(client, "tess", TEST_PASSWORD).status_code == 302

    assert login_failures("tess") == 0


def test_unknown_username_is_audited_without_a_crash(app):
    client = app.test_client()

    response = login(client, "Nobody", WRONG_PASSWORD)

    assert response.status_code == 401
    page = text_of(response)
    assert GENERIC_FAILURE in page  # the same words as a wrong password: no user enumeration
    assert input_value(page, "username") == "Nobody"
    audited = entries("login.failed_unknown_user")
    assert [e.entity_id for e in audited] == ["nobody"]
    assert audited[0].actor_id is None


@pytest.mark.parametrize(
    ("typed", "entity_id"),
    [
        ("", "(empty)"),
        ("x" * 300, "x" * 40),
        ("ünïcødé 名前 <script>", "ünïcødé 名前 <script>"),
    ],
)
def test_odd_unknown_usernames_are_audited_without_a_crash(app, typed, entity_id):
    client = app.test_client()

    response = login(client, typed, WRONG_PASSWORD)

    assert response.status_code == 401
    assert "<script>" not in text_of(response)  # what was typed is escaped, never markup
    assert [e.entity_id for e in entries("login.failed_unknown_user")] == [entity_id]


# --- lockout and unlock ---------------------------------------------------------------------


def login_failures(typed: str) -> int:
    """The failures counted against the name ``typed`` at the login page."""
    db.session.rollback()
    row = db.session.get(LoginThrottle, (Scope.ACCOUNT.value, typed))
    return row.failures if row is not None else 0


def lock_out(user: User) -> None:
    """Lock ``user`` as five wrong e-signature passwords do: a login never locks an account
    (test_login_throttle.py), and no lock leaves a role without an active holder, so the
    tests that lock someone have a second holder of the role."""
    policy = AccountPolicy.from_config(current_app.config)
    for _ in range(5):
        failure = CredentialsRejected(
            "The password is not correct.", username=user.username, purpose="signature"
        )
        accounts.record_failed_authentication(
            db.session, failure=failure, now=utcnow(), policy=policy
        )
    db.session.commit()
    assert reload(user).locked


def test_five_login_failures_lock_nothing(app, make_user):
    tess = make_user("tess", "technician")
    make_user("theo", "technician")
    client = app.test_client()

    responses = [login(client, "tess", WRONG_PASSWORD) for _ in range(5)]

    assert all(r.status_code == 401 for r in responses)
    assert not reload(tess).locked
    assert entries("user.locked", tess.id) == []


def test_a_locked_account_cannot_log_in_and_only_the_right_password_hears_why(app, make_user):
    tess = make_user("tess", "technician")
    make_user("theo", "technician")
    lock_out(tess)
    client = app.test_client()

    refused = login(client, "tess", TEST_PASSWORD)
    assert refused.status_code == 401
    page = text_of(refused)
    assert "locked" in page and "administrator" in page
    assert input_value(page, "username") == "tess"
    assert is_login_redirect(client.get("/"))
    # a wrong password hears what anyone hears: the lock is not told to a guesser
    wrong = text_of(login(client, "tess", WRONG_PASSWORD))
    assert GENERIC_FAILURE in wrong and "locked" not in wrong
    # refusals of a locked account are audited but do not count toward the lockout any further
    assert reload(tess).failed_attempts == 5
    assert entries("login.succeeded", tess.id) == []
    assert len(entries("user.locked", tess.id)) == 1


def test_admin_unlock_needs_a_reason_and_then_login_works(app, make_user, clients):
    tess = make_user("tess", "technician")
    make_user("theo", "technician")
    admin = clients.web(make_user("ada", "admin"))
    lock_out(tess)

    # without a reason: refused with a message, nothing changed
    before = audit_count()
    refused = admin.post(f"/users/{tess.id}/unlock", data={"reason": ""})
    assert refused.status_code == 302
    assert urlsplit(refused.location).path == f"/users/{tess.id}"
    page = text_of(admin.get(refused.location))
    assert "reason" in page.lower() and "Saved." not in page
    assert audit_count() == before
    tess = reload(tess)
    assert tess.locked and tess.failed_attempts == 5

    # with a reason: unlocked, audited with the reason
    done = admin.post(f"/users/{tess.id}/unlock", data={"reason": "called the helpdesk"})
    assert done.status_code == 302
    assert "Saved." in text_of(admin.get(done.location))
    tess = reload(tess)
    assert not tess.locked and tess.failed_attempts == 0
    unlocked = entries("user.unlocked", tess.id)
    assert len(unlocked) == 1 and unlocked[0].reason == "called the helpdesk"

    client = app.test_client()
    assert login(client, "tess", TEST_PASSWORD).status_code == 302
    assert client.get("/").status_code == 200


def test_only_an_administrator_may_unlock(app, make_user, clients):
    tess = make_user("tess", "technician")
    make_user("theo", "technician")
    other = clients.web(make_user("quinn", "qa"))
    lock_out(tess)

    response = other.post(f"/users/{tess.id}/unlock", data={"reason": "please"})

    assert response.status_code == 403
    assert reload(tess).locked


# --- deactivation ---------------------------------------------------------------------------


def test_deactivated_user_cannot_log_in_and_their_open_session_stops(app, make_user, clients):
    tess = make_user("tess", "technician")
    tess_client = clients.web(tess)
    assert tess_client.get("/").status_code == 200
    admin = clients.web(make_user("ada", "admin"))

    done = admin.post(f"/users/{tess.id}/deactivate", data={"reason": "left the company"})
    assert done.status_code == 302
    assert not reload(tess).active

    # the session that was already open no longer works
    assert is_login_redirect(tess_client.get("/"))
    assert is_login_redirect(tess_client.get("/account"))
    # logging in again is refused, with a message saying why
    refused = login(app.test_client(), "tess", TEST_PASSWORD)
    assert refused.status_code == 401
    assert "deactivated" in text_of(refused)
    assert len(entries("login.succeeded", tess.id)) == 1  # only the first login


# --- logout ---------------------------------------------------------------------------------


def test_logout_by_post_ends_the_session(app, make_user, clients):
    tess = make_user("tess", "technician")
    client = clients.web(tess)

    response = client.post("/logout")

    assert response.status_code == 302
    assert urlsplit(response.location).path == "/login"
    assert "You are logged out." in text_of(client.get(response.location))
    assert len(entries("logout", tess.id)) == 1
    assert is_login_redirect(client.get("/"))


def test_logout_is_not_a_get(app, make_user, clients):
    client = clients.web(make_user("tess", "technician"))

    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200  # still logged in


# --- idle timeout ---------------------------------------------------------------------------


def test_idle_session_expires_is_audited_and_the_login_page_says_so(app, make_user, clients):
    tess = make_user("tess", "technician")
    client = clients.web(tess)
    assert client.get("/").status_code == 200
    with client.session_transaction() as s:
        s["last_seen"] -= 16 * 60

    response = client.get("/account")

    assert is_login_redirect(response)
    expired = entries("session.expired", tess.id)
    assert len(expired) == 1 and "15 minutes" in (expired[0].reason or "")
    page = text_of(client.get(response.location))
    assert "Your session ended after 15 minutes without activity" in page
    # the message is shown once; the session stays closed
    assert "Your session ended" not in text_of(client.get("/login"))
    assert is_login_redirect(client.get("/"))
    # logging in again works and comes back where the user was going
    again = client.post(response.location, data={"username": "tess", "password": TEST_PASSWORD})
    assert again.status_code == 302
    assert urlsplit(again.location).path == "/account"


def test_an_active_session_within_the_limit_stays_open(app, make_user, clients):
    tess = make_user("tess", "technician")
    client = clients.web(tess)
    with client.session_transaction() as s:
        s["last_seen"] -= 14 * 60

    assert client.get("/").status_code == 200
    assert entries("session.expired", tess.id) == []


def test_idle_timeout_minutes_config_is_respected(make_app, make_user):
    tess = make_user("tess", "technician")
    short = make_app(IDLE_TIMEOUT_MINUTES=1)
    client = short.test_client()
    assert login(client, "tess", TEST_PASSWORD).status_code == 302
    assert client.get("/").status_code == 200
    with client.session_transaction() as s:
        s["last_seen"] -= 2 * 60

    response = client.get("/")

    assert is_login_redirect(response)
    assert "after 1 minutes without activity" in text_of(client.get(response.location))
    expired = entries("session.expired", tess.id)
    assert len(expired) == 1 and "1 minutes" in (expired[0].reason or "")


# --- open redirect --------------------------------------------------------------------------


def browser_target(location: str, base: str = "http://localhost/login") -> str:
    """Where a browser goes for ``location``: WHATWG URL parsing treats '\\' as '/' in
    http(s) URLs and drops tabs and newlines."""
    cleaned = re.sub(r"[\t\n\r]", "", location).replace("\\", "/")
    return urljoin(base, cleaned)


@pytest.mark.parametrize(
    "next_",
    [
        "//evil.example",
        "//evil.example/path",
        "https://evil.example/",
        "http:evil.example",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\\/evil.example",
    ],
)
def test_login_never_redirects_off_site(app, make_user, next_):
    make_user("tess", "technician")
    client = app.test_client()

    response = client.post(
        "/login",
        query_string={"next": next_},
        data={"username": "tess", "password": TEST_PASSWORD},
    )

    assert response.status_code == 302
    target = urlsplit(browser_target(response.location))
    assert target.hostname == "localhost", (next_, response.location)


def test_login_follows_a_same_site_next(app, make_user):
    make_user("tess", "technician")
    client = app.test_client()

    response = client.post(
        "/login",
        query_string={"next": "/account?tab=tokens"},
        data={"username": "tess", "password": TEST_PASSWORD},
    )

    assert response.status_code == 302
    assert response.location.endswith("/account?tab=tokens")
