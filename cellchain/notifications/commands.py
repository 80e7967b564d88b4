"""Acting-user glue of notifications, shared by the pages and the API: the acting user, the
time and the site's zone from the request, then the service."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Sequence

from flask import current_app, has_app_context, url_for

from cellchain.core.i18n import _
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone
from cellchain.notifications import mail, service
from cellchain.notifications.models import Notification

log = logging.getLogger(__name__)


def my_notifications(
    session: DbSession, *, unread_only: bool = False, before_id: int | None = None
) -> list[service.Received]:
    return service.notifications_of(
        session, acting_user(), unread_only=unread_only, before_id=before_id
    )


def my_unread_count(session: DbSession) -> int:
    return service.count_unread(session, acting_user())


def mark_mine_read(session: DbSession, ids: Sequence[int] | None) -> int:
    return service.mark_read(session, acting_user(), ids, now=now())


def give_my_email(session: DbSession, address: str | None) -> service.EmailChange:
    """The acting user gives their address (``service.request_email_change``); the caller
    commits, then sends the confirmation (``send_confirmation``)."""
    return service.request_email_change(session, acting_user(), address, now=now())


def send_confirmation(change: service.EmailChange) -> str | None:
    """E-mail the link confirming ``change``'s address, after its commit; what went wrong,
    in the reader's words, or None when the server took it (or nothing waits).

    The link is built only from the site's configured address (``CELLCHAIN_SITE_URL``),
    never from the request's Host header, which the requester controls: otherwise anyone
    could have the hospital's own mail server send a link to a site of their choosing."""
    if change.token is None or change.pending is None:
        return None
    settings = mail_settings()
    if not settings.smtp_url or not settings.site_url:
        return _(
            "This site cannot confirm an address by e-mail (it needs CELLCHAIN_SMTP_URL and "
            "CELLCHAIN_SITE_URL): an administrator can set it with 'cellchain notifications "
            "set-email'."
        )
    path = url_for("notifications.confirm_email", token=change.token)
    message = mail.confirmation_message(
        settings,
        to=change.pending,
        language=change.user.language or settings.site_language,
        link=f"{settings.site_url}{path}",
        expires_at=change.user.email_confirm_expires_at or now(),
    )
    try:
        mail.send_now(settings, message)
    except (OSError, smtplib.SMTPException, ValueError):
        log.exception("the confirmation e-mail to user %s could not be sent", change.user.id)
        return _(
            "The confirmation e-mail could not be sent; the mail server did not take it. Give "
            "the address again to retry, or ask an administrator."
        )
    return None


def confirm_my_email(session: DbSession, token: str) -> None:
    service.confirm_email(session, acting_user(), token, now=now())


def mail_settings() -> mail.MailSettings:
    return mail.MailSettings.from_config(current_app.config)


def link_path(notification: Notification) -> str | None:
    """The site path of the notification's record page (no request needed: the CLI's
    e-mails use it too)."""
    target = service.link(notification)
    if target is None:
        return None
    endpoint, values = target
    adapter = current_app.url_map.bind("localhost")
    return adapter.build(endpoint, values)


def shown(received: list[service.Received]) -> list[dict[str, object]]:
    """The user's notifications as the page and the API show them: words in the language of
    the request, times in the site's zone, the record's page."""
    zone = site_zone()
    rows: list[dict[str, object]] = []
    for item in received:
        words = service.texts(item.notification, zone=zone)
        rows.append(
            {
                "id": item.notification.id,
                "kind": item.notification.kind,
                "urgent": item.notification.urgent,
                "title": words.title,
                "body": words.body,
                "created_at": item.notification.created_at,
                "read_at": item.read_at,
                "entity_type": item.notification.entity_type,
                "entity_id": item.notification.entity_id,
                "path": link_path(item.notification),
            }
        )
    return rows


def outbox_rows(
    session: DbSession, *, sent: bool = False, refused: bool = False
) -> list[dict[str, object]]:
    """The outbox as the page and the API show it: each e-mail as it is (or would be) sent
    alone, in its recipient's language; non-urgent ones go out batched in a digest.
    ``sent``, ``refused``: the last ones sent, or refused for good by the mail server."""
    settings = mail_settings()
    rows: list[dict[str, object]] = []
    for email in service.outbox(session, sent=sent, refused=refused):
        message = mail.compose([email], settings, link_path)
        rows.append(
            {
                "id": email.id,
                "notification_id": email.notification_id,
                "to": email.address,
                "username": email.user.username,
                "urgent": email.urgent,
                "subject": str(message["Subject"]),
                "body": message.get_content(),
                "created_at": email.created_at,
                "sent_at": email.sent_at,
                "attempts": email.attempts,
                "last_error": email.last_error,
                "refused_at": email.refused_at,
            }
        )
    return rows


def install_mail() -> None:
    """Send each transaction's urgent e-mails right after it commits, with the settings of
    the app of the moment (none outside an app: nothing is sent then)."""

    def settings_of() -> mail.MailSettings | None:
        return mail_settings() if has_app_context() else None

    mail.install(settings_of, link_path)
