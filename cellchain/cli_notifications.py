"""``cellchain notifications``: raise the reminders that time makes due and send the outbox
(a timer runs ``deliver``), and set a user's e-mail address from the command line."""

from __future__ import annotations

import datetime as dt
import logging

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

log = logging.getLogger(__name__)


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
    CELLCHAIN_SMTP_URL it sends nothing and says so (the reminders are raised in the app).
    A reminder that fails is reported (exit status 1) after the outbox was sent: it never
    holds up a recall's e-mails."""
    reminder_failed = None
    try:
        reminded = reporting.remind_overdue_reports(
            db.session,
            now=utcnow(),
            follow_up_days=follow_up_report_days(),
        )
        db.session.commit()
    except Exception as error:  # the outbox still goes; the failure is reported below
        db.session.rollback()
        log.exception("overdue adverse event reminders failed")
        reminder_failed = f"the overdue adverse event reminders failed: {error}"
        reminded = 0
    if reminded:
        click.echo(f"Raised {reminded} reminder(s) of overdue adverse event reports.")
    settings = mail.MailSettings.from_config(current_app.config)
    if not settings.smtp_url:
        waiting = len(mail.waiting(db.session))
        click.echo(f"CELLCHAIN_SMTP_URL is not set: nothing sent; {waiting} e-mail(s) waiting.")
        if reminder_failed:
            raise click.ClickException(reminder_failed)
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
    problems = ([reminder_failed] if reminder_failed else []) + result.errors
    if problems:
        raise click.ClickException("; ".join(problems))


@notifications_group.command("requeue")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M"]),
    help="Only those refused since then (UTC).",
)
@with_appcontext
def requeue(since: dt.datetime | None) -> None:
    """Put the e-mails the mail server refused for good back in the outbox, once the cause
    is fixed (an address corrected); the next delivery sends them."""
    count = mail.requeue_refused(
        db.session, since=since.replace(tzinfo=dt.UTC) if since is not None else None
    )
    db.session.commit()
    click.echo(f"{count} refused e-mail(s) put back in the outbox.")


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
