"""The notifications page (newest first, unread marked, mark as read, the address), the
outbox page in the demo's configuration (no SMTP), and ``/api/v1/notifications``: only one's
own, bad input refused with a clear problem+json."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cellchain.core.models import AuditEntry, User
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.notifications import service
from cellchain.notifications.models import Notification, NotificationRecipient


def raise_(kind: str, **params: Any) -> Notification:
    values = {"lot_id": 1, "lot": "X999926000123-L01", "deviation_id": 7, "category": "process"}
    values.update(params)
    notification = service.notify(
        db.session, kind, entity_type="test", entity_id=1, params=values, actor=None, now=utcnow()
    )
    db.session.commit()
    return notification


def qa(make_user: Any, name: str, email: str | None = None) -> User:
    user = make_user(name, Role.QA)
    user.email = email
    db.session.commit()
    return user


def is_read(user: User, notification: Notification) -> bool:
    row = db.session.get(NotificationRecipient, (notification.id, user.id))
    db.session.refresh(row)
    return row.read_at is not None


def test_the_page_lists_newest_first_marks_unread_and_marks_read(clients: Any, make_user: Any):
    reader = qa(make_user, "ada")
    older = raise_("lot_to_review")
    newer = raise_("deviation_opened")
    web = clients.web(reader)
    page = web.get("/notifications").get_data(as_text=True)
    assert page.index("Deviation #7 opened") < page.index("Lot X999926000123-L01 ready")
    assert f'id="notification-{older.id}" class="notification unread"' in page
    assert "2 unread" in page
    assert 'href="/lots/1/review"' in page  # the record's page
    response = web.post("/notifications/read", data={"id": str(older.id)})
    assert response.status_code == 302
    assert is_read(reader, older) and not is_read(reader, newer)
    page = web.get("/notifications").get_data(as_text=True)
    assert f'id="notification-{older.id}" class="notification"' in page
    assert "1 unread" in page
    web.post("/notifications/read", data={"all": "1"})
    assert is_read(reader, newer)
    assert "Nothing unread." in web.get("/notifications").get_data(as_text=True)


def test_the_page_in_chinese(clients: Any, make_user: Any):
    reader = qa(make_user, "li")
    raise_("lot_to_review")
    page = clients.web(reader).get("/notifications", headers={"Accept-Language": "zh-CN"})
    text = page.get_data(as_text=True)
    assert "通知" in text and "批次 X999926000123-L01 待质量保证(QA)审核" in text


def test_the_navigation_links_the_page(clients: Any, make_user: Any):
    page = clients.web(make_user("tom", Role.TECHNICIAN)).get("/").get_data(as_text=True)
    assert 'href="/notifications"' in page


def test_marking_another_users_notification_is_refused(clients: Any, make_user: Any):
    owner = qa(make_user, "ada")
    other = make_user("tom", Role.TECHNICIAN)
    notification = raise_("lot_to_review")  # for QA only
    web = clients.web(other)
    assert "Lot X999926000123" not in web.get("/notifications").get_data(as_text=True)
    web.post("/notifications/read", data={"id": str(notification.id)})
    assert not is_read(owner, notification)
    api = clients.api(other)
    response = api.post("/api/v1/notifications/read", json={"ids": [notification.id]})
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert f"#{notification.id}" in response.get_json()["detail"]
    assert not is_read(owner, notification)
    assert api.get("/api/v1/notifications").get_json() == {"unread": 0, "notifications": []}


def test_the_api_lists_and_marks_read(clients: Any, make_user: Any):
    reader = qa(make_user, "ada")
    first = raise_("lot_to_review")
    second = raise_("recall_opened", recall_id=3, number="RC-2026-0001", what="lot L01")
    api = clients.api(reader)
    answer = api.get("/api/v1/notifications").get_json()
    assert answer["unread"] == 2
    assert [n["id"] for n in answer["notifications"]] == [second.id, first.id]
    assert answer["notifications"][0]["urgent"] is True
    assert answer["notifications"][0]["path"] == "/recalls/3"
    assert answer["notifications"][1]["title"] == "Lot X999926000123-L01 ready for QA review"
    zh = api.get("/api/v1/notifications", headers={"Accept-Language": "zh-CN"}).get_json()
    assert zh["notifications"][1]["title"] == "批次 X999926000123-L01 待质量保证(QA)审核"
    marked = api.post("/api/v1/notifications/read", json={"ids": [first.id]})
    assert marked.status_code == 200 and marked.get_json() == {"marked": 1}
    unread = api.get("/api/v1/notifications?unread=true").get_json()
    assert [n["id"] for n in unread["notifications"]] == [second.id]
    older = api.get(f"/api/v1/notifications?before={second.id}").get_json()
    assert [n["id"] for n in older["notifications"]] == [first.id]
    assert api.post("/api/v1/notifications/read", json={"all": True}).get_json() == {"marked": 1}


def test_bad_input_gets_a_clear_4xx(clients: Any, make_user: Any):
    api = clients.api(qa(make_user, "ada"))
    for body in ({}, {"ids": []}, {"ids": ["x"]}, {"ids": [1], "all": True}, {"all": False}):
        response = api.post("/api/v1/notifications/read", json=body)
        assert response.status_code == 422, body
        assert response.mimetype == "application/problem+json", body
    assert api.get("/api/v1/notifications?before=abc").status_code == 422
    assert api.get("/api/v1/notifications?unread=perhaps").status_code == 422
    response = api.put("/api/v1/notifications/email", json={"email": "not an address"})
    assert response.status_code == 422
    assert "not an e-mail address" in response.get_json()["detail"]
    assert api.put("/api/v1/notifications/email", json={}).status_code == 422


def test_a_user_removes_their_own_address_at_once_audited(clients: Any, make_user: Any):
    """Removing needs no confirmation (giving one does: test_email_confirmation)."""
    reader = qa(make_user, "ada")
    reader.email = "ada@hospital.example"
    db.session.commit()
    api = clients.api(reader)
    response = api.put("/api/v1/notifications/email", json={"email": " "})
    assert response.status_code == 200
    assert response.get_json() == {"email": None, "pending": None, "problem": None}
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "user.email_changed")
    ).one()
    assert entry.entity_id == str(reader.id)
    reader.email = "ada@hospital.example"
    db.session.commit()
    clients.web(reader).post("/notifications/email", data={"email": ""})
    db.session.refresh(reader)
    assert reader.email is None


def test_the_outbox_page_shows_what_would_be_sent_without_smtp(
    app: Any, clients: Any, make_user: Any
):
    assert not app.config.get("SMTP_URL")
    reader = qa(make_user, "ada", "ada@hospital.example")
    raise_("recall_opened", recall_id=3, number="RC-2026-0001", what="lot L01")
    raise_("lot_to_review")
    page = clients.web(reader).get("/notifications/outbox")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "No SMTP server is configured" in text
    assert "URGENT: Recall RC-2026-0001 opened: lot L01" in text
    assert "Lot X999926000123-L01 ready for QA review" in text
    assert "ada@hospital.example" in text
    api = clients.api(reader).get("/api/v1/notifications/outbox").get_json()
    assert api["smtp_configured"] is False
    assert {e["subject"] for e in api["emails"]} == {
        "URGENT: Recall RC-2026-0001 opened: lot L01",
        "Lot X999926000123-L01 ready for QA review",
    }


def test_the_outbox_is_for_audit_readers_only(clients: Any, make_user: Any):
    tech = make_user("tom", Role.TECHNICIAN)
    assert clients.web(tech).get("/notifications/outbox").status_code == 403
    response = clients.api(tech).get("/api/v1/notifications/outbox")
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"


def test_the_home_page_counts_the_unread(clients: Any, make_user: Any):
    reader = qa(make_user, "ada")
    web = clients.web(reader)
    assert "unread-notifications" not in web.get("/").get_data(as_text=True)
    raise_("lot_to_review")
    raise_("deviation_opened")
    page = web.get("/").get_data(as_text=True)
    assert "Unread notifications: 2" in page
    assert 'href="/notifications?unread=1"' in page
