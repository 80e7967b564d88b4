"""Request plumbing shared by the web pages and the API.

Here, and only here, the interfaces turn a request into a call of a service: who is acting,
what time it is, whether their roles allow it, and the one transaction the use case runs in.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from flask import current_app, g, has_request_context, request
from flask_login import current_user
from werkzeug import routing
from werkzeug.exceptions import RequestEntityTooLarge

from cellchain.core import accounts, audit
from cellchain.core.accounts import AccountPolicy, CredentialsRejected
from cellchain.core.i18n import _, english_of
from cellchain.core.models import User
from cellchain.core.roles import Permission, has_permission
from cellchain.core.schemas import DB_INT_MAX
from cellchain.core.types import utcnow as utcnow  # the request clock, which tests move
from cellchain.errors import (
    DomainError,
    LoginRequired,
    MalformedRequest,
    PermissionDenied,
)
from cellchain.extensions import DbSession, db

F = TypeVar("F", bound=Callable[..., Any])


def now() -> dt.datetime:
    """The time of this request, the same for every step of one use case."""
    if "request_time" not in g:
        g.request_time = utcnow()
    return cast(dt.datetime, g.request_time)


def site_zone() -> ZoneInfo:
    """The zone the acting user reads and types times in: dates people enter (a specimen
    date) are dates on its calendar. The installation's ``CELLCHAIN_TIMEZONE`` (the
    manufacturing facility's), or for a clinician or investigator their clinical site's
    (``sites.service.reading_zone``, docs/sites.md); worked out once per request."""
    configured = ZoneInfo(current_app.config["SITE_TIMEZONE"])
    if not has_request_context():
        return configured
    if "reading_zone" not in g:
        from cellchain.sites.service import reading_zone

        user = acting_user() if current_user and current_user.is_authenticated else None
        g.reading_zone = reading_zone(db.session, user, configured, g.get("user_sites"))
    return cast(ZoneInfo, g.reading_zone)


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
                # the record reads in English whatever the refused person reads
                changes={"refused": (None, english_of(error.detail))},
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
                raise LoginRequired(_("Log in first."))
            if not has_permission(acting_user().roles, permission):
                raise PermissionDenied(
                    _("Your roles do not allow this. Ask an administrator if you need it.")
                )
            return view(*args, **kwargs)

        # a function attribute, read by the permission tests and the README's role table
        wrapper.required_permission = permission  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate


def bearer_of(header: str) -> str | None:
    """The token of an ``Authorization`` header's value ``Bearer <token>``, or None (another
    scheme, or no token)."""
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def holds_nul(args: Any) -> bool:
    """Whether a key or a value of ``args`` (a ``MultiDict``) holds a NUL character, which
    ``web/security.refuse_nul_characters`` refuses before any view."""
    return any(
        _has_nul(key) or any(_has_nul(value) for value in values) for key, values in args.lists()
    )


def _has_nul(text: Any) -> bool:
    # a multipart part may come without a name (werkzeug's key is then None)
    return isinstance(text, str) and "\x00" in text


def without_body(environ: dict[str, Any]) -> bool:
    """Whether a WSGI request sends no body (no length or 0, not chunked): nothing in it for
    ``refuse_unreadable_request`` or ``refuse_nul_characters`` to read."""
    return environ.get("CONTENT_LENGTH") in (None, "", "0") and not environ.get(
        "HTTP_TRANSFER_ENCODING"
    )


#: ``g`` key of a bearer token whose checks the view makes itself (``bearer_read``)
BEARER_DEFERRED_KEY = "bearer_deferred"


@dataclass(frozen=True)
class DeferredBearer:
    """A bearer request's authentication left to its view (``bearer_read``): the token, and
    the request hooks' own checks of it (``web/security.py``), run by the view when its one
    statement does not let the request through."""

    token: str
    authenticate: Callable[[], None]


def bearer_read(permission: Permission, answer: Callable[[str], Any | None]) -> Callable[[F], F]:
    """A read of ``permission`` whose answer, for a bearer token, comes with the token's
    checks in one statement on a connection of its own (issue 20: the scan).

    The request hooks leave such a request's token to the view (``DeferredBearer``).
    ``answer(token)`` reads the token's row with the answer, judges it by the same rules
    (``accounts.bearer_may_read``) and gives the response, or None for anything out of the
    ordinary (an unknown, expired or revoked token, an account that may not act, a role
    without ``permission``, input the view's schema refuses, a record not found). Then the
    hooks' checks run as they would have, and the view itself, behind ``requires``, answers
    with the error it always gave. Without a bearer token (a browser's cookie) the view is
    the view.
    """

    def decorate(view: F) -> F:
        checked = requires(permission)(view)

        @functools.wraps(checked)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            deferred = g.pop(BEARER_DEFERRED_KEY, None)
            if deferred is not None:
                response = answer(deferred.token)
                if response is not None:
                    return response
                deferred.authenticate()
            return checked(*args, **kwargs)

        wrapper.bearer_read = True  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate


def bearer_checked_by_view() -> bool:
    """Whether this request's view checks a bearer token itself (``bearer_read``)."""
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "bearer_read", False) and request.method in ("GET", "HEAD")


def public(view: F) -> F:
    """Mark a view that needs no login (the login page, static files)."""
    # a function attribute, read like the one ``requires`` sets
    view.required_permission = None  # type: ignore[attr-defined]
    return view


class IntegerConverter(routing.IntegerConverter):
    """The ``int`` of every URL: a whole number that fits the database's ``INTEGER`` column.

    Registered as ``int`` (``wiring.py``), so ``/units/99999999999`` is a 404 at routing,
    before any view, instead of a query PostgreSQL refuses with an error. (Werkzeug's name,
    kept so that whatever reads a rule's converters by name sees an integer.)
    """

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", DB_INT_MAX)
        super().__init__(url_map, *args, **kwargs)
        if self.max is not None and not self.signed and not self.fixed_digits:
            # Refused by the pattern, not only by ``to_python``: Werkzeug matches a path's
            # pattern and method before it converts, so a GET of ``/x/2147483648`` where
            # another rule has ``POST /x/<int:id>`` was a 405 naming POST, not a 404.
            self.regex = digits_up_to(self.max)


def digits_up_to(largest: int) -> str:
    """A regular expression matching the decimal numbers from 0 to ``largest`` (leading zeros
    allowed, as Werkzeug's integer allows them), and no other."""
    text = str(largest)
    options = [f"[1-9]\\d{{0,{len(text) - 2}}}"] if len(text) > 1 else []
    for i, digit in enumerate(text):
        lowest = 1 if i == 0 else 0
        if int(digit) > lowest:
            below = f"[{lowest}-{int(digit) - 1}]"
            options.append(f"{text[:i]}{below}\\d{{{len(text) - i - 1}}}")
    options.append(text)
    return f"0*(?:{'|'.join(options)})|0+"


def integer_converter_schema(converter: IntegerConverter) -> dict[str, Any]:
    """The OpenAPI schema of an ``int`` path parameter (it documents the maximum)."""
    schema: dict[str, Any] = {"type": "integer", "minimum": max(converter.min or 0, 0)}
    if converter.signed:
        schema.pop("minimum")
    if converter.max is not None:
        schema["maximum"] = converter.max
    return schema


#: How deep a JSON body may nest; the deepest cellchain body (a processing step's materials)
#: is 3 levels. Python's parser raises ``RecursionError`` near 1,000.
MAX_JSON_DEPTH = 32


def refuse_unreadable_request() -> None:
    """Refuse, before authentication or any parsing by a view, a request no view could read.

    A body larger than ``MAX_CONTENT_LENGTH`` is a 413 (Werkzeug would refuse it only when a
    view reads it, after the session or token is looked up); a JSON body nested too deep, or
    holding a lone surrogate, is a ``MalformedRequest`` naming where.
    """
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and (request.content_length or 0) > limit:
        megabytes = f"{limit / (1024 * 1024):g}"
        refusal = _(
            "The request is larger than %(limit)s MB, the most this site accepts; send a "
            "smaller photo or file.",
            limit=megabytes,
        )
        raise RequestEntityTooLarge(refusal)
    if request.is_json and request.method not in ("GET", "HEAD", "OPTIONS"):
        check_json_text(request.get_data(cache=True))


def check_json_text(data: bytes) -> None:
    """Refuse JSON nested deeper than ``MAX_JSON_DEPTH`` or holding a lone surrogate.

    JSON that does not parse is left to the view's loader, which answers with its own 400.
    """
    try:
        body = json.loads(data)
    except RecursionError:
        raise MalformedRequest(_too_deep()) from None
    except ValueError:
        return
    pending: list[tuple[Any, str, int]] = [(body, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise MalformedRequest(_too_deep())
        if isinstance(value, str):
            _refuse_surrogate(value, path)
        elif isinstance(value, dict):
            for key, child in value.items():
                _refuse_surrogate(key, path)
                pending.append((child, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(value, list):
            pending.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(value))


def _too_deep() -> str:
    return _(
        "The JSON body is nested too deeply (more than %(levels)s levels).", levels=MAX_JSON_DEPTH
    )


def _refuse_surrogate(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        message = _(
            "Holds a lone UTF-16 surrogate (an escape such as \\ud800 without its pair), "
            "which is not a character; send the text as UTF-8."
        )
        detail = (
            _(
                "%(field)s: holds a lone UTF-16 surrogate (an escape such as \\ud800 without its "
                "pair), which is not a character; send the text as UTF-8.",
                field=path,
            )
            if path
            else _(
                "The body holds a lone UTF-16 surrogate (an escape such as \\ud800 without its "
                "pair), which is not a character; send the text as UTF-8."
            )
        )
        raise MalformedRequest(detail, errors={path or "_request": [message]}) from None


def return_freed_memory() -> None:
    """Give the C library's free memory back to the system: glibc's ``malloc_trim(0)``,
    nothing where there is no such call (macOS, musl). For after an answer that allocated a
    lot (a forward trace of tens of thousands of units): glibc keeps what a request freed in
    the heap of the thread that freed it, and a gunicorn worker stayed that much larger
    (issue 20, the memory row). A few milliseconds; not for every request."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return cast(Callable[[int], int], ctypes.CDLL(None).malloc_trim)
    except (OSError, AttributeError):
        return None
