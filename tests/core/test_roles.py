"""No super-user (issue 16 item 5): nobody changes their own roles; Administrator is never held
together with QA, QC analyst or Investigator (on creation, on a change, and for an account
that holds both from before the rule it signs nothing); a role change needs a reason and is
audited with the old and the new roles. Through the service, the API, the pages and the CLI.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cellchain.cli import main
from cellchain.core import accounts, signatures
from cellchain.core.models import AuditEntry, User, UserRole
from cellchain.core.roles import Permission, Role, has_permission
from cellchain.core.types import utcnow
from cellchain.dosing import service as dosing
from cellchain.errors import Conflict, PermissionDenied, ReasonRequired
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD

SIGNING = [Role.QA, Role.QC_ANALYST, Role.INVESTIGATOR]


def audit_entries(action: str) -> list[AuditEntry]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        )
    )


def roles_of(user_id: int) -> set[str]:
    db.session.expire_all()
    return {role.value for role in db.session.get(User, user_id).roles}


def legacy_account(make_user: Any, username: str, extra: Role) -> User:
    """An administrator who also holds ``extra``, as an account made before the rule (or edited
    in the database) would: the service refuses to make one."""
    user = make_user(username, Role.ADMIN)
    db.session.add(UserRole(user_id=user.id, role=extra.value))
    db.session.commit()
    db.session.expire_all()
    return db.session.get(User, user.id)


def user_body(**changes: Any) -> dict[str, Any]:
    return {
        "username": "morgan",
        "full_name": "Morgan Both",
        "password": "a-long-password-1",
        "roles": ["admin", "qa"],
        **changes,
    }


# --- creation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("signing", SIGNING, ids=lambda r: r.value)
def test_the_service_never_creates_an_administrator_who_signs(session, policy, signing):
    with pytest.raises(Conflict) as refused:
        accounts.create_user(
            session,
            actor=None,
            now=utcnow(),
            username="morgan",
            full_name="Morgan Both",
            password="a-long-password-1",
            roles=[Role.ADMIN, signing],
            policy=policy,
        )
    assert "never held by one account" in refused.value.detail
    assert "roles" in refused.value.errors


def test_the_api_refuses_an_administrator_who_signs(clients, make_user):
    admin = make_user("ada", Role.ADMIN)
    response = clients.api(admin).post("/api/v1/users", json=user_body())
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert "never held by one account" in problem["detail"] and "roles" in problem["errors"]
    assert accounts.find_user(db.session, "morgan") is None


def test_the_new_user_page_refuses_and_keeps_what_was_typed(clients, make_user):
    admin = make_user("ada", Role.ADMIN)
    response = clients.web(admin).post("/users/new", data=user_body(roles=["admin", "qc_analyst"]))
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "never held by one account" in page
    assert 'value="morgan"' in page and 'value="Morgan Both"' in page
    assert "a-long-password-1" not in page
    assert accounts.find_user(db.session, "morgan") is None


def test_the_cli_refuses_an_administrator_who_signs(database_url, monkeypatch):
    monkeypatch.setenv("CELLCHAIN_ENV", "testing")
    monkeypatch.setenv("CELLCHAIN_DATABASE_URL", database_url)
    monkeypatch.setenv("CELLCHAIN_PASSWORD_HASH_METHOD", "pbkdf2:sha256:1000")
    args = ["users", "create", "morgan", "--full-name", "Morgan Both", "--role", "admin"]
    result = CliRunner().invoke(main, [*args, "--role", "qa", "--password", "a-long-password-1"])
    assert result.exit_code != 0
    assert "never held by one account" in result.output


# --- changing roles --------------------------------------------------------------------------


def test_nobody_changes_their_own_roles_in_the_service(session, make_user):
    admin = make_user("ada", Role.ADMIN)
    with pytest.raises(PermissionDenied, match="Nobody changes their own roles"):
        accounts.set_roles(
            session,
            actor=admin,
            now=utcnow(),
            user=admin,
            roles=["admin", "technician"],
            reason="I need it",
        )
    # the CLI and the system act as nobody (actor None) and may
    accounts.set_roles(
        session,
        actor=None,
        now=utcnow(),
        user=admin,
        roles=["admin", "technician"],
        reason="site set-up",
    )
    assert roles_of(admin.id) == {"admin", "technician"}


def test_an_administrator_cannot_give_itself_qa_over_the_api(clients, make_user):
    admin = make_user("ada", Role.ADMIN)
    response = clients.api(admin).put(
        f"/api/v1/users/{admin.id}/roles", json={"roles": ["qa"], "reason": "to release a lot"}
    )
    assert response.status_code == 403, response.get_json()
    assert "Nobody changes their own roles" in response.get_json()["detail"]
    assert roles_of(admin.id) == {"admin"}
    (refusal,) = audit_entries("user.change_refused")
    assert refusal.actor_id == admin.id and refusal.entity_id == str(admin.id)


def test_an_administrator_cannot_give_itself_qa_on_its_page(clients, make_user):
    admin = make_user("ada", Role.ADMIN)
    web = clients.web(admin)
    page = web.get(f"/users/{admin.id}").get_data(as_text=True)
    assert 'id="own-roles"' in page and f'action="/users/{admin.id}/roles"' not in page
    response = web.post(
        f"/users/{admin.id}/roles",
        data={"roles": ["admin", "qa"], "reason": "to release a lot"},
        follow_redirects=True,
    )
    assert "Nobody changes their own roles" in response.get_data(as_text=True)
    assert roles_of(admin.id) == {"admin"}
    assert len(audit_entries("user.change_refused")) == 1


@pytest.mark.parametrize("signing", SIGNING, ids=lambda r: r.value)
def test_no_administrator_is_given_a_signing_role(clients, make_user, signing):
    ada = make_user("ada", Role.ADMIN)
    other_admin = make_user("bob", Role.ADMIN)
    api = clients.api(ada)
    response = api.put(
        f"/api/v1/users/{other_admin.id}/roles",
        json={"roles": ["admin", signing.value], "reason": "covering holidays"},
    )
    assert response.status_code == 409
    assert roles_of(other_admin.id) == {"admin"}
    # nor is a signer given administration
    signer = make_user("sam", signing)
    response = api.put(
        f"/api/v1/users/{signer.id}/roles",
        json={"roles": ["admin", signing.value], "reason": "covering holidays"},
    )
    assert response.status_code == 409
    assert roles_of(signer.id) == {signing.value}


def test_a_role_change_needs_a_reason_and_is_audited_with_old_and_new_roles(
    session, clients, make_user
):
    ada = make_user("ada", Role.ADMIN)
    tess = make_user("tess", Role.TECHNICIAN)
    with pytest.raises(ReasonRequired):
        accounts.set_roles(session, actor=ada, now=utcnow(), user=tess, roles=["qa"], reason="  ")
    session.rollback()
    response = clients.api(ada).put(
        f"/api/v1/users/{tess.id}/roles", json={"roles": ["technician", "qa"], "reason": ""}
    )
    assert response.status_code == 422
    response = clients.api(ada).put(
        f"/api/v1/users/{tess.id}/roles",
        json={"roles": ["technician", "qa"], "reason": "QA training completed"},
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["roles"] == ["qa", "technician"]
    (change,) = audit_entries("user.roles_changed")
    assert change.actor_id == ada.id and change.entity_id == str(tess.id)
    assert change.reason == "QA training completed"
    assert json.loads(change.changes)["roles"] == [["technician"], ["qa", "technician"]]


# --- an account that holds both from before the rule -------------------------------------------


@pytest.mark.parametrize("signing", SIGNING, ids=lambda r: r.value)
def test_a_legacy_administrator_with_a_signing_role_signs_nothing(session, make_user, signing):
    both = legacy_account(make_user, "morgan", signing)
    assert not has_permission(both.roles, Permission.DISPOSE_LOTS)
    assert not has_permission(both.roles, Permission.RECORD_QC_RESULTS)
    assert has_permission(both.roles, Permission.MANAGE_USERS)
    protocol = dosing.PROTOCOLS.load_default(session, actor=both, now=utcnow())
    with pytest.raises(PermissionDenied, match="signs nothing"):
        signatures.sign(
            session,
            record=protocol,
            meaning="approval",
            user=both,
            password=TEST_PASSWORD,
            now=utcnow(),
            permission=Permission.SIGN_PROTOCOL,
        )


def test_a_legacy_administrator_with_qa_cannot_approve_and_is_flagged(clients, make_user):
    both = legacy_account(make_user, "morgan", Role.QA)
    qa_route = clients.api(both).post("/api/v1/protocols/1/approve", json={"password": "x"})
    assert qa_route.status_code == 403
    ada = make_user("ada", Role.ADMIN)
    out = clients.api(ada).get(f"/api/v1/users/{both.id}").get_json()
    assert out["roles"] == ["admin", "qa"] and out["suspended_roles"] == ["qa"]
    web = clients.web(ada)
    assert f'id="suspended-{both.id}"' in web.get("/users").get_data(as_text=True)
    page = web.get(f"/users/{both.id}").get_data(as_text=True)
    assert 'id="roles-suspended"' in page and "signs nothing" in page
    # another administrator mends it, with a reason
    mended = clients.api(ada).put(
        f"/api/v1/users/{both.id}/roles", json={"roles": ["admin"], "reason": "no super-user"}
    )
    assert mended.status_code == 200 and mended.get_json()["suspended_roles"] == []
