"""The e-mails, sent to a real SMTP server on loopback (aiosmtpd): an urgent one right after
its event commits, alone; the others batched in one digest per person by the delivery; each in
its recipient's language; nothing sent for an event rolled back, nor without SMTP configured;
a failed send kept for the next delivery."""

from __future__ import annotations

import smtplib
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from cellchain.cli import main
from cellchain.core.i18n import using_language
from cellchain.core.models import User
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.notifications import commands, mail, service
from cellchain.notifications.models import Notification, OutboxEmail
from tests.support.mailbox import Mailbox, free_port


def raise_(kind: str, actor: User | None = None, **params: Any) -> Notification:
    """A notification of ``kind`` raised as its service would, in the caller's transaction."""
    values: dict[str, Any] = {
        "recall_id": 1,
        "number": "RC-2026-0007",
        "what": "donation X9999 26 000123",
        "reason": "HBV NAT reactive",
        "blocked": 3,
        "withdrawn": 1,
        "patients": 2,
        "lot_id": 1,
        "lot": "X999926000123-L01",
        "deviation_id": 4,
        "category": "equipment",
        "description": "Incubator alarm",
        **params,
    }
    return service.notify(
        db.session, kind, entity_type="test", entity_id=1, params=values, actor=actor, now=utcnow()
    )


def qa_reader(make_user: Any, name: str, language: str | None = None) -> User:
    user = make_user(name, Role.QA)
    user.email = f"{name}@hospital.example"
    user.language = language
    db.session.commit()
    return user


def deliver(app: Flask) -> mail.Delivery:
    return mail.deliver(
        db.session,
        mail.MailSettings.from_config(app.config),
        now=utcnow,
        on_sent=db.session.commit,
        link_for=commands.link_path,
    )


def test_an_urgent_e_mail_goes_right_after_the_commit_in_the_readers_language(
    app: Flask, make_user: Any, mailbox: Mailbox
):
    app.config["SMTP_URL"] = mailbox.url
    app.config["SITE_URL"] = "https://cellchain.hospital.example"
    english = qa_reader(make_user, "ada")
    chinese = qa_reader(make_user, "li", "zh_Hans")
    raise_("recall_opened")
    assert mailbox.messages() == []  # nothing inside the transaction
    db.session.commit()
    received = {m["To"]: m for m in mailbox.wait_for(2)}
    assert set(received) == {english.email, chinese.email}
    assert received[english.email]["Subject"] == (
        "URGENT: Recall RC-2026-0007 opened: donation X9999 26 000123"
    )
    zh = received[chinese.email]
    assert "召回" in zh["Subject"] and "RC-2026-0007" in zh["Subject"]
    assert "召回" in zh.get_content()
    assert "https://cellchain.hospital.example/recalls/1" in received[english.email].get_content()
    assert all(email.sent_at is not None for email in db.session.scalars(select(OutboxEmail)))


def test_urgent_ones_are_never_batched_and_the_others_go_in_one_digest(
    app: Flask, make_user: Any, mailbox: Mailbox
):
    app.config["SMTP_URL"] = mailbox.url
    reader = qa_reader(make_user, "ada")
    raise_("lot_to_review")
    raise_("deviation_opened")
    raise_("recall_opened", number="RC-2026-0008")
    raise_("recall_opened", number="RC-2026-0009")
    db.session.commit()
    urgent = mailbox.wait_for(2)
    assert sorted(m["Subject"] for m in urgent) == [
        "URGENT: Recall RC-2026-0008 opened: donation X9999 26 000123",
        "URGENT: Recall RC-2026-0009 opened: donation X9999 26 000123",
    ]
    waiting = mail.waiting(db.session)
    assert {email.urgent for email in waiting} == {False} and len(waiting) == 2
    result = deliver(app)
    assert (result.sent, result.emails, result.failed) == (1, 2, 0)
    messages = mailbox.wait_for(3)
    assert len(messages) == 3
    digest = messages[2]
    assert digest["To"] == reader.email
    assert digest["Subject"] == "2 notifications from cellchain demo site"
    body = digest.get_content()
    assert "Lot X999926000123-L01 ready for QA review" in body
    assert "Deviation #4 opened" in body
    assert mail.waiting(db.session) == []
    assert deliver(app).sent == 0  # sent once


def test_a_chinese_digest(app: Flask, make_user: Any, mailbox: Mailbox):
    app.config["SMTP_URL"] = mailbox.url
    qa_reader(make_user, "li", "zh_Hans")
    raise_("lot_to_review")
    raise_("deviation_opened")
    db.session.commit()
    assert deliver(app).sent == 1
    (digest,) = mailbox.wait_for(1)
    with using_language("zh_Hans"):
        expected = service.texts(
            db.session.scalars(
                select(Notification).where(Notification.kind == "lot_to_review")
            ).one()
        ).title
    assert expected != "Lot X999926000123-L01 ready for QA review"  # translated
    assert expected in digest.get_content()
    assert "批次" in digest.get_content() and "偏差" in digest.get_content()


def test_nothing_is_sent_for_an_event_rolled_back(app: Flask, make_user: Any, mailbox: Mailbox):
    app.config["SMTP_URL"] = mailbox.url
    qa_reader(make_user, "ada")
    raise_("recall_opened")
    db.session.rollback()
    raise_("deviation_opened")  # the next transaction's own, not urgent
    db.session.commit()
    assert deliver(app).sent == 1
    messages = mailbox.wait_for(1)
    assert [m["Subject"] for m in messages] == ["Deviation #4 opened"]


def test_without_smtp_nothing_is_sent_and_the_e_mails_wait(
    app: Flask, make_user: Any, mailbox: Mailbox
):
    assert app.config.get("SMTP_URL") is None  # the demo's and the tests' configuration
    qa_reader(make_user, "ada")
    raise_("recall_opened")
    db.session.commit()
    assert deliver(app).sent == 0
    assert len(mail.waiting(db.session)) == 1
    assert mailbox.messages() == []


def test_a_failed_send_is_kept_and_sent_by_the_next_delivery(
    app: Flask, make_user: Any, mailbox: Mailbox
):
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"  # nobody listens there
    qa_reader(make_user, "ada")
    raise_("recall_opened")
    db.session.commit()  # the event is committed whatever the mail server does
    (email,) = mail.waiting(db.session)
    assert email.attempts == 1 and email.last_error  # the send right after the commit failed
    result = deliver(app)
    assert result.failed == 1 and result.sent == 0
    db.session.refresh(email)
    assert email.attempts == 2 and email.sent_at is None
    app.config["SMTP_URL"] = mailbox.url
    assert deliver(app).sent == 1
    assert len(mailbox.wait_for(1)) == 1


def test_a_mailbox_refused_for_good_is_not_tried_again_and_shows_on_the_outbox(
    app: Flask, make_user: Any, mailbox: Mailbox, clients: Any
):
    app.config["SMTP_URL"] = mailbox.url
    gone, busy = qa_reader(make_user, "gone"), qa_reader(make_user, "busy")
    mailbox.unknown.add(gone.email)
    mailbox.busy.add(busy.email)
    raise_("recall_opened")  # urgent: each sent alone, right after the commit
    db.session.commit()
    assert mailbox.messages() == []
    assert [e.address for e in mail.waiting(db.session)] == [busy.email]  # 450: tried again
    result = deliver(app)
    assert result.failed == 1 and result.sent == 0  # only the busy one was tried
    mailbox.busy.clear()
    assert deliver(app).sent == 1
    assert [m["To"] for m in mailbox.wait_for(1)] == [busy.email]
    assert deliver(app).failed == 0  # the refused one never again
    (refused,) = db.session.scalars(
        select(OutboxEmail).where(OutboxEmail.refused_at.is_not(None))
    ).all()
    assert refused.address == gone.email and refused.attempts == 1 and refused.sent_at is None
    assert "No such mailbox" in (refused.last_error or "")
    auditor = clients.web(make_user("audra", "qa"))
    page = auditor.get("/notifications/outbox").get_data(as_text=True)
    assert 'id="outbox-refused"' in page and gone.email in page and "No such mailbox" in page
    body = clients.api(make_user("audrey", "qa")).get("/api/v1/notifications/outbox").get_json()
    assert [e["to"] for e in body["refused"]] == [gone.email]
    assert all(e["to"] != gone.email for e in body["emails"])


@pytest.mark.parametrize(
    ("error", "for_good"),
    [
        (smtplib.SMTPRecipientsRefused({"a@x.cn": (550, b"5.1.1 no such user")}), True),
        (smtplib.SMTPRecipientsRefused({"a@x.cn": (550, b"5.2.1 mailbox disabled")}), True),
        (smtplib.SMTPRecipientsRefused({"a@x.cn": (553, b"5.1.3 bad address syntax")}), True),
        (
            smtplib.SMTPRecipientsRefused(
                {"a@x.cn": (550, b"5.1.1 no"), "b@x.cn": (451, b"later")}
            ),
            False,
        ),
        # a relay or policy refusal is the site's configuration: retried once it is fixed
        (smtplib.SMTPRecipientsRefused({"a@x.cn": (554, b"5.7.1 Relay access denied")}), False),
        (smtplib.SMTPRecipientsRefused({"a@x.cn": (550, b"5.7.54 Unable to relay")}), False),
        (smtplib.SMTPRecipientsRefused({"a@x.cn": (550, b"No such user here")}), False),
        (smtplib.SMTPDataError(554, b"5.6.0 message content rejected"), True),
        (smtplib.SMTPDataError(552, b"5.3.4 message too big for system"), True),
        (smtplib.SMTPDataError(554, b"5.7.1 sender not authenticated"), False),
        (smtplib.SMTPDataError(451, b"4.3.0 local error"), False),
        (smtplib.SMTPSenderRefused(553, b"5.1.8 bad sender", "cellchain@site"), False),
        (ConnectionRefusedError(), False),
    ],
)
def test_which_answers_refuse_an_e_mail_for_good(error: BaseException, for_good: bool) -> None:
    assert mail.permanent(error) is for_good


def test_the_deliver_command(app: Flask, make_user: Any, mailbox: Mailbox):
    qa_reader(make_user, "ada")
    raise_("lot_to_review")
    raise_("deviation_opened")
    db.session.commit()
    runner = CliRunner()  # the command runs in the test's app context
    result = runner.invoke(main, ["notifications", "deliver"])
    assert result.exit_code == 0, result.output
    assert "nothing sent; 2 e-mail(s) waiting" in result.output
    app.config["SMTP_URL"] = mailbox.url
    result = runner.invoke(main, ["notifications", "deliver"])
    assert result.exit_code == 0, result.output
    assert "Sent 1 message(s) carrying 2 e-mail(s); 0 failed." in result.output
    assert len(mailbox.wait_for(1)) == 1


def test_tls_checks_the_servers_certificate_and_a_password_is_never_sent_in_clear(
    monkeypatch: Any,
):
    import smtplib
    import ssl

    from cellchain.notifications import mail

    seen: dict[str, Any] = {}

    class FakeSSL:
        def __init__(self, host: str, port: int, timeout: float, context: Any) -> None:
            seen["context"] = context

        def login(self, user: str, password: str) -> None:
            seen["login"] = (user, password)

    monkeypatch.setattr(smtplib, "SMTP_SSL", FakeSSL)
    mail.connect("smtps://alert%40site:secret@mail.example:465")

    context = seen["context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert seen["login"] == ("alert@site", "secret")
    with pytest.raises(ValueError, match="no encryption"):
        mail.connect("smtp://alert:secret@mail.example:25")


def test_an_e_mail_that_cannot_be_composed_holds_up_no_other(
    app: Flask, make_user: Any, mailbox: Mailbox, monkeypatch: Any
):
    real = mail.compose
    composed: list[int] = []

    def compose_failing_first(emails: Any, *args: Any, **kwargs: Any) -> Any:
        composed.append(emails[0].id)
        if len(composed) == 1:
            raise KeyError("a placeholder nobody filled")
        return real(emails, *args, **kwargs)

    qa_reader(make_user, "ada")
    qa_reader(make_user, "bea")
    raise_("lot_to_review")  # no SMTP yet: both digests wait
    db.session.commit()
    app.config["SMTP_URL"] = mailbox.url
    monkeypatch.setattr(mail, "compose", compose_failing_first)

    result = deliver(app)

    assert (result.sent, result.failed) == (1, 1)
    assert "a placeholder nobody filled" in " ".join(result.errors)
    assert len(mailbox.wait_for(1)) == 1
    assert len(mail.waiting(db.session)) == 1  # kept for the next delivery


def test_the_send_right_after_a_commit_waits_for_the_server_less_than_the_timers_delivery(
    app: Flask, make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person who opened the recall waits for the urgent send: a server out of reach costs
    them at most ``AFTER_COMMIT_TIMEOUT``; the timer's delivery waits the full ``SMTP_TIMEOUT``."""
    waited: list[float] = []

    class Unreachable:
        def __init__(self, host: str, port: int, timeout: float) -> None:
            waited.append(timeout)
            raise TimeoutError("timed out")

    monkeypatch.setattr(mail.smtplib, "SMTP", Unreachable)
    app.config["SMTP_URL"] = "smtp://mail.hospital.example:25"
    qa_reader(make_user, "ada")
    raise_("recall_opened")
    db.session.commit()
    assert waited == [mail.AFTER_COMMIT_TIMEOUT]
    assert deliver(app).failed == 1
    assert waited == [mail.AFTER_COMMIT_TIMEOUT, mail.SMTP_TIMEOUT]
    assert mail.AFTER_COMMIT_TIMEOUT < mail.SMTP_TIMEOUT


def test_refused_e_mails_are_put_back_by_the_requeue_command(
    app: Flask, make_user: Any, mailbox: Mailbox
) -> None:
    app.config["SMTP_URL"] = mailbox.url
    ada = qa_reader(make_user, "ada")
    mailbox.unknown.add(ada.email)
    raise_("recall_opened")
    db.session.commit()
    assert mail.waiting(db.session) == []  # refused for good right after the commit
    mailbox.unknown.clear()  # the address is fixed on the server's side
    result = CliRunner().invoke(main, ["notifications", "requeue"])
    assert result.exit_code == 0 and "1 refused e-mail(s) put back" in result.output
    assert deliver(app).sent == 1
    assert [m["To"] for m in mailbox.wait_for(1)] == [ada.email]


def test_a_failing_reminder_holds_up_no_e_mail(
    app: Flask, make_user: Any, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cellchain.clinic.follow_up import reporting

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(reporting, "remind_overdue_reports", broken)
    qa_reader(make_user, "ada")
    raise_("lot_to_review")
    db.session.commit()
    app.config["SMTP_URL"] = mailbox.url
    result = CliRunner().invoke(main, ["notifications", "deliver"])
    assert result.exit_code == 1 and "reminders failed: database hiccup" in result.output
    assert "Sent 1 message(s)" in result.output and len(mailbox.wait_for(1)) == 1
