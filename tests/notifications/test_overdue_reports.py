"""A serious adverse event's sponsor report that becomes overdue raises, once, an urgent
notification to investigators and QA, audited as the system's; the timer's ``cellchain
notifications deliver`` raises it first, with or without SMTP."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from cellchain.cli import main
from cellchain.clinic.follow_up import adverse_events, reporting
from cellchain.core.i18n import using_language
from cellchain.core.models import AuditEntry
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.notifications import service
from cellchain.notifications.models import Notification
from tests.notifications.test_events import report
from tests.support.follow_up import back_date
from tests.support.mailbox import last_notification_id, notifications_of_kind, roles_told, watchers

INITIAL, FOLLOW_UP = reporting.OVERDUE_NOTIFICATIONS.values()


def serious_event(clinic: Any, aware_at: dt.datetime) -> Any:
    patient = back_date(clinic.enrol(), 30)
    event = adverse_events.record_adverse_event(
        db.session,
        patient,
        report(onset_at=aware_at - dt.timedelta(hours=1), aware_at=aware_at),
        actor=clinic.clinician,
        now=aware_at,
    )
    db.session.commit()
    return event


def remind(at: dt.datetime) -> int:
    raised = reporting.remind_overdue_reports(db.session, now=at)
    db.session.commit()
    return raised


def test_each_overdue_report_is_reminded_once_urgently_to_investigators_and_qa(
    clinic: Any, make_user: Any
) -> None:
    aware = utcnow() - dt.timedelta(days=20)
    event = serious_event(clinic, aware)
    users = watchers(make_user)
    since = last_notification_id()
    assert remind(aware + dt.timedelta(hours=23, minutes=59)) == 0  # not yet due
    assert remind(aware + dt.timedelta(hours=24, minutes=1)) == 1
    assert roles_told(INITIAL, users, since=since) == {Role.INVESTIGATOR, Role.QA}
    (notification,) = notifications_of_kind(INITIAL, since=since)
    assert notification.urgent and notification.entity_id == event.id
    words = service.texts(notification)
    assert "initial report" in words.title and event.patient.study_id in words.title
    with using_language("zh_Hans"):
        assert "首次报告" in service.texts(notification).title
    assert remind(aware + dt.timedelta(days=2)) == 0  # once, however often the timer runs
    audit = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "adverse_event.report_overdue")
    ).all()
    assert [(a.entity_id, a.actor_id) for a in audit] == [(str(event.id), None)]

    # the initial report is recorded late; the follow-up is reminded when it is overdue
    reporting.record_report(
        db.session,
        event,
        kind="initial",
        reported_at=aware + dt.timedelta(days=2),
        reference="SP-2026-0042",
        actor=clinic.investigator,
        now=aware + dt.timedelta(days=2),
    )
    db.session.commit()
    assert remind(aware + dt.timedelta(days=14)) == 0
    assert remind(aware + dt.timedelta(days=15, minutes=1)) == 1
    assert len(notifications_of_kind(FOLLOW_UP, since=since)) == 1
    assert remind(aware + dt.timedelta(days=16)) == 0


def test_a_report_recorded_in_time_is_never_reminded(clinic: Any) -> None:
    aware = utcnow() - dt.timedelta(days=20)
    event = serious_event(clinic, aware)
    for kind, at in (
        ("initial", aware + dt.timedelta(hours=20)),
        ("follow_up", aware + dt.timedelta(days=10)),
    ):
        reporting.record_report(
            db.session,
            event,
            kind=kind,
            reported_at=at,
            reference="SP-1",
            actor=clinic.investigator,
            now=at,
        )
    db.session.commit()
    assert remind(aware + dt.timedelta(days=19)) == 0


def test_the_timers_deliver_command_raises_the_reminders_even_without_smtp(
    clinic: Any, make_user: Any
) -> None:
    serious_event(clinic, utcnow() - dt.timedelta(days=2))
    users = watchers(make_user)
    since = last_notification_id()
    result = CliRunner().invoke(main, ["notifications", "deliver"])
    assert result.exit_code == 0, result.output
    assert "Raised 1 reminder(s) of overdue adverse event reports." in result.output
    assert roles_told(INITIAL, users, since=since) == {Role.INVESTIGATOR, Role.QA}
    again = CliRunner().invoke(main, ["notifications", "deliver"])
    assert "reminder" not in again.output


@pytest.mark.postgres_only
def test_two_timers_running_at_once_remind_once(app: Flask, clinic: Any) -> None:
    """The second run waits for the first's commit (row locks), then finds its reminder."""
    aware = utcnow() - dt.timedelta(days=3)
    event = serious_event(clinic, aware)
    at = aware + dt.timedelta(hours=25)
    raised: list[int] = []
    start = threading.Barrier(2)

    def run() -> None:
        with app.app_context(), Session(db.engine) as own:
            start.wait(timeout=10)
            raised.append(reporting.remind_overdue_reports(own, now=at))
            own.commit()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(raised) == [0, 1]
    reminders = db.session.scalars(
        select(Notification).where(Notification.kind == INITIAL, Notification.entity_id == event.id)
    ).all()
    assert len(reminders) == 1
