"""Rules of equipment (issue 22): registration with its calibration and maintenance intervals
(or the reason it is not subject to calibration), the calibrations and maintenances recorded
on it with their certificate, the due dates they set, and the check every use makes.

A piece of equipment may be used on a day when:

- it is not subject to calibration (a reason is on file), or its latest calibration performed
  on or before that day passed and that day is not after the calibration's date plus the
  calibration interval (the interval on file now); never calibrated by that day, or last
  calibration failed: refused;
- it has no maintenance interval, or that day is not after its latest maintenance performed
  on or before that day (or its registration, before any) plus the maintenance interval, and
  that maintenance did not fail.

The due dates of today are also kept on the equipment's row (``calibration_due_on``,
``maintenance_due_on``), recomputed by every change, so the list and the technician's queue
count them in one statement.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm.attributes import set_committed_value

from cellchain.core import audit, listing
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import (
    Equipment,
    EquipmentCertificate,
    EquipmentEvent,
    EquipmentEventKind,
    EquipmentKind,
)

#: Equipment due within this many days (or overdue) is in the technician's queue.
DUE_SOON_DAYS = 14
#: The longest interval accepted, in days (ten years).
MAX_INTERVAL_DAYS = 3650
#: A certificate file's largest size.
MAX_CERTIFICATE_BYTES = 5 * 1024 * 1024

#: What a certificate file may be, by its first bytes (never by its name or the browser's
#: word): PDF, PNG or JPEG.
CERTIFICATE_TYPES: tuple[tuple[bytes, str, str], ...] = (
    (b"%PDF-", "application/pdf", ".pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
)


class DueState(enum.StrEnum):
    """Where a piece of equipment stands today."""

    IN_DATE = "in_date"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    #: subject to calibration, and never calibrated or its last calibration failed
    NOT_CALIBRATED = "not_calibrated"
    OUT_OF_SERVICE = "out_of_service"


DUE_STATE_NAMES: dict[DueState, LazyText] = {
    DueState.IN_DATE: lazy("in date"),
    DueState.DUE_SOON: lazy("due soon"),
    DueState.OVERDUE: lazy("overdue"),
    DueState.NOT_CALIBRATED: lazy("not calibrated"),
    DueState.OUT_OF_SERVICE: lazy("out of service"),
}

EVENT_KIND_NAMES: dict[str, LazyText] = {
    EquipmentEventKind.CALIBRATION: lazy("calibration"),
    EquipmentEventKind.MAINTENANCE: lazy("maintenance"),
}


class EquipmentAction(enum.StrEnum):
    """The acts an equipment page offers."""

    RECORD_CALIBRATION = "record_calibration"
    RECORD_MAINTENANCE = "record_maintenance"
    CHANGE_INTERVALS = "change_intervals"


@dataclass(frozen=True)
class EquipmentInput:
    code: str
    kind: EquipmentKind
    name: str
    calibration_interval_days: int | None = None
    #: why it is not subject to calibration (then no calibration interval)
    calibration_exempt_reason: str | None = None
    maintenance_interval_days: int | None = None


@dataclass(frozen=True)
class Intervals:
    calibration_interval_days: int | None
    calibration_exempt_reason: str | None
    maintenance_interval_days: int | None


@dataclass(frozen=True)
class CertificateFile:
    file_name: str
    content: bytes


@dataclass(frozen=True)
class EventInput:
    kind: EquipmentEventKind
    performed_on: dt.date
    performed_by: str
    passed: bool
    certificate_ref: str | None = None
    notes: str | None = None
    certificate: CertificateFile | None = None


# --- registration and intervals ---------------------------------------------------------------


def register_equipment(
    session: DbSession, entry: EquipmentInput, *, actor: User, now: dt.datetime
) -> Equipment:
    """Record a piece of equipment under its site asset ID (unique for good), with its
    calibration interval or the reason it is not subject to calibration, and its maintenance
    interval if it has one."""
    code = entry.code.strip().upper()
    name = entry.name.strip()
    if not code or not name:
        raise InvalidInput(_("Equipment needs an ID and a name."))
    intervals = _checked_intervals(
        Intervals(
            entry.calibration_interval_days,
            entry.calibration_exempt_reason,
            entry.maintenance_interval_days,
        )
    )
    if session.execute(select(Equipment).where(Equipment.code == code)).scalar_one_or_none():
        raise Conflict(
            _("Equipment %(code)s is already on file.", code=code), errors={"code": [_("Taken.")]}
        )
    # an asset ID is recognised whatever its spacing, hyphens or width (``code_key``): two
    # registered IDs with the same key could not be told apart where one is typed
    twin = _by_key(session, code_key(code))
    if twin is not None:
        raise Conflict(
            _(
                "Equipment %(code)s cannot be told apart from %(other)s, already on file "
                "(the same letters and digits).",
                code=code,
                other=twin.code,
            ),
            errors={"code": [_("Same as %(other)s.", other=twin.code)]},
        )
    item = Equipment(
        code=code,
        kind=entry.kind.value,
        name=name,
        active=True,
        created_at=now,
        calibration_interval_days=intervals.calibration_interval_days,
        calibration_exempt_reason=intervals.calibration_exempt_reason,
        maintenance_interval_days=intervals.maintenance_interval_days,
    )
    session.add(item)
    session.flush()
    _refresh_due(session, item)
    audit.record(
        session,
        actor=actor,
        at=now,
        action="equipment.registered",
        entity_type="equipment",
        entity_id=item.id,
        changes={
            "code": (None, code),
            "kind": (None, item.kind),
            "name": (None, item.name),
            "calibration_interval_days": (None, item.calibration_interval_days),
            "calibration_exempt_reason": (None, item.calibration_exempt_reason),
            "maintenance_interval_days": (None, item.maintenance_interval_days),
        },
    )
    return item


def change_intervals(
    session: DbSession,
    item: Equipment,
    wanted: Intervals,
    *,
    reason: str,
    actor: User,
    now: dt.datetime,
) -> Equipment:
    """Change the calibration and maintenance intervals (or the exemption), with a reason; the
    due dates follow."""
    intervals = _checked_intervals(wanted)
    if not reason or not reason.strip():
        raise InvalidInput(_("Say why the intervals change."), errors={"reason": [_("Required.")]})
    changes: dict[str, tuple[object, object]] = {}
    for name in (
        "calibration_interval_days",
        "calibration_exempt_reason",
        "maintenance_interval_days",
    ):
        before, after = getattr(item, name), getattr(intervals, name)
        if before != after:
            changes[name] = (before, after)
            setattr(item, name, after)
    if not changes:
        raise InvalidInput(_("Nothing changes: the intervals are already these."))
    _refresh_due(session, item)
    audit.record(
        session,
        actor=actor,
        at=now,
        action="equipment.intervals_changed",
        entity_type="equipment",
        entity_id=item.id,
        changes=changes,
        reason=reason.strip(),
        reason_required=True,
    )
    return item


def _checked_intervals(wanted: Intervals) -> Intervals:
    errors: dict[str, list[str]] = {}
    reason = (wanted.calibration_exempt_reason or "").strip() or None
    for name in ("calibration_interval_days", "maintenance_interval_days"):
        value = getattr(wanted, name)
        if value is not None and not 1 <= value <= MAX_INTERVAL_DAYS:
            errors[name] = [_("From 1 to %(most)s days.", most=MAX_INTERVAL_DAYS)]
    if wanted.calibration_interval_days is None and reason is None:
        errors["calibration_interval_days"] = [
            _("Give a calibration interval, or say why it is not subject to calibration.")
        ]
    if wanted.calibration_interval_days is not None and reason is not None:
        errors["calibration_exempt_reason"] = [
            _("Equipment with a calibration interval is subject to calibration.")
        ]
    if errors:
        raise InvalidInput(
            _(
                "Equipment needs a calibration interval in days (1 to %(most)s), or the "
                "reason it is not subject to calibration.",
                most=MAX_INTERVAL_DAYS,
            ),
            errors=errors,
        )
    return Intervals(wanted.calibration_interval_days, reason, wanted.maintenance_interval_days)


# --- calibrations and maintenances ------------------------------------------------------------


def record_event(
    session: DbSession,
    item: Equipment,
    entry: EventInput,
    *,
    actor: User,
    now: dt.datetime,
    today: dt.date,
) -> EquipmentEvent:
    """Record a calibration or maintenance performed on a day (not after ``today``, the site's
    day), by a person or provider, passed or failed, with its certificate reference and file."""
    errors: dict[str, list[str]] = {}
    performed_by = entry.performed_by.strip()
    if not performed_by:
        errors["performed_by"] = [_("Who performed it (a person or a service provider).")]
    if entry.performed_on > today:
        errors["performed_on"] = [_("Not in the future.")]
    elif entry.performed_on < item.created_at.date() - dt.timedelta(days=MAX_INTERVAL_DAYS):
        errors["performed_on"] = [_("Too long ago.")]
    if entry.kind == EquipmentEventKind.CALIBRATION and not subject_to_calibration(item):
        raise Conflict(
            _(
                "Equipment %(code)s is not subject to calibration (%(reason)s); change its "
                "intervals first.",
                code=item.code,
                reason=item.calibration_exempt_reason,
            )
        )
    if entry.kind == EquipmentEventKind.CALIBRATION and not item.active:
        raise Conflict(
            _(
                "Equipment %(code)s is out of service; a calibration is recorded only for "
                "equipment in service.",
                code=item.code,
            ),
            errors={"kind": [_("Out of service.")]},
        )
    certificate = None
    if entry.certificate is not None:
        try:
            certificate = checked_certificate(entry.certificate)
        except InvalidInput as refused:
            errors.update(refused.errors)
    missing = _missing_evidence(entry, certificate)
    for field, message in missing.items():
        errors.setdefault(field, []).append(message)
    if errors:
        raise InvalidInput(
            _evidence_needed()
            if set(errors) <= set(missing)
            else _(
                "The %(kind)s cannot be recorded as entered.", kind=EVENT_KIND_NAMES[entry.kind]
            ),
            errors=errors,
        )
    interval = _interval(item, entry.kind)
    event = EquipmentEvent(
        equipment_id=item.id,
        kind=entry.kind.value,
        performed_on=entry.performed_on,
        performed_by=performed_by,
        passed=entry.passed,
        certificate_ref=(entry.certificate_ref or "").strip() or None,
        notes=(entry.notes or "").strip() or None,
        next_due_on=(
            entry.performed_on + dt.timedelta(days=interval)
            if entry.passed and interval is not None
            else None
        ),
        recorded_by_id=actor.id,
        recorded_at=now,
    )
    session.add(event)
    session.flush()
    changes: dict[str, tuple[object, object]] = {
        "equipment": (None, item.code),
        "kind": (None, event.kind),
        "performed_on": (None, event.performed_on),
        "performed_by": (None, event.performed_by),
        "passed": (None, event.passed),
        "certificate_ref": (None, event.certificate_ref),
        "next_due_on": (None, event.next_due_on),
    }
    if certificate is not None:
        stored = EquipmentCertificate(event_id=event.id, **certificate)
        session.add(stored)
        session.flush()
        changes["certificate_sha256"] = (None, stored.sha256)
        changes["certificate_file"] = (None, stored.file_name)
    audit.record(
        session,
        actor=actor,
        at=now,
        action=f"equipment.{event.kind}_recorded",
        entity_type="equipment_event",
        entity_id=event.id,
        changes=changes,
    )
    _refresh_due(session, item)
    return event


#: What names no certificate where its reference is typed (compared by ``code_key``).
_NO_REFERENCE = frozenset(
    {"NA", "NONE", "NIL", "NULL", "TBA", "TBC", "TBD", "PENDING", "UNKNOWN", "无", "暂无", "待定"}
)


def names_a_certificate(reference: str | None) -> bool:
    """Whether a typed certificate reference names one: at least a letter or a digit, and
    not a placeholder (``-``, ``N/A``, ``TBD``, ``无`` …)."""
    key = code_key(reference)
    return bool(key) and key not in _NO_REFERENCE


def _evidence_needed() -> str:
    return _(
        "A passing calibration needs its evidence: the certificate file (PDF, PNG or JPEG) "
        "or the external certificate's reference number."
    )


def _missing_evidence(entry: EventInput, certificate: dict[str, object] | None) -> dict[str, str]:
    """A passing calibration is the equipment's proof of being in date: it needs the
    certificate file or the certificate's reference number (either). A failure (it only
    takes equipment out of use) and a maintenance need neither."""
    if entry.kind != EquipmentEventKind.CALIBRATION or not entry.passed:
        return {}
    if certificate is not None or names_a_certificate(entry.certificate_ref):
        return {}
    if entry.certificate is not None:  # a file that is refused: its own error says why
        return {"certificate_ref": _("Or the certificate's reference number.")}
    return {
        "certificate": _("The certificate file, or its reference number."),
        "certificate_ref": _("The certificate's reference number, or the file."),
    }


def checked_certificate(upload: CertificateFile) -> dict[str, object]:
    """The columns of a certificate file: refused when empty, too large, or not a PDF, PNG or
    JPEG by its content."""
    content = upload.content
    if not content:
        raise InvalidInput(
            _("The certificate file is empty."), errors={"certificate": [_("Empty file.")]}
        )
    if len(content) > MAX_CERTIFICATE_BYTES:
        raise InvalidInput(
            _(
                "The certificate file is larger than %(most)s MB.",
                most=MAX_CERTIFICATE_BYTES // 2**20,
            ),
            errors={
                "certificate": [_("Larger than %(most)s MB.", most=MAX_CERTIFICATE_BYTES // 2**20)]
            },
        )
    found = next((kind for kind in CERTIFICATE_TYPES if content.startswith(kind[0])), None)
    if found is None:
        raise InvalidInput(
            _("A certificate must be a PDF, PNG or JPEG file."),
            errors={"certificate": [_("Not a PDF, PNG or JPEG file.")]},
        )
    _magic, media_type, suffix = found
    name = (
        "".join(
            c
            for c in (upload.file_name or "").replace("\\", "/").rsplit("/", 1)[-1]
            if c.isprintable() and c not in '"'
        ).strip()[:200]
        or f"certificate{suffix}"
    )
    return {
        "file_name": name,
        "media_type": media_type,
        "size_bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "content": content,
    }


# --- due dates and the check of a use ---------------------------------------------------------


def subject_to_calibration(item: Equipment) -> bool:
    return item.calibration_exempt_reason is None


def _interval(item: Equipment, kind: EquipmentEventKind | str) -> int | None:
    if kind == EquipmentEventKind.CALIBRATION:
        return item.calibration_interval_days
    return item.maintenance_interval_days


def _latest(
    session: DbSession, item: Equipment, kind: EquipmentEventKind, on: dt.date | None = None
) -> EquipmentEvent | None:
    query = select(EquipmentEvent).where(
        EquipmentEvent.equipment_id == item.id, EquipmentEvent.kind == kind.value
    )
    if on is not None:
        query = query.where(EquipmentEvent.performed_on <= on)
    return session.execute(
        query.order_by(EquipmentEvent.performed_on.desc(), EquipmentEvent.id.desc()).limit(1)
    ).scalar_one_or_none()


@dataclass(frozen=True)
class Standing:
    """Calibration and maintenance as of a day: the due dates, and what bars a use."""

    calibration_due_on: dt.date | None
    maintenance_due_on: dt.date | None
    #: the refusal of a use on that day, in the reader's language; None: usable
    problem: str | None
    #: the due date the problem names, if any
    due_on: dt.date | None = None
    #: the problem in a few words, for a form that offers the equipment ("calibration due
    #: 2026-11-30"); None when usable
    why: str | None = None


def standing(session: DbSession, item: Equipment, on: dt.date) -> Standing:
    """Where ``item`` stood on day ``on``, from the events performed on or before it."""
    calibration = (
        _latest(session, item, EquipmentEventKind.CALIBRATION, on)
        if subject_to_calibration(item)
        else None
    )
    maintenance = (
        _latest(session, item, EquipmentEventKind.MAINTENANCE, on)
        if item.maintenance_interval_days is not None
        else None
    )
    return _standing_from(item, on, calibration, maintenance)


def standings(session: DbSession, items: Sequence[Equipment], on: dt.date) -> dict[int, Standing]:
    """Where each of ``items`` stood on day ``on`` (by id): the same rule as ``standing``, its
    events read in one statement for all of them (a form offering every piece)."""
    ids = [item.id for item in items]
    latest: dict[tuple[int, str], EquipmentEvent] = {}
    if ids:
        events = session.execute(
            select(EquipmentEvent)
            .where(EquipmentEvent.equipment_id.in_(ids), EquipmentEvent.performed_on <= on)
            .order_by(EquipmentEvent.performed_on, EquipmentEvent.id)
        ).scalars()
        for event in events:  # the last one of each kind wins
            latest[(event.equipment_id, event.kind)] = event
    return {
        item.id: _standing_from(
            item,
            on,
            latest.get((item.id, EquipmentEventKind.CALIBRATION.value)),
            latest.get((item.id, EquipmentEventKind.MAINTENANCE.value)),
        )
        for item in items
    }


def _standing_from(
    item: Equipment,
    on: dt.date,
    last_calibration: EquipmentEvent | None,
    last_maintenance: EquipmentEvent | None,
) -> Standing:
    """The rule: ``item``'s standing on day ``on`` given its latest calibration and
    maintenance performed on or before that day."""
    problem: str | None = None
    why: str | None = None
    due_named: dt.date | None = None
    calibration_due: dt.date | None = None
    if subject_to_calibration(item):
        last = last_calibration
        if item.calibration_interval_days is None:
            problem = _(
                "Equipment %(code)s (%(name)s) has no calibration interval on file; it may not "
                "be used until one is set and a calibration recorded.",
                code=item.code,
                name=item.name,
            )
            why = _("no calibration interval on file")
        elif last is None:
            problem = _(
                "Equipment %(code)s (%(name)s) had not been calibrated by %(on)s; it may not be "
                "used before its first calibration.",
                code=item.code,
                name=item.name,
                on=on.isoformat(),
            )
            why = _("never calibrated")
        elif not last.passed:
            problem = _(
                "Equipment %(code)s (%(name)s) failed its last calibration on %(date)s; it may "
                "not be used until a calibration passes.",
                code=item.code,
                name=item.name,
                date=last.performed_on.isoformat(),
            )
            why = _("calibration failed on %(date)s", date=last.performed_on.isoformat())
        else:
            calibration_due = last.performed_on + dt.timedelta(days=item.calibration_interval_days)
            if on > calibration_due:
                due_named = calibration_due
                problem = _(
                    "Equipment %(code)s (%(name)s) was due for calibration on %(due)s; it may "
                    "not be used on %(on)s.",
                    code=item.code,
                    name=item.name,
                    due=calibration_due.isoformat(),
                    on=on.isoformat(),
                )
                why = _("calibration due %(date)s", date=calibration_due.isoformat())
    maintenance_due: dt.date | None = None
    if item.maintenance_interval_days is not None:
        last = last_maintenance
        if last is not None and not last.passed:
            if problem is None:
                problem = _(
                    "Equipment %(code)s (%(name)s) failed its last maintenance on %(date)s; it "
                    "may not be used until a maintenance passes.",
                    code=item.code,
                    name=item.name,
                    date=last.performed_on.isoformat(),
                )
                why = _("maintenance failed on %(date)s", date=last.performed_on.isoformat())
        else:
            since = last.performed_on if last is not None else item.created_at.date()
            maintenance_due = since + dt.timedelta(days=item.maintenance_interval_days)
            if on > maintenance_due and problem is None:
                due_named = maintenance_due
                problem = _(
                    "Equipment %(code)s (%(name)s) was due for maintenance on %(due)s; it may "
                    "not be used on %(on)s.",
                    code=item.code,
                    name=item.name,
                    due=maintenance_due.isoformat(),
                    on=on.isoformat(),
                )
                why = _("maintenance due %(date)s", date=maintenance_due.isoformat())
    return Standing(calibration_due, maintenance_due, problem, due_named, why)


def require_in_date(
    session: DbSession, items: Sequence[Equipment], *, on: dt.date, field: str = "equipment"
) -> None:
    """Refuse the use on day ``on`` of any of ``items`` out of service, past its calibration
    or maintenance due date, never calibrated, or whose last calibration failed (the first
    one found): every use of equipment (a step, a QC result, a storage placement, a
    post-thaw count, the equipment its words name included) passes here."""
    for item in items:
        if not item.active:
            raise Conflict(
                _("Equipment %(code)s is out of service.", code=item.code),
                errors={field: [_("%(code)s: out of service.", code=item.code)]},
            )
        found = standing(session, item, on)
        if found.problem is not None:
            raise Conflict(
                found.problem,
                errors={field: [_("%(code)s: not in date.", code=item.code)]},
                title=_("Equipment not in date"),
            )


def _refresh_due(session: DbSession, item: Equipment) -> None:
    """Keep today's due dates on the row (the list and the queue read them)."""
    last_calibration = _latest(session, item, EquipmentEventKind.CALIBRATION)
    item.calibration_due_on = (
        last_calibration.performed_on + dt.timedelta(days=item.calibration_interval_days)
        if subject_to_calibration(item)
        and item.calibration_interval_days is not None
        and last_calibration is not None
        and last_calibration.passed
        else None
    )
    if item.maintenance_interval_days is None:
        item.maintenance_due_on = None
    else:
        last = _latest(session, item, EquipmentEventKind.MAINTENANCE)
        if last is not None and not last.passed:
            item.maintenance_due_on = None
        else:
            since = last.performed_on if last is not None else item.created_at.date()
            item.maintenance_due_on = since + dt.timedelta(days=item.maintenance_interval_days)


def due_state(item: Equipment, today: dt.date) -> DueState:
    """Today's standing of ``item`` from the due dates on its row."""
    if not item.active:
        return DueState.OUT_OF_SERVICE
    if subject_to_calibration(item) and item.calibration_due_on is None:
        return DueState.NOT_CALIBRATED
    if item.maintenance_interval_days is not None and item.maintenance_due_on is None:
        return DueState.OVERDUE  # its last maintenance failed
    dues = [d for d in (item.calibration_due_on, item.maintenance_due_on) if d is not None]
    if not dues:
        return DueState.IN_DATE
    first = min(dues)
    if first < today:
        return DueState.OVERDUE
    if first <= today + dt.timedelta(days=DUE_SOON_DAYS):
        return DueState.DUE_SOON
    return DueState.IN_DATE


def next_due_on(item: Equipment) -> dt.date | None:
    dues = [d for d in (item.calibration_due_on, item.maintenance_due_on) if d is not None]
    return min(dues) if dues else None


def _needs_attention(limit: dt.date) -> ColumnElement[bool]:
    """In service, and due by ``limit``, overdue, not calibrated or its maintenance failed."""
    return and_(
        Equipment.active.is_(True),
        or_(
            and_(
                Equipment.calibration_exempt_reason.is_(None),
                or_(Equipment.calibration_due_on.is_(None), Equipment.calibration_due_on <= limit),
            ),
            and_(
                Equipment.maintenance_interval_days.is_not(None),
                or_(Equipment.maintenance_due_on.is_(None), Equipment.maintenance_due_on <= limit),
            ),
        ),
    )


def count_equipment_due(session: DbSession, *, today: dt.date) -> int:
    """Equipment in service due within ``DUE_SOON_DAYS`` or overdue (one statement); the
    technician's queue line, beside ``equipment_page(due=True)``."""
    limit = today + dt.timedelta(days=DUE_SOON_DAYS)
    return int(
        session.execute(
            select(func.count()).select_from(Equipment).where(_needs_attention(limit))
        ).scalar_one()
    )


#: The equipment list: by asset ID; searched in the ID and the name.
EQUIPMENT_LIST = listing.ListSpec(
    sorts={
        "code": Equipment.code,
        "kind": Equipment.kind,
        "calibration_due": Equipment.calibration_due_on,
        "maintenance_due": Equipment.maintenance_due_on,
    },
    default_sort="code",
    tiebreaker=Equipment.id,
    default_direction=listing.Direction.ASC,
    searched=(Equipment.code, Equipment.name),
)


def equipment_page(
    session: DbSession,
    request: listing.PageRequest,
    *,
    today: dt.date,
    due: bool = False,
    kind: EquipmentKind | None = None,
) -> listing.Page[Equipment]:
    """A page of the equipment (two statements); ``due``: only those the queue counts."""
    query = select(Equipment)
    if due:
        query = query.where(_needs_attention(today + dt.timedelta(days=DUE_SOON_DAYS)))
    if kind is not None:
        query = query.where(Equipment.kind == kind.value)
    return listing.fetch_page(session, query, EQUIPMENT_LIST, request)


def history(session: DbSession, item: Equipment) -> list[EquipmentEvent]:
    """Every calibration and maintenance of ``item``, newest first, with whether a
    certificate file is on file (``certificate``, loaded without its content)."""
    events = list(
        session.execute(
            select(EquipmentEvent)
            .where(EquipmentEvent.equipment_id == item.id)
            .order_by(EquipmentEvent.performed_on.desc(), EquipmentEvent.id.desc())
        ).scalars()
    )
    files = {
        row.event_id: row
        for row in session.execute(
            select(EquipmentCertificate).where(
                EquipmentCertificate.event_id.in_([event.id for event in events])
            )
        ).scalars()
    }
    for event in events:
        set_committed_value(event, "certificate", files.get(event.id))
    return events


def equipment_actions(item: Equipment) -> frozenset[EquipmentAction]:
    """What may be done to ``item`` as it is: a calibration if it is subject to calibration
    and in service (``record_event`` refuses one otherwise); a maintenance (a repair) and a
    change of intervals always, also out of service."""
    acts = {EquipmentAction.CHANGE_INTERVALS, EquipmentAction.RECORD_MAINTENANCE}
    if subject_to_calibration(item) and item.active:
        acts.add(EquipmentAction.RECORD_CALIBRATION)
    return frozenset(acts)


def get_equipment(session: DbSession, equipment_id: int) -> Equipment:
    return get_or_404(session, Equipment, equipment_id, "equipment")


def get_event(session: DbSession, item: Equipment, event_id: int) -> EquipmentEvent:
    event = get_or_404(session, EquipmentEvent, event_id, "calibration or maintenance")
    if event.equipment_id != item.id:
        get_or_404(session, EquipmentEvent, 0, "calibration or maintenance")
    return event


def certificate_of(session: DbSession, event: EquipmentEvent) -> EquipmentCertificate:
    return get_or_404(session, EquipmentCertificate, event.id, "certificate")


def code_key(text: str | None) -> str:
    """An asset ID as compared: compatibility-normalised (full-width letters and digits become
    ASCII), upper case, every character that is not a letter or digit removed (spaces, ASCII
    and other hyphens, dots): ``CNT 09``, ``cnt09``, ``CNT\u201109`` and ``\uff23\uff2e\uff34-09``
    are all ``CNT09``."""
    folded = unicodedata.normalize("NFKC", text or "").upper()
    return "".join(c for c in folded if c.isalnum())


def _keyed(session: DbSession) -> dict[str, Equipment]:
    """Every registered piece by its ``code_key`` (a site registers tens of pieces, not
    thousands: read in one statement)."""
    return {
        code_key(item.code): item
        for item in session.execute(select(Equipment).order_by(Equipment.id)).scalars()
    }


def _by_key(session: DbSession, key: str) -> Equipment | None:
    return _keyed(session).get(key) if key else None


def by_code(session: DbSession, code: str) -> Equipment | None:
    """The registered equipment whose asset ID is ``code`` as typed: any case, spacing,
    hyphen or width (``code_key``), if any."""
    return _by_key(session, code_key(code))


def instruments(session: DbSession) -> list[Equipment]:
    """The registered measuring instruments in service a QC result's form offers (cell
    counters), by asset ID; any other instrument is typed."""
    return list(
        session.execute(
            select(Equipment)
            .where(
                Equipment.active.is_(True), Equipment.kind == EquipmentKind.CELL_COUNTER.value
            )
            .order_by(Equipment.code)
        ).scalars()
    )


#: a run of ASCII letters and digits, or of other letters (a Chinese word beside an ID)
_WORD = re.compile(r"[0-9A-Z]+|[^\W0-9A-Z_]+")
#: an asset ID typed in words may be split in this many words at most (``CNT 09``)
_MOST_WORDS = 4


def named_in(session: DbSession, text: str | None) -> list[Equipment]:
    """The registered equipment whose asset ID appears in free ``text`` (a method "in
    words"), as whole words however spaced or hyphenated: ``NC-200 (cnt 09)`` names ``CNT-09``
    but ``CNT-090`` does not."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text or "").upper())
    if not words:
        return []
    keyed = _keyed(session)
    found: dict[int, Equipment] = {}
    for start in range(len(words)):
        joined = ""
        for word in words[start : start + _MOST_WORDS]:
            joined += word
            item = keyed.get(joined)
            if item is not None:
                found.setdefault(item.id, item)
    return list(found.values())
