"""``/api/v1/notifications``: the acting user's notifications, marking them read, the address
they are e-mailed to, and the outbox (audit readers: QA, administrators, investigators).
Load → command → dump; no rules here."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import acting_user, requires, unit_of_work
from cellchain.notifications import commands
from cellchain.notifications.schemas import (
    EmailConfirmIn,
    EmailIn,
    EmailOut,
    InAppNotificationsOut,
    MarkedOut,
    MarkReadIn,
    NotificationQuery,
    OutboxOut,
)

notifications_api = Blueprint(
    "notifications_api",
    __name__,
    url_prefix="/api/v1/notifications",
    description="Notifications of the events that concern your roles, and their e-mails",
)
blueprints = (notifications_api,)


@notifications_api.get("")
@requires(Permission.USE_APP)
@notifications_api.arguments(NotificationQuery, location="query")
@notifications_api.response(200, InAppNotificationsOut)
def notification_list(query: dict[str, Any]) -> Any:
    """Your notifications, newest first (50 at a time; ``before`` pages on), in your
    language; urgent ones are marked ``urgent``, unread ones have no ``read_at``. Only your
    own: nobody reads another user's notifications."""
    received = commands.my_notifications(
        db.session, unread_only=query["unread"], before_id=query["before"]
    )
    return {
        "unread": commands.my_unread_count(db.session),
        "notifications": commands.shown(received),
    }


@notifications_api.post("/read")
@requires(Permission.USE_APP)
@notifications_api.arguments(MarkReadIn)
@notifications_api.response(200, MarkedOut)
def mark_read(data: dict[str, Any]) -> Any:
    """Mark your notifications read: ``{"ids": [...]}`` or ``{"all": true}``. An id that is
    not one of yours is 404 and nothing is marked."""
    with unit_of_work() as session:
        marked = commands.mark_mine_read(session, None if data.get("all") else data["ids"])
    return {"marked": marked}


@notifications_api.put("/email")
@requires(Permission.USE_APP)
@notifications_api.arguments(EmailIn)
@notifications_api.response(200, EmailOut)
def set_email(data: dict[str, Any]) -> Any:
    """Give the address your notifications are e-mailed to (null or empty: none, at once).
    A new address waits (``pending``) until you confirm it with the link e-mailed to it
    (``POST /email/confirm``); ``problem`` says why no link could be sent. Audited."""
    with unit_of_work() as session:
        change = commands.give_my_email(session, data["email"])
    problem = commands.send_confirmation(change)
    user = acting_user()
    return {"email": user.email, "pending": user.email_pending, "problem": problem}


@notifications_api.post("/email/confirm")
@requires(Permission.USE_APP)
@notifications_api.arguments(EmailConfirmIn)
@notifications_api.response(200, EmailOut)
def confirm_email(data: dict[str, Any]) -> Any:
    """Confirm the address you gave with the secret of the link e-mailed to it (the last
    part of its path); 422 for a link not yours, replaced, used or expired."""
    with unit_of_work() as session:
        commands.confirm_my_email(session, data["token"])
    user = acting_user()
    return {"email": user.email, "pending": user.email_pending, "problem": None}


@notifications_api.get("/outbox")
@requires(Permission.READ_AUDIT)
@notifications_api.response(200, OutboxOut)
def outbox() -> Any:
    """The e-mails waiting to be sent (the last 50), each as it reads in its recipient's
    language, and the last ones the mail server refused for good (a 5xx answer: no such
    mailbox), which are not retried. Without an SMTP server configured (the demo) they wait
    here for good."""
    return {
        "smtp_configured": bool(commands.mail_settings().smtp_url),
        "emails": commands.outbox_rows(db.session),
        "refused": commands.outbox_rows(db.session, refused=True),
    }
