"""An address a user gives for their notifications is used only once they confirm it with
the link e-mailed to it: a mistyped address never receives a patient's adverse event."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from flask import Flask
from sqlalchemy import select

from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.notifications import service
from tests.support.mailbox import Mailbox, free_port

_LINK = re.compile(r"https?://\S+/notifications/email/confirm/(\S+)")


def token_in(message: Any) -> str:
    found = _LINK.search(message.get_content())
    assert found, message.get_content()
    return found[1]


def test_a_new_address_waits_for_the_link_e_mailed_to_it(
    app: Flask, clients: Any, make_user: Any, mailbox: Mailbox
) -> None:
    app.config["SMTP_URL"] = mailbox.url
    app.config["SITE_URL"] = "https://cellchain.hospital.example"
    ada = make_user("ada", "investigator")
    ada.email = "ada@old.example"
    db.session.commit()
    web = clients.web(ada)
    answer = web.post("/notifications/email", data={"email": "ada@hospital.example"})
    assert answer.status_code == 302
    db.session.refresh(ada)
    assert (ada.email, ada.email_pending) == ("ada@old.example", "ada@hospital.example")
    page = web.get("/notifications").get_data(as_text=True)
    assert 'id="email-pending"' in page and "ada@hospital.example" in page
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "ada@hospital.example"
    token = token_in(message)
    assert (
        "https://cellchain.hospital.example/notifications/email/confirm/" in message.get_content()
    )

    # the link's page changes nothing until its button is pressed
    assert token in web.get(f"/notifications/email/confirm/{token}").get_data(as_text=True)
    db.session.refresh(ada)
    assert ada.email == "ada@old.example"
    web.post(f"/notifications/email/confirm/{token}")
    db.session.refresh(ada)
    assert (ada.email, ada.email_pending, ada.email_confirm_hash) == (
        "ada@hospital.example",
        None,
        None,
    )
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.entity_type == "user")
    ).all()
    assert actions[-2:] == ["user.email_confirmation_requested", "user.email_changed"]
    # used once
    again = clients.api(ada).post("/api/v1/notifications/email/confirm", json={"token": token})
    assert again.status_code == 422 and "not valid" in again.get_json()["detail"]


def test_a_link_is_refused_when_not_yours_replaced_or_expired(
    app: Flask, clients: Any, make_user: Any, mailbox: Mailbox
) -> None:
    app.config["SMTP_URL"] = mailbox.url
    app.config["SITE_URL"] = "https://cellchain.hospital.example"
    ada, bob = make_user("ada", "qa"), make_user("bob", "qa")
    api = clients.api(ada)
    body = api.put("/api/v1/notifications/email", json={"email": "ada@hospital.example"})
    assert body.get_json() == {"email": None, "pending": "ada@hospital.example", "problem": None}
    first = token_in(mailbox.wait_for(1)[0])
    # bob cannot confirm ada's address
    stolen = clients.api(bob).post("/api/v1/notifications/email/confirm", json={"token": first})
    assert stolen.status_code == 422
    # a newer request replaces the link
    api.put("/api/v1/notifications/email", json={"email": "ada@ward.example"})
    second = token_in(mailbox.wait_for(2)[1])
    replaced = api.post("/api/v1/notifications/email/confirm", json={"token": first})
    assert replaced.status_code == 422
    # expired
    db.session.refresh(ada)
    ada.email_confirm_expires_at = utcnow() - dt.timedelta(minutes=1)
    db.session.commit()
    expired = api.post("/api/v1/notifications/email/confirm", json={"token": second})
    assert expired.status_code == 422 and "expired" in expired.get_json()["detail"]
    db.session.refresh(ada)
    assert ada.email is None and ada.email_pending == "ada@ward.example"
    assert api.post("/api/v1/notifications/email/confirm", json={}).status_code == 422


def test_without_a_mail_server_the_page_says_how_to_set_it(
    app: Flask, clients: Any, make_user: Any
) -> None:
    assert not app.config.get("SMTP_URL")
    ada = make_user("ada", "clinician")
    response = clients.api(ada).put(
        "/api/v1/notifications/email", json={"email": "ada@hospital.example"}
    )
    body = response.get_json()
    assert body["email"] is None and body["pending"] == "ada@hospital.example"
    assert "set-email" in body["problem"]
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"  # nobody listens
    app.config["SITE_URL"] = "https://cellchain.hospital.example"
    web = clients.web(ada)
    web.post("/notifications/email", data={"email": "ada@hospital.example"})
    page = web.get("/notifications").get_data(as_text=True)
    assert "could not be sent" in page


def test_the_address_in_use_or_an_operators_needs_no_confirmation(
    app: Flask, make_user: Any
) -> None:
    ada = make_user("ada", "qa")
    service.set_email(db.session, ada, "ada@hospital.example", actor=None, now=utcnow())
    assert ada.email == "ada@hospital.example"
    same = service.request_email_change(db.session, ada, " ada@hospital.example ", now=utcnow())
    assert same.token is None and ada.email_pending is None


def test_the_confirmation_e_mail_reads_in_the_users_language(
    app: Flask, clients: Any, make_user: Any, mailbox: Mailbox
) -> None:
    app.config["SMTP_URL"] = mailbox.url
    app.config["SITE_URL"] = "https://cellchain.hospital.example"
    li = make_user("li", "clinician")
    li.language = "zh_Hans"
    db.session.commit()
    clients.api(li).put("/api/v1/notifications/email", json={"email": "li@hospital.example"})
    (message,) = mailbox.wait_for(1)
    assert "确认" in message["Subject"] and "+" in message.get_content()


def test_the_link_never_takes_its_host_from_the_request(
    app: Flask, clients: Any, make_user: Any, mailbox: Mailbox
) -> None:
    """Otherwise anyone could have the site's own mail server send a link to their site."""
    app.config["SMTP_URL"] = mailbox.url
    api = clients.api(make_user("mallory", "clinician"))
    evil = {"Host": "cellchain-login.evil.example"}
    body = api.put(
        "/api/v1/notifications/email", json={"email": "victim@hospital.example"}, headers=evil
    ).get_json()
    assert "CELLCHAIN_SITE_URL" in body["problem"] and body["pending"] == "victim@hospital.example"
    assert mailbox.wait_for(1, timeout=0.5) == []  # without the site's address, no mail
    app.config["SITE_URL"] = "https://cellchain.hospital.example"
    api.put("/api/v1/notifications/email", json={"email": "me@hospital.example"}, headers=evil)
    (message,) = mailbox.wait_for(1)
    assert "evil.example" not in message.get_content()
    assert "https://cellchain.hospital.example/notifications/email/confirm/" in (
        message.get_content()
    )


def test_at_most_three_confirmation_e_mails_an_hour(
    app: Flask, clients: Any, make_user: Any, mailbox: Mailbox
) -> None:
    app.config["SMTP_URL"] = mailbox.url
    app.config["SITE_URL"] = "https://cellchain.hospital.example"
    api = clients.api(make_user("ada", "qa"))
    for n in range(3):
        response = api.put("/api/v1/notifications/email", json={"email": f"a{n}@x.example"})
        assert response.status_code == 200
    fourth = api.put("/api/v1/notifications/email", json={"email": "a4@x.example"})
    assert fourth.status_code == 409 and "within the last hour" in fourth.get_json()["detail"]
    assert len(mailbox.wait_for(3)) == 3 and len(mailbox.wait_for(4, timeout=0.3)) == 3


def test_a_replaced_or_cancelled_pending_address_is_audited_with_its_old_value(
    app: Flask, make_user: Any
) -> None:
    ada = make_user("ada", "qa")
    ada.email = "ada@hospital.example"
    db.session.commit()
    service.request_email_change(db.session, ada, "first@x.example", now=utcnow())
    service.request_email_change(db.session, ada, "second@x.example", now=utcnow())
    service.request_email_change(db.session, ada, "ada@hospital.example", now=utcnow())
    db.session.commit()
    entries = db.session.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity_type == "user", AuditEntry.entity_id == str(ada.id))
        .order_by(AuditEntry.seq)
    ).all()
    changes = [(e.action, json.loads(e.changes)) for e in entries[-3:]]
    assert changes == [
        ("user.email_confirmation_requested", {"email_pending": [None, "first@x.example"]}),
        (
            "user.email_confirmation_requested",
            {"email_pending": ["first@x.example", "second@x.example"]},
        ),
        ("user.email_confirmation_cancelled", {"email_pending": ["second@x.example", None]}),
    ]
    assert ada.email == "ada@hospital.example" and ada.email_pending is None
