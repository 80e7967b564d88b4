"""One sender per outbox e-mail (issue 22): the timer's delivery and the app servers' sends
after a commit may run at once; each claims a message's rows right before sending it, so an
e-mail reaches the SMTP server (aiosmtpd on loopback) once. A claim left by a sender that died
is taken by the next delivery once it is older than the timeout. On SQLite and PostgreSQL
(``CELLCHAIN_TEST_DATABASE_URL``)."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from cellchain.core.models import User
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.notifications import commands, mail
from cellchain.notifications.models import OutboxEmail
from tests.notifications.test_mail import qa_reader, raise_
from tests.support.mailbox import Mailbox


def waiting_ids() -> list[int]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(OutboxEmail.id).where(OutboxEmail.sent_at.is_(None)).order_by(OutboxEmail.id)
        )
    )


def queue_mail(app: Flask, make_user: Callable[..., User], mailbox: Mailbox) -> list[User]:
    """Three readers, and for each of them two urgent e-mails and two for the digest, waiting
    (the send after the commit is off: no SMTP server is configured yet)."""
    app.config["SMTP_URL"] = None
    readers = [qa_reader(make_user, name) for name in ("ada", "bo", "cy")]
    for number in ("RC-2026-0001", "RC-2026-0002"):
        raise_("recall_opened", number=number)
    for lot in ("X999926000123-L01", "X999926000123-L02"):
        raise_("lot_to_review", lot=lot)
    db.session.commit()
    app.config["SMTP_URL"] = mailbox.url
    return readers


def test_two_senders_at_once_send_each_e_mail_once(
    app: Flask, make_user: Any, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both senders read the same waiting e-mails before either sends one (a barrier right
    after the read): without the claims every e-mail would go twice."""
    readers = queue_mail(app, make_user, mailbox)
    queued = waiting_ids()
    assert len(queued) == 12
    read_waiting = mail.waiting
    both_read = threading.Barrier(2)

    def waiting_then_meet(*args: Any, **kwargs: Any) -> list[OutboxEmail]:
        emails = read_waiting(*args, **kwargs)
        both_read.wait(timeout=30)
        return emails

    monkeypatch.setattr(mail, "waiting", waiting_then_meet)
    settings = mail.MailSettings.from_config(app.config)
    results: list[mail.Delivery] = []
    failures: list[BaseException] = []

    def sender() -> None:
        try:
            with app.app_context(), Session(db.engine) as own:
                results.append(
                    mail.deliver(
                        own, settings, now=utcnow, on_sent=own.commit, link_for=commands.link_path
                    )
                )
                own.commit()
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert len(results) == 2
    # each reader: two urgent messages alone and one digest of two, each sent once
    received = mailbox.wait_for(9)
    by_subject = Counter((m["To"], m["Subject"]) for m in received)
    assert len(received) == 9, by_subject
    assert all(count == 1 for count in by_subject.values()), by_subject
    assert Counter(m["To"] for m in received) == {reader.email: 3 for reader in readers}
    assert sum(result.emails for result in results) == 12
    assert sum(result.sent for result in results) == 9
    assert waiting_ids() == []
    db.session.expire_all()
    assert db.session.scalars(select(OutboxEmail.claimed_at)).all() == [None] * 12


def test_a_claim_held_by_a_live_sender_is_left_and_a_dead_senders_is_taken_after_the_timeout(
    app: Flask, make_user: Any, mailbox: Mailbox
) -> None:
    """Another sender claimed the e-mails and never marked them (it died after its claim's
    commit): within the timeout the delivery leaves them, as a live sender's; after it, the
    delivery sends them, each once."""
    queue_mail(app, make_user, mailbox)
    queued = waiting_ids()
    claimed_at = utcnow()
    with Session(db.engine) as dead_sender:
        assert mail.claim(dead_sender, queued, at=claimed_at) == set(queued)
        dead_sender.commit()
    settings = mail.MailSettings.from_config(app.config)

    def deliver_at(moment: dt.datetime) -> mail.Delivery:
        return mail.deliver(db.session, settings, now=lambda: moment, on_sent=db.session.commit)

    soon = deliver_at(claimed_at + mail.CLAIM_TIMEOUT - dt.timedelta(seconds=1))
    assert (soon.sent, soon.emails, soon.failed) == (0, 0, 0)
    assert mailbox.messages() == []
    assert waiting_ids() == queued
    later = deliver_at(claimed_at + mail.CLAIM_TIMEOUT + dt.timedelta(seconds=1))
    assert (later.sent, later.emails, later.failed) == (9, 12, 0)
    assert len(mailbox.wait_for(9)) == 9
    assert waiting_ids() == []
    again = deliver_at(claimed_at + 2 * mail.CLAIM_TIMEOUT)
    assert (again.sent, again.emails) == (0, 0)
    assert len(mailbox.messages()) == 9


def test_a_claim_is_taken_once_and_a_failed_send_lets_it_go(
    app: Flask, make_user: Any, mailbox: Mailbox
) -> None:
    """Two claims of the same rows: the second gets none. A send the server refuses for now
    counts the attempt and frees the row, so the next delivery retries it at once."""
    queue_mail(app, make_user, mailbox)
    queued = waiting_ids()
    now = utcnow()
    with Session(db.engine) as first, Session(db.engine) as second:
        assert mail.claim(first, queued[:3], at=now) == set(queued[:3])
        first.commit()
        assert mail.claim(second, queued, at=now) == set(queued[3:])
        second.rollback()
        first.rollback()
    db.session.execute(OutboxEmail.__table__.update().values(claimed_at=None))
    db.session.commit()
    mailbox.busy.add("ada@hospital.example")
    settings = mail.MailSettings.from_config(app.config)
    first_run = mail.deliver(db.session, settings, now=utcnow, on_sent=db.session.commit)
    assert (first_run.sent, first_run.failed) == (6, 3)
    db.session.expire_all()
    left = db.session.scalars(select(OutboxEmail).where(OutboxEmail.sent_at.is_(None))).all()
    assert {(e.address, e.attempts, e.claimed_at) for e in left} == {
        ("ada@hospital.example", 1, None)
    }
    mailbox.busy.clear()
    retry = mail.deliver(db.session, settings, now=utcnow, on_sent=db.session.commit)
    assert (retry.sent, retry.emails, retry.failed) == (3, 4, 0)
    assert waiting_ids() == []
