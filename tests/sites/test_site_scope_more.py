"""The paths that crossed sites after issue 22 (docs/sites.md): a notification about a site's
record reaches only that site's clinic users (lab and QA roles stay facility-wide), in-app and
in the outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cellchain.clinic.follow_up import adverse_events
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.notifications.models import OutboxEmail
from cellchain.sites import service as sites
from tests.notifications.test_events import report
from tests.support.follow_up import back_date
from tests.support.mailbox import last_notification_id, notifications_of_kind, recipients_of


def _site_b_staff(make_user: Any, *, active: bool = True) -> dict[Role, Any]:
    """A second clinical site, with a clinician and an investigator of it only (inactive:
    the dispatch then needs no site chosen, the only active one is taken)."""
    site = sites.create_site(
        db.session,
        sites.SiteForm(code="BER", name="Berlin", time_zone="Europe/Berlin", active=active),
        actor=None,
        now=utcnow(),
    )
    staff = {}
    for role in (Role.CLINICIAN, Role.INVESTIGATOR):
        user = make_user(f"b-{role.value}", role)  # made a member of the first site
        sites.set_memberships(db.session, user, [site.id], actor=None, now=utcnow())
        user.email = f"{user.username}@berlin.example"
        staff[role] = user
    db.session.commit()
    return staff


def _site_a_staff(make_user: Any) -> dict[Role, Any]:
    staff = {}
    for role in (Role.CLINICIAN, Role.INVESTIGATOR, Role.QA):
        user = make_user(f"a-{role.value.replace('_', '-')}", role)
        user.email = f"{user.username}@hospital.example"
        staff[role] = user
    db.session.commit()
    return staff


def _mailed(notification: Any) -> set[int]:
    return set(
        db.session.scalars(
            select(OutboxEmail.user_id).where(OutboxEmail.notification_id == notification.id)
        )
    )


def test_a_serious_adverse_event_of_site_a_tells_site_a_not_site_b(
    clinic: Any, make_user: Any
) -> None:
    patient = back_date(clinic.enrol(), 10)  # at the first clinical site
    own, other = _site_a_staff(make_user), _site_b_staff(make_user)
    since = last_notification_id()
    adverse_events.record_adverse_event(
        db.session, patient, report(), actor=clinic.clinician, now=utcnow()
    )
    db.session.commit()
    (notification,) = notifications_of_kind("serious_adverse_event", since=since)
    told, mailed = recipients_of(notification), _mailed(notification)
    assert own[Role.INVESTIGATOR].id in told and own[Role.INVESTIGATOR].id in mailed
    assert own[Role.QA].id in told and own[Role.QA].id in mailed  # QA: facility-wide
    assert other[Role.INVESTIGATOR].id not in told
    assert other[Role.INVESTIGATOR].id not in mailed


def test_a_shipment_to_site_a_tells_site_a_clinicians_not_site_b(ward: Any, make_user: Any) -> None:
    order = ward.prepared()
    own, other = _site_a_staff(make_user), _site_b_staff(make_user, active=False)
    since = last_notification_id()
    ward.ship(order)
    (notification,) = notifications_of_kind("shipment_dispatched", since=since)
    told, mailed = recipients_of(notification), _mailed(notification)
    assert own[Role.CLINICIAN].id in told and own[Role.CLINICIAN].id in mailed
    assert other[Role.CLINICIAN].id not in told
    assert other[Role.CLINICIAN].id not in mailed
