"""Tables of notifications: the event, who it is for and whether they read it, and the
e-mails to send (a transactional outbox).

A notification stores no text: its ``kind`` and ``params`` (the record's number, the
patient's study ID, …) are turned into words in the reader's language each time it is shown
or mailed (``service.KINDS``). The three tables are not regulated records: each notification
follows an event that is itself audited, a read mark is no record, and the outbox is delivery
bookkeeping (``core.record_state.UNRECORDED``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cellchain.core.models import User
from cellchain.core.types import UTCDateTime
from cellchain.extensions import Model


class Notification(Model):
    """One event some roles are told about."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: what happened, a key of ``service.KINDS`` (e.g. ``recall_opened``)
    kind: Mapped[str] = mapped_column(String(40))
    #: urgent ones are marked, and their e-mail is never batched into a digest
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the values the texts name, as JSON (``{"number": "RC-2026-0001", …}``)
    params_json: Mapped[str] = mapped_column(Text, default="{}")
    #: the record it is about, and its page's URL path when it was raised
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int] = mapped_column(Integer)
    #: the roles concerned, comma-separated role values
    roles: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    @property
    def params(self) -> dict[str, Any]:
        value = json.loads(self.params_json or "{}")
        return value if isinstance(value, dict) else {}


class NotificationRecipient(Model):
    """A notification for one user, and when they read it (None: unread)."""

    __tablename__ = "notification_recipients"
    __table_args__ = (Index("ix_notification_recipients_user_id_read_at", "user_id", "read_at"),)

    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    notification: Mapped[Notification] = relationship(lazy="joined", innerjoin=True)


class OutboxEmail(Model):
    """An e-mail to send about a notification, written in the event's own transaction (so
    an event rolled back leaves no e-mail) and sent after it committed
    (``mail.deliver``). Urgent ones go one per e-mail; the others are batched per user."""

    __tablename__ = "outbox_emails"
    __table_args__ = (Index("ix_outbox_emails_sent_at_urgent", "sent_at", "urgent"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: the address when the e-mail was queued (a later change of address does not redirect it)
    address: Mapped[str] = mapped_column(String(254))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: how many sends failed, and the last failure's words (the next delivery retries)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    #: when the mail server refused it for good (a 5xx answer: no such mailbox, content
    #: refused); never retried, shown on the outbox page with the server's words
    refused_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: when a sender claimed it to send it now (``mail.claim``, migration 0047); null: no
    #: sender holds it. A claim older than ``mail.CLAIM_TIMEOUT`` is a dead sender's: another
    #: sender takes it
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    notification: Mapped[Notification] = relationship(lazy="joined", innerjoin=True)
    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)
