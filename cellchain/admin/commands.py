"""Acting-user glue of administration, shared by the API and the pages: the loaded input,
the acting user, the time and the site's settings from the request, then the kernel's
service (``core.accounts``, ``core.numbering``). Loading a user (404) stays with the caller,
inside its transaction, so a refused role change is audited whatever refused it."""

from __future__ import annotations

from typing import Any

from flask import current_app

from cellchain.core import accounts, audit_keys, audit_verification, numbering
from cellchain.core.audit import AuditFilter
from cellchain.core.audit_verification import Verification
from cellchain.core.models import ApiToken, IssuedIdentifier, User
from cellchain.extensions import DbSession
from cellchain.http import AuditedRefusal, account_policy, acting_user, facility_code, now

# --- your account ---------------------------------------------------------------------


def my_tokens(session: DbSession) -> list[ApiToken]:
    """The acting user's API tokens (never the tokens themselves)."""
    return accounts.list_tokens(session, acting_user())


def create_token(session: DbSession, data: dict[str, Any]) -> tuple[ApiToken, str]:
    """A new token of the acting user: its row and the token, to be shown this once. Its
    lifetime is the site's default (``API_TOKEN_DAYS``) unless the input asks for one."""
    config = current_app.config
    return accounts.create_token(
        session,
        user=acting_user(),
        now=now(),
        name=data["name"],
        scope=data.get("scope") or "full",
        days=data.get("days") or config["API_TOKEN_DAYS"],
        max_days=config["API_TOKEN_MAX_DAYS"],
    )


def user_tokens(session: DbSession, user_id: int) -> list[ApiToken]:
    """Another account's API tokens, for an administrator (never the tokens themselves)."""
    return accounts.list_tokens(session, accounts.get_user(session, user_id))


def revoke_token(session: DbSession, token_id: int) -> ApiToken:
    return accounts.revoke_token(session, actor=acting_user(), now=now(), token_id=token_id)


def change_password(session: DbSession, data: dict[str, Any]) -> None:
    accounts.change_password(
        session, user=acting_user(), now=now(), policy=account_policy(), **data
    )


# --- users ----------------------------------------------------------------------------


def account_refused(user_id: int) -> AuditedRefusal:
    """A refused role change, on the record (who tried to grant whom what)."""
    return AuditedRefusal(action="user.change_refused", entity_type="user", entity_id=user_id)


def create_user(session: DbSession, data: dict[str, Any]) -> User:
    """An administrator creates an account; its holder changes the password at first login."""
    return accounts.create_user(
        session,
        actor=acting_user(),
        now=now(),
        policy=account_policy(),
        must_change_password=True,
        **data,
    )


def set_roles(session: DbSession, user: User, data: dict[str, Any]) -> None:
    accounts.set_roles(session, actor=acting_user(), now=now(), user=user, **data)


def deactivate_user(session: DbSession, user: User, data: dict[str, Any]) -> None:
    accounts.deactivate_user(session, actor=acting_user(), now=now(), user=user, **data)


def unlock_user(session: DbSession, user: User, data: dict[str, Any]) -> None:
    accounts.unlock_user(session, actor=acting_user(), now=now(), user=user, **data)


# --- identifiers and the audit trail --------------------------------------------------


def reserve_dins(session: DbSession, data: dict[str, Any]) -> list[IssuedIdentifier]:
    """The next DINs of this year at this site, e.g. for pre-printed label stock."""
    return numbering.reserve_dins(
        session, facility_code=facility_code(), actor=acting_user(), now=now(), **data
    )


def verify_audit(session: DbSession) -> Verification:
    """The whole trail verified with the site's audit keys and compared with the last
    checkpoint, in one snapshot: the use case of ``cellchain audit verify``, which alone (with
    the schedule's ``cellchain audit checkpoint``) writes checkpoints; a request never does."""
    directory = current_app.config.get("AUDIT_CHECKPOINT_DIR")
    return audit_verification.verify(
        session,
        keyring=audit_keys.current_keyring(),
        checkpoint_dir=str(directory) if directory else None,
    )


def audit_filter(args: dict[str, Any]) -> AuditFilter:
    """The audit query (API arguments or page filters) as the audit service's filter."""
    return AuditFilter(
        entity_type=args.get("entity_type"),
        entity_id=args.get("entity_id"),
        actor_username=args.get("actor"),
        action=args.get("action"),
        since=args.get("since"),
        until=args.get("until"),
    )
