"""Visit scheduling: moving a visit to another day, the investigator's signature on a move
outside the protocol, and a visit recorded as missed (DOMAIN.md §7, issue 19).

- **Reschedule.** Any visit not yet done nor missed may be moved, with a reason, to today or a
  later day (site calendar); never into the past. Day 0 moves the patient's scheduled day 0;
  months 3, 6 and 12 count from the first infusion, so they move only once it has started
  (before, they are provisional: move day 0 instead). An arm that never receives cells has
  its day 0 as the anchor of its evaluations: it moves only while it lies ahead.
- **Protocol deviation.** The protocol window of a visit as first planned is, for day 0, the
  day planned at enrolment ± the protocol's ``reschedule_within_days``, for a later visit its
  protocol day from the first infusion ± its ``window_days``. A new day outside that window
  opens a protocol deviation: the visit is then open on its new day only, and only once an
  investigator has signed the deviation (e-signature, password re-entered). Until then no dose
  is ordered or given for it (``patients.Visit.open_on``). Only the latest move of a visit is
  signed; an earlier one is superseded.
- **Missed.** A visit whose window has closed without it being done (overdue) may be recorded
  as missed, once, with a reason: it leaves the clinic's due list and no dose is ordered or
  given for it. Day 0 of an arm that receives cells is never recorded as missed: it anchors the
  trial, so it is rescheduled instead. A visit with a live dose order is not missed until the
  order is cancelled or its dose destroyed.

Every refusal names each problem on its field, nothing saved. Services flush; the caller
commits (one use case, one transaction).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from cellchain.clinic.follow_up import follow_up
from cellchain.clinic.models import MissedVisit, VisitReschedule
from cellchain.core import audit, signatures
from cellchain.core.guarded import update_if
from cellchain.core.i18n import _, document_text
from cellchain.core.models import Signature, User
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, Role, require
from cellchain.dosing import patients
from cellchain.dosing.models import ACTIVE_DOSE_STATUSES, DoseOrder, Patient, PatientStatus
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession

#: The meaning printed with the investigator's signature on a visit moved outside the protocol.
DEVIATION_MEANING = "approval: protocol deviation (visit outside its window)"

#: Longest reason kept.
MAX_REASON = 2000


def reschedule_visit(
    session: DbSession,
    patient: Patient,
    *,
    visit: str,
    planned_on: dt.date,
    reason: str,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
) -> VisitReschedule:
    """Move ``visit`` of the patient to ``planned_on`` with a reason (module docstring)."""
    require(actor, Permission.RECORD_FOLLOW_UP)
    code = visit.strip().upper()
    today = now.astimezone(zone).date()
    facts = patients.facts_of(session, patient, zone)
    statuses = {
        s.visit.code: s
        for s in follow_up.patient_schedule(session, patient, today=today, zone=zone)
    }
    target = statuses.get(code)
    text = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    if target is None:
        errors["visit"] = [_no_such_visit(patient, code or visit, statuses)]
    if not text:
        errors["reason"] = [_("Say why the visit moves.")]
    elif len(text) > MAX_REASON:
        errors["reason"] = [_("At most %(count)s characters.", count=MAX_REASON)]
    if planned_on < today:
        errors["planned_on"] = [
            _(
                "%(day)s is in the past (today is %(today)s): a visit is rescheduled to today "
                "or a later day.",
                day=planned_on.isoformat(),
                today=today.isoformat(),
            )
        ]
    elif target is not None and planned_on == target.visit.planned_on:
        errors["planned_on"] = [
            _("%(visit)s is already planned for that day.", visit=document_text(target.visit.name))
        ]
    if errors:
        raise InvalidInput(
            _("The visit was not rescheduled: %(problems)s", problems=patients.summarize(errors)),
            errors=errors,
        )
    assert target is not None
    _refuse_unmovable(patient, target, facts, today)
    earliest, latest = _protocol_window(session, patient, target.visit, facts)
    previous_on = target.visit.planned_on
    row = VisitReschedule(
        patient_id=patient.id,
        visit=code,
        previous_on=previous_on,
        planned_on=planned_on,
        reason=text,
        protocol_earliest=earliest,
        protocol_latest=latest,
        outside_protocol=not earliest <= planned_on <= latest,
        recorded_at=now,
        recorded_by_id=actor.id,
    )
    if target.visit.day == 0 and not update_if(
        session, patient, Patient.day0 == patient.day0, day0=planned_on
    ):
        raise Conflict(  # pragma: no cover - the row lock makes this a race only
            _(
                "Day 0 of %(patient)s was moved by someone else a moment ago; reload.",
                patient=patient.study_id,
            ),
            title=_("Rescheduled concurrently"),
        )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="visit.rescheduled",
        entity_type="patient",
        entity_id=patient.id,
        changes={
            "visit": (None, code),
            "planned_on": (previous_on, planned_on),
            "reason": (None, text),
            "protocol_window": (None, f"{earliest.isoformat()}..{latest.isoformat()}"),
            "outside_protocol": (None, row.outside_protocol),
            "reschedule_id": (None, row.id),
        },
    )
    return row


def sign_deviation(
    session: DbSession,
    reschedule: VisitReschedule,
    *,
    investigator: User,
    password: str,
    now: dt.datetime,
) -> Signature:
    """The investigator's e-signature on the protocol deviation of a visit moved outside its
    window: the visit is then open on its new day. Refused (409) for a move inside the window,
    one already signed, or one superseded by a later move of the same visit."""
    if not reschedule.outside_protocol:
        raise Conflict(
            _(
                "The move of %(visit)s to %(day)s is within the protocol window: there is no "
                "deviation to sign.",
                visit=reschedule.visit,
                day=reschedule.planned_on.isoformat(),
            ),
            title=_("No deviation"),
        )
    if reschedule.deviation_signed_at is not None:
        raise Conflict(
            _(
                "The deviation was signed by %(who)s on %(when)s.",
                who=reschedule.deviation_signed_by.full_name,  # type: ignore[union-attr]
                when=reschedule.deviation_signed_at.isoformat(),
            ),
            title=_("Already signed"),
        )
    latest = session.execute(
        select(VisitReschedule.id)
        .where(
            VisitReschedule.patient_id == reschedule.patient_id,
            VisitReschedule.visit == reschedule.visit,
        )
        .order_by(VisitReschedule.recorded_at.desc(), VisitReschedule.id.desc())
        .limit(1)
    ).scalar_one()
    if latest != reschedule.id:
        raise Conflict(
            _(
                "This move of %(visit)s was superseded by a later one; sign that one.",
                visit=reschedule.visit,
            ),
            title=_("Superseded"),
        )
    signature = signatures.sign(
        session,
        record=reschedule,
        meaning=DEVIATION_MEANING,
        user=investigator,
        password=password,
        now=now,
        permission=Role.INVESTIGATOR,
    )
    if not update_if(
        session,
        reschedule,
        VisitReschedule.deviation_signed_at.is_(None),
        deviation_signed_at=now,
        deviation_signed_by_id=investigator.id,
    ):
        raise Conflict(  # pragma: no cover - the row lock makes this a race only
            _("Another investigator signed this deviation a moment ago; reload."),
            title=_("Signed concurrently"),
        )
    audit.record(
        session,
        actor=investigator,
        at=now,
        action="visit.deviation_signed",
        entity_type="patient",
        entity_id=reschedule.patient_id,
        changes={
            "visit": (None, reschedule.visit),
            "reschedule_id": (None, reschedule.id),
            "signature_id": (None, signature.id),
        },
    )
    return signature


def record_missed(
    session: DbSession,
    patient: Patient,
    *,
    visit: str,
    reason: str,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
) -> MissedVisit:
    """Record an overdue visit as missed, once, with a reason (module docstring)."""
    require(actor, Permission.RECORD_FOLLOW_UP)
    code = visit.strip().upper()
    today = now.astimezone(zone).date()
    statuses = {
        s.visit.code: s
        for s in follow_up.patient_schedule(session, patient, today=today, zone=zone)
    }
    target = statuses.get(code)
    text = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    if not text:
        errors["reason"] = [_("Say why the visit was missed.")]
    elif len(text) > MAX_REASON:
        errors["reason"] = [_("At most %(count)s characters.", count=MAX_REASON)]
    if target is None:
        errors["visit"] = [_no_such_visit(patient, code or visit, statuses)]
    elif target.visit.day == 0 and target.status != follow_up.VisitStatus.NOT_APPLICABLE:
        errors["visit"] = [
            _(
                "Day 0 is never recorded as missed: the first infusion anchors every later "
                "visit. Reschedule it instead."
            )
        ]
    elif target.status == follow_up.VisitStatus.MISSED:
        pass  # the 409 below names who recorded it
    elif target.status != follow_up.VisitStatus.OVERDUE:
        errors["visit"] = [_not_missable(target)]
    if errors:
        raise InvalidInput(
            _(
                "The visit was not recorded as missed: %(problems)s",
                problems=patients.summarize(errors),
            ),
            errors=errors,
        )
    assert target is not None
    existing = session.execute(
        select(MissedVisit).where(MissedVisit.patient_id == patient.id, MissedVisit.visit == code)
    ).scalar_one_or_none()
    if existing is not None:
        raise Conflict(
            _(
                "%(visit)s of %(patient)s was recorded as missed by %(who)s.",
                visit=document_text(target.visit.name),
                patient=patient.study_id,
                who=existing.recorded_by.full_name,
            ),
            title=_("Already recorded"),
        )
    live = session.execute(
        select(DoseOrder.id, DoseOrder.status).where(
            DoseOrder.patient_id == patient.id,
            DoseOrder.visit == code,
            DoseOrder.status.in_([status.value for status in ACTIVE_DOSE_STATUSES]),
        )
    ).first()
    if live is not None:
        raise Conflict(
            _(
                "%(visit)s has a live dose order (%(status)s, order %(order)s): cancel the "
                "order or destroy the dose before recording the visit as missed.",
                visit=document_text(target.visit.name),
                status=live.status,
                order=live.id,
            ),
            title=_("Dose order live"),
        )
    row = MissedVisit(
        patient_id=patient.id, visit=code, reason=text, recorded_at=now, recorded_by_id=actor.id
    )
    concurrent = Conflict(
        _(
            "%(visit)s of %(patient)s was recorded as missed by someone else a moment ago; "
            "reload the page to see it.",
            visit=document_text(target.visit.name),
            patient=patient.study_id,
        ),
        title=_("Recorded concurrently"),
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise concurrent from None
    audit.record(
        session,
        actor=actor,
        at=now,
        action="visit.missed",
        entity_type="patient",
        entity_id=patient.id,
        changes={"visit": (None, code), "reason": (None, text)},
    )
    return row


def count_deviations_to_sign(session: DbSession) -> int:
    """How many moves ``sign_deviation`` would accept (one statement): outside the protocol
    window, not signed, and the latest move of that patient's visit (not superseded)."""
    later = aliased(VisitReschedule)
    superseded = exists().where(
        later.patient_id == VisitReschedule.patient_id,
        later.visit == VisitReschedule.visit,
        (later.recorded_at > VisitReschedule.recorded_at)
        | ((later.recorded_at == VisitReschedule.recorded_at) & (later.id > VisitReschedule.id)),
    )
    return session.execute(
        select(func.count())
        .select_from(VisitReschedule)
        .where(
            VisitReschedule.outside_protocol.is_(True),
            VisitReschedule.deviation_signed_at.is_(None),
            ~superseded,
        )
    ).scalar_one()


def get_reschedule(session: DbSession, reschedule_id: int) -> VisitReschedule:
    return get_or_404(session, VisitReschedule, reschedule_id, "visit reschedule", id_prefix="")


def reschedules_of(session: DbSession, patient: Patient) -> list[VisitReschedule]:
    """Every move of the patient's visits, latest first."""
    return list(
        session.execute(
            select(VisitReschedule)
            .where(VisitReschedule.patient_id == patient.id)
            .order_by(VisitReschedule.recorded_at.desc(), VisitReschedule.id.desc())
        ).scalars()
    )


def missed_of(session: DbSession, patient: Patient) -> dict[str, MissedVisit]:
    """The patient's visits recorded as missed, by code."""
    return {
        row.visit: row
        for row in session.execute(
            select(MissedVisit).where(MissedVisit.patient_id == patient.id)
        ).scalars()
    }


# --- helpers ------------------------------------------------------------------------------------


def _refuse_unmovable(
    patient: Patient,
    target: follow_up.ScheduledVisit,
    facts: patients.ScheduleFacts,
    today: dt.date,
) -> None:
    visit = target.visit
    if patient.status != PatientStatus.ENROLLED.value:
        message = _(
            "%(patient)s is %(status)s: their visits are not rescheduled.",
            patient=patient.study_id,
            status=patient.status,
        )
    elif target.status == follow_up.VisitStatus.DONE:
        message = _(
            "%(visit)s is done (%(day)s): a visit done is not rescheduled.",
            visit=document_text(visit.name),
            day=target.done_on,
        )
    elif target.status == follow_up.VisitStatus.MISSED:
        message = _(
            "%(visit)s was recorded as missed: it is not rescheduled.",
            visit=document_text(visit.name),
        )
    elif visit.day != 0 and visit.provisional:
        message = _(
            "%(visit)s counts from the first infusion, which has not started: it is planned "
            "provisionally from day 0. Reschedule day 0 instead.",
            visit=document_text(visit.name),
        )
    elif visit.day == 0 and not patients.receives_cells(patient) and patient.day0 < today:
        message = _(
            "Day 0 of %(patient)s (%(day)s) has passed: it anchors the evaluations of an arm "
            "without infusions and is not moved any more.",
            patient=patient.study_id,
            day=patient.day0,
        )
    else:
        return
    raise Conflict(message, title=_("Not rescheduled"))


def _protocol_window(
    session: DbSession, patient: Patient, visit: patients.Visit, facts: patients.ScheduleFacts
) -> tuple[dt.date, dt.date]:
    """The protocol window of ``visit`` as first planned (module docstring)."""
    item = next(
        item
        for item in [
            *patient.protocol.parameters["infusions"],
            *patient.protocol.parameters.get("follow_up", []),
        ]
        if item["code"] == visit.code
    )
    if visit.day == 0:
        first_move = session.execute(
            select(VisitReschedule.previous_on)
            .where(VisitReschedule.patient_id == patient.id, VisitReschedule.visit == visit.code)
            .order_by(VisitReschedule.recorded_at, VisitReschedule.id)
            .limit(1)
        ).scalar_one_or_none()
        original = first_move or patient.day0
        allowed = int(item.get("reschedule_within_days", item.get("window_days", 0)))
        return original - dt.timedelta(days=allowed), original + dt.timedelta(days=allowed)
    unmoved = patients.schedule(patient, dataclasses.replace(facts, moves={}))
    planned = next(v for v in unmoved if v.code == visit.code)
    return planned.earliest, planned.latest


def _no_such_visit(patient: Patient, asked: str, statuses: Mapping[str, object]) -> str:
    return _(
        "Protocol %(protocol)s has no visit %(visit)s; its visits are %(visits)s.",
        protocol=patient.protocol.code,
        visit=repr(asked),
        visits=", ".join(statuses),
    )


def _not_missable(target: follow_up.ScheduledVisit) -> str:
    visit = target.visit
    if target.status == follow_up.VisitStatus.DONE:
        return _(
            "%(visit)s is done (%(day)s).", visit=document_text(visit.name), day=target.done_on
        )
    if target.status == follow_up.VisitStatus.NOT_APPLICABLE:
        return _("%(visit)s does not apply to this arm.", visit=document_text(visit.name))
    return _(
        "%(visit)s's window is still open or ahead (until %(day)s): a visit is recorded as "
        "missed once its window has closed; reschedule it otherwise.",
        visit=document_text(visit.name),
        day=visit.latest.isoformat(),
    )
