"""Request plumbing shared by the web pages and the API.

Here, and only here, the interfaces turn a request into a call of a service: who is acting,
what time it is, whether their roles allow it, and the one transaction the use case runs in.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from flask import current_app, g, request
from flask_login import current_user

from cellchain.core import accounts, audit
from cellchain.core.accounts import AccountPolicy, CredentialsRejected
from cellchain.core.models import User
from cellchain.core.roles import Permission, has_permission
from cellchain.core.types import utcnow
from cellchain.errors import AuthenticationFailed, DomainError, PermissionDenied
from cellchain.extensions import DbSession, db

F = TypeVar("F", bound=Callable[..., Any])


def now() -> dt.datetime:
    """The time of this request, the same for every step of one use case."""
    if "request_time" not in g:
        g.request_time = utcnow()
    return cast(dt.datetime, g.request_time)


def site_zone() -> ZoneInfo:
    """The site's time zone: dates people enter (a specimen date) are dates on its calendar."""
    return ZoneInfo(current_app.config["SITE_TIMEZONE"])


def facility_code() -> str:
    return str(current_app.config["FACILITY_CODE"])


def account_policy() -> AccountPolicy:
    return AccountPolicy.from_config(current_app.config)


#: The browsable API docs are a page for people, so they get pages, not problem+json.
API_DOCS_PREFIX = "/api/v1/docs"


def is_api_request() -> bool:
    """Whether the request is for the machine API (problem+json errors, bearer tokens)."""
    return request.path.startswith("/api/") and not request.path.startswith(API_DOCS_PREFIX)


def acting_user() -> User:
    """The logged-in user; only called behind ``requires``."""
    return cast(User, current_user._get_current_object())


@dataclass(frozen=True)
class AuditedRefusal:
    """What to write in the audit trail when a use case is refused: the action (e.g.
    ``shipment.receipt_refused``) and the record it was attempted on."""

    action: str
    entity_type: str
    entity_id: str | int


@contextmanager
def unit_of_work(refusal: AuditedRefusal | None = None) -> Iterator[DbSession]:
    """One use case, one transaction: commit at the end, or roll back everything.

    A rejected password is the exception to "nothing written": after the rollback the
    attempt is audited and counted toward the lockout in a transaction of its own. So is a
    use case whose refusal must be on record (``refusal``, e.g. at the bedside): after the
    rollback, the refusal and its reason are audited in a transaction of their own.
    """
    session = db.session
    try:
        yield session
        session.commit()
    except CredentialsRejected as failure:
        session.rollback()
        accounts.record_failed_authentication(
            session, failure=failure, now=now(), policy=account_policy()
        )
        session.commit()
        raise
    except DomainError as error:
        session.rollback()
        if refusal is not None:
            audit.record(
                session,
                actor=acting_user(),
                at=now(),
                action=refusal.action,
                entity_type=refusal.entity_type,
                entity_id=refusal.entity_id,
                changes={"refused": (None, error.detail)},
            )
            session.commit()
        raise
    except BaseException:
        session.rollback()
        raise


def requires(permission: Permission) -> Callable[[F], F]:
    """Allow the view only to a logged-in, active user whose roles grant ``permission``.

    The permission is kept on the view function (``required_permission``) so tests and the
    README's role table can list what every route asks for.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                raise AuthenticationFailed("Log in first.", title="Login required")
            if not has_permission(acting_user().roles, permission):
                raise PermissionDenied(
                    "Your roles do not allow this. Ask an administrator if you need it."
                )
            return view(*args, **kwargs)

        # a function attribute, read by the permission tests and the README's role table
        wrapper.required_permission = permission  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate


def public(view: F) -> F:
    """Mark a view that needs no login (the login page, static files)."""
    # a function attribute, read like the one ``requires`` sets
    view.required_permission = None  # type: ignore[attr-defined]
    return view
