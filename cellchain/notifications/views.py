"""Pages of notifications: your notifications (newest first, unread marked, mark as read,
the address they are e-mailed to) and the outbox of e-mails for audit readers."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.core.i18n import _
from cellchain.core.roles import Permission
from cellchain.errors import DomainError, InvalidInput
from cellchain.extensions import db
from cellchain.http import acting_user, requires, unit_of_work
from cellchain.notifications import commands, service

blueprint = Blueprint("notifications", __name__)


@blueprint.get("/notifications")
@requires(Permission.USE_APP)
def notification_list() -> ResponseReturnValue:
    before = request.args.get("before", "")
    received = commands.my_notifications(
        db.session,
        unread_only=request.args.get("unread") == "1",
        before_id=int(before) if before.isdigit() and len(before) < 10 else None,
    )
    rows = commands.shown(received)
    return render_template(
        "notifications/notifications.html",
        rows=rows,
        unread=commands.my_unread_count(db.session),
        unread_only=request.args.get("unread") == "1",
        older=rows[-1]["id"] if len(rows) == service.PAGE_SIZE else None,
        email=acting_user().email,
        email_pending=acting_user().email_pending,
    )


@blueprint.post("/notifications/read")
@requires(Permission.USE_APP)
def mark_read() -> ResponseReturnValue:
    given = request.form.get("id", "")
    try:
        if request.form.get("all") == "1":
            ids = None
        elif given.isdigit() and len(given) < 10:
            ids = [int(given)]
        else:
            raise InvalidInput(_("Choose a notification to mark as read."))
        with unit_of_work() as session:
            commands.mark_mine_read(session, ids)
    except DomainError as error:
        flash(error.detail, "error")
    return redirect(url_for("notifications.notification_list"))


@blueprint.post("/notifications/email")
@requires(Permission.USE_APP)
def set_email() -> ResponseReturnValue:
    try:
        with unit_of_work() as session:
            change = commands.give_my_email(session, request.form.get("email", ""))
    except DomainError as error:
        flash(error.detail, "error")
        return redirect(url_for("notifications.notification_list"))
    if change.pending is None:
        flash(_("Your e-mail address for notifications is saved."), "success")
    elif problem := commands.send_confirmation(change):
        flash(problem, "error")
    else:
        flash(
            _(
                "A link to confirm %(address)s was e-mailed there. Nothing is sent to it until "
                "you open the link.",
                address=change.pending,
            ),
            "success",
        )
    return redirect(url_for("notifications.notification_list"))


@blueprint.get("/notifications/email/confirm/<token>")
@requires(Permission.USE_APP)
def confirm_email(token: str) -> ResponseReturnValue:
    """The page the e-mailed link opens: one button confirms (a GET changes nothing, so a
    mail scanner following the link confirms nothing)."""
    return render_template(
        "notifications/confirm_email.html", token=token, pending=acting_user().email_pending
    )


@blueprint.post("/notifications/email/confirm/<token>")
@requires(Permission.USE_APP)
def confirm_email_post(token: str) -> ResponseReturnValue:
    try:
        with unit_of_work() as session:
            commands.confirm_my_email(session, token)
    except DomainError as error:
        flash(error.detail, "error")
    else:
        flash(_("Your e-mail address for notifications is confirmed."), "success")
    return redirect(url_for("notifications.notification_list"))


@blueprint.get("/notifications/outbox")
@requires(Permission.READ_AUDIT)
def outbox() -> ResponseReturnValue:
    return render_template(
        "notifications/outbox.html",
        waiting=commands.outbox_rows(db.session),
        sent=commands.outbox_rows(db.session, sent=True),
        refused=commands.outbox_rows(db.session, refused=True),
        smtp_configured=bool(commands.mail_settings().smtp_url),
    )
