"""Sending the outbox: notification e-mails over SMTP, after the event's transaction committed.

The outbox rows are written by ``service.notify`` in the event's own transaction; nothing
here runs inside it. ``deliver`` sends what is waiting:

- an **urgent** notification's e-mail alone, one message per notification and recipient,
  never batched;
- the others **batched**: one digest per user with every one of their waiting e-mails.

Each message is written in its recipient's language (``users.language``, else the site's
``SITE_LANGUAGE``) with the times in the site's zone. A message sent is marked sent at once
(``on_sent`` commits it), so a failure later sends it no second time; a failed send is counted
on its rows, with the server's words, and retried by the next delivery, unless the server
refused it for good (``permanent``: a 5xx answer to its recipient or its content, such as "no
such mailbox"), which marks it refused and sends it no more. Delivery is at least once: a
crash between the server's acceptance and the mark sends that message again.

**One sender per e-mail.** Several senders may deliver at once: the timer's
``cellchain notifications deliver`` and any app server's send after a commit (issue 22). Right
before a message is sent its rows are **claimed** (:func:`claim`): one conditional UPDATE sets
``claimed_at`` on the rows still unsent and unclaimed, and the claim is committed before the
send. The database makes that UPDATE atomic (PostgreSQL: a second sender's UPDATE waits for the
first's commit and re-checks the row, which is claimed by then; SQLite: one writer at a time),
so of two senders one claims a row and the other skips it. The mark of the send (or of the
failure) lets the claim go. A claim older than ``CLAIM_TIMEOUT`` is a dead sender's (killed
between its claim and its mark): the next delivery takes the row and sends it.

Urgent e-mails go right after their transaction commits (``install`` listens to every
session's commit; a failure leaves them for the next ``cellchain notifications deliver``,
which a timer runs, e.g. every minute). That send waits at most ``AFTER_COMMIT_TIMEOUT`` for
the server, since the person whose action raised it is waiting for their page. With no
``SMTP_URL`` configured (the demo) nothing is sent: the outbox page shows what would have
been.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import smtplib
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from cellchain.core.display import local_time
from cellchain.core.i18n import _, using_language
from cellchain.extensions import DbSession
from cellchain.notifications import service
from cellchain.notifications.models import Notification, OutboxEmail

log = logging.getLogger(__name__)

#: seconds an SMTP connection or command may take before the send counts as failed
SMTP_TIMEOUT = 20.0
#: the same, for the urgent e-mails sent right after a request's commit: the person who
#: opened the recall waits for it, so a server out of reach costs them at most this, and
#: the timer's delivery (with ``SMTP_TIMEOUT``) retries
AFTER_COMMIT_TIMEOUT = 5.0
#: the longest failure text kept on an outbox row
MAX_ERROR = 500
#: how long a sender's claim on the e-mails it is sending holds: far longer than one send
#: (the SMTP commands of one message, each up to ``SMTP_TIMEOUT``), so only a sender that
#: died (or hangs that long) loses it; its e-mails are then sent by the next delivery
CLAIM_TIMEOUT = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class MailSettings:
    """What sending needs from the site's configuration."""

    smtp_url: str | None
    sender: str
    site_name: str
    site_url: str | None
    site_language: str
    zone: ZoneInfo

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MailSettings:
        return cls(
            smtp_url=config.get("SMTP_URL"),
            sender=config.get("MAIL_FROM") or "cellchain@localhost",
            site_name=config.get("SITE_NAME") or "cellchain",
            site_url=(config.get("SITE_URL") or "").rstrip("/") or None,
            site_language=config.get("SITE_LANGUAGE") or "en",
            zone=ZoneInfo(config.get("SITE_TIMEZONE") or "UTC"),
        )


#: the page path of a notification's record, or None (made by the interface from its routes)
LinkFor = Callable[[Notification], "str | None"]


@dataclass
class Delivery:
    """What one delivery did."""

    sent: int = 0  #: messages the server accepted
    emails: int = 0  #: outbox rows they carried (a digest carries several)
    failed: int = 0  #: messages refused or not sent
    errors: list[str] = field(default_factory=list)


def language_of(email: OutboxEmail, settings: MailSettings) -> str:
    return email.user.language or settings.site_language


def compose(
    emails: list[OutboxEmail], settings: MailSettings, link_for: LinkFor | None = None
) -> EmailMessage:
    """One message to one user: an urgent notification alone, or a digest of several, in
    the recipient's language."""
    first = emails[0]
    with using_language(language_of(first, settings)):
        parts = []
        for email in emails:
            words = service.texts(email.notification, zone=settings.zone)
            lines = [words.title, "", words.body]
            path = link_for(email.notification) if link_for else None
            if path:
                lines += ["", f"{settings.site_url}{path}" if settings.site_url else path]
            parts.append("\n".join(lines))
        if len(emails) == 1:
            title = service.texts(first.notification, zone=settings.zone).title
            subject = _("URGENT: %(title)s", title=title) if first.urgent else title
        else:
            subject = _(
                "%(count)s notifications from %(site)s",
                count=len(emails),
                site=settings.site_name,
            )
        footer = _(
            "You receive this e-mail because your role at %(site)s is concerned. "
            "Your notifications are listed in cellchain under Notifications.",
            site=settings.site_name,
        )
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.sender
    message["To"] = first.address
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message.set_content("\n\n----\n\n".join(parts) + "\n\n-- \n" + footer + "\n")
    return message


def confirmation_message(
    settings: MailSettings, *, to: str, language: str, link: str, expires_at: dt.datetime
) -> EmailMessage:
    """The e-mail asking a user to confirm the address they gave, in their language."""
    with using_language(language):
        subject = _("Confirm your e-mail address for %(site)s", site=settings.site_name)
        body = _(
            "Someone, probably you, gave this address for the notifications of %(site)s "
            "(recalls, serious adverse events, lots to review). Nothing is sent here until "
            "you open this link, logged in as yourself, and confirm:\n\n%(link)s\n\n"
            "The link works until %(expires)s. If you did not ask for this, ignore this "
            "e-mail: the address will not be used.",
            site=settings.site_name,
            link=link,
            expires=local_time(expires_at, settings.zone),
        )
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message.set_content(body + "\n")
    return message


def send_now(settings: MailSettings, message: EmailMessage) -> None:
    """Send one message at once, waiting at most ``AFTER_COMMIT_TIMEOUT`` (a person waits
    for their page); raises ``OSError``, ``smtplib.SMTPException`` or ``ValueError``."""
    if not settings.smtp_url:
        raise ValueError("CELLCHAIN_SMTP_URL is not set")
    client = connect(settings.smtp_url, AFTER_COMMIT_TIMEOUT)
    try:
        client.send_message(message)
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


def batches(emails: Iterable[OutboxEmail]) -> list[list[OutboxEmail]]:
    """The messages the waiting e-mails make: each urgent one alone, the others one digest
    per user (and address), oldest first."""
    urgent: list[list[OutboxEmail]] = []
    digests: dict[tuple[int, str], list[OutboxEmail]] = {}
    for email in sorted(emails, key=lambda e: e.id):
        if email.urgent:
            urgent.append([email])
        else:
            digests.setdefault((email.user_id, email.address), []).append(email)
    return urgent + list(digests.values())


def waiting(
    session: DbSession, *, urgent_only: bool = False, notification_ids: Iterable[int] | None = None
) -> list[OutboxEmail]:
    """The e-mails not yet sent (``urgent_only``, ``notification_ids``: only those)."""
    query = (
        select(OutboxEmail)
        .where(OutboxEmail.sent_at.is_(None), OutboxEmail.refused_at.is_(None))
        .order_by(OutboxEmail.id)
    )
    if urgent_only:
        query = query.where(OutboxEmail.urgent.is_(True))
    if notification_ids is not None:
        query = query.where(OutboxEmail.notification_id.in_(list(notification_ids)))
    return list(session.scalars(query))


def claim(
    session: DbSession,
    ids: Iterable[int],
    *,
    at: dt.datetime,
    timeout: dt.timedelta = CLAIM_TIMEOUT,
) -> set[int]:
    """Claim the e-mails ``ids`` that are still waiting and held by no live sender (never
    claimed, or claimed before ``at - timeout``): one conditional UPDATE, atomic on both
    databases; returns the ids claimed. Commit before sending, so other senders see it."""
    wanted = list(ids)
    if not wanted:
        return set()
    result = session.execute(
        update(OutboxEmail)
        .where(
            OutboxEmail.id.in_(wanted),
            OutboxEmail.sent_at.is_(None),
            OutboxEmail.refused_at.is_(None),
            or_(OutboxEmail.claimed_at.is_(None), OutboxEmail.claimed_at < at - timeout),
        )
        .values(claimed_at=at)
        .returning(OutboxEmail.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars())


def connect(smtp_url: str, timeout: float = SMTP_TIMEOUT) -> smtplib.SMTP:
    """An SMTP connection to ``smtp://[user[:password]@]host[:port][?starttls=1]`` (or
    ``smtps://`` for TLS from the start), logged in if a user is given.

    TLS checks the server's certificate and name against the system's authorities (or the
    file ``?cafile=/path`` names, for a hospital's own authority): the mails carry adverse
    events and recalls, and the login a password. A password is never sent unencrypted."""
    parts = urlsplit(smtp_url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(
            f"CELLCHAIN_SMTP_URL must look like smtp://host:25 or smtps://user@host:465, "
            f"not {parts.scheme or '(no scheme)'}://…"
        )
    options = parse_qs(parts.query)
    starttls = options.get("starttls", ["0"])[0] in ("1", "true", "yes")
    if parts.username and parts.scheme != "smtps" and not starttls:
        raise ValueError(
            "CELLCHAIN_SMTP_URL names a user but no encryption: use smtps:// or ?starttls=1, "
            "so that the password and the mails are not sent in clear."
        )
    context = ssl.create_default_context(cafile=options.get("cafile", [None])[0])
    client: smtplib.SMTP
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(
            parts.hostname, parts.port or 465, timeout=timeout, context=context
        )
    else:
        client = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=timeout)
        if starttls:
            client.starttls(context=context)
    if parts.username:
        client.login(unquote(parts.username), unquote(parts.password or ""))
    return client


def deliver(
    session: DbSession,
    settings: MailSettings,
    *,
    now: Callable[[], dt.datetime],
    on_sent: Callable[[], None],
    link_for: LinkFor | None = None,
    urgent_only: bool = False,
    notification_ids: Iterable[int] | None = None,
    timeout: float = SMTP_TIMEOUT,
    claim_timeout: dt.timedelta = CLAIM_TIMEOUT,
) -> Delivery:
    """Send the waiting e-mails (see the module); ``on_sent`` commits each claim and each
    mark. Each message's rows are claimed right before it is sent, and only those claimed
    are sent: another sender holds the others. Nothing is sent, and every e-mail stays
    waiting, when no SMTP server is configured."""
    result = Delivery()
    if not settings.smtp_url:
        return result
    messages = batches(waiting(session, urgent_only=urgent_only, notification_ids=notification_ids))
    if not messages:
        return result
    claims = [[email.id for email in emails] for emails in messages]
    on_sent()  # the reading transaction ends: a claim is a write of its own (SQLite)
    try:
        client = connect(settings.smtp_url, timeout)
    except (OSError, smtplib.SMTPException, ValueError) as error:
        for emails in messages:
            _failed(session, emails, error, unclaimed_before=now() - claim_timeout)
        on_sent()
        result.failed = len(messages)
        result.errors.append(str(error))
        return result
    try:
        for batch, batch_ids in zip(messages, claims, strict=True):
            claimed = claim(session, batch_ids, at=now(), timeout=claim_timeout)
            on_sent()
            emails = [email for email in batch if email.id in claimed]
            if not emails:  # another sender holds them (or sent them)
                continue
            try:
                message = compose(emails, settings, link_for)
            except Exception as error:  # one e-mail that cannot be written stops no other
                log.exception("notification e-mail %s could not be composed", emails[0].id)
                _failed(session, emails, error)
                result.failed += 1
                result.errors.append(str(error))
                on_sent()
                continue
            try:
                client.send_message(message)
            except (OSError, smtplib.SMTPException) as error:
                _failed(session, emails, error, refused_at=now() if permanent(error) else None)
                result.failed += 1
                result.errors.append(str(error))
            else:
                ids = [email.id for email in emails]
                session.execute(
                    update(OutboxEmail)
                    .where(OutboxEmail.id.in_(ids), OutboxEmail.sent_at.is_(None))
                    .values(sent_at=now(), last_error=None, claimed_at=None)
                    .execution_options(synchronize_session=False)
                )
                result.sent += 1
                result.emails += len(emails)
            on_sent()
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
    return result


#: the enhanced status codes (RFC 3463) that refuse one message for good: the address
#: (5.1.x: no such mailbox, bad address), a disabled mailbox (5.2.1), a message too big for
#: the system (5.3.4) or its content (5.6.x). A relay or policy refusal (5.7.x: "relay access
#: denied", "sender not authenticated") is the site's configuration: fixed, the e-mails go.
_FOR_GOOD = re.compile(r"^\s*5\.(?:1\.\d{1,3}|2\.1|3\.4|6\.\d{1,3})\b")


def _for_good(words: bytes | str) -> bool:
    text = words.decode("utf-8", "replace") if isinstance(words, bytes) else words
    return _FOR_GOOD.match(text) is not None


def permanent(error: BaseException) -> bool:
    """Whether the server refused the message for good (``_FOR_GOOD``): every recipient
    refused with such a code, or the content. Anything else is retried: a 4xx, a refused
    sender (``CELLCHAIN_MAIL_FROM``), a relay or policy refusal, a 5xx without an enhanced
    code (it cannot be told from a configuration error), a server out of reach."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        answers = list(error.recipients.values())
        return bool(answers) and all(
            500 <= code < 600 and _for_good(words) for code, words in answers
        )
    if isinstance(error, smtplib.SMTPDataError):
        return 500 <= error.smtp_code < 600 and _for_good(error.smtp_error)
    return False


def requeue_refused(session: DbSession, *, since: dt.datetime | None = None) -> int:
    """Put the e-mails refused for good (since ``since``) back in the outbox, for a delivery
    after the cause was fixed (an address corrected, a configuration that made the server
    answer 5.1.x); their attempts and last answer are kept. Returns how many."""
    query = update(OutboxEmail).where(
        OutboxEmail.refused_at.is_not(None), OutboxEmail.sent_at.is_(None)
    )
    if since is not None:
        query = query.where(OutboxEmail.refused_at >= since)
    result = session.execute(
        query.values(refused_at=None).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _failed(
    session: DbSession,
    emails: list[OutboxEmail],
    error: BaseException,
    *,
    refused_at: dt.datetime | None = None,
    unclaimed_before: dt.datetime | None = None,
) -> None:
    """Count a failed send on the rows (their claim, this sender's, is let go); with
    ``unclaimed_before``, rows this sender did not claim: only those no live sender holds."""
    query = update(OutboxEmail).where(
        OutboxEmail.id.in_([email.id for email in emails]), OutboxEmail.sent_at.is_(None)
    )
    if unclaimed_before is not None:
        query = query.where(
            or_(OutboxEmail.claimed_at.is_(None), OutboxEmail.claimed_at < unclaimed_before)
        )
    session.execute(
        query.values(
            attempts=OutboxEmail.attempts + 1,
            last_error=str(error)[:MAX_ERROR],
            refused_at=refused_at,
            claimed_at=None,
        ).execution_options(synchronize_session=False)
    )


# --- right after the commit ---------------------------------------------------------------------


def install(settings_of: Callable[[], MailSettings | None], link_for: LinkFor | None) -> None:
    """Send a transaction's urgent e-mails as soon as it commits, in a session of their own.
    ``settings_of`` answers the settings of the moment (None: no SMTP, nothing to do).
    Safe to call again: the last call's functions are used."""
    _AFTER_COMMIT["settings_of"] = settings_of
    _AFTER_COMMIT["link_for"] = link_for
    if not event.contains(Session, "after_commit", _send_after_commit):
        event.listen(Session, "after_commit", _send_after_commit)
        event.listen(Session, "after_rollback", _forget)


_AFTER_COMMIT: dict[str, Any] = {}


def _forget(session: Session) -> None:
    session.info.pop(service.URGENT_KEY, None)


def _send_after_commit(session: Session) -> None:
    ids = session.info.pop(service.URGENT_KEY, None)
    if not ids:
        return
    settings_of = _AFTER_COMMIT.get("settings_of")
    settings = settings_of() if settings_of else None
    if settings is None or not settings.smtp_url:
        return
    bind = session.get_bind()
    try:
        with Session(bind=bind) as own:
            delivery = deliver(
                own,
                settings,
                now=lambda: dt.datetime.now(dt.UTC),
                on_sent=own.commit,
                link_for=_AFTER_COMMIT.get("link_for"),
                urgent_only=True,
                notification_ids=ids,
                timeout=AFTER_COMMIT_TIMEOUT,
            )
            own.commit()
        if delivery.failed:
            log.warning("urgent notification e-mails not sent: %s", "; ".join(delivery.errors))
    except Exception:  # the event is committed; the timer's delivery retries the e-mail
        log.exception("urgent notification e-mails not sent after commit")
