"""The follow-up schedule: where each visit of a patient stands, and evaluations done
(DOMAIN.md §7: infusions on day 0 and month 3, evaluations at months 6 and 12).

Day 0 is planned on the patient's scheduled day 0; months 3, 6 and 12 count from the day the
first infusion actually started (``patients.schedule``), provisionally from the scheduled
day 0 until it has. A visit's status on a day (in the site's time zone) is exactly one of:

- ``done``: an infusion visit whose dose was infused (an infusion was started, whether it
  completed or was stopped), or an evaluation visit recorded as done;
- ``not_applicable``: an infusion visit of a patient whose arm never receives cells;
- ``missed``: recorded as missed once its window closed (``scheduling.record_missed``);
- ``planned``: not done and its window has not opened yet;
- ``due``: not done and its window is open that day;
- ``overdue``: not done and its window has closed. It stays overdue until it is done or
  recorded as missed: a missed visit is never quietly dropped from the clinic's list.

An infusion visit is done by its infusion only; an evaluation visit is recorded here, once.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from cellchain.clinic.models import EfficacyEndpoints, FollowUpVisit, Infusion, WordedEnum
from cellchain.core import audit
from cellchain.core.i18n import Translated, _, document_text, english_of
from cellchain.core.models import User
from cellchain.dosing import patients
from cellchain.dosing.models import DoseOrder, Patient, PatientStatus
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession

#: The note of an evaluation visit done by its efficacy endpoints' assessment.
ENDPOINTS_ASSESSED = "efficacy endpoints assessed"
#: The clinic's list can also show visits whose window opens within this many days.
COMING_UP_DAYS = 14


class VisitStatus(WordedEnum):
    DONE = "done"  #: infused (infusion visits) or recorded as done (evaluations)
    NOT_APPLICABLE = "not_applicable"  #: an infusion visit of an arm that never receives cells
    MISSED = "missed"  #: its window closed and it was recorded as missed
    PLANNED = "planned"  #: the window opens on a later day
    DUE = "due"  #: the window is open today
    OVERDUE = "overdue"  #: the window has closed and the visit was neither done nor missed


#: The clinic's list: overdue first, then due, then coming up.
_URGENCY = {VisitStatus.OVERDUE: 0, VisitStatus.DUE: 1, VisitStatus.PLANNED: 2}


@dataclass(frozen=True)
class Completion:
    """How a visit was done: the day (in the site's zone) and, for an evaluation, its note."""

    done_on: dt.date
    note: str | None = None


@dataclass(frozen=True)
class ScheduledVisit:
    """A visit of a patient's schedule and where it stands on a given day."""

    patient: Patient
    visit: patients.Visit
    status: VisitStatus
    done_on: dt.date | None = None
    note: str | None = None
    #: the latest reschedule of the visit (``visit_reschedules``), if it was moved
    reschedule_id: int | None = None

    @property
    def outside_window(self) -> bool:
        """Done on a day outside the visit's window (a deviation to explain, not a refusal)."""
        return self.done_on is not None and not self.visit.open_on(self.done_on)


def visit_status(
    visit: patients.Visit, *, today: dt.date, done: bool, applicable: bool
) -> VisitStatus:
    """The one status of ``visit`` on ``today``: done wins; an infusion the arm never receives
    is not applicable; a visit recorded as missed is missed; otherwise the window decides
    (before it, in it, after it)."""
    if done:
        return VisitStatus.DONE
    if not applicable:
        return VisitStatus.NOT_APPLICABLE
    if visit.missed:
        return VisitStatus.MISSED
    if today < visit.earliest:
        return VisitStatus.PLANNED
    if today <= visit.latest:
        return VisitStatus.DUE
    return VisitStatus.OVERDUE


def patient_schedule(
    session: DbSession, patient: Patient, *, today: dt.date, zone: ZoneInfo
) -> list[ScheduledVisit]:
    """Every visit of the patient's protocol schedule with its status on ``today``."""
    done = _completions(session, zone, patient_id=patient.id).get(patient.id, {})
    return _scheduled(patient, patients.facts_of(session, patient, zone), done, today)


def due_visits(
    session: DbSession, *, today: dt.date, zone: ZoneInfo, coming_up_days: int = 0
) -> list[ScheduledVisit]:
    """The due and overdue visits of every enrolled patient, and with ``coming_up_days`` also
    those whose window opens within that many days; overdue first, then by planned day."""
    enrolled = list(
        session.execute(
            select(Patient)
            .where(Patient.status == PatientStatus.ENROLLED.value)
            .options(selectinload(Patient.protocol))
            .order_by(Patient.study_id)
        ).scalars()
    )
    done = _completions(session, zone)
    # the first infusions, moves and missed visits of every patient listed, in one go
    facts = patients.schedule_facts(session, [patient.id for patient in enrolled], zone)
    horizon = today + dt.timedelta(days=max(coming_up_days, 0))
    listed = [
        item
        for patient in enrolled
        for item in _scheduled(patient, facts[patient.id], done.get(patient.id, {}), today)
        if item.status in (VisitStatus.DUE, VisitStatus.OVERDUE)
        or (item.status == VisitStatus.PLANNED and item.visit.earliest <= horizon)
    ]
    return sorted(
        listed,
        key=lambda item: (
            _URGENCY[item.status],
            item.visit.planned_on,
            item.patient.study_id,
            item.visit.day,
        ),
    )


def count_due_visits(
    session: DbSession, *, today: dt.date, zone: ZoneInfo
) -> dict[VisitStatus, int]:
    """How many visits ``due_visits`` lists as due and as overdue on ``today``.

    The schedule is computed, not stored (each patient's protocol, first infusion, moves and
    missed visits), so this counts what ``due_visits`` returns: its statements are a fixed
    number whatever the number of patients, its work grows with the enrolled patients."""
    counts = {VisitStatus.DUE: 0, VisitStatus.OVERDUE: 0}
    for item in due_visits(session, today=today, zone=zone):
        if item.status in counts:
            counts[item.status] += 1
    return counts


def record_visit_done(
    session: DbSession,
    patient: Patient,
    *,
    visit: str,
    done_on: dt.date,
    note: str | None,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
) -> FollowUpVisit:
    """Record an evaluation visit of the patient's protocol as done, once.

    Refused with every problem on its field, nothing saved: a code that is not a visit of
    the protocol, an infusion visit (done by its infusion, never recorded by hand), a day in
    the future or before enrolment (site calendar). A visit already recorded is a 409.
    """
    code = visit.strip().upper()
    today = now.astimezone(zone).date()
    enrolled_on = patient.enrolled_at.astimezone(zone).date()
    errors: dict[str, list[str]] = {}
    scheduled = {v.code: v for v in patients.schedule_of(session, patient, zone)}
    target = scheduled.get(code)
    evaluations = [v.code for v in scheduled.values() if not v.infusion]
    if target is None:
        errors["visit"] = [
            _(
                "Protocol %(protocol)s has no visit %(visit)s; its evaluation visits are "
                "%(evaluations)s.",
                protocol=patient.protocol.code,
                visit=repr(code or visit),
                evaluations=", ".join(evaluations),
            )
            if evaluations
            else _(
                "Protocol %(protocol)s has no visit %(visit)s; it has no evaluation visits.",
                protocol=patient.protocol.code,
                visit=repr(code or visit),
            )
        ]
    elif target.infusion:
        errors["visit"] = [
            _(
                "%(visit)s (%(code)s) is an infusion visit: it is done by its infusion, not "
                "recorded here.",
                visit=document_text(target.name),
                code=code,
            )
        ]
    elif target.missed:
        errors["visit"] = [
            _(
                "%(visit)s (%(code)s) was recorded as missed.",
                visit=document_text(target.name),
                code=code,
            )
        ]
    if done_on > today:
        errors["done_on"] = [
            _(
                "%(day)s is in the future (today is %(today)s).",
                day=done_on.isoformat(),
                today=today.isoformat(),
            )
        ]
    elif done_on < enrolled_on:
        errors["done_on"] = [
            _(
                "%(day)s is before %(patient)s was enrolled (%(enrolled)s).",
                day=done_on.isoformat(),
                patient=patient.study_id,
                enrolled=enrolled_on.isoformat(),
            )
        ]
    if errors:
        raise InvalidInput(
            _("The visit was not recorded: %(problems)s", problems=_summary(errors)),
            errors=errors,
        )
    assert target is not None
    existing = session.execute(
        select(FollowUpVisit).where(
            FollowUpVisit.patient_id == patient.id, FollowUpVisit.visit == code
        )
    ).scalar_one_or_none()
    if existing is not None:
        raise _already_recorded(patient, target, existing)
    row = FollowUpVisit(
        patient_id=patient.id,
        visit=code,
        done_on=done_on,
        note=(note or "").strip() or None,
        recorded_at=now,
        recorded_by_id=actor.id,
    )
    # Worded before the flush: a failed flush expires what the session had loaded.
    concurrent = Conflict(
        _(
            "%(visit)s (%(code)s) of %(patient)s was recorded by someone else a moment ago; "
            "reload the page to see it.",
            visit=document_text(target.name),
            code=code,
            patient=patient.study_id,
        ),
        title=_("Recorded concurrently"),
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        # Someone recorded the same visit a moment ago (the unique patient + visit row).
        raise concurrent from None
    audit.record(
        session,
        actor=actor,
        at=now,
        action="follow_up.recorded",
        entity_type="patient",
        entity_id=patient.id,
        changes={
            "visit": (None, code),
            "done_on": (None, done_on),
            "note": (None, row.note),
        },
    )
    return row


# --- helpers ------------------------------------------------------------------------------------


def _scheduled(
    patient: Patient, facts: patients.ScheduleFacts, done: dict[str, Completion], today: dt.date
) -> list[ScheduledVisit]:
    cells = patients.receives_cells(patient)
    items = []
    for visit in patients.schedule(patient, facts):
        # an infusion is done by an infusion, an evaluation by its record: never the other
        completion = done.get(("infusion:" if visit.infusion else "evaluation:") + visit.code)
        status = visit_status(
            visit,
            today=today,
            done=completion is not None,
            applicable=cells or not visit.infusion,
        )
        items.append(
            ScheduledVisit(
                patient=patient,
                visit=visit,
                status=status,
                done_on=completion.done_on if completion else None,
                note=completion.note if completion else None,
                reschedule_id=move.reschedule_id if (move := facts.moves.get(visit.code)) else None,
            )
        )
    return items


def _completions(
    session: DbSession, zone: ZoneInfo, *, patient_id: int | None = None
) -> dict[int, dict[str, Completion]]:
    """patient → ("infusion:D0" | "evaluation:M6") → how it was done, in three queries: of one
    patient, or (``patient_id`` None) of every enrolled patient. An evaluation visit is done
    when it was recorded done, or when its efficacy endpoints were assessed (the assessment is
    the visit: it is then never missed nor moved)."""
    infused = select(Infusion.patient_id, DoseOrder.visit, Infusion.started_at).join(
        DoseOrder, Infusion.dose_order_id == DoseOrder.id
    )
    evaluated = select(FollowUpVisit)
    assessed = select(
        EfficacyEndpoints.patient_id, EfficacyEndpoints.visit, EfficacyEndpoints.assessed_on
    )
    if patient_id is None:
        enrolled = select(Patient.id).where(Patient.status == PatientStatus.ENROLLED.value)
        infused = infused.where(Infusion.patient_id.in_(enrolled))
        evaluated = evaluated.where(FollowUpVisit.patient_id.in_(enrolled))
        assessed = assessed.where(EfficacyEndpoints.patient_id.in_(enrolled))
    else:
        infused = infused.where(Infusion.patient_id == patient_id)
        evaluated = evaluated.where(FollowUpVisit.patient_id == patient_id)
        assessed = assessed.where(EfficacyEndpoints.patient_id == patient_id)
    found: dict[int, dict[str, Completion]] = {}
    for row_patient, code, started_at in session.execute(infused.order_by(Infusion.started_at)):
        found.setdefault(row_patient, {}).setdefault(
            f"infusion:{code}", Completion(started_at.astimezone(zone).date())
        )
    for row_patient, code, assessed_on in session.execute(assessed):
        found.setdefault(row_patient, {})[f"evaluation:{code}"] = Completion(
            assessed_on, ENDPOINTS_ASSESSED
        )
    for row in session.execute(evaluated).scalars():
        found.setdefault(row.patient_id, {})[f"evaluation:{row.visit}"] = Completion(
            row.done_on, row.note
        )
    return found


def _already_recorded(patient: Patient, visit: patients.Visit, existing: FollowUpVisit) -> Conflict:
    return Conflict(
        _(
            "%(visit)s (%(code)s) of %(patient)s is already recorded as done on %(day)s by "
            "%(who)s; a visit is recorded once.",
            visit=document_text(visit.name),
            code=visit.code,
            patient=patient.study_id,
            day=existing.done_on.isoformat(),
            who=existing.recorded_by.full_name,
        ),
        title=_("Already recorded"),
    )


def _summary(errors: dict[str, list[str]]) -> str:
    """Every field's messages as one text (``patients.summarize``), in the reader's language
    and, for the record, in English."""
    shown = Translated(patients.summarize(errors))
    shown.english = " ".join(english_of(m) for messages in errors.values() for m in messages)
    return shown
