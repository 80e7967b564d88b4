"""Passwords (issue 18): common and guessable passwords are refused on every path that sets
one, and a password an administrator set is changed at first login."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cellchain.cli import main
from cellchain.core import accounts, passwords
from cellchain.demo import DEMO_USERS
from cellchain.errors import InvalidInput
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD

#: each refused for a different reason, all long enough for the length rule
GUESSABLE = {
    "common": "Password123!",
    "common, mixed case": "IloveYou2024",
    "the username": "newcomer-2024!",
    "the full name": "Petersen1234!",
    "one character": "aaaaaaaaaaaaaa",
    "a keyboard run": "qwertyuiop[]",
    "a digit run": "123456789012",
}

MESSAGES = ("common passwords", "username or the person's name", "repeats one", "run along")


def _check(password: str) -> None:
    passwords.check_password(
        password, min_length=12, username="newcomer", full_name="Nora Petersen"
    )


@pytest.mark.parametrize("password", GUESSABLE.values(), ids=GUESSABLE.keys())
def test_the_rules_refuse_guessable_passwords(password):
    with pytest.raises(InvalidInput) as refused:
        _check(password)
    assert any(message in refused.value.detail for message in MESSAGES)
    assert "password" in refused.value.errors


@pytest.mark.parametrize(
    "password",
    [TEST_PASSWORD, "a-long-password-1", "tech-demo-pass", "Newcomer on the night shift"],
)
def test_the_rules_accept_passphrases(password):
    _check(password)


def test_the_demo_passwords_pass_the_rules(policy):
    for demo in DEMO_USERS:
        passwords.check_password(
            demo.password,
            min_length=policy.password_min_length,
            username=demo.username,
            full_name=demo.full_name,
        )


def test_the_list_is_shipped_and_compared_without_case_or_decorations():
    assert len(passwords.common_passwords()) > 10_000
    for password in ("PASSWORD", "password!!", "2024password", "Dragon"):
        assert passwords._is_common(password)


def test_the_user_page_refuses_a_common_password_and_keeps_what_was_typed(clients, make_user):
    admin = make_user("ada", "admin")
    form = {"username": "newcomer", "full_name": "Nora Petersen", "roles": "technician"}
    for password in ("Password123!", "newcomer-2024!", "zzzzzzzzzzzzzz"):
        response = clients.web(admin).post("/users/new", data={**form, "password": password})
        page = response.get_data(as_text=True)
        assert response.status_code == 422
        assert "choose" in page.lower()
        assert 'value="newcomer"' in page and 'value="Nora Petersen"' in page
        assert password not in page
    assert accounts.find_user(db.session, "newcomer") is None


def test_the_api_refuses_guessable_passwords(clients, make_user):
    admin = make_user("ada", "admin")
    api = clients.api(admin)
    for password in GUESSABLE.values():
        response = api.post(
            "/api/v1/users",
            json={
                "username": "newcomer",
                "full_name": "Nora Petersen",
                "password": password,
                "roles": ["technician"],
            },
        )
        assert response.status_code == 422, password
        assert response.mimetype == "application/problem+json"
        assert "password" in response.get_json()["errors"]


def test_the_cli_refuses_a_common_password(app, database_url, monkeypatch):
    monkeypatch.setenv("CELLCHAIN_ENV", "testing")
    monkeypatch.setenv("CELLCHAIN_DATABASE_URL", database_url)
    monkeypatch.setenv("CELLCHAIN_PASSWORD_HASH_METHOD", "pbkdf2:sha256:1000")
    args = ["users", "create", "newcomer", "--full-name", "Nora Petersen", "--role", "qa"]
    for password in ("Password123!", "newcomer-newcomer", "1111111111111"):
        result = CliRunner().invoke(main, [*args, "--password", password])
        assert result.exit_code == 1 and "choose" in result.output.lower(), result.output
    created = CliRunner().invoke(main, [*args, "--password", TEST_PASSWORD])
    assert created.exit_code == 0, created.output
    db.session.expire_all()
    assert accounts.find_user(db.session, "newcomer").must_change_password


def test_changing_the_password_refuses_a_guessable_one(clients, make_user):
    tech = make_user("tomas", "technician")
    web = clients.web(tech)
    for new in ("Password123!", "tomas-tomas-1", "asdfghjklasdfghjkl"):
        response = web.post(
            "/account/password",
            data={"current_password": TEST_PASSWORD, "new_password": new},
            follow_redirects=True,
        )
        assert "Password not changed" in response.get_data(as_text=True)
    assert web.get("/").status_code == 200  # still logged in with the old password


def test_an_admin_created_user_changes_the_password_at_first_login(app, clients, make_user):
    admin = make_user("ada", "admin")
    created = clients.web(admin).post(
        "/users/new",
        data={
            "username": "newcomer",
            "full_name": "Nora Petersen",
            "roles": "technician",
            "password": "issued by the lab admin",
        },
    )
    assert created.status_code == 302
    newcomer = accounts.find_user(db.session, "newcomer")
    assert newcomer.must_change_password
    web = clients.web(newcomer, password="issued by the lab admin")
    home = web.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/account")
    assert web.get("/units").status_code == 302
    assert "choose your own" in web.get("/account").get_data(as_text=True)
    api = clients.api(newcomer)
    refused = api.get("/api/v1/me")
    assert refused.status_code == 403
    assert refused.get_json()["title"] == "Password change required"
    kept = web.post(
        "/account/password",
        data={
            "current_password": "issued by the lab admin",
            "new_password": "issued by the lab admin",
        },
        follow_redirects=True,
    )
    assert "Password not changed" in kept.get_data(as_text=True)
    changed = web.post(
        "/account/password",
        data={
            "current_password": "issued by the lab admin",
            "new_password": "my own secret phrase",
        },
    )
    assert changed.status_code == 302
    db.session.expire_all()
    assert not accounts.find_user(db.session, "newcomer").must_change_password
    again = clients.web(newcomer, password="my own secret phrase")
    assert again.get("/").status_code == 200
    assert api.get("/api/v1/me").status_code == 200


def test_the_api_created_user_must_change_too(clients, make_user):
    admin = make_user("ada", "admin")
    response = clients.api(admin).post(
        "/api/v1/users",
        json={
            "username": "newcomer",
            "full_name": "Nora Petersen",
            "password": "issued by the lab admin",
            "roles": ["technician"],
        },
    )
    assert response.status_code == 201
    assert accounts.find_user(db.session, "newcomer").must_change_password


def test_users_the_tests_and_the_demo_create_need_not_change(make_user):
    assert not make_user("tomas", "technician").must_change_password
