"""``cellchain notifications``: raise the reminders that time makes due and send the outbox
(a timer runs ``deliver``), and set a user's e-mail address from the command line."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from cellchain.clinic.follow_up import reporting
from cellchain.clinic.follow_up.commands import follow_up_report_days
from cellchain.core import accounts
from cellchain.core.types import utcnow
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.notifications import commands, mail, service


@click.group("notifications")
def notifications_group() -> None:
    """Notifications of events and their e-mails."""


@notifications_group.command("deliver")
@click.option("--urgent-only", is_flag=True, help="Send only the urgent e-mails waiting.")
@with_appcontext
def deliver(urgent_only: bool) -> None:
    """Raise the reminders that time made due (a serious adverse event's sponsor report
    overdue), then send the e-mails waiting in the outbox: each urgent one alone, the others
    one digest per person. Run it from a timer (e.g. every minute); without
    CELLCHAIN_SMTP_URL it sends nothing and says so (the reminders are raised in the app)."""
    reminded = reporting.remind_overdue_reports(
        db.session,
        now=utcnow(),
        follow_up_days=follow_up_report_days(),
    )
    db.session.commit()
    if reminded:
        click.echo(f"Raised {reminded} reminder(s) of overdue adverse event reports.")
    settings = mail.MailSettings.from_config(current_app.config)
    if not settings.smtp_url:
        waiting = len(mail.waiting(db.session))
        click.echo(f"CELLCHAIN_SMTP_URL is not set: nothing sent; {waiting} e-mail(s) waiting.")
        return
    result = mail.deliver(
        db.session,
        settings,
        now=utcnow,
        on_sent=db.session.commit,
        link_for=commands.link_path,
        urgent_only=urgent_only,
    )
    db.session.commit()
    click.echo(
        f"Sent {result.sent} message(s) carrying {result.emails} e-mail(s); {result.failed} failed."
    )
    if result.failed:
        raise click.ClickException("; ".join(result.errors))


@notifications_group.command("set-email")
@click.argument("username")
@click.argument("address")
@with_appcontext
def set_email(username: str, address: str) -> None:
    """Set the address USERNAME's notifications are e-mailed to ('' removes it)."""
    try:
        user = accounts.user_named(db.session, username)
        service.set_email(db.session, user, address, actor=None, now=utcnow())
    except DomainError as error:
        raise click.ClickException(error.detail) from error
    db.session.commit()
    click.echo(f"{user.username}: {user.email or 'no e-mail address'}")
