"""A bearer token that is not the scan's is judged from one plain-row statement
(``accounts.token_holder``, issue 20): the same verdicts as ``valid_token`` for every rule,
the same user in the session as the ORM's query left it (every column and the roles loaded,
nothing to flush), its use written at most once a minute."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import delete, inspect, select, update

from cellchain.core import accounts, record_state
from cellchain.core.models import ApiToken, User, UserRole
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.support.statements import counting_statements
from tests.support.tamper import outside_the_trail
from tests.support.tokens import mint

USER_KEYS = [column.key for column in User.__table__.c]


def as_valid_token_says(token: str, now: dt.datetime) -> Any:
    """``valid_token``'s verdict, from a fresh session, rolled back (nothing written)."""
    db.session.remove()
    row = accounts.valid_token(db.session, token, now)
    verdict = None
    if row is not None:
        user = row.user
        verdict = (
            row.id,
            row.scope,
            {key: getattr(user, key) for key in USER_KEYS},
            sorted(user.roles),
        )
    db.session.rollback()
    db.session.remove()
    return verdict


def as_holder_says(token: str, now: dt.datetime) -> Any:
    db.session.remove()
    holder = accounts.token_holder(db.session, token, now)
    verdict = None
    if holder is not None:
        user = holder.user
        verdict = (
            holder.token_id,
            holder.scope,
            {key: getattr(user, key) for key in USER_KEYS},
            sorted(user.roles),
        )
    db.session.rollback()
    db.session.remove()
    return verdict


def change(statement: Any) -> None:
    db.session.execute(outside_the_trail(statement).execution_options(synchronize_session=False))
    db.session.commit()


CASES: dict[str, Any] = {
    "valid": lambda now: [],
    "revoked": lambda now: [update(ApiToken).values(revoked_at=now)],
    "expired": lambda now: [update(ApiToken).values(expires_at=now)],
    "expires in a moment": lambda now: [
        update(ApiToken).values(expires_at=now + dt.timedelta(microseconds=1))
    ],
    "inactive": lambda now: [update(User).where(User.username == "tess").values(active=False)],
    "locked": lambda now: [update(User).where(User.username == "tess").values(locked_at=now)],
    "no roles": lambda now: [delete(UserRole)],
    "must change password": lambda now: [
        update(User).where(User.username == "tess").values(must_change_password=True)
    ],
    "used a while ago": lambda now: [
        update(ApiToken).values(last_used_at=now - dt.timedelta(minutes=5))
    ],
}
REFUSED = ("revoked", "expired", "inactive", "locked")


@pytest.mark.parametrize("case", list(CASES))
def test_the_holder_is_what_valid_token_says_for_every_rule(app, make_user, case):
    tess = make_user("tess", Role.TECHNICIAN, Role.QC_ANALYST)
    token = mint(tess)
    now = utcnow()
    for statement in CASES[case](now):
        change(statement)
    expected = as_valid_token_says(token, now)
    assert as_holder_says(token, now) == expected
    assert (expected is None) == (case in REFUSED)
    assert as_holder_says("cc_" + "x" * 43, now) is None is as_valid_token_says("cc_x", now)


def test_the_holders_user_is_loaded_as_a_query_leaves_it(app, make_user):
    tess = make_user("tess", Role.TECHNICIAN, Role.QC_ANALYST)
    token, tess_id = mint(tess), tess.id
    db.session.remove()
    session = db.session()
    holder = accounts.token_holder(session, token, utcnow())
    assert holder is not None
    user = holder.user
    with counting_statements() as seen:
        state = inspect(user)
        assert state.persistent and not session.is_modified(user)
        assert not session.new and not session.dirty and not session.deleted
        assert user.roles == {Role.TECHNICIAN, Role.QC_ANALYST}
        assert [inspect(row).persistent for row in user.role_rows] == [True, True]
        assert session.get(User, tess_id) is user
        assert user.full_name == "Tess Tester" and user.audit_seq is not None
        session.flush()
    assert seen == [], seen  # nothing loaded again, nothing written
    # a change through it is written and recorded like any other
    user.full_name = "Tess Renamed"
    accounts.set_roles(
        session, actor=None, now=utcnow(), user=user, roles=[Role.TECHNICIAN], reason="test"
    )
    session.commit()
    db.session.remove()
    again = db.session.get(User, tess_id)
    assert (again.full_name, again.roles) == ("Tess Renamed", {Role.TECHNICIAN})
    assert record_state.verify_records(db.session).intact


def test_a_user_already_in_the_session_is_the_one_judged(app, make_user):
    """Not the case at a request's start; should it be, ``valid_token`` loads the token and
    finds the user in the session."""
    tess = make_user("tess", Role.TECHNICIAN)
    token, tess_id = mint(tess), tess.id
    db.session.remove()
    loaded = db.session.get(User, tess_id)
    holder = accounts.token_holder(db.session, token, utcnow())
    assert holder is not None and holder.user is loaded and holder.use_due is False
    assert db.session.dirty  # the token's first use, written by the caller's commit
    db.session.rollback()


def test_a_bearer_request_authenticates_in_one_statement_and_writes_its_use_once_a_minute(
    app, make_user
):
    tess = make_user("tess", Role.TECHNICIAN)
    token, tess_id = mint(tess), tess.id
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"

    def me() -> list[str]:
        with counting_statements() as seen:
            answer = client.get("/api/v1/me")
        assert answer.status_code == 200 and answer.get_json()["username"] == "tess"
        return seen

    first = me()
    assert sum("api_tokens" in s and s.lstrip().startswith("SELECT") for s in first) == 1
    assert sum(s.lstrip().startswith("UPDATE api_tokens SET last_used_at") for s in first) == 1
    used = db.session.scalar(select(ApiToken.last_used_at).where(ApiToken.user_id == tess_id))
    assert used is not None
    second = me()
    assert len(second) == len(first) - 1, (first, second)
    assert not any("UPDATE" in s for s in second), second
    # a minute later it is written again
    change(update(ApiToken).values(last_used_at=used - dt.timedelta(minutes=2)))
    third = me()
    assert len(third) == len(first), (first, third)
    db.session.remove()
    again = db.session.scalar(select(ApiToken.last_used_at).where(ApiToken.user_id == tess_id))
    assert again is not None and again > used - dt.timedelta(minutes=2)
