"""A password an administrator set is changed at first login (issue 18, docs/security.md).

An account an administrator created (the users page, the API, ``cellchain users create``)
carries ``must_change_password`` until its holder changes the password. Until then the holder
may open only the account page, change the password there and log out: every other page
redirects to the account page, and every API request (a session or a bearer token of that
account) is a 403 problem+json "Password change required".
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from cellchain.core.i18n import _
from cellchain.errors import PermissionDenied
from cellchain.http import is_api_request

#: what a holder of an administrator-set password may still do
ALLOWED_ENDPOINTS = frozenset(
    {"admin.account", "admin.change_password", "web.logout", "web.login", "static"}
)


def require_password_change() -> ResponseReturnValue | None:
    """Before every request: send a user who must change their password to do that first."""
    if request.endpoint in ALLOWED_ENDPOINTS or not current_user.is_authenticated:
        return None
    if not getattr(current_user, "must_change_password", False):
        return None
    if is_api_request():
        raise PermissionDenied(
            _(
                "An administrator set this account's password: change it on the account page "
                "(/account) before using the application or the API."
            ),
            title=_("Password change required"),
        )
    flash(_("An administrator set your password: choose your own before you go on."), "warning")
    return redirect(url_for("admin.account"))
