"""Accounts: users, roles, authentication, lockout and API tokens (DOMAIN.md §6).

Accounts are deactivated, never deleted, so a username can never be reused. Every failed
authentication is recorded even though the use case that asked for it is rolled back (see
``CredentialsRejected``), and what it counts toward depends on who could have made it:

- a **login** (the login page, and ``cellchain tokens create``) may be anyone's guess, so it
  never locks an account: a run of failures makes the name, and the client address, wait a
  short, doubling back-off (``core.throttle``);
- a password **re-entered by a logged-in user** (an e-signature, a password change) counts
  toward the lockout of 21 CFR 11.300(d), except that an account is never locked when that
  would leave one of its roles with no active, unlocked holder: such an account waits the
  back-off instead (``lock_withheld_for``).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, joinedload, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from werkzeug.security import check_password_hash, generate_password_hash

from cellchain.core import audit, passwords, throttle
from cellchain.core.driver import DriverStatement
from cellchain.core.i18n import LazyText, Translated, _, english_of, lazy, ngettext
from cellchain.core.models import ApiToken, User, UserRole, UserSession
from cellchain.core.records import get_or_404
from cellchain.core.roles import (
    ROLE_LABELS,
    SIGNING_ROLES,
    Permission,
    Role,
    has_permission,
    role_conflict,
    roles_allowed,
)
from cellchain.core.throttle import Scope
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

    #: failed passwords in a row that lock an account (re-entered passwords only) and,
    #: within ``ACCOUNT_WINDOW``, start a back-off of the name
    lockout_threshold: int = 5
    password_min_length: int = 12
    password_hash_method: str = "scrypt"
    #: failed logins from one client address within ``ADDRESS_WINDOW`` that start its back-off
    address_threshold: int = 20
    #: the first back-off; each one in a row doubles, up to ``backoff_max_seconds``
    backoff_seconds: int = 30
    backoff_max_seconds: int = 900

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AccountPolicy:
        return cls(
            lockout_threshold=config["LOCKOUT_THRESHOLD"],
            password_min_length=config["PASSWORD_MIN_LENGTH"],
            password_hash_method=config["PASSWORD_HASH_METHOD"],
            address_threshold=config.get("LOGIN_ADDRESS_THRESHOLD", cls.address_threshold),
            backoff_seconds=config.get("LOGIN_BACKOFF_SECONDS", cls.backoff_seconds),
            backoff_max_seconds=config.get("LOGIN_BACKOFF_MAX_SECONDS", cls.backoff_max_seconds),
        )

    def throttle_rule(self, scope: Scope) -> throttle.Rule:
        """When the counter of ``scope`` makes its key wait, and for how long."""
        backoff = dt.timedelta(seconds=self.backoff_seconds)
        cap = dt.timedelta(seconds=max(self.backoff_max_seconds, self.backoff_seconds))
        if scope is Scope.ADDRESS:
            return throttle.Rule(self.address_threshold, ADDRESS_WINDOW, backoff, cap)
        return throttle.Rule(self.lockout_threshold, ACCOUNT_WINDOW, backoff, cap)


#: failures of one name (or signer) are counted within this window
ACCOUNT_WINDOW = dt.timedelta(minutes=15)
#: failures from one client address are counted within this window
ADDRESS_WINDOW = dt.timedelta(minutes=10)
#: purposes whose password may be typed by anyone: they never lock, they wait
LOGIN_PURPOSES = frozenset({"login", "token creation"})
#: the one answer to a wrong password and to a name without an account
LOGIN_FAILED = lazy("The username or password is not correct.")


class CredentialsRejected(AuthenticationFailed):
    """A password was wrong, or the account cannot authenticate.

    The interface layer rolls the use case back and then calls
    ``record_failed_authentication`` in a transaction of its own, so the attempt is audited
    and counted however the use case ends.
    """

    def __init__(
        self,
        detail: str,
        *,
        username: str,
        purpose: str,
        counts: bool = True,
        address: str | None = None,
    ) -> None:
        super().__init__(detail)
        #: the name as typed (login) or the account's username
        self.username = username
        self.purpose = purpose
        #: whether this attempt counts toward the back-off and lockout (a wrong password does)
        self.counts = counts
        #: the client address of a login attempt (None elsewhere)
        self.address = address


class TooManyAttempts(CredentialsRejected):
    """Refused unchecked: the name, the client address or the signer waits a back-off after
    repeated failures. 429 with ``Retry-After`` on the API; the login page says when."""

    status = 429
    title: str | LazyText = lazy("Too many failed attempts")
    type_slug = "too-many-attempts"

    def __init__(
        self,
        block: throttle.Block,
        *,
        now: dt.datetime,
        username: str,
        purpose: str,
        address: str | None = None,
    ) -> None:
        #: whole seconds to wait (the ``Retry-After`` header)
        self.retry_after = block.retry_after(now)
        #: when the next attempt is checked again
        self.until = block.until
        self.scope = block.scope
        wait = _wait_in_words(self.retry_after)
        if block.scope is Scope.ADDRESS:
            detail = _(
                "Too many failed logins from this network address. Try again in %(wait)s.",
                wait=wait,
            )
        elif block.scope is Scope.ACCOUNT:
            detail = _(
                "Too many failed logins for this username. Try again in %(wait)s.", wait=wait
            )
        else:
            detail = _(
                "Too many wrong passwords for this account. Try again in %(wait)s.", wait=wait
            )
        super().__init__(detail, username=username, purpose=purpose, counts=False, address=address)


def _wait_in_words(seconds: int) -> str:
    if seconds < 120:
        return ngettext("%(num)d second", "%(num)d seconds", seconds)
    return ngettext("%(num)d minute", "%(num)d minutes", -(-seconds // 60))


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
                _(
                    "%(role)s is not a role; roles are %(roles)s.",
                    role=repr(role),
                    roles=", ".join(r.value for r in Role),
                ),
                errors={"roles": [_("Unknown role %(role)s.", role=repr(role))]},
            ) from exc
    if not parsed:
        raise InvalidInput(
            _("A user needs at least one role."), errors={"roles": [_("Choose a role.")]}
        )
    return parsed


def _refuse_role_conflict(roles: set[Role]) -> None:
    """Administration is never combined with a signing role (no super-user, DOMAIN.md §7), nor
    managing the randomization with enrolling patients (allocation concealment, issue 19)."""
    conflict = role_conflict(roles)
    if not conflict:
        return
    if Role.ADMIN in roles and conflict & SIGNING_ROLES:
        names = _role_names(conflict)
        message = _(
            "Administrator and %(names)s are never held by one account: an administrator "
            "manages accounts and must not sign as a signing role. Give the signing role to "
            "another person's account.",
            names=names,
        )
        raise Conflict(
            message,
            errors={
                "roles": [
                    _(
                        "Administrator cannot be combined with QA, QC analyst, Investigator or "
                        "Trial statistician."
                    )
                ]
            },
            title=_("Administration and signing roles are never combined"),
        )
    enrolling = _role_names(roles & roles_allowed(Permission.ENROL_PATIENTS))
    raise Conflict(
        _(
            "Trial statistician and %(enrolling)s are never held by one account: the "
            "statistician sees the unused randomization slots' arms, and whoever knows the "
            "next arm must not enrol the next patient (allocation concealment). Give the roles "
            "to two people.",
            enrolling=enrolling,
        ),
        errors={
            "roles": [
                _(
                    "Trial statistician cannot be combined with a role that enrols patients "
                    "(%(enrolling)s).",
                    enrolling=enrolling,
                )
            ]
        },
        title=_("Randomization and enrolment are never combined"),
    )


def _role_names(roles: Iterable[Role]) -> str:
    """The roles' names joined with "and" in the reader's language, for a sentence whose
    English (``english_of``) names them in English."""
    ordered = sorted(roles, key=lambda role: str(ROLE_LABELS[role].message))
    shown = Translated(_(" and ").join(role.label for role in ordered))
    shown.english = " and ".join(ROLE_LABELS[role].message for role in ordered)
    return shown


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
        raise NotFound(_("There is no user %(name)s.", name=repr(typed)))
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
            _(
                "A username is 2–40 characters: lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter."
            ),
            errors={"username": [_("Not a valid username.")]},
        )
    full_name = full_name.strip()
    if not full_name:
        raise InvalidInput(
            _("The full name is printed with every signature; it is required."),
            errors={"full_name": [_("Required.")]},
        )
    role_set = _parse_roles(roles)
    _refuse_role_conflict(role_set)
    _check_password_policy(password, policy, username=username, full_name=full_name)
    if find_user(session, username) is not None:
        raise Conflict(
            _(
                "The username %(username)s has already been used; usernames are never reused.",
                username=repr(username),
            ),
            errors={"username": [_("Already used.")]},
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
            _("Nobody changes their own roles; another administrator must make the change."),
            errors={"roles": [_("You cannot change your own roles.")]},
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
        raise Conflict(_("%(username)s is already deactivated.", username=user.username))
    if actor is not None and actor.id == user.id:
        raise Conflict(_("You cannot deactivate your own account."))
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
        raise Conflict(_("%(username)s is not locked.", username=user.username))
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
    throttle.reset(session, Scope.REAUTH, throttle.account_key(user.username))
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
    verify_password(
        session, user=user, password=current_password, purpose="password change", now=now
    )
    if user.must_change_password and new_password == current_password:
        raise InvalidInput(
            _("An administrator set the current password: choose a different one."),
            errors={"new_password": [_("The same as the password an administrator set.")]},
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


def choose_language(session: DbSession, *, user: User, now: dt.datetime, language: str) -> None:
    """A user chooses the language of their pages, messages, e-mails and PDFs
    (``core.i18n.LANGUAGES``); the choice is theirs on every device from the next login."""
    from cellchain.core.i18n import LANGUAGES

    if language not in LANGUAGES:
        raise InvalidInput(
            _(
                "cellchain does not speak %(language)s; choose one of %(languages)s.",
                language=repr(language),
                languages=", ".join(LANGUAGES),
            ),
            errors={"language": [_("One of %(choices)s.", choices=", ".join(LANGUAGES))]},
        )
    if user.language == language:
        return
    changes = {"language": (user.language, language)}
    user.language = language
    audit.record(
        session,
        actor=user,
        at=now,
        action="user.language_chosen",
        entity_type="user",
        entity_id=user.id,
        changes=changes,
    )


def _throttle_keys(purpose: str, typed: str, address: str | None) -> list[tuple[Scope, str]]:
    """The counters an attempt of ``purpose`` for the name ``typed`` is held to."""
    if purpose not in LOGIN_PURPOSES:
        return [(Scope.REAUTH, throttle.account_key(typed))]
    keys = [(Scope.ACCOUNT, throttle.account_key(typed))]
    address_key = throttle.address_key(address)
    if address_key is not None:
        keys.append((Scope.ADDRESS, address_key))
    return keys


def _refuse_if_throttled(
    session: DbSession,
    keys: list[tuple[Scope, str]],
    *,
    now: dt.datetime,
    username: str,
    purpose: str,
    address: str | None,
) -> None:
    """Refuse, before any password is checked, an attempt whose name, address or signer
    waits a back-off."""
    block = throttle.current_block(session, keys, now)
    if block is not None:
        raise TooManyAttempts(block, now=now, username=username, purpose=purpose, address=address)


#: a hash of a random password per hashing method, verified for a name without an account
_DUMMY_HASHES: dict[str, str] = {}


def _password_matches(user: User | None, password: str, method: str) -> bool:
    """Exactly one password-hash verification, whether or not the account exists: for a
    name without one, a dummy hash made with the site's method is verified, so that an
    unknown name costs the same work as a wrong password and answers in the same time."""
    if user is None:
        if method not in _DUMMY_HASHES:
            _DUMMY_HASHES[method] = generate_password_hash(secrets.token_urlsafe(16), method=method)
        check_password_hash(_DUMMY_HASHES[method], password)
        return False
    return check_password_hash(user.password_hash, password)


def _refuse_unless_may_act(user: User, purpose: str) -> None:
    """After the right password: a deactivated or locked account still may not act. Said
    only to someone who knew the password, so it reveals nothing to a guesser."""
    if not user.active:
        raise CredentialsRejected(
            _("This account is deactivated."),
            username=user.username,
            purpose=purpose,
            counts=False,
        )
    if user.locked:
        raise CredentialsRejected(
            _(
                "This account is locked after repeated failed attempts; an administrator must "
                "unlock it."
            ),
            username=user.username,
            purpose=purpose,
            counts=False,
        )


def _succeeded(session: DbSession, user: User, keys: list[tuple[Scope, str]]) -> int:
    """A right password resets the count of consecutive failures and the back-off of the
    name or signer (never the address's: an attacker's own account must not clear it).
    Returns the attempts the back-off had refused and not yet reported."""
    if user.failed_attempts:
        user.failed_attempts = 0
    refused = sum(
        throttle.reset(session, scope, key) for scope, key in keys if scope is not Scope.ADDRESS
    )
    session.flush()
    return refused


def verify_password(
    session: DbSession, *, user: User, password: str, purpose: str, now: dt.datetime
) -> None:
    """Re-authenticate ``user``; raise ``CredentialsRejected`` unless the password is right
    and the account may act (``TooManyAttempts``, unchecked, while it waits a back-off).
    A success resets the count of consecutive failures and the back-off."""
    keys = _throttle_keys(purpose, user.username, None)
    _refuse_if_throttled(
        session, keys, now=now, username=user.username, purpose=purpose, address=None
    )
    if not check_password_hash(user.password_hash, password):
        raise CredentialsRejected(
            _("The password is not correct."), username=user.username, purpose=purpose
        )
    _refuse_unless_may_act(user, purpose)
    _succeeded(session, user, keys)


def authenticate(
    session: DbSession,
    *,
    username: str,
    password: str,
    now: dt.datetime,
    policy: AccountPolicy,
    address: str | None = None,
) -> User:
    """Log in: the user if the username and password are right and the account may act.

    A name without an account and a wrong password take the same path (one hash
    verification each) and get the same answer; so do their back-offs, since a name is
    counted whether or not it has an account. ``address``: the client address as the app
    sees it (behind a reverse proxy, ``TRUSTED_PROXIES`` must be set, see docs/security.md).
    """
    typed = normalise_username(username)
    keys = _throttle_keys("login", typed, address)
    _refuse_if_throttled(session, keys, now=now, username=typed, purpose="login", address=address)
    user = find_user(session, typed)
    if not _password_matches(user, password, policy.password_hash_method) or user is None:
        raise CredentialsRejected(
            str(LOGIN_FAILED), username=typed, purpose="login", address=address
        )
    _refuse_unless_may_act(user, "login")
    refused = _succeeded(session, user, keys)
    audit.record(
        session,
        actor=user,
        at=now,
        action="login.succeeded",
        entity_type="user",
        entity_id=user.id,
        changes={"refused_while_throttled": (refused, 0)} if refused else None,
    )
    return user


def lock_withheld_for(session: DbSession, user: User) -> list[Role]:
    """The roles of ``user`` that no other active, unlocked account holds: locking ``user``
    would leave nobody able to do that job (the only QA could no longer release, the only
    administrator could no longer unlock anyone). Such an account is not locked."""
    others = set(
        session.execute(
            select(UserRole.role)
            .join(User, User.id == UserRole.user_id)
            .where(
                User.id != user.id,
                User.active.is_(True),
                User.locked_at.is_(None),
                UserRole.role.in_([role.value for role in user.roles]),
            )
            .distinct()
        ).scalars()
    )
    return sorted(role for role in user.roles if role.value not in others)


def _entity_of(scope: Scope, key: str, user: User | None) -> tuple[str, str | int]:
    if scope is Scope.ADDRESS:
        return "client_address", key
    return "user", user.id if user is not None else (key[:40] or "(empty)")


def record_failed_authentication(
    session: DbSession, *, failure: CredentialsRejected, now: dt.datetime, policy: AccountPolicy
) -> bool:
    """Audit a rejected authentication and count it toward the back-off (and, for a
    password re-entered by a logged-in user, the lockout).

    Runs in a transaction of its own after the use case was rolled back. An attempt refused
    during a back-off is only counted (no audit entry each: a flood must not become one
    entry per request); the start of each back-off is audited, with the attempts the one
    before it refused. Returns whether this attempt locked the account.
    """
    keys = _throttle_keys(failure.purpose, failure.username, failure.address)
    if isinstance(failure, TooManyAttempts):
        throttle.count_refusal(session, keys, now)
        session.flush()
        return False
    user = find_user(session, failure.username)
    action = failure.purpose.replace(" ", "_")
    counted = (
        [
            throttle.record_failure(session, scope, key, now=now, rule=policy.throttle_rule(scope))
            for scope, key in keys
        ]
        if failure.counts
        else []
    )
    changes: dict[str, tuple[Any, Any]] = {}
    if counted:
        changes["failures_in_window"] = (counted[0].count - 1, counted[0].count)
    reauth = failure.purpose not in LOGIN_PURPOSES
    counts_to_lockout = (
        reauth and failure.counts and user is not None and user.active and not user.locked
    )
    if user is not None and counts_to_lockout:
        changes["failed_attempts"] = (user.failed_attempts, user.failed_attempts + 1)
        user.failed_attempts += 1
    if user is None:
        audit.record(
            session,
            actor=None,
            at=now,
            action=f"{action}.failed_unknown_user",
            entity_type="user",
            entity_id=failure.username[:40] or "(empty)",
            changes=changes,
        )
    else:
        audit.record(
            session,
            actor=user,
            at=now,
            action=f"{action}.failed",
            entity_type="user",
            entity_id=user.id,
            changes=changes,
            reason=english_of(failure.detail),  # the record reads in English
        )
    locked_now = False
    if user is not None and counts_to_lockout and user.failed_attempts >= policy.lockout_threshold:
        locked_now = _lock_or_withhold(session, user=user, now=now, policy=policy)
    for done in counted:
        if done.blocked_until is not None and not locked_now:
            _audit_backoff(session, failure=failure, done=done, user=user, now=now, policy=policy)
    memory = max(policy.throttle_rule(scope).memory for scope in Scope)
    for scope, key, refused in throttle.purge(session, now=now, memory=memory):
        owner = find_user(session, key) if scope is not Scope.ADDRESS else None
        entity_type, entity_id = _entity_of(scope, key, owner)
        audit.record(
            session,
            actor=None,
            at=now,
            action="login_throttle.refusals_counted",
            entity_type=entity_type,
            entity_id=entity_id,
            changes={"refused_while_throttled": (refused, 0)},
            reason=f"attempts refused unchecked during a back-off of {scope.value} {key!r}",
        )
    session.flush()
    return locked_now


def _lock_or_withhold(
    session: DbSession, *, user: User, now: dt.datetime, policy: AccountPolicy
) -> bool:
    """Lock ``user`` after repeated failed re-entered passwords, unless that would leave
    one of its roles without an active holder; returns whether it was locked."""
    sole = lock_withheld_for(session, user)
    if sole:
        if user.failed_attempts == policy.lockout_threshold:  # once per run of failures
            # the record reads in English whoever's language is active
            names = ", ".join(ROLE_LABELS[role].message for role in sole)
            audit.record(
                session,
                actor=None,
                at=now,
                action="user.lock_withheld",
                entity_type="user",
                entity_id=user.id,
                reason=(
                    f"{user.failed_attempts} consecutive failed authentications; not locked "
                    f"because no other active account holds {names}: the back-off applies"
                ),
            )
        return False
    user.locked_at = now
    end_all_sessions(session, user=user)  # an unlock does not revive them
    audit.record(
        session,
        actor=None,
        at=now,
        action="user.locked",
        entity_type="user",
        entity_id=user.id,
        changes={"locked_at": (None, now)},
        reason=f"{user.failed_attempts} consecutive failed authentications",
    )
    return True


def _audit_backoff(
    session: DbSession,
    *,
    failure: CredentialsRejected,
    done: throttle.Failure,
    user: User | None,
    now: dt.datetime,
    policy: AccountPolicy,
) -> None:
    """One entry per back-off started: who or what waits, until when, and how many attempts
    the previous back-off of the same key refused unchecked."""
    assert done.blocked_until is not None
    rule = policy.throttle_rule(done.scope)
    seconds = int((done.blocked_until - now).total_seconds())
    what = "client address" if done.scope is Scope.ADDRESS else "name"
    entity_type, entity_id = _entity_of(done.scope, done.key, user)
    changes: dict[str, tuple[Any, Any]] = {"blocked_until": (None, done.blocked_until)}
    if done.refused:
        changes["refused_while_throttled"] = (done.refused, 0)
    audit.record(
        session,
        actor=None,
        at=now,
        action=f"{failure.purpose.replace(' ', '_')}.throttled",
        entity_type=entity_type,
        entity_id=entity_id,
        changes=changes,
        reason=(
            f"{rule.threshold} failed attempts within {int(rule.window.total_seconds()) // 60} "
            f"minutes for the {what} {done.key!r}: refused unchecked for {seconds} s"
        ),
    )


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
            _("Give the token a name, such as the device that will use it."),
            errors={"name": [_("Required.")]},
        )
    if scope not in TOKEN_SCOPES:
        raise InvalidInput(
            _("A token's scope is one of %(scopes)s.", scopes=", ".join(TOKEN_SCOPES)),
            errors={"scope": [_("One of %(choices)s.", choices=", ".join(TOKEN_SCOPES))]},
        )
    if not 1 <= days <= max_days:
        raise InvalidInput(
            _("A token lives from 1 to %(most)s days.", most=max_days),
            errors={"days": [_("From 1 to %(most)s.", most=max_days)]},
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
        raise NotFound(_("There is no API token #%(id)s of yours.", id=token_id))
    if token.revoked:
        raise Conflict(_("API token %(prefix)s… is already revoked.", prefix=token.prefix))
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


@functools.cache
def _token_statement() -> Select[ApiToken]:
    """The token of ``:token_hash`` with its user and the user's roles, joined. Built once:
    composing it (the loader options above all) cost more than a third of the CPU of an API
    request's authentication (issue 20); SQLAlchemy caches its SQL either way."""
    return (
        select(ApiToken)
        .where(ApiToken.token_hash == bindparam("token_hash"))
        .options(joinedload(ApiToken.user).joinedload(User.role_rows))
    )


def valid_token(session: DbSession, token: str, now: dt.datetime) -> ApiToken | None:
    """The row of a bearer token that may authenticate now, or None for an unknown, expired
    or revoked token or one of an inactive account. Its use is recorded.

    One statement: the token with its user and the user's roles, joined, since every API
    request asks for all three (issue 20: they were three queries).
    """
    row = (
        session.execute(_token_statement(), {"token_hash": hash_token(token)})
        .unique()
        .scalar_one_or_none()
    )
    if row is None or row.revoked or row.expired(now) or not row.user.is_active:
        return None
    # Record use at most once a minute so reads do not turn into writes on every call.
    if token_use_due(row.last_used_at, now):
        row.last_used_at = now
    return row


@dataclass(frozen=True, slots=True)
class TokenHolder:
    """What a valid bearer token grants a request (``token_holder``): its user, loaded in
    the session with the user's roles as ``valid_token`` loads them, the token's scope, and
    whether its use is due to be written (``token_use_due``)."""

    user: User
    token_id: int
    scope: str
    use_due: bool


@functools.cache
def _holder_statement() -> DriverStatement:
    """The token of ``:token_hash`` with every column of its user, one row per role of the
    user (``valid_token``'s statement, as plain rows: issue 20). Built once."""
    tokens, users, roles = ApiToken.__table__, User.__table__, UserRole.__table__
    return DriverStatement(
        select(
            tokens.c.id.label("token_id"),
            tokens.c.scope.label("token_scope"),
            tokens.c.expires_at.label("token_expires_at"),
            tokens.c.revoked_at.label("token_revoked_at"),
            tokens.c.last_used_at.label("token_last_used_at"),
            *(users.c[key].label(f"user_{key}") for key in _USER_KEYS),
            roles.c.role.label("role"),
            roles.c.audit_seq.label("role_audit_seq"),
        )
        .select_from(
            tokens.join(users, users.c.id == tokens.c.user_id).outerjoin(
                roles, roles.c.user_id == users.c.id
            )
        )
        .where(tokens.c.token_hash == bindparam("token_hash"))
    )


#: every column of ``users`` (each mapped under its own name), in the table's order
_USER_KEYS = tuple(column.key for column in User.__table__.c)


def _as_loaded(session: Session, obj: Any) -> None:
    """Make ``obj`` (a new instance whose every column is set) persistent in ``session`` as
    if a query had loaded it: no history, no flush (SQLAlchemy's
    ``make_transient_to_detached``, then ``Session.add`` of a detached instance)."""
    make_transient_to_detached(obj)
    session.add(obj)


def token_holder(session: DbSession, token: str, now: dt.datetime) -> TokenHolder | None:
    """``valid_token`` in one plain-row statement on the session's connection (issue 20):
    the same rules, the same user in the session (every column and the roles loaded, no
    history), without the ORM's query. Nothing is written: the caller records the use when
    ``use_due`` (``record_token_use``). When the session already holds the user or one of
    their roles (not the case at the start of a request), ``valid_token`` loads them, and
    sets the token's last use on its row when due (``use_due`` is then False: the session's
    flush writes it)."""
    plain = session() if callable(session) else session
    rows = _holder_statement().all(plain.connection(), {"token_hash": hash_token(token)})
    if not rows:
        return None
    first = rows[0]
    if first.token_revoked_at is not None or now >= first.token_expires_at:
        return None
    if not first.user_active or first.user_locked_at is not None:  # User.is_active
        return None
    roles = [(row.role, row.role_audit_seq) for row in rows if row.role is not None]
    identity = plain.identity_map
    if identity_key(User, first.user_id) in identity or any(
        identity_key(UserRole, (first.user_id, role)) in identity for role, _seq in roles
    ):
        row = valid_token(plain, token, now)
        return None if row is None else TokenHolder(row.user, row.id, row.scope, False)
    user = User(**{key: getattr(first, f"user_{key}") for key in _USER_KEYS})
    role_rows = [UserRole(user_id=user.id, role=role, audit_seq=seq) for role, seq in roles]
    for role_row in role_rows:
        make_transient_to_detached(role_row)
    set_committed_value(user, "role_rows", role_rows)
    _as_loaded(plain, user)
    return TokenHolder(
        user, first.token_id, first.token_scope, token_use_due(first.token_last_used_at, now)
    )


def scope_allows(scope: str, method: str) -> bool:
    """Whether a token of ``scope`` may make a request of HTTP ``method``: a read token only
    reads."""
    return scope == "full" or method.upper() in READ_METHODS


# --- a bearer token judged in the statement of the request's answer (issue 20) ------------


@functools.cache
def bearer_statement() -> Select[Any]:
    """The token of ``:token_hash`` as plain columns with what every rule of a bearer request
    reads: its expiry, revocation, scope and last use; its user's active and locked state,
    whether an administrator set their password; their roles, joined by commas. A read that
    answers in one statement (``chain/scanning.scan_statement``) adds its own columns and
    joins to this one; ``bearer_may_read`` judges the row. Built once."""
    tokens = ApiToken.__table__
    users = User.__table__
    roles = UserRole.__table__
    held = (
        select(func.aggregate_strings(roles.c.role, ","))
        .where(roles.c.user_id == users.c.id)
        .scalar_subquery()
    )
    return (
        select(
            tokens.c.id.label("token_id"),
            tokens.c.scope.label("token_scope"),
            tokens.c.expires_at.label("token_expires_at"),
            tokens.c.revoked_at.label("token_revoked_at"),
            tokens.c.last_used_at.label("token_last_used_at"),
            users.c.active.label("user_active"),
            users.c.locked_at.label("user_locked_at"),
            users.c.must_change_password.label("user_must_change_password"),
            held.label("user_roles"),
        )
        .select_from(tokens.join(users, users.c.id == tokens.c.user_id))
        .where(tokens.c.token_hash == bindparam("token_hash"))
    )


def bearer_may_read(row: Any, *, now: dt.datetime, method: str, permission: Permission) -> bool:
    """Whether the token of a ``bearer_statement`` row lets its holder make this request:
    every rule the request hooks and ``http.requires`` apply, in one place. The token is
    neither revoked nor expired, its account is active and not locked (``valid_token``),
    its scope allows ``method`` (``scope_allows``), no administrator-set password waits to be
    changed (``web/first_login``), and the user's roles, less any suspended combination,
    grant ``permission`` (``roles.has_permission``). False for any refusal: the caller then
    takes the ordinary path, which answers with that refusal's own error."""
    if row.token_revoked_at is not None or now >= row.token_expires_at:
        return False
    if not row.user_active or row.user_locked_at is not None:
        return False
    if not scope_allows(row.token_scope, method) or row.user_must_change_password:
        return False
    held = frozenset(Role(name) for name in (row.user_roles or "").split(",") if name)
    return has_permission(held, permission)


def token_use_due(last_used_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a token's use at ``now`` is to be written: at most once a minute, so reads do
    not turn into writes on every call (the rule of ``valid_token``)."""
    return last_used_at is None or now - last_used_at > dt.timedelta(minutes=1)


@functools.cache
def _token_use_statement() -> DriverStatement:
    return DriverStatement(
        update(ApiToken)
        .where(ApiToken.id == bindparam("token_id"))
        .values(last_used_at=bindparam("now", type_=ApiToken.__table__.c.last_used_at.type))
    )


def record_token_use(connection: Connection, *, token_id: int, now: dt.datetime) -> None:
    """Write a token's last use on ``connection``, in the driver's autocommit (the read path
    of ``bearer_statement``, ``core/driver.py``). ``last_used_at`` is bookkeeping, not part of
    the record (``record_state.UNRECORDED_COLUMNS``), so no state entry follows it."""
    _token_use_statement().execute(connection, {"token_id": token_id, "now": now})


def count_locked_users(session: DbSession) -> int:
    """How many active accounts are locked (``User.locked``: after too many failed
    attempts, until an administrator unlocks them), one statement."""
    return session.execute(
        select(func.count())
        .select_from(User)
        .where(User.active.is_(True), User.locked_at.is_not(None))
    ).scalar_one()


def count_expiring_tokens(session: DbSession, *, now: dt.datetime, within: dt.timedelta) -> int:
    """How many API tokens still valid at ``now`` (not revoked, not expired: ``valid_token``'s
    own conditions on the token) expire within ``within``, of active accounts (one
    statement)."""
    return session.execute(
        select(func.count())
        .select_from(ApiToken)
        .join(User, User.id == ApiToken.user_id)
        .where(
            ApiToken.revoked_at.is_(None),
            ApiToken.expires_at > now,
            ApiToken.expires_at <= now + within,
            User.active.is_(True),
        )
    ).scalar_one()


def count_users(session: DbSession) -> int:
    return session.execute(select(func.count(User.id))).scalar_one()
