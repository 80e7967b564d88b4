"""Failed logins make a name and an address wait a short back-off; nothing a remote guesser
does locks an account (issue 18, "Anyone can lock any account without logging in").

Time moves with the ``clock`` fixture (``cellchain.http.now``), never by waiting.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from cellchain.cli import main
from cellchain.core import accounts, signatures, throttle
from cellchain.core.accounts import AccountPolicy, CredentialsRejected
from cellchain.core.models import AuditEntry, User
from cellchain.core.roles import Permission, Role
from cellchain.core.throttle import LoginThrottle, Scope
from cellchain.core.types import utcnow
from cellchain.dosing import service as dosing
from cellchain.dosing.models import Protocol
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD, at_once, on_postgres

WRONG = "not the right one"


# --- helpers --------------------------------------------------------------------------------


def login(client: Any, username: str, password: str, address: str = "198.51.100.7") -> Any:
    return client.post(
        "/login",
        data={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def entries(action: str) -> list[AuditEntry]:
    db.session.rollback()  # see what the requests committed
    return list(
        db.session.execute(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        ).scalars()
    )


def audit_count() -> int:
    db.session.rollback()
    return db.session.execute(select(func.count(AuditEntry.seq))).scalar_one()


def reload(user: User) -> User:
    db.session.rollback()
    fresh = db.session.get(User, user.id)
    assert fresh is not None
    return fresh


def same_page(response: Any, typed: str) -> str:
    """The page without what differs by design: the name typed and the form's CSRF token
    (signed with the time)."""
    page = response.get_data(as_text=True).replace(typed, "NAME")
    return re.sub(r'name="csrf_token"[^>]*>', "CSRF>", page)


def changes(entry: AuditEntry) -> dict[str, Any]:
    return dict(json.loads(entry.changes))


@dataclass
class FrozenClock:
    """The time of requests (``cellchain.http.now``): still until moved on."""

    at: dt.datetime

    def advance(self, **delta: float) -> None:
        self.at += dt.timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """A clock that stands still between requests, so a wait is exactly what the rule says."""
    from cellchain import http

    frozen = FrozenClock(utcnow())
    monkeypatch.setattr(http, "utcnow", lambda: frozen.at)
    return frozen


@pytest.fixture
def protocol(session: Any) -> Protocol:
    found = dosing.PROTOCOLS.load_default(session, actor=None, now=utcnow())
    session.commit()
    return found


# --- the login page -------------------------------------------------------------------------


def test_wrong_passwords_for_the_only_qa_make_the_name_wait_and_never_lock_it(
    app: Any, make_user: Any, clock: FrozenClock
) -> None:
    qa = make_user("quinn", "qa")  # the site's only QA
    client = app.test_client()

    assert [login(client, "quinn", WRONG).status_code for _ in range(5)] == [401] * 5

    # the name waits: even the right password is refused, unchecked, saying when to come back
    waiting = login(client, "quinn", TEST_PASSWORD)
    assert waiting.status_code == 429
    assert waiting.headers["Retry-After"] == "30"
    page = waiting.get_data(as_text=True)
    assert "Too many failed logins for this username. Try again in 30 seconds." in page
    assert "You may try again from" in page
    assert not reload(qa).locked
    assert entries("user.locked") == []

    clock.advance(seconds=29)
    assert login(client, "quinn", TEST_PASSWORD).status_code == 429
    clock.advance(seconds=2)
    assert login(client, "quinn", TEST_PASSWORD).status_code == 302
    assert not reload(qa).locked


def test_the_backoff_doubles_up_to_the_cap_from_any_address(
    app: Any, make_user: Any, clock: FrozenClock
) -> None:
    make_user("quinn", "qa")
    client = app.test_client()
    waits = []
    for round_ in range(7):
        for attempt in range(5):  # every attempt from another address: the name is counted
            address = f"10.0.{round_}.{attempt}"
            assert login(client, "quinn", WRONG, address).status_code == 401
        refused = login(client, "quinn", TEST_PASSWORD, "10.9.9.9")
        assert refused.status_code == 429
        waits.append(int(refused.headers["Retry-After"]))
        clock.advance(seconds=waits[-1])

    assert waits == [30, 60, 120, 240, 480, 900, 900]
    # quiet for longer than the window and the cap: the doubling starts over
    clock.advance(minutes=31)
    for _ in range(5):
        login(client, "quinn", WRONG)
    assert login(client, "quinn", WRONG).headers["Retry-After"] == "30"


def test_a_successful_login_resets_the_names_count(app: Any, make_user: Any) -> None:
    make_user("tess", "technician")
    client = app.test_client()
    for _ in range(4):
        assert login(client, "tess", WRONG).status_code == 401
    assert login(client, "tess", TEST_PASSWORD).status_code == 302

    client = app.test_client()
    for _ in range(4):
        assert login(client, "tess", WRONG).status_code == 401  # counted from zero again
    assert login(client, "tess", WRONG).status_code == 401  # the fifth starts the back-off
    assert login(client, "tess", TEST_PASSWORD).status_code == 429


def test_the_name_is_case_folded_and_counted_whether_or_not_it_has_an_account(
    app: Any, make_user: Any
) -> None:
    make_user("tess", "technician")
    client = app.test_client()
    for typed in ["tess", "TESS", " Tess ", "tEsS", "tess"]:
        assert login(client, typed, WRONG).status_code == 401
    assert login(client, "TeSs", TEST_PASSWORD).status_code == 429

    for _ in range(5):
        assert login(client, "Nobody", WRONG).status_code == 401
    assert login(client, "nobody", WRONG).status_code == 429


def test_many_names_from_one_address_make_the_address_wait(
    app: Any, make_user: Any, clock: FrozenClock
) -> None:
    make_user("tess", "technician")
    client = app.test_client()
    for n in range(20):  # four wrong passwords each for five names: no name waits
        assert login(client, f"guess{n % 5}", WRONG, "203.0.113.9").status_code == 401

    refused = login(client, "tess", TEST_PASSWORD, "203.0.113.9")
    assert refused.status_code == 429
    assert "from this network address" in refused.get_data(as_text=True)
    assert refused.headers["Retry-After"] == "30"
    # the same person from another address is not held back
    assert login(app.test_client(), "tess", TEST_PASSWORD, "203.0.113.10").status_code == 302
    # the address's own success does not clear it (an attacker's own account must not)
    assert login(client, "tess", TEST_PASSWORD, "203.0.113.9").status_code == 429
    [started] = [e for e in entries("login.throttled") if e.entity_type == "client_address"]
    assert started.entity_id == "203.0.113.9"

    clock.advance(seconds=31)
    assert login(client, "tess", TEST_PASSWORD, "203.0.113.9").status_code == 302


def test_ipv6_clients_are_counted_by_their_64_network() -> None:
    assert throttle.address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert throttle.address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert throttle.address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert throttle.address_key("192.0.2.1") == "192.0.2.1"
    assert throttle.address_key(None) is None


def test_the_address_is_taken_from_x_forwarded_for_only_behind_trusted_proxies(
    make_app: Any, make_user: Any
) -> None:
    make_user("tess", "technician")
    for trusted, counted in [(0, "127.0.0.1"), (1, "192.0.2.44")]:
        app = make_app(TRUSTED_PROXIES=trusted)
        with app.app_context():
            client = app.test_client()
            client.post(
                "/login",
                data={"username": "tess", "password": WRONG},
                environ_base={"REMOTE_ADDR": "127.0.0.1"},
                headers={"X-Forwarded-For": "192.0.2.44"},
            )
            db.session.rollback()
            keys = set(
                db.session.execute(
                    select(LoginThrottle.key).where(LoginThrottle.scope == Scope.ADDRESS.value)
                ).scalars()
            )
            assert keys == {counted}, trusted
            db.session.execute(LoginThrottle.__table__.delete())
            db.session.commit()


# --- the same answer for a name without an account ------------------------------------------


def test_an_unknown_name_and_a_wrong_password_get_the_same_answer_and_the_same_work(
    app: Any, make_user: Any, monkeypatch: pytest.MonkeyPatch, clock: FrozenClock
) -> None:
    make_user("tess", "technician")
    checks: list[str] = []
    real = accounts.check_password_hash

    def counting(pwhash: str, password: str) -> bool:
        checks.append(pwhash.split("$")[0])
        return real(pwhash, password)

    monkeypatch.setattr(accounts, "check_password_hash", counting)
    client = app.test_client()

    def answer(typed: str) -> tuple[int, str, int]:
        checks.clear()
        response = login(client, typed, WRONG)
        return response.status_code, same_page(response, typed), len(checks)

    wrong = answer("tess")
    unknown = answer("ghost")
    assert wrong == unknown
    assert wrong[0] == 401 and wrong[2] == 1  # one hash verification each
    assert "The username or password is not correct." in wrong[1]
    # the dummy hash is made with the site's method, as the real one is
    assert checks == [app.config["PASSWORD_HASH_METHOD"]]

    # and their back-offs look alike too
    for _ in range(4):
        login(client, "tess", WRONG)
        login(client, "ghost", WRONG)
    checks.clear()
    throttled = [login(client, name, WRONG) for name in ("tess", "ghost")]
    assert [r.status_code for r in throttled] == [429, 429]
    assert throttled[0].headers["Retry-After"] == throttled[1].headers["Retry-After"]
    pages = [same_page(r, n) for r, n in zip(throttled, ["tess", "ghost"], strict=True)]
    assert pages[0] == pages[1]
    assert checks == []  # a waiting name is refused unchecked


def test_a_deactivated_account_answers_a_wrong_password_like_any_other(
    app: Any, make_user: Any
) -> None:
    tess = make_user("tess", "technician")
    tess.active = False
    db.session.commit()
    client = app.test_client()

    wrong = login(client, "tess", WRONG).get_data(as_text=True)
    assert "The username or password is not correct." in wrong and "deactivated" not in wrong
    assert "deactivated" in login(client, "tess", TEST_PASSWORD).get_data(as_text=True)


# --- the audit trail ------------------------------------------------------------------------


def test_every_checked_failure_is_audited_and_a_flood_adds_one_entry_per_backoff(
    app: Any, make_user: Any, clock: FrozenClock
) -> None:
    qa = make_user("quinn", "qa")
    client = app.test_client()
    before = audit_count()

    responses = [login(client, "quinn", WRONG).status_code for _ in range(100)]

    assert responses == [401] * 5 + [429] * 95
    failed = entries("login.failed")
    assert [e.entity_id for e in failed] == [str(qa.id)] * 5
    assert [changes(e)["failures_in_window"] for e in failed] == [[n, n + 1] for n in range(5)]
    [started] = entries("login.throttled")
    assert started.entity_id == str(qa.id)
    assert "refused unchecked for 30 s" in (started.reason or "")
    assert audit_count() == before + 6  # not one entry per refused attempt
    db.session.rollback()
    row = db.session.get(LoginThrottle, (Scope.ACCOUNT.value, "quinn"))
    assert row is not None and row.refused == 95

    # the refusals are reported with the next back-off
    clock.advance(seconds=31)
    for _ in range(5):
        login(client, "quinn", WRONG)
    second = entries("login.throttled")[1]
    assert changes(second)["refused_while_throttled"] == [95, 0]
    assert "refused unchecked for 60 s" in (second.reason or "")
    assert audit_count() == before + 12


def test_unknown_names_are_audited_and_bounded_too(app: Any) -> None:
    client = app.test_client()
    for _ in range(50):
        login(client, "Ghost", WRONG)
    assert [e.entity_id for e in entries("login.failed_unknown_user")] == ["ghost"] * 5
    [started] = entries("login.throttled")
    assert started.entity_type == "user" and started.entity_id == "ghost"


def test_refusals_of_a_key_left_alone_are_reported_when_its_row_is_purged(
    app: Any, make_user: Any, clock: FrozenClock
) -> None:
    make_user("tess", "technician")
    client = app.test_client()
    for _ in range(8):
        login(client, "tess", WRONG)  # 5 checked, 3 refused
    clock.advance(hours=1)
    login(client, "someone", WRONG)  # any failure purges the quiet rows

    [reported] = entries("login_throttle.refusals_counted")
    assert changes(reported)["refused_while_throttled"] == [3, 0]
    db.session.rollback()
    assert db.session.get(LoginThrottle, (Scope.ACCOUNT.value, "tess")) is None


def test_a_successful_login_reports_what_the_backoff_refused(
    app: Any, make_user: Any, clock: FrozenClock
) -> None:
    make_user("tess", "technician")
    client = app.test_client()
    for _ in range(7):
        login(client, "tess", WRONG)  # 5 checked, 2 refused
    clock.advance(seconds=31)
    assert login(client, "tess", TEST_PASSWORD).status_code == 302
    [succeeded] = entries("login.succeeded")
    assert changes(succeeded)["refused_while_throttled"] == [2, 0]


# --- e-signatures: a logged-in user re-entering a password -----------------------------------


def approve(api: Any, protocol: Protocol, password: str) -> Any:
    return api.post(f"/api/v1/protocols/{protocol.id}/approve", json={"password": password})


def test_wrong_signing_passwords_lock_a_qa_when_another_qa_can_act(
    clients: Any, make_user: Any, protocol: Protocol
) -> None:
    qa = make_user("alex", "qa")
    make_user("blair", "qa")
    api = clients.api(qa)

    assert [approve(api, protocol, "nope").status_code for _ in range(5)] == [401] * 5

    assert reload(qa).locked
    assert len(entries("user.locked")) == 1
    assert len(entries("signature.failed")) == 5


def test_the_only_qa_is_never_locked_by_wrong_signing_passwords_and_waits_instead(
    clients: Any, make_user: Any, protocol: Protocol, clock: FrozenClock
) -> None:
    qa = make_user("alex", "qa")
    make_user("casey", "qa").locked_at = utcnow()  # a locked QA cannot act
    db.session.commit()
    api = clients.api(qa)

    assert [approve(api, protocol, "nope").status_code for _ in range(5)] == [401] * 5
    qa = reload(qa)
    assert not qa.locked and qa.failed_attempts == 5
    [withheld] = entries("user.lock_withheld")
    assert "Quality assurance" in (withheld.reason or "")
    assert entries("user.locked") == []

    waiting = approve(api, protocol, TEST_PASSWORD)
    assert waiting.status_code == 429
    assert waiting.mimetype == "application/problem+json"
    assert waiting.headers["Retry-After"] == "30"
    body = waiting.get_json()
    assert body["type"] == "urn:cellchain:problem:too-many-attempts" and body["status"] == 429
    assert "Try again in 30 seconds" in body["detail"]
    assert len(entries("signature.failed")) == 5  # the refused attempt is only counted

    clock.advance(seconds=31)
    assert approve(api, protocol, TEST_PASSWORD).status_code == 200
    assert reload(qa).failed_attempts == 0


def test_the_last_administrator_is_never_locked(
    session: Any, make_user: Any, policy: AccountPolicy
) -> None:
    ada = make_user("ada", "admin")
    for _ in range(10):
        failure = CredentialsRejected("wrong", username="ada", purpose="password change")
        assert not accounts.record_failed_authentication(
            session, failure=failure, now=utcnow(), policy=policy
        )
    session.commit()
    assert not reload(ada).locked
    assert accounts.lock_withheld_for(session, reload(ada)) == [Role.ADMIN]
    make_user("bob", "admin")
    assert accounts.lock_withheld_for(session, reload(ada)) == []


def test_a_login_backoff_does_not_hold_back_signing(
    app: Any, clients: Any, make_user: Any, protocol: Protocol
) -> None:
    qa = make_user("alex", "qa")
    api = clients.api(qa)
    for _ in range(6):  # someone guesses at the login page
        login(app.test_client(), "alex", WRONG)
    assert login(app.test_client(), "alex", TEST_PASSWORD).status_code == 429

    assert approve(api, protocol, TEST_PASSWORD).status_code == 200


def test_signing_as_a_service_checks_the_backoff_before_the_password(
    session: Any, make_user: Any, protocol: Protocol, policy: AccountPolicy
) -> None:
    qa = make_user("alex", "qa")
    now = utcnow()
    for _ in range(5):
        failure = CredentialsRejected("wrong", username="alex", purpose="signature")
        accounts.record_failed_authentication(session, failure=failure, now=now, policy=policy)
    session.commit()

    with pytest.raises(accounts.TooManyAttempts) as waiting:
        signatures.sign(
            session,
            record=protocol,
            meaning="approval",
            user=qa,
            password=TEST_PASSWORD,
            now=now,
            permission=Permission.SIGN_PROTOCOL,
        )
    assert waiting.value.status == 429 and waiting.value.retry_after == 30


# --- several workers ------------------------------------------------------------------------


@pytest.mark.skipif(not on_postgres(), reason="concurrent writers need PostgreSQL")
def test_failures_counted_at_once_by_several_workers_are_all_counted(
    app: Any, make_user: Any
) -> None:
    make_user("tess", "technician")
    policy = AccountPolicy.from_config(app.config)
    now = utcnow()

    def fail() -> str:
        failure = CredentialsRejected(
            "wrong", username="tess", purpose="login", address="192.0.2.1"
        )
        accounts.record_failed_authentication(db.session, failure=failure, now=now, policy=policy)
        db.session.commit()
        return "counted"

    assert at_once(app, [fail] * 4) == ["counted"] * 4
    db.session.rollback()
    row = db.session.get(LoginThrottle, (Scope.ACCOUNT.value, "tess"))
    assert row is not None and row.failures == 4 and row.blocked_until is None


# --- cellchain tokens create ----------------------------------------------------------------


@pytest.fixture
def run(app: Any, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CELLCHAIN_ENV", "testing")
    monkeypatch.setenv("CELLCHAIN_DATABASE_URL", database_url)
    monkeypatch.setenv("CELLCHAIN_PASSWORD_HASH_METHOD", "pbkdf2:sha256:1000")
    runner = CliRunner()

    def invoke(*args: str, **kwargs: Any) -> Any:
        return runner.invoke(main, list(args), catch_exceptions=False, **kwargs)

    return invoke


def test_the_cli_waits_like_the_login_page_and_never_locks(run: Any, make_user: Any) -> None:
    tess = make_user("tess", "technician")
    make_user("theo", "technician")

    def mint(password: str) -> Any:
        return run("tokens", "create", "tess", "--name", "LIMS", input=f"{password}\n")

    assert all(mint("wrong guess").exit_code != 0 for _ in range(5))
    refused = mint(TEST_PASSWORD)
    assert refused.exit_code != 0
    assert "Too many failed logins for this username" in refused.output
    assert accounts.TOKEN_PREFIX not in refused.output
    assert not reload(tess).locked
    assert len(entries("token_creation.failed")) == 5
    assert len(entries("token_creation.throttled")) == 1
