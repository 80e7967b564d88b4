"""Each event the work queues count raises a notification for the roles concerned and no
others, urgent ones marked; never for the person who caused it; with an e-mail in the outbox
for each recipient with an address; nothing when the event's transaction rolls back."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from cellchain.clinic.follow_up import adverse_events
from cellchain.clinic.follow_up.adverse_events import AdverseEventReport
from cellchain.core.models import UserRole
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.donors import service as donors
from cellchain.donors.models import InfectiousResult
from cellchain.extensions import db
from cellchain.manufacturing.deviations import deviations
from cellchain.notifications import service
from cellchain.notifications.models import Notification, NotificationRecipient, OutboxEmail
from cellchain.traceability.models import RecallTarget
from cellchain.traceability.recalls import recalls
from tests.conftest import TEST_PASSWORD
from tests.support.follow_up import back_date
from tests.support.mailbox import (
    last_notification_id,
    notifications_of_kind,
    recipients_of,
    roles_told,
    watchers,
)

QA, QC, TECH, CLIN, INV = (
    Role.QA,
    Role.QC_ANALYST,
    Role.TECHNICIAN,
    Role.CLINICIAN,
    Role.INVESTIGATOR,
)


def test_a_recall_tells_qa_clinicians_and_investigators_urgently(lab: Any, make_user: Any):
    donation = lab.eligible_donation()
    users = watchers(make_user)
    since = last_notification_id()
    recalls.open_recall(
        db.session,
        target=RecallTarget.DONATION,
        target_id=donation.id,
        reason="Late donor test: HBV NAT reactive on the retained sample.",
        user=lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    assert roles_told("recall_opened", users, since=since) == {QA, CLIN, INV}
    (notification,) = notifications_of_kind("recall_opened", since=since)
    assert notification.urgent
    assert lab.qa.id not in recipients_of(notification)  # who opened it knows
    words = service.texts(notification)
    assert donation.din in words.title or donation.din in words.body


def test_a_shipment_dispatched_tells_clinicians_and_one_held_tells_qa_urgently(
    ward: Any, make_user: Any
):
    order = ward.prepared()
    users = watchers(make_user)
    since = last_notification_id()
    shipment = ward.ship(order)
    assert roles_told("shipment_dispatched", users, since=since) == {CLIN}
    (dispatched,) = notifications_of_kind("shipment_dispatched", since=since)
    assert not dispatched.urgent
    ward.receive(shipment, temperature_c=-100.0)  # above the storage limit: held for QA
    assert roles_told("receipt_held", users, since=since) == {QA}
    (held,) = notifications_of_kind("receipt_held", since=since)
    assert held.urgent
    assert "-100" in service.texts(held).body


def test_a_shipment_received_in_order_raises_nothing(ward: Any, make_user: Any):
    shipment = ward.ship(ward.prepared())
    since = last_notification_id()
    ward.receive(shipment)
    assert last_notification_id() == since


def report(**changes: Any) -> AdverseEventReport:
    values: dict[str, Any] = {
        "onset_at": utcnow() - dt.timedelta(hours=2),
        "description": "Anaphylaxis during the infusion",
        "grade": 4,
        "seriousness": "serious",
        "outcome": "recovering",
        "infusion_id": None,
        "serious_criteria": frozenset({"hospitalisation"}),
    }
    values.update(changes)
    return AdverseEventReport(**values)


def test_a_serious_adverse_event_tells_investigators_and_qa_urgently_with_its_clock(
    clinic: Any, make_user: Any
):
    patient = back_date(clinic.enrol(), 10)
    users = watchers(make_user)
    since = last_notification_id()
    now = utcnow()
    adverse_events.record_adverse_event(
        db.session, patient, report(), actor=clinic.clinician, now=now
    )
    db.session.commit()
    assert roles_told("serious_adverse_event", users, since=since) == {INV, QA}
    (notification,) = notifications_of_kind("serious_adverse_event", since=since)
    assert notification.urgent
    due = service._shown({"x_at": (now + dt.timedelta(hours=24)).isoformat()}, service.UTC_ZONE)
    assert due["x_at"] in service.texts(notification).title
    assert patient.study_id in service.texts(notification).title


def test_a_non_serious_adverse_event_raises_nothing(clinic: Any, make_user: Any):
    patient = back_date(clinic.enrol(), 10)
    since = last_notification_id()
    adverse_events.record_adverse_event(
        db.session,
        patient,
        report(grade=2, seriousness="non_serious", serious_criteria=frozenset()),
        actor=clinic.clinician,
        now=utcnow(),
    )
    db.session.commit()
    assert last_notification_id() == since


def test_the_last_donor_test_puts_the_eligibility_to_sign_before_qa(lab: Any, make_user: Any):
    donation = lab.receive(lab.register())
    users = watchers(make_user)
    since = last_notification_id()
    panel = [test.code for test in donors.panel_of(donation)]
    lab.full_panel(donation, skip=(panel[-1],))
    assert notifications_of_kind("eligibility_to_sign", since=since) == []
    lab.record(donation, panel[-1], InfectiousResult.NON_REACTIVE)
    assert roles_told("eligibility_to_sign", users, since=since) == {QA}
    (notification,) = notifications_of_kind("eligibility_to_sign", since=since)
    assert not notification.urgent
    assert donation.din in service.texts(notification).title


def test_qc_samples_tell_qc_and_the_last_result_puts_the_lot_before_qa(desk: Any, make_user: Any):
    users = watchers(make_user)
    since = last_notification_id()
    desk.sample()
    assert roles_told("qc_samples_awaiting_results", users, since=since) == {QC}
    assert notifications_of_kind("lot_to_review", since=since) == []
    desk.full_panel()
    assert roles_told("lot_to_review", users, since=since) == {QA}
    (notification,) = notifications_of_kind("lot_to_review", since=since)
    assert not notification.urgent
    assert desk.lot.lot_number in service.texts(notification).title


def test_a_deviation_opened_tells_qa(lab: Any, make_user: Any):
    users = watchers(make_user)
    since = last_notification_id()
    deviation = deviations.open_deviation(
        db.session,
        lot=None,
        category="equipment",
        description="Incubator door alarm ignored for 20 minutes.",
        actor=lab.tech,
        now=utcnow(),
    )
    db.session.commit()
    assert roles_told("deviation_opened", users, since=since) == {QA}
    (notification,) = notifications_of_kind("deviation_opened", since=since)
    assert f"#{deviation.id}" in service.texts(notification).title


def test_nothing_is_raised_or_queued_when_the_event_rolls_back(lab: Any, make_user: Any):
    watchers(make_user)
    before = [
        db.session.scalar(select(func.count()).select_from(table))
        for table in (Notification, NotificationRecipient, OutboxEmail)
    ]
    deviations.open_deviation(
        db.session,
        lot=None,
        category="process",
        description="Rolled back.",
        actor=lab.tech,
        now=utcnow(),
    )
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) > before[2]
    db.session.rollback()
    after = [
        db.session.scalar(select(func.count()).select_from(table))
        for table in (Notification, NotificationRecipient, OutboxEmail)
    ]
    assert after == before
    assert service.URGENT_KEY not in db.session.info


def test_inactive_users_suspended_roles_and_users_without_address(lab: Any, make_user: Any):
    users = watchers(make_user)
    gone = make_user("gone-qa", Role.QA)
    gone.active = False
    suspended = make_user("admin-qa", Role.ADMIN)  # administration and QA: QA suspended
    db.session.add(UserRole(user_id=suspended.id, role=Role.QA.value))
    quiet = make_user("quiet-qa", Role.QA)  # no e-mail address
    db.session.commit()
    since = last_notification_id()
    deviations.open_deviation(
        db.session,
        lot=None,
        category="other",
        description="Label printer ribbon ran out mid-run.",
        actor=lab.tech,
        now=utcnow(),
    )
    db.session.commit()
    (notification,) = notifications_of_kind("deviation_opened", since=since)
    told = recipients_of(notification)
    assert users[QA].id in told and quiet.id in told
    assert gone.id not in told and suspended.id not in told
    mailed = set(
        db.session.scalars(
            select(OutboxEmail.user_id).where(OutboxEmail.notification_id == notification.id)
        )
    )
    assert users[QA].id in mailed and quiet.id not in mailed
