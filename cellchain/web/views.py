"""Login, logout, home and the global scan box."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user

from cellchain.core import accounts, audit
from cellchain.core.display import local_time, scientific
from cellchain.core.roles import Permission, has_permission
from cellchain.errors import AuthenticationFailed, InvalidInput, NotFound
from cellchain.extensions import db
from cellchain.http import (
    account_policy,
    acting_user,
    now,
    public,
    requires,
    site_zone,
    unit_of_work,
)
from cellchain.notifications.commands import my_unread_count
from cellchain.scanning import codes
from cellchain.web import language as language_of_request
from cellchain.web.navigation import items_for
from cellchain.web.resolve import record_url
from cellchain.web.security import SESSION_TOKEN_KEY
from cellchain.worklists.commands import worklist_of_acting_user

blueprint = Blueprint("web", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("web.home")


@blueprint.route("/login", methods=["GET", "POST"])
@public
def login() -> ResponseReturnValue:
    expired = session.pop("expired", False)
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(url_for("web.home"))
        return render_template("web/login.html", expired=expired, username="")
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    try:
        with unit_of_work() as db_session:
            user = accounts.authenticate(
                db_session,
                username=username,
                password=password,
                now=now(),
                policy=account_policy(),
                # as Flask sees it: behind a reverse proxy, TRUSTED_PROXIES makes it the client's
                address=request.remote_addr,
            )
            token = accounts.start_session(
                db_session, user=user, now=now(), lifetime=current_app.permanent_session_lifetime
            )
    except accounts.TooManyAttempts as error:
        message = f"{error.detail} You may try again from {format_time(error.until, True)}."
        page = render_template("web/login.html", error=message, username=username)
        return page, 429, {"Retry-After": str(error.retry_after)}
    except AuthenticationFailed as error:
        return render_template("web/login.html", error=error.detail, username=username), 401
    chosen_before_login = session.get(language_of_request.SESSION_LANGUAGE_KEY)
    session.clear()
    login_user(user)
    language_of_request.remember_language_of(user.language or chosen_before_login)
    session[SESSION_TOKEN_KEY] = token
    session.permanent = True
    session["last_seen"] = now().timestamp()
    return redirect(_safe_next(request.args.get("next")))


@blueprint.post("/language")
@public
def choose_language() -> ResponseReturnValue:
    """The header's switch: the language for this browser and, for a user, on every device
    from their next login."""
    language = request.form.get("language", "")
    if language_of_request.choose_for_session(language) and current_user.is_authenticated:
        with unit_of_work() as db_session:
            accounts.choose_language(db_session, user=acting_user(), now=now(), language=language)
    return redirect(_safe_next(request.form.get("next")))


@blueprint.post("/logout")
@requires(Permission.USE_APP)
def logout() -> ResponseReturnValue:
    user = acting_user()
    with unit_of_work() as db_session:
        audit.record(
            db_session, actor=user, at=now(), action="logout", entity_type="user", entity_id=user.id
        )
        accounts.end_session(db_session, token=session.get(SESSION_TOKEN_KEY))
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("web.login"))


@blueprint.get("/")
@requires(Permission.USE_APP)
def home() -> ResponseReturnValue:
    """The user's work queues, role by role (``worklists``), then the navigation."""
    return render_template(
        "web/home.html",
        nav=items_for(acting_user().roles),
        queues=worklist_of_acting_user(db.session),
        unread=my_unread_count(db.session),
    )


@blueprint.get("/scan")
@requires(Permission.USE_APP)
def scan() -> ResponseReturnValue:
    """Resolve what a scanner typed (or a person) to its record page, or say what is wrong:
    any code the scan box reads (``scanning.codes``), as the user may see it."""
    code = request.args.get("code", "")
    if not code.strip():
        return render_template("web/scan.html", code=code, error=None)
    try:
        found = codes.find(db.session, code, roles=acting_user().roles)
    except codes.AmbiguousCode as error:
        choices = [(match, record_url(match)) for match in error.matches]
        page = render_template(
            "web/scan.html", code=code, error=error.detail, kind="ambiguous", choices=choices
        )
        return page, 300  # Multiple Choices: the page lists them
    except InvalidInput as error:
        return render_template("web/scan.html", code=code, error=error.detail, kind="invalid"), 422
    except NotFound as error:
        return render_template("web/scan.html", code=code, error=error.detail, kind="unknown"), 404
    return redirect(record_url(found))


# --- template helpers -------------------------------------------------------------------


def format_time(value: dt.datetime | None, with_seconds: bool = False) -> str:
    """A stored UTC time in the reader's time zone (``http.site_zone``: a clinic user's
    site's, docs/sites.md) with its UTC offset (``core.display``)."""
    if value is None:
        return "—"
    zone = site_zone() if has_request_context() else ZoneInfo(current_app.config["SITE_TIMEZONE"])
    return local_time(value, zone, seconds=with_seconds)


def format_count(value: float | None) -> str:
    """A cell count or concentration: ``5.00 × 10⁶`` (``core.display.scientific``)."""
    return "—" if value is None else scientific(value)


def _template_context() -> dict[str, Any]:
    roles = acting_user().roles if current_user.is_authenticated else frozenset()
    return {
        "nav_items": items_for(roles),
        "current_user_permissions": {p.value for p in Permission if has_permission(roles, p)},
        "site_name": current_app.config["SITE_NAME"],
        "facility_code": current_app.config["FACILITY_CODE"],
        "demo_facility": current_app.config["ENV_NAME"] != "production",
        "idle_minutes": current_app.config["IDLE_TIMEOUT_MINUTES"],
    }


def install_template_helpers(app: Flask) -> None:
    app.context_processor(_template_context)
    app.add_template_filter(format_time, "time")
    app.add_template_filter(format_count, "count")
    app.add_template_filter(json.loads, "fromjson")
