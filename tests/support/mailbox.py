"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, and the users a
notification test watches: one of each role, with an e-mail address."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from cellchain.core.models import User
from cellchain.core.roles import Role
from cellchain.extensions import db
from cellchain.notifications.models import Notification, NotificationRecipient


@dataclass
class Mailbox:
    """What the server accepted, as parsed messages (thread-safe)."""

    url: str
    received: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: recipients answered for good "550 no such mailbox", or for now "450 mailbox busy"
    unknown: set[str] = field(default_factory=set)
    busy: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.unknown:
            return "550 5.1.1 No such mailbox here"
        if address in self.busy:
            return "450 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.received.append(parsed)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        with self.lock:
            return list(self.received)

    def wait_for(self, count: int, *, timeout: float = 10.0) -> list[EmailMessage]:
        """At least ``count`` messages, polled until ``timeout`` seconds have passed."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages()
            if len(messages) >= count or time.monotonic() > deadline:
                return messages
            time.sleep(0.01)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """An SMTP server on 127.0.0.1, stopped after the test."""
    port = free_port()
    box = Mailbox(url=f"smtp://127.0.0.1:{port}")
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def watchers(make_user: Callable[..., User], prefix: str = "watch") -> dict[Role, User]:
    """One user of each role, each with an e-mail address, made now."""
    users = {}
    for role in Role:
        user = make_user(f"{prefix}-{role.value.replace('_', '-')}", role)
        user.email = f"{user.username}@hospital.example"
        users[role] = user
    db.session.commit()
    return users


def last_notification_id() -> int:
    """The newest notification's id (0: none), to look only at those raised after it."""
    return db.session.scalar(select(func.max(Notification.id))) or 0


def notifications_of_kind(kind: str, *, since: int = 0) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.kind == kind, Notification.id > since)
            .order_by(Notification.id)
        )
    )


def recipients_of(notification: Notification) -> set[int]:
    return set(
        db.session.scalars(
            select(NotificationRecipient.user_id).where(
                NotificationRecipient.notification_id == notification.id
            )
        )
    )


def roles_told(kind: str, users: dict[Role, User], *, since: int = 0) -> set[Role]:
    """The roles of ``users`` told of the one notification of ``kind`` raised after
    ``since``."""
    (notification,) = notifications_of_kind(kind, since=since)
    told = recipients_of(notification)
    return {role for role, user in users.items() if user.id in told}
