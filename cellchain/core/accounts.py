"""Accounts: users, roles, authentication, lockout and API tokens (DOMAIN.md §6).

Accounts are deactivated, never deleted, so a username can never be reused. Every failed
authentication, at login or when signing, counts toward the lockout; the failure is
recorded even though the use case that asked for it is rolled back (see ``CredentialsRejected``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from cellchain.core import audit, passwords
from cellchain.core.models import ApiToken, User, UserRole, UserSession
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, Role, has_permission, role_conflict
from cellchain.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from cellchain.extensions import DbSession

USERNAME_PATTERN = re.compile(r"^[a-z][a-z0-9._-]{1,39}$")
TOKEN_PREFIX = "ccpat_"


@dataclass(frozen=True)
class AccountPolicy:
    """Site settings for accounts, taken from the app config by the interface layer."""

    lockout_threshold: int = 5
    password_min_length: int = 12
    password_hash_method: str = "scrypt"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AccountPolicy:
        return cls(
            lockout_threshold=config["LOCKOUT_THRESHOLD"],
            password_min_length=config["PASSWORD_MIN_LENGTH"],
            password_hash_method=config["PASSWORD_HASH_METHOD"],
        )


class CredentialsRejected(AuthenticationFailed):
    """A password was wrong, or the account cannot authenticate.

    The interface layer rolls the use case back and then calls
    ``record_failed_authentication`` in a transaction of its own, so the attempt is audited
    and counted however the use case ends.
    """

    def __init__(self, detail: str, *, username: str, purpose: str, counts: bool = True) -> None:
        super().__init__(detail)
        self.username = username
        self.purpose = purpose
        #: whether this attempt counts toward the lockout (a wrong password does)
        self.counts = counts


def normalise_username(username: str) -> str:
    return username.strip().lower()


def _check_password_policy(
    password: str, policy: AccountPolicy, *, username: str, full_name: str
) -> None:
    """Refuse a short, common or guessable new password (``core.passwords``)."""
    passwords.check_password(
        password,
        min_length=policy.password_min_length,
        username=username,
        full_name=full_name,
    )


def _parse_roles(roles: Iterable[str | Role]) -> set[Role]:
    parsed: set[Role] = set()
    for role in roles:
        try:
            parsed.add(Role(role))
        except ValueError as exc:
            raise InvalidInput(
                f"{role!r} is not a role; roles are {', '.join(r.value for r in Role)}.",
                errors={"roles": [f"Unknown role {role!r}."]},
            ) from exc
    if not parsed:
        raise InvalidInput("A user needs at least one role.", errors={"roles": ["Choose a role."]})
    return parsed


def _refuse_role_conflict(roles: set[Role]) -> None:
    """Administration is never combined with a signing role (no super-user, DOMAIN.md §7)."""
    conflict = role_conflict(roles)
    if conflict:
        names = " and ".join(sorted(role.label for role in conflict))
        message = (
            f"Administrator and {names} are never held by one account: an administrator "
            "manages accounts and must not sign as a signing role. Give the signing role to "
            "another person's account."
        )
        raise Conflict(
            message,
            errors={
                "roles": ["Administrator cannot be combined with QA, QC analyst or Investigator."]
            },
            title="Administration and signing roles are never combined",
        )


def find_user(session: DbSession, username: str) -> User | None:
    return session.execute(
        select(User).where(User.username == normalise_username(username))
    ).scalar_one_or_none()


def get_user(session: DbSession, user_id: int) -> User:
    return get_or_404(session, User, user_id, "user")


def user_named(session: DbSession, typed: str, *, strip: bool = False) -> User:
    """The user whose username is ``typed`` as it was typed, or ``NotFound`` naming it: a
    second signer (an investigator's override, the bedside's second clinician) names an
    account exactly, with no case folding (unlike ``find_user`` at login). With ``strip`` the
    blanks typed around the name are ignored (the bedside form always did); the message
    shows what was typed either way."""
    username = typed.strip() if strip else typed
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise NotFound(f"There is no user {typed!r}.")
    return user


def list_users(session: DbSession) -> list[User]:
    return list(session.execute(select(User).order_by(User.username)).scalars())


def create_user(
    session: DbSession,
    *,
    actor: User | None,
    now: dt.datetime,
    username: str,
    full_name: str,
    password: str,
    roles: Iterable[str | Role],
    policy: AccountPolicy,
    must_change_password: bool = False,
) -> User:
    """Create an account. A username that was ever used, even by a deactivated user, is refused,
    and so is administration combined with a signing role. The roles granted are in the
    ``user.created`` audit entry, with who created the account. ``must_change_password``: an
    administrator chose the password, so its holder changes it at first login."""
    username = normalise_username(username)
    if not USERNAME_PATTERN.match(username):
        raise InvalidInput(
            "A username is 2–40 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter.",
            errors={"username": ["Not a valid username."]},
        )
    full_name = full_name.strip()
    if not full_name:
        raise InvalidInput(
            "The full name is printed with every signature; it is required.",
            errors={"full_name": ["Required."]},
        )
    role_set = _parse_roles(roles)
    _refuse_role_conflict(role_set)
    _check_password_policy(password, policy, username=username, full_name=full_name)
    if find_user(session, username) is not None:
        raise Conflict(
            f"The username {username!r} has already been used; usernames are never reused.",
            errors={"username": ["Already used."]},
        )
    user = User(
        username=username,
        full_name=full_name,
        password_hash=generate_password_hash(password, method=policy.password_hash_method),
        active=True,
        failed_attempts=0,
        must_change_password=must_change_password,
        created_at=now,
        created_by_id=actor.id if actor else None,
    )
    user.role_rows = [UserRole(role=role.value) for role in sorted(role_set)]
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="user.created",
        entity_type="user",
        entity_id=user.id,
        changes={
            "username": (None, username),
            "full_name": (None, full_name),
            "roles": (None, sorted(role.value for role in role_set)),
        },
    )
    return user


def set_roles(
    session: DbSession,
    *,
    actor: User | None,
    now: dt.datetime,
    user: User,
    roles: Iterable[str | Role],
    reason: str | None,
) -> None:
    """Replace a user's roles; a change of who may do what needs a reason, which is audited
    with the old and the new roles.

    Refused: changing your own roles (nobody grants themselves a role; the CLI acts as the
    system, ``actor`` None), and administration combined with a signing role.
    """
    if actor is not None and actor.id == user.id:
        raise PermissionDenied(
            "Nobody changes their own roles; another administrator must make the change.",
            errors={"roles": ["You cannot change your own roles."]},
        )
    new = _parse_roles(roles)
    _refuse_role_conflict(new)
    old = set(user.roles)
    if new == old:
        return
    audit.record(
        session,
        actor=actor,
        at=now,
        action="user.roles_changed",
        entity_type="user",
        entity_id=user.id,
        changes={"roles": (sorted(r.value for r in old), sorted(r.value for r in new))},
        reason=reason,
        reason_required=True,
    )
    user.role_rows = [UserRole(role=role.value) for role in sorted(new)]
    end_all_sessions(session, user=user)  # the next login holds the new roles
    session.flush()


def deactivate_user(
    session: DbSession, *, actor: User | None, now: dt.datetime, user: User, reason: str | None
) -> None:
    """Deactivate an account for good (it keeps its history and its username)."""
    if not user.active:
        raise Conflict(f"{user.username} is already deactivated.")
    if actor is not None and actor.id == user.id:
        raise Conflict("You cannot deactivate your own account.")
    audit.record(
        session,
        actor=actor,
        at=now,
        action="user.deactivated",
        entity_type="user",
        entity_id=user.id,
        changes={"active": (True, False)},
        reason=reason,
        reason_required=True,
    )
    user.active = False
    user.deactivated_at = now
    for token in user.tokens:
        if not token.revoked:
            token.revoked_at = now
            token.revoked_by_id = actor.id if actor else None
    end_all_sessions(session, user=user)
    session.flush()


def unlock_user(
    session: DbSession, *, actor: User | None, now: dt.datetime, user: User, reason: str | None
) -> None:
    """Lift a lockout after repeated failures; an administrator does this, with a reason."""
    if not user.locked:
        raise Conflict(f"{user.username} is not locked.")
    audit.record(
        session,
        actor=actor,
        at=now,
        action="user.unlocked",
        entity_type="user",
        entity_id=user.id,
        changes={"locked_at": (user.locked_at, None), "failed_attempts": (user.failed_attempts, 0)},
        reason=reason,
        reason_required=True,
    )
    user.locked_at = None
    user.failed_attempts = 0
    session.flush()


def change_password(
    session: DbSession,
    *,
    user: User,
    now: dt.datetime,
    current_password: str,
    new_password: str,
    policy: AccountPolicy,
) -> None:
    """A user changes their own password, proving the current one. Every session of the
    user ends, the one that made the change included: a copied cookie dies with the old
    password, and the user logs in again with the new one. A password an administrator set
    (``must_change_password``) cannot be kept."""
    verify_password(session, user=user, password=current_password, purpose="password change")
    if user.must_change_password and new_password == current_password:
        raise InvalidInput(
            "An administrator set the current password: choose a different one.",
            errors={"new_password": ["The same as the password an administrator set."]},
        )
    _check_password_policy(new_password, policy, username=user.username, full_name=user.full_name)
    user.password_hash = generate_password_hash(new_password, method=policy.password_hash_method)
    user.must_change_password = False
    end_all_sessions(session, user=user)
    audit.record(
        session,
        actor=user,
        at=now,
        action="user.password_changed",
        entity_type="user",
        entity_id=user.id,
    )


def verify_password(session: DbSession, *, user: User, password: str, purpose: str) -> None:
    """Re-authenticate ``user``; raise ``CredentialsRejected`` unless the password is right
    and the account may act. A success resets the count of consecutive failures."""
    if not user.active:
        raise CredentialsRejected(
            "This account is deactivated.", username=user.username, purpose=purpose, counts=False
        )
    if user.locked:
        raise CredentialsRejected(
            "This account is locked after repeated failed attempts; an administrator must "
            "unlock it.",
            username=user.username,
            purpose=purpose,
            counts=False,
        )
    if not check_password_hash(user.password_hash, password):
        raise CredentialsRejected(
            "The password is not correct.", username=user.username, purpose=purpose
        )
    if user.failed_attempts:
        user.failed_attempts = 0
        session.flush()


def authenticate(session: DbSession, *, username: str, password: str, now: dt.datetime) -> User:
    """Log in: the user if the username and password are right and the account may act."""
    user = find_user(session, username)
    if user is None:
        raise CredentialsRejected(
            "The username or password is not correct.",
            username=normalise_username(username)[:40],
            purpose="login",
        )
    try:
        verify_password(session, user=user, password=password, purpose="login")
    except CredentialsRejected as exc:
        if exc.counts:
            exc.detail = "The username or password is not correct."
            exc.args = (exc.detail,)
        raise
    audit.record(
        session, actor=user, at=now, action="login.succeeded", entity_type="user", entity_id=user.id
    )
    return user


def record_failed_authentication(
    session: DbSession, *, failure: CredentialsRejected, now: dt.datetime, policy: AccountPolicy
) -> bool:
    """Audit a rejected authentication and count it toward the lockout.

    Runs in a transaction of its own after the use case was rolled back. Returns whether
    this attempt locked the account.
    """
    user = find_user(session, failure.username)
    action = f"{failure.purpose.replace(' ', '_')}.failed"
    if user is None:
        audit.record(
            session,
            actor=None,
            at=now,
            action=f"{action}_unknown_user",
            entity_type="user",
            entity_id=failure.username or "(empty)",
        )
        return False
    changes: dict[str, tuple[Any, Any]] = {}
    locked_now = False
    if failure.counts:
        changes["failed_attempts"] = (user.failed_attempts, user.failed_attempts + 1)
        user.failed_attempts += 1
        if user.failed_attempts >= policy.lockout_threshold and not user.locked:
            user.locked_at = now
            changes["locked_at"] = (None, now)
            locked_now = True
            end_all_sessions(session, user=user)  # an unlock does not revive them
    audit.record(
        session,
        actor=user,
        at=now,
        action=action,
        entity_type="user",
        entity_id=user.id,
        changes=changes,
        reason=failure.detail,
    )
    if locked_now:
        audit.record(
            session,
            actor=None,
            at=now,
            action="user.locked",
            entity_type="user",
            entity_id=user.id,
            reason=f"{user.failed_attempts} consecutive failed authentications",
        )
    session.flush()
    return locked_now


# --- web sessions -----------------------------------------------------------------------


def start_session(
    session: DbSession, *, user: User, now: dt.datetime, lifetime: dt.timedelta
) -> str:
    """A new server-side session of ``user`` at login: the random token its cookie carries
    (only its SHA-256 is stored). The user's rows older than the cookie's own ``lifetime``
    are removed on the way, since no cookie can still name them."""
    session.execute(
        delete(UserSession).where(
            UserSession.user_id == user.id, UserSession.created_at < now - lifetime
        )
    )
    token = secrets.token_urlsafe(32)
    session.add(UserSession(user_id=user.id, token_hash=hash_token(token), created_at=now))
    session.flush()
    return token


def session_user(session: DbSession, *, user_id: int, token: str | None) -> User | None:
    """The user of a session cookie: only while its session exists on the server and the
    account may act (not deactivated, not locked)."""
    if not token:
        return None
    user = session.execute(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(User.id == user_id, UserSession.token_hash == hash_token(token))
    ).scalar_one_or_none()
    return user if user is not None and user.is_active else None


def end_session(session: DbSession, *, token: str | None) -> None:
    """End one session on the server (logout, idle timeout): its cookie opens nothing more.
    The user's other sessions, on other workstations, go on."""
    if token:
        session.execute(delete(UserSession).where(UserSession.token_hash == hash_token(token)))


def end_all_sessions(session: DbSession, *, user: User) -> None:
    """End every session of ``user`` on the server: after a password change, a role change,
    a deactivation or a lockout no cookie issued before it opens a page. API tokens are not
    sessions; they have their own revocation (and a deactivation revokes them)."""
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))


# --- API tokens -------------------------------------------------------------------------


def hash_token(token: str) -> str:
    """Tokens are 256-bit random values, so a plain SHA-256 is a safe way to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


#: ``read``: safe methods only (GET, HEAD, OPTIONS), for integrations; ``full``: devices
TOKEN_SCOPES = ("read", "full")
#: the HTTP methods a read-scoped token may use
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def create_token(
    session: DbSession,
    *,
    user: User,
    now: dt.datetime,
    name: str,
    scope: str = "full",
    days: int = 90,
    max_days: int = 365,
    reason: str | None = None,
) -> tuple[ApiToken, str]:
    """A new bearer token for ``user``, valid ``days`` days (at most ``max_days``) in
    ``scope``; the token text is returned once and never stored."""
    name = name.strip()
    if not name:
        raise InvalidInput(
            "Give the token a name, such as the device that will use it.",
            errors={"name": ["Required."]},
        )
    if scope not in TOKEN_SCOPES:
        raise InvalidInput(
            f"A token's scope is one of {', '.join(TOKEN_SCOPES)}.",
            errors={"scope": [f"One of {', '.join(TOKEN_SCOPES)}."]},
        )
    if not 1 <= days <= max_days:
        raise InvalidInput(
            f"A token lives from 1 to {max_days} days.",
            errors={"days": [f"From 1 to {max_days}."]},
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name[:80],
        prefix=token[: len(TOKEN_PREFIX) + 6],
        token_hash=hash_token(token),
        created_at=now,
        expires_at=now + dt.timedelta(days=days),
        scope=scope,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=user,
        at=now,
        action="api_token.created",
        entity_type="api_token",
        entity_id=row.id,
        changes={
            "name": (None, row.name),
            "prefix": (None, row.prefix),
            "scope": (None, row.scope),
            "expires_at": (None, row.expires_at),
        },
        reason=reason,
    )
    return row, token


def list_tokens(session: DbSession, user: User) -> list[ApiToken]:
    return list(
        session.execute(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
        ).scalars()
    )


def revoke_token(
    session: DbSession,
    *,
    actor: User | None,
    now: dt.datetime,
    token_id: int,
    reason: str | None = None,
) -> ApiToken:
    """Revoke a token; its holder or an administrator may (``actor`` None: the system, from
    the CLI, with a reason), and it cannot be undone."""
    token = session.get(ApiToken, token_id)
    if token is None or (
        actor is not None
        and token.user_id != actor.id
        and not has_permission(actor.roles, Permission.MANAGE_USERS)
    ):
        raise NotFound(f"There is no API token #{token_id} of yours.")
    if token.revoked:
        raise Conflict(f"API token {token.prefix}… is already revoked.")
    token.revoked_at = now
    token.revoked_by_id = actor.id if actor is not None else None
    audit.record(
        session,
        actor=actor,
        at=now,
        action="api_token.revoked",
        entity_type="api_token",
        entity_id=token.id,
        changes={"revoked_at": (None, now)},
        reason=reason,
    )
    return token


def valid_token(session: DbSession, token: str, now: dt.datetime) -> ApiToken | None:
    """The row of a bearer token that may authenticate now, or None for an unknown, expired
    or revoked token or one of an inactive account. Its use is recorded."""
    row = session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).scalar_one_or_none()
    if row is None or row.revoked or row.expired(now) or not row.user.is_active:
        return None
    # Record use at most once a minute so reads do not turn into writes on every call.
    if row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=1):
        row.last_used_at = now
    return row


def scope_allows(scope: str, method: str) -> bool:
    """Whether a token of ``scope`` may make a request of HTTP ``method``: a read token only
    reads."""
    return scope == "full" or method.upper() in READ_METHODS


def count_users(session: DbSession) -> int:
    return session.execute(select(func.count(User.id))).scalar_one()
