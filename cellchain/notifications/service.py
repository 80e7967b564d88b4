"""Notifications: the events that concern a role raise one, in the event's own transaction.

``notify(session, kind, …)`` is called by the service where the state changes (a recall
opened, a shipment held at receipt, a serious adverse event recorded, …), after its audit
entry, inside its transaction. It writes the notification, one unread mark per user
concerned (the active users whose roles, not suspended, include one of the kind's roles;
never the person who caused the event), and an e-mail in the outbox for each of them who
has an address. Nothing is sent here: ``mail.deliver`` sends the outbox after the
transaction committed, so an event rolled back leaves no notification and sends no e-mail.

A notification stores its ``kind`` and the values its texts name; the texts are made when
read (``texts``), in the reader's language (``using_language``), times in the site's zone.
The urgent kinds (a recall, a receipt held, a serious adverse event's reporting clock) are
marked and their e-mails go one by one, never in a digest.

The services flush; the caller commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, insert, select, update

from cellchain.core import audit
from cellchain.core.display import UTC_ZONE, local_time
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.models import AuditEntry, User, UserRole
from cellchain.core.roles import CLINIC_STAFF, Role, effective_roles
from cellchain.errors import Conflict, InvalidInput, NotFound
from cellchain.extensions import DbSession
from cellchain.manufacturing.terms import term
from cellchain.notifications.models import Notification, NotificationRecipient, OutboxEmail


@dataclass(frozen=True)
class Kind:
    """What one kind of event says, to whom, and where its record is.

    ``title`` and ``body`` are texts with ``%(name)s`` placeholders filled from the
    notification's values (a value whose name ends in ``_at`` is a UTC time, shown in the
    site's zone). The record's page is ``endpoint`` with ``arg`` set to the value ``param``."""

    key: str
    roles: frozenset[Role]
    urgent: bool
    title: LazyText
    body: LazyText
    endpoint: str
    arg: str
    param: str


#: Every kind of notification, by key.
KINDS: dict[str, Kind] = {
    kind.key: kind
    for kind in (
        Kind(
            "recall_opened",
            frozenset({Role.QA, Role.CLINICIAN, Role.INVESTIGATOR}),
            True,
            lazy("Recall %(number)s opened: %(what)s"),
            lazy(
                "Recall %(number)s was opened for %(what)s. Reason: %(reason)s. "
                "%(blocked)s unit(s) blocked, %(withdrawn)s dose(s) withdrawn, "
                "%(patients)s patient(s) to notify."
            ),
            "traceability.recall",
            "recall_id",
            "recall_id",
        ),
        Kind(
            "receipt_held",
            frozenset({Role.QA}),
            True,
            lazy("Shipment %(shipment)s held at receipt"),
            lazy(
                "Shipment %(shipment)s (shipper %(shipper)s) was held at receipt at "
                "%(destination)s and waits for QA's decision. Why: %(reasons)s"
            ),
            "shipments.shipment",
            "shipment_id",
            "shipment_id",
        ),
        Kind(
            "serious_adverse_event",
            frozenset({Role.INVESTIGATOR, Role.QA}),
            True,
            lazy("Serious adverse event of %(patient)s: report due by %(initial_due_at)s"),
            lazy(
                "A serious adverse event of patient %(patient)s (grade %(grade)s) was "
                "recorded: %(description)s. The site became aware of it at %(aware_at)s; "
                "the initial report to the sponsor is due by %(initial_due_at)s."
            ),
            "follow_up.patient",
            "patient_id",
            "patient_id",
        ),
        Kind(
            "sae_initial_report_overdue",
            frozenset({Role.INVESTIGATOR, Role.QA}),
            True,
            lazy("Overdue: the initial report of %(patient)s's serious adverse event"),
            lazy(
                "The initial report to the sponsor of the serious adverse event of patient "
                "%(patient)s (grade %(grade)s: %(description)s) was due by %(due_at)s and is "
                "not recorded. The site became aware of the event at %(aware_at)s."
            ),
            "follow_up.patient",
            "patient_id",
            "patient_id",
        ),
        Kind(
            "sae_follow_up_report_overdue",
            frozenset({Role.INVESTIGATOR, Role.QA}),
            True,
            lazy("Overdue: the follow-up report of %(patient)s's serious adverse event"),
            lazy(
                "The follow-up report to the sponsor of the serious adverse event of patient "
                "%(patient)s (grade %(grade)s: %(description)s) was due by %(due_at)s and is "
                "not recorded. The site became aware of the event at %(aware_at)s."
            ),
            "follow_up.patient",
            "patient_id",
            "patient_id",
        ),
        Kind(
            "lot_to_review",
            frozenset({Role.QA}),
            False,
            lazy("Lot %(lot)s ready for QA review"),
            lazy(
                "Every release test of lot %(lot)s has a result; the lot waits for QA's "
                "release or rejection."
            ),
            "quality.review",
            "lot_id",
            "lot_id",
        ),
        Kind(
            "eligibility_to_sign",
            frozenset({Role.QA}),
            False,
            lazy("Donor eligibility of donation %(din)s to sign"),
            lazy(
                "Every donor test of donation %(din)s has a result; the donor eligibility "
                "determination waits for QA's signature."
            ),
            "donors.donation",
            "donation_id",
            "donation_id",
        ),
        Kind(
            "qc_samples_awaiting_results",
            frozenset({Role.QC_ANALYST}),
            False,
            lazy("QC samples of lot %(lot)s await results"),
            lazy(
                "%(tubes)s QC sample tube(s) were drawn from bag %(bag)s of lot %(lot)s and "
                "await their release-test results."
            ),
            "quality.testing",
            "lot_id",
            "lot_id",
        ),
        Kind(
            "deviation_opened",
            frozenset({Role.QA}),
            False,
            lazy("Deviation #%(deviation_id)s opened"),
            lazy("Deviation #%(deviation_id)s was opened (%(category)s): %(description)s"),
            "storage.deviation",
            "deviation_id",
            "deviation_id",
        ),
        Kind(
            "shipment_dispatched",
            frozenset({Role.CLINICIAN}),
            False,
            lazy("Shipment %(shipment)s dispatched to %(destination)s"),
            lazy(
                "Shipment %(shipment)s (shipper %(shipper)s) left the lab for %(destination)s "
                "with %(doses)s dose(s); receive it at the clinic when it arrives."
            ),
            "shipments.shipment",
            "shipment_id",
            "shipment_id",
        ),
    )
}

#: The values some texts name by code (a deviation's category), read through the lab's
#: word table (``manufacturing.terms``), the one place those words are translated.
WORDED_VALUES = frozenset({"category"})

#: The longest e-mail address (RFC 5321's path limit).
MAX_ADDRESS = 254
#: One address: something@something.something, no spaces; the server judges the rest.
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
#: How many notifications a page or an answer lists at most.
PAGE_SIZE = 50


def notify(
    session: DbSession,
    kind: str,
    *,
    entity_type: str,
    entity_id: int,
    params: Mapping[str, Any],
    actor: User | None,
    now: dt.datetime,
) -> Notification:
    """Raise a notification of ``kind`` for the users its roles concern, with an e-mail in
    the outbox for each who has an address. A fixed number of statements, whatever the
    number of users."""
    spec = KINDS[kind]
    notification = Notification(
        kind=kind,
        urgent=spec.urgent,
        params_json=json.dumps(_jsonable(params), sort_keys=True),
        entity_type=entity_type,
        entity_id=entity_id,
        roles=",".join(sorted(role.value for role in spec.roles)),
        created_at=now,
        created_by_id=actor.id if actor else None,
    )
    session.add(notification)
    session.flush()
    users = recipients(
        session, spec.roles, exclude=actor, sites=record_sites(session, entity_type, entity_id)
    )
    if users:
        session.execute(
            insert(NotificationRecipient),
            [{"notification_id": notification.id, "user_id": user.id} for user in users],
        )
        mailed = [user for user in users if user.email]
        if mailed:
            session.execute(
                insert(OutboxEmail),
                [
                    {
                        "notification_id": notification.id,
                        "user_id": user.id,
                        "address": user.email,
                        "urgent": spec.urgent,
                        "created_at": now,
                        "attempts": 0,
                    }
                    for user in mailed
                ],
            )
            if spec.urgent:
                pending_urgent(session).append(notification.id)
    return notification


def record_sites(session: DbSession, entity_type: str, entity_id: int) -> frozenset[int] | None:
    """The clinical site a notification's record belongs to (a patient's, an adverse event's
    patient's, a dose order's patient's, a shipment's destination), or None: a record of the
    facility (a lot, a donation, a deviation, a recall: the lab's, across sites). Read across
    sites (``sites.scope.unscoped``): who raises it may be a scheduled job or another role."""
    from cellchain.clinic.models import AdverseEvent, Shipment
    from cellchain.dosing.models import DoseOrder, Patient
    from cellchain.sites.scope import unscoped

    column: Any
    if entity_type == "patient":
        column = select(Patient.site_id).where(Patient.id == entity_id)
    elif entity_type == "adverse_event":
        column = (
            select(Patient.site_id)
            .join(AdverseEvent, AdverseEvent.patient_id == Patient.id)
            .where(AdverseEvent.id == entity_id)
        )
    elif entity_type == "dose_order":
        column = (
            select(Patient.site_id)
            .join(DoseOrder, DoseOrder.patient_id == Patient.id)
            .where(DoseOrder.id == entity_id)
        )
    elif entity_type == "shipment":
        column = select(Shipment.destination_site_id).where(Shipment.id == entity_id)
    else:
        return None
    with unscoped():
        site_id = session.execute(column).scalar_one_or_none()
    return frozenset({site_id}) if site_id is not None else None


def recipients(
    session: DbSession,
    roles: frozenset[Role],
    *,
    exclude: User | None = None,
    sites: frozenset[int] | None = None,
) -> list[User]:
    """The active users holding one of ``roles`` not suspended (``effective_roles``), by id;
    never ``exclude`` (who caused the event knows of it). ``sites``: the record belongs to
    those clinical sites, so a user concerned only through a clinic role (clinician,
    investigator) must belong to one of them; a facility role (QA, QC, …) concerns
    whatever the site (docs/sites.md)."""
    from cellchain.sites.models import SiteMembership

    members: set[int] = set()
    if sites is not None:
        members = set(
            session.scalars(
                select(SiteMembership.user_id).where(SiteMembership.site_id.in_(sorted(sites)))
            )
        )
    candidates = session.scalars(
        select(User)
        .where(
            User.active.is_(True),
            User.id.in_(
                select(UserRole.user_id).where(UserRole.role.in_([r.value for r in roles]))
            ),
        )
        .order_by(User.id)
    ).all()
    chosen = []
    for user in candidates:
        concerned = effective_roles(user.roles) & roles
        if not concerned or (exclude is not None and user.id == exclude.id):
            continue
        if sites is not None and concerned <= CLINIC_STAFF and user.id not in members:
            continue  # a clinic user of another site: not theirs to know
        chosen.append(user)
    return chosen


#: ``session.info`` key: the urgent notifications of this transaction with e-mails to send
#: as soon as it commits (``mail.send_after_commit``).
URGENT_KEY = "cellchain_urgent_notifications"


def pending_urgent(session: DbSession) -> list[int]:
    """The ids of this transaction's urgent notifications with e-mails to send."""
    info = session.info
    return info.setdefault(URGENT_KEY, [])  # type: ignore[no-any-return]


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dt.datetime):
            values[key] = value.astimezone(dt.UTC).isoformat()
        elif value is None or isinstance(value, int | float | str | bool):
            values[key] = value
        else:
            values[key] = str(value)
    return values


# --- words ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Texts:
    title: str
    body: str


def texts(notification: Notification, *, zone: ZoneInfo = UTC_ZONE) -> Texts:
    """The notification's title and body in the language of the moment (the caller sets the
    reader's with ``using_language``); times in ``zone`` with their UTC offset."""
    spec = KINDS.get(notification.kind)
    values = _shown(notification.params, zone)
    if spec is None:  # a kind this version no longer raises: its key, not a crash
        return Texts(notification.kind, "")
    return Texts(_fill(str(spec.title), values), _fill(str(spec.body), values))


def _shown(params: Mapping[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for key, value in params.items():
        if key.endswith("_at") and isinstance(value, str):
            try:
                shown[key] = local_time(dt.datetime.fromisoformat(value), zone)
                continue
            except ValueError:  # not a time after all: shown as it is, below
                pass
        if key in WORDED_VALUES and isinstance(value, str):
            shown[key] = term(value)
            continue
        shown[key] = "" if value is None else value
    return shown


class _Missing(dict[str, Any]):
    """Placeholder values; one a notification lacks reads as ``?`` rather than failing."""

    def __missing__(self, key: str) -> str:
        return "?"


def _fill(template: str, values: Mapping[str, Any]) -> str:
    return template % _Missing(values)


def link(notification: Notification) -> tuple[str, dict[str, Any]] | None:
    """The endpoint and arguments of the record's page, or None."""
    spec = KINDS.get(notification.kind)
    if spec is None:
        return None
    value = notification.params.get(spec.param)
    if not isinstance(value, int):
        return None
    return spec.endpoint, {spec.arg: value}


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One notification as its recipient sees it."""

    notification: Notification
    read_at: dt.datetime | None

    @property
    def unread(self) -> bool:
        return self.read_at is None


def notifications_of(
    session: DbSession,
    user: User,
    *,
    unread_only: bool = False,
    limit: int = PAGE_SIZE,
    before_id: int | None = None,
) -> list[Received]:
    """The user's notifications, newest first (``before_id``: the page after that one)."""
    query = (
        select(NotificationRecipient)
        .where(NotificationRecipient.user_id == user.id)
        .order_by(NotificationRecipient.notification_id.desc())
        .limit(limit)
    )
    if unread_only:
        query = query.where(NotificationRecipient.read_at.is_(None))
    if before_id is not None:
        query = query.where(NotificationRecipient.notification_id < before_id)
    return [Received(row.notification, row.read_at) for row in session.scalars(query)]


def count_unread(session: DbSession, user: User) -> int:
    """How many of the user's notifications are unread (one statement)."""
    return session.execute(
        select(func.count())
        .select_from(NotificationRecipient)
        .where(NotificationRecipient.user_id == user.id, NotificationRecipient.read_at.is_(None))
    ).scalar_one()


def mark_read(
    session: DbSession, user: User, ids: Sequence[int] | None, *, now: dt.datetime
) -> int:
    """Mark the user's notifications ``ids`` (None: all of them) read; how many changed.
    An id that is not one of the user's own is refused (404), naming none of them."""
    query = update(NotificationRecipient).where(
        NotificationRecipient.user_id == user.id, NotificationRecipient.read_at.is_(None)
    )
    if ids is not None:
        wanted = sorted(set(ids))
        if not wanted:
            raise InvalidInput(
                _("Name the notifications to mark as read."),
                errors={"ids": [_("Give at least one notification id.")]},
            )
        owned = set(
            session.scalars(
                select(NotificationRecipient.notification_id).where(
                    NotificationRecipient.user_id == user.id,
                    NotificationRecipient.notification_id.in_(wanted),
                )
            )
        )
        unknown = [value for value in wanted if value not in owned]
        if unknown:
            raise NotFound(
                _(
                    "You have no notification %(ids)s.",
                    ids=", ".join(f"#{value}" for value in unknown),
                )
            )
        query = query.where(NotificationRecipient.notification_id.in_(wanted))
    result = session.execute(query.values(read_at=now).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


# --- the outbox -------------------------------------------------------------------------------


def outbox(
    session: DbSession, *, sent: bool = False, refused: bool = False, limit: int = PAGE_SIZE
) -> list[OutboxEmail]:
    """The e-mails waiting to be sent (``sent``: the last ones sent; ``refused``: the last
    ones the mail server refused for good), newest first."""
    condition: ColumnElement[bool]
    if sent:
        condition = OutboxEmail.sent_at.is_not(None)
    elif refused:
        condition = OutboxEmail.refused_at.is_not(None)
    else:
        condition = and_(OutboxEmail.sent_at.is_(None), OutboxEmail.refused_at.is_(None))
    return list(
        session.scalars(
            select(OutboxEmail).where(condition).order_by(OutboxEmail.id.desc()).limit(limit)
        )
    )


# --- the user's address -------------------------------------------------------------------------


#: how long the link confirming a new address works
CONFIRMATION_VALID_FOR = dt.timedelta(hours=24)
#: at most this many confirmation e-mails a user may ask for within ``CONFIRMATIONS_WITHIN``
#: (each sends a mail from the site's server to an address of the user's choosing)
MAX_CONFIRMATIONS = 3
CONFIRMATIONS_WITHIN = dt.timedelta(hours=1)


def _checked_address(address: str | None) -> str | None:
    """The address stripped (None for none), or a refusal naming what is wrong."""
    value = (address or "").strip() or None
    if value is not None and (len(value) > MAX_ADDRESS or not _ADDRESS.fullmatch(value)):
        raise InvalidInput(
            _("%(address)s is not an e-mail address.", address=value[:60]),
            errors={"email": [_("Not an e-mail address, e.g. name@hospital.cn.")]},
        )
    return value


def set_email(
    session: DbSession, user: User, address: str | None, *, actor: User | None, now: dt.datetime
) -> User:
    """Set (or, with an empty value, remove) the address ``user``'s notifications are mailed
    to, at once; audited. For an operator (``cellchain notifications set-email``) and for a
    confirmed address (``confirm_email``); a user giving their own address goes through
    ``request_email_change``, so that no adverse event is mailed to a mistyped address."""
    value = _checked_address(address)
    old = user.email
    cancelled = user.email_pending
    user.email_pending = user.email_confirm_hash = user.email_confirm_expires_at = None
    if value == old:
        session.flush()
        if cancelled is not None:
            audit.record(
                session,
                actor=actor,
                at=now,
                action="user.email_confirmation_cancelled",
                entity_type="user",
                entity_id=user.id,
                changes={"email_pending": (cancelled, None)},
            )
        return user
    user.email = value
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="user.email_changed",
        entity_type="user",
        entity_id=user.id,
        changes={"email": (old, value)},
    )
    return user


@dataclass(frozen=True)
class EmailChange:
    """What a user's own change of address did: ``token`` is the secret of the link to
    e-mail to ``pending`` (None when nothing waits: removed, or unchanged)."""

    user: User
    pending: str | None
    token: str | None


def request_email_change(
    session: DbSession, user: User, address: str | None, *, now: dt.datetime
) -> EmailChange:
    """A user gives the address their notifications go to. An empty one removes it at once;
    the one in use is kept as it is; another waits, unused, until the user opens the link
    e-mailed to it (``confirm_email``, within ``CONFIRMATION_VALID_FOR``), so that a
    mistyped address never receives a patient's adverse event. Audited
    (``user.email_confirmation_requested``); a new request replaces the one waiting."""
    value = _checked_address(address)
    if value is None or value == user.email:
        set_email(session, user, value, actor=user, now=now)
        return EmailChange(user, None, None)
    asked = session.execute(
        select(func.count())
        .select_from(AuditEntry)
        .where(
            AuditEntry.action == "user.email_confirmation_requested",
            AuditEntry.entity_type == "user",
            AuditEntry.entity_id == str(user.id),
            AuditEntry.at > now - CONFIRMATIONS_WITHIN,
        )
    ).scalar_one()
    if asked >= MAX_CONFIRMATIONS:
        raise Conflict(
            _(
                "You asked for %(count)s confirmation e-mails within the last hour: wait before "
                "asking for another, or ask an administrator to set the address.",
                count=asked,
            ),
            title=_("Too many confirmation e-mails"),
        )
    token = secrets.token_urlsafe(32)
    replaced = user.email_pending
    user.email_pending = value
    user.email_confirm_hash = _token_hash(token)
    user.email_confirm_expires_at = now + CONFIRMATION_VALID_FOR
    session.flush()
    audit.record(
        session,
        actor=user,
        at=now,
        action="user.email_confirmation_requested",
        entity_type="user",
        entity_id=user.id,
        changes={"email_pending": (replaced, value)},
    )
    return EmailChange(user, value, token)


def confirm_email(session: DbSession, user: User, token: str, *, now: dt.datetime) -> User:
    """The user opened the link e-mailed to the address they gave: it becomes the address
    their notifications go to. Refused for a link that is not theirs, was replaced by a
    newer one, or expired (nothing changes)."""
    if (
        not token
        or user.email_confirm_hash is None
        or user.email_pending is None
        or not hmac.compare_digest(user.email_confirm_hash, _token_hash(token))
    ):
        raise InvalidInput(
            _(
                "This confirmation link is not valid for your account: it was replaced by a "
                "newer one, already used, or is for someone else. Give the address again."
            )
        )
    if user.email_confirm_expires_at is None or now > user.email_confirm_expires_at:
        raise InvalidInput(
            _("This confirmation link has expired. Give the address again for a new one.")
        )
    return set_email(session, user, user.email_pending, actor=user, now=now)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
