"""Sessions, bearer tokens, CSRF and the idle timeout, as request hooks."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from typing import Any

from flask import Flask, Response, current_app, g, request, session
from flask_login import current_user, logout_user

from cellchain.core import accounts, audit
from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.errors import AuthenticationFailed, InvalidInput, PermissionDenied
from cellchain.extensions import csrf, db, login_manager
from cellchain.http import (
    BEARER_DEFERRED_KEY,
    DeferredBearer,
    bearer_checked_by_view,
    bearer_of,
    holds_nul,
    is_api_request,
    now,
)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LAST_SEEN_KEY = "last_seen"
#: the random token of the server-side session (``accounts.start_session``) in the cookie
SESSION_TOKEN_KEY = "session_token"


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer …`` header, if the request has one."""
    return bearer_of(request.headers.get("Authorization", ""))


def load_session_user(user_id: str) -> User | None:
    """The user of a session cookie, only while its session exists on the server: a cookie
    kept from before a logout, a password change, a role change, a deactivation or a lockout
    opens nothing (docs/security.md). A deactivated or locked account is logged out at once."""
    if not user_id.isdigit():
        return None
    return accounts.session_user(
        db.session, user_id=int(user_id), token=session.get(SESSION_TOKEN_KEY)
    )


def _valid_bearer_token() -> accounts.TokenHolder | None:
    """What the valid token of an API request's bearer header grants, or None (no header, a
    page, or a token that may not authenticate now). Its user and roles are read in one
    plain-row statement (``accounts.token_holder``, issue 20)."""
    token = bearer_token()
    if token is None or not is_api_request():
        return None
    current = now()
    holder = accounts.token_holder(db.session, token, current)
    if holder is not None and holder.use_due:
        accounts.record_token_use(db.session.connection(), token_id=holder.token_id, now=current)
        _commit_keeping_loaded(db.session())  # token last-used time, its own small transaction
    elif holder is not None and db.session.dirty:  # ``valid_token`` set it (its fallback)
        _commit_keeping_loaded(db.session())
    return holder


def _commit_keeping_loaded(session: Any) -> None:
    """Commit without expiring what is loaded: the token's user and roles were read in this
    transaction and only the token's last-used time changed, so reading them all again for
    the rest of the request would be statements for nothing (issue 20)."""
    expire_on_commit = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire_on_commit


def load_token_user(_request: object) -> User | None:
    """The user of a valid bearer token, for API requests only."""
    row = _valid_bearer_token()
    return row.user if row is not None else None


def enforce_idle_timeout() -> None:
    """Log out a web session idle longer than the configured minutes, and audit it."""
    if request.endpoint == "static" or bearer_token() is not None:
        return
    if not current_user.is_authenticated:
        return
    current = now()
    last_seen = session.get(LAST_SEEN_KEY)
    limit = dt.timedelta(minutes=current_app.config["IDLE_TIMEOUT_MINUTES"])
    if last_seen is not None and current - dt.datetime.fromtimestamp(last_seen, dt.UTC) > limit:
        user = current_user._get_current_object()
        audit.record(
            db.session,
            actor=user,
            at=current,
            action="session.expired",
            entity_type="user",
            entity_id=user.id,
            reason=f"idle for more than {current_app.config['IDLE_TIMEOUT_MINUTES']} minutes",
        )
        accounts.end_session(db.session, token=session.get(SESSION_TOKEN_KEY))
        db.session.commit()
        logout_user()
        session.clear()
        session["expired"] = True
        return
    session[LAST_SEEN_KEY] = current.timestamp()


#: ``g`` key set when a bearer token, not the session cookie, authenticated this request
TOKEN_AUTHENTICATED_KEY = "token_authenticated"


def authenticate_bearer() -> None:
    """An API request with a bearer token acts as the token's user and nothing else.

    The session cookie is never consulted for such a request, so a page on another site
    cannot add a made-up ``Authorization`` header to borrow a logged-in browser's cookie.
    A token that is unknown, expired, revoked or of an inactive account is a 401 problem at
    once, whatever the route, rather than a fall back to the cookie. Pages ignore bearer
    tokens (they go on to the session and the CSRF check).
    """
    if not is_api_request():
        return
    token = bearer_token()
    if token is None:
        return
    if bearer_checked_by_view():  # one statement judges the token with the answer (issue 20)
        # anonymous until the view's checks pass: nothing before it acts as the token's user
        login_manager._update_request_context_with_user(None)
        setattr(g, BEARER_DEFERRED_KEY, DeferredBearer(token, _authenticate_deferred))
        return
    _authenticate_token()


def _authenticate_deferred() -> None:
    """The checks a ``bearer_read`` view's statement did not pass: this hook's, then the
    administrator-set password's (``first_login``), each with its own error."""
    from cellchain.web.first_login import require_password_change

    _authenticate_token()
    require_password_change()
    # the site rules the request hooks would have applied to the token's user (``wiring.
    # apply_sites``: a clinic user's sites, the monitor's pseudonyms; review 2 items 1, 10)
    restrict = current_app.extensions.get("cellchain.restrict_to_sites")
    if restrict is not None:
        restrict()


def _authenticate_token() -> None:
    row = _valid_bearer_token()
    if row is None:
        raise AuthenticationFailed(
            _(
                "The API token is unknown, expired or revoked, or its account is inactive; "
                "a request with a bearer token is never authenticated by a session cookie."
            ),
            title=_("Invalid API token"),
        )
    # Enforced here, once, for every API route: a read-scoped token only reads.
    if not accounts.scope_allows(row.scope, request.method):
        raise PermissionDenied(
            _(
                "This API token's scope is %(scope)s: it may only read (GET, HEAD, OPTIONS). "
                "Use a token of scope 'full' to make changes.",
                scope=repr(row.scope),
            ),
            title=_("Token scope does not allow this"),
        )
    # Flask-Login's own way to set the request's user without writing the session
    login_manager._update_request_context_with_user(row.user)
    setattr(g, TOKEN_AUTHENTICATED_KEY, True)


def enforce_csrf() -> None:
    """Cookie-authenticated changes need a CSRF token. Only a request that a bearer token
    actually authenticated (``authenticate_bearer``, the hook before this one) is exempt: it
    carries no cookie credentials, so it is not exposed to cross-site forgery. A page (not
    the API) with a bearer header is still checked, since pages authenticate by the cookie
    alone."""
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    if request.method in SAFE_METHODS or request.endpoint == "static":
        return
    if g.get(TOKEN_AUTHENTICATED_KEY, False):
        return
    csrf.protect()


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False


def refuse_nul_characters() -> None:
    """No record may hold a NUL character (PostgreSQL cannot store one, and no scanner or
    person types one); such input is refused before any view sees it."""
    if (
        holds_nul(request.args)
        or holds_nul(request.form)
        or (request.is_json and _contains_nul(request.get_json(silent=True)))
    ):
        raise InvalidInput(
            _("The input contains a NUL character, which is never valid; nothing was saved."),
            title=_("Invalid characters"),
        )


#: The Content-Security-Policy of every response: scripts and styles only from the app's own
#: files (no inline script, event handler or style attribute), and no page may be framed
#: (the e-signature pages above all). ``data:`` images are Swagger UI's icons.
#: ``'wasm-unsafe-eval'`` lets the app's own scripts compile WebAssembly (the vendored label
#: reader of the Camera button, static/vendor/zxing-wasm); it allows no ``eval`` of script text.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)

#: Swagger UI's page (flask-smorest's template) starts the UI with one inline script; that
#: page alone allows that script by its hash, nothing else inline.
SWAGGER_UI_ENDPOINT = "api-docs.openapi_swagger_ui"

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _hash_source(script: str) -> str:
    """The CSP source that allows exactly this inline script."""
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def content_security_policy(response: Response) -> str:
    """The policy for ``response``: the one above, with the hashes of the Swagger UI page's
    own inline scripts on that page."""
    policy = list(CONTENT_SECURITY_POLICY)
    if request.endpoint == SWAGGER_UI_ENDPOINT and response.mimetype == "text/html":
        hashes = [
            _hash_source(script)
            for script in _INLINE_SCRIPT.findall(response.get_data(as_text=True))
        ]
        policy[1] = " ".join((CONTENT_SECURITY_POLICY[1], *hashes))
    return "; ".join(policy)


def set_security_headers(response: Response) -> Response:
    """The security headers of every response (page, API answer, error, static file).

    HSTS is sent only when ``HSTS_SECONDS`` is above 0: by default in production, never in
    development or tests, where the site is plain HTTP on localhost (docs/security.md).
    """
    response.headers["Content-Security-Policy"] = content_security_policy(response)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    hsts_seconds = int(current_app.config.get("HSTS_SECONDS", 0))
    if hsts_seconds > 0:
        response.headers["Strict-Transport-Security"] = f"max-age={hsts_seconds}"
    return response


def init_security(app: Flask) -> None:
    login_manager.user_loader(load_session_user)
    login_manager.request_loader(load_token_user)
    login_manager.session_protection = "strong"
    app.before_request(refuse_nul_characters)
    app.before_request(authenticate_bearer)  # before the CSRF check, which reads its answer
    app.before_request(enforce_csrf)
    app.before_request(enforce_idle_timeout)
    app.after_request(set_security_headers)
