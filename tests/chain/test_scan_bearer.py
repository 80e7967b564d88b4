"""The scan by a bearer token judges the token in its own statement (``http.bearer_read``,
``chain/scanning.scan_as_bearer``, ``accounts.bearer_may_read``; issue 20), so every rule the
request hooks and ``requires`` apply is applied there again. Each rule is tested on that
path: the answer to a token or an account that may not scan, and to input the schema or the
identifier rules refuse, is byte for byte the answer of the ordinary path (the hooks' checks,
then ``requires``, then the view), which ``ordinary`` reaches by switching the deferral off.
A passing scan is one statement; a refused one is that statement and then the ordinary path.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from cellchain.chain.api import ScanAhead
from cellchain.core import accounts
from cellchain.core.identifiers import make_din, parse_identifier
from cellchain.core.models import ApiToken, User, UserRole
from cellchain.core.roles import GRANTS, Permission, Role, has_permission
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.web import security
from tests.support.chain import build_tree
from tests.support.statements import counting_statements
from tests.support.tamper import outside_the_trail
from tests.support.tokens import mint

SCAN = "/api/v1/scan"


def scan(app: Any, token: str | None, **query: str) -> tuple[int, str, bytes, list[str]]:
    """Status, content type, body and the statements of one scan."""
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    db.session.remove()
    with counting_statements() as statements:
        response = client.get(SCAN, query_string=query, headers=headers)
    return response.status_code, response.mimetype, response.get_data(), list(statements)


def ordinary(app: Any, monkeypatch: pytest.MonkeyPatch, token: str | None, **query: str):
    """The same scan with the token left to the request hooks, as before issue 20's path."""
    with monkeypatch.context() as patch:
        patch.setattr(security, "bearer_checked_by_view", lambda: False)
        patch.setattr(ScanAhead, "ENABLED", False)  # and not answered before Flask's request
        return scan(app, token, **query)


def by_statement(statements: list[str]) -> bool:
    """Whether the scan's one statement (token and identifier joined) was sent."""
    return any("api_tokens" in s and "issued_identifiers" in s for s in statements)


def assert_refused_as_before(app, monkeypatch, token, status: int, **query: str) -> bytes:
    code, mimetype, body, _statements = scan(app, token, **query)
    before = ordinary(app, monkeypatch, token, **query)
    assert (code, mimetype, body) == before[:3], (body, before[2])
    assert code == status, body
    return body


@pytest.fixture
def unit_code(lab) -> str:
    return parse_identifier(build_tree(lab).b1.code).display


# --- a token or an account that may not scan ------------------------------------------------


def test_a_scan_that_passes_is_one_statement_and_the_ordinary_answer(
    app, lab, unit_code, monkeypatch
):
    token = mint(lab.qc)
    scan(app, token, code=unit_code)  # the token's first use
    status, _mimetype, body, statements = scan(app, token, code=unit_code)

    assert status == 200 and len(statements) == 1 and by_statement(statements)
    assert body == ordinary(app, monkeypatch, token, code=unit_code)[2]


def test_a_read_scoped_token_scans(app, lab, unit_code):
    token = mint(lab.qc, scope="read")
    status, _mimetype, _body, statements = scan(app, token, code=unit_code)
    assert status == 200 and by_statement(statements)


def test_an_unknown_token_is_refused_as_before(app, lab, unit_code, monkeypatch):
    body = assert_refused_as_before(app, monkeypatch, "ccpat_not-a-token", 401, code=unit_code)
    assert b"Invalid API token" in body


def test_a_revoked_token_is_refused_as_before(app, lab, unit_code, monkeypatch):
    qc_id = lab.qc.id
    token = mint(lab.qc)
    assert scan(app, token, code=unit_code)[0] == 200
    row = db.session.execute(select(ApiToken).order_by(ApiToken.id.desc())).scalars().first()
    qc = db.session.get(User, qc_id)
    accounts.revoke_token(db.session, actor=qc, now=utcnow(), token_id=row.id)
    db.session.commit()

    _status, _mimetype, _body, statements = scan(app, token, code=unit_code)
    assert by_statement(statements)  # judged by the scan's statement, then the hooks
    assert_refused_as_before(app, monkeypatch, token, 401, code=unit_code)


def test_an_expired_token_is_refused_as_before(app, lab, unit_code, monkeypatch):
    token = mint(lab.qc, days=1, at=utcnow() - dt.timedelta(days=1, seconds=1))
    live = mint(lab.qc, days=1, at=utcnow() - dt.timedelta(hours=23))
    assert_refused_as_before(app, monkeypatch, token, 401, code=unit_code)
    assert scan(app, live, code=unit_code)[0] == 200


@pytest.mark.parametrize(
    "change", [{"active": False}, {"locked_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}]
)
def test_a_token_of_an_inactive_or_locked_account_is_refused_as_before(
    app, lab, unit_code, monkeypatch, change
):
    qc_id = lab.qc.id
    token = mint(lab.qc)
    assert scan(app, token, code=unit_code)[0] == 200
    db.session.execute(outside_the_trail(update(User).where(User.id == qc_id).values(change)))
    db.session.commit()

    assert_refused_as_before(app, monkeypatch, token, 401, code=unit_code)


def test_a_token_of_an_account_without_roles_is_refused_as_before(app, lab, unit_code, monkeypatch):
    token = mint(lab.qc)
    db.session.execute(outside_the_trail(delete(UserRole).where(UserRole.user_id == lab.qc.id)))
    db.session.commit()

    body = assert_refused_as_before(app, monkeypatch, token, 403, code=unit_code)
    assert b"roles do not allow" in body


def test_an_administrator_set_password_is_changed_first_as_before(app, lab, unit_code, monkeypatch):
    token = mint(lab.qc)
    db.session.execute(
        outside_the_trail(
            update(User).where(User.id == lab.qc.id).values(must_change_password=True)
        )
    )
    db.session.commit()

    body = assert_refused_as_before(app, monkeypatch, token, 403, code=unit_code)
    assert b"Password change required" in body


def test_the_roles_rule_is_the_permission_rule_of_every_request():
    """``bearer_may_read`` grants exactly what ``roles.has_permission`` grants, suspended
    combinations included (an administrator's signing roles, the randomization role held
    with enrolment), for every permission."""
    now = utcnow()
    role_sets = [frozenset(), *(frozenset({role}) for role in Role)]
    role_sets += [
        frozenset({Role.ADMIN, *GRANTS[Permission.MANAGE_RANDOMIZATION]}),
        frozenset({Role.ADMIN, Role.QA}),
        GRANTS[Permission.ENROL_PATIENTS] | GRANTS[Permission.MANAGE_RANDOMIZATION],
    ]
    for roles in role_sets:
        row = token_row(now, user_roles=",".join(sorted(roles)) or None)
        for permission in Permission:
            expected = has_permission(roles, permission)
            assert (
                accounts.bearer_may_read(row, now=now, method="GET", permission=permission)
                is expected
            ), (roles, permission)


def test_each_rule_of_the_token_refuses_on_its_own():
    now = utcnow()
    ok = {"now": now, "method": "GET", "permission": Permission.USE_APP}
    assert accounts.bearer_may_read(token_row(now), **ok)
    for change in (
        {"token_revoked_at": now - dt.timedelta(seconds=1)},
        {"token_expires_at": now},
        {"user_active": False},
        {"user_locked_at": now},
        {"user_must_change_password": True},
        {"user_roles": None},
    ):
        assert not accounts.bearer_may_read(token_row(now, **change), **ok), change
    read_only = token_row(now, token_scope="read")
    assert accounts.bearer_may_read(read_only, **ok)
    assert accounts.bearer_may_read(read_only, **{**ok, "method": "HEAD"})
    assert not accounts.bearer_may_read(read_only, **{**ok, "method": "POST"})


def token_row(now: dt.datetime, **change: Any) -> Any:
    from types import SimpleNamespace

    values = {
        "token_id": 1,
        "token_scope": "full",
        "token_expires_at": now + dt.timedelta(days=1),
        "token_revoked_at": None,
        "token_last_used_at": None,
        "user_active": True,
        "user_locked_at": None,
        "user_must_change_password": False,
        "user_roles": Role.TECHNICIAN.value,
    }
    return SimpleNamespace(**{**values, **change})


# --- the token's last use ---------------------------------------------------------------------


def last_used(token: str) -> dt.datetime | None:
    db.session.rollback()
    return db.session.execute(
        select(ApiToken.last_used_at).where(ApiToken.token_hash == accounts.hash_token(token))
    ).scalar_one()


def test_the_last_use_is_written_once_a_minute(app, lab, unit_code):
    token = mint(lab.qc)
    assert last_used(token) is None

    status, _mimetype, _body, first = scan(app, token, code=unit_code)
    written = last_used(token)
    _status, _mimetype, _body, second = scan(app, token, code=unit_code)

    assert status == 200 and written is not None
    assert utcnow() - written < dt.timedelta(minutes=1)
    assert [s for s in first if s.lstrip().upper().startswith("UPDATE")]
    assert len(first) == 2 and len(second) == 1, second
    assert last_used(token) == written  # not again within the minute

    a_while_ago = written - dt.timedelta(minutes=1, seconds=1)
    db.session.execute(
        outside_the_trail(
            update(ApiToken)
            .where(ApiToken.token_hash == accounts.hash_token(token))
            .values(last_used_at=a_while_ago)
        )
    )
    db.session.commit()
    _status, _mimetype, _body, third = scan(app, token, code=unit_code)
    assert len(third) == 2 and last_used(token) > written


def test_the_last_use_is_written_when_the_scan_is_refused_for_its_input(app, lab):
    """As before: the hooks record a valid token's use before the view reads its input."""
    token = mint(lab.qc)
    status, _mimetype, _body, _statements = scan(app, token, code="X9999")
    assert status == 422 and last_used(token) is not None


# --- input: refused after the token, with the schema's and the identifier rules' errors -----


@pytest.mark.parametrize(
    "query",
    [
        {},  # no code
        {"code": ""},
        {"code": "X" * 201},
        {"code": "not a code"},
        {"code": "W000026000001"},  # malformed
    ],
)
def test_refused_input_is_answered_as_before(app, lab, monkeypatch, query):
    token = mint(lab.qc)
    assert_refused_as_before(app, monkeypatch, token, 422, **query)


def test_a_code_without_its_check_character_is_answered_as_before(app, lab, unit_code, monkeypatch):
    token = mint(lab.qc)
    canonical = parse_identifier(unit_code).canonical
    body = assert_refused_as_before(app, monkeypatch, token, 422, code=canonical[:-1])
    assert b"check" in body


def test_a_code_never_issued_here_is_answered_as_before(app, lab, monkeypatch):
    token = mint(lab.qc)
    never = make_din(app.config["FACILITY_CODE"], 2026, 99999).display
    body = assert_refused_as_before(app, monkeypatch, token, 404, code=never)
    assert body


def test_a_bad_token_with_bad_input_is_refused_for_the_token_first(app, lab, monkeypatch):
    assert_refused_as_before(app, monkeypatch, "ccpat_not-a-token", 401, code="")
    assert_refused_as_before(app, monkeypatch, "ccpat_not-a-token", 401)


# --- not a bearer request -----------------------------------------------------------------------


def test_a_browser_session_scans_by_the_ordinary_path(app, lab, clients, unit_code):
    web = clients.web(lab.qc)
    db.session.remove()
    with counting_statements() as statements:
        response = web.get(SCAN, query_string={"code": unit_code})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert not by_statement(statements)


def test_the_scan_still_declares_its_permission(app):
    view = app.view_functions["scan_api.scan"]
    assert view.required_permission is Permission.USE_APP
