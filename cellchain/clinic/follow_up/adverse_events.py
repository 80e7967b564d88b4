"""Adverse events of trial patients: recorded with onset, CTCAE grade, seriousness and outcome,
and their outcome updated as the event evolves.

The rules that tie the fields together:

- grade 5 is death related to the event (CTCAE), so **grade 5 ⇔ outcome fatal**;
- death and a life-threatening event are seriousness criteria (ICH E2A), so **grade 4 or 5
  is serious**;
- the onset is not in the future and not before the patient's enrolment; an infusion the event
  followed is one of this patient's, and started before the onset;
- an event is serious if and only if it meets at least one ICH E2A seriousness criterion
  (``SeriousCriterion``), and a grade 5 event meets "death";
- the site became aware of the event (the reporting clock's start, ``reporting.py``) not before
  its onset and not in the future; when not given, at the time it is recorded;
- the term is MedDRA-style: free text and an optional code. No licensed MedDRA dictionary is
  shipped, so the code is not checked against one.

An outcome changes only forward in the record: the new value with a reason, the old one kept in
the audit trail. A grade 5 event stays fatal; an event that turns fatal is recorded as a new
grade 5 event (its grade cannot change here).

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from cellchain.clinic.follow_up import reporting
from cellchain.clinic.models import AdverseEvent, Infusion, Outcome, SeriousCriterion, Seriousness
from cellchain.core import audit
from cellchain.core.guarded import update_if
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.dosing.models import Patient
from cellchain.dosing.patients import summarize
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession
from cellchain.notifications import service as notifications

#: CTCAE v5 grades, as the form offers them.
GRADES: dict[int, LazyText] = {
    1: lazy("1 — mild"),
    2: lazy("2 — moderate"),
    3: lazy("3 — severe or medically significant"),
    4: lazy("4 — life-threatening"),
    5: lazy("5 — death related to the event"),
}
#: Grades that are serious by definition (life-threatening, death).
SERIOUS_GRADES = frozenset({4, 5})
FATAL_GRADE = 5
#: ICH E2A seriousness criteria (codes): an event meeting any of them is serious.
SERIOUS_CRITERIA = frozenset(c.value for c in SeriousCriterion)
#: A clock a few minutes apart from the server's is not "the future".
CLOCK_TOLERANCE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class AdverseEventReport:
    """What the adverse-event form sends."""

    onset_at: dt.datetime
    description: str
    grade: int
    seriousness: str
    outcome: str
    infusion_id: int | None = None
    serious_criteria: frozenset[str] = frozenset()
    aware_at: dt.datetime | None = None
    term: str | None = None
    term_code: str | None = None


def record_adverse_event(
    session: DbSession,
    patient: Patient,
    report: AdverseEventReport,
    *,
    actor: User,
    now: dt.datetime,
) -> AdverseEvent:
    """Record an adverse event of the patient, or refuse with every problem named on its
    field (nothing saved then)."""
    errors: dict[str, list[str]] = {}
    if report.onset_at > now + CLOCK_TOLERANCE:
        errors["onset_at"] = [_("The onset cannot be in the future.")]
    elif report.onset_at < patient.enrolled_at:
        errors["onset_at"] = [
            _(
                "The onset is before %(patient)s was enrolled; an event that began before "
                "enrolment is medical history, not an adverse event.",
                patient=patient.study_id,
            )
        ]
    if not report.description.strip():
        errors["description"] = [_("Describe the event.")]
    infusion = None
    if report.infusion_id is not None:
        infusion = session.get(Infusion, report.infusion_id)
        if infusion is None or infusion.patient_id != patient.id:
            errors["infusion_id"] = [
                _(
                    "Infusion %(infusion)s is not one of %(patient)s's infusions.",
                    infusion=report.infusion_id,
                    patient=patient.study_id,
                )
            ]
        elif report.onset_at < infusion.started_at and "onset_at" not in errors:
            errors["onset_at"] = [
                _(
                    "The onset is before the infusion it followed started; choose no "
                    "infusion, or correct the onset."
                )
            ]
    for field, messages in classification_errors(
        report.grade, report.seriousness, report.outcome
    ).items():
        errors.setdefault(field, []).extend(messages)
    for field, messages in criteria_errors(
        report.grade, report.seriousness, report.serious_criteria
    ).items():
        errors.setdefault(field, []).extend(messages)
    aware_at = report.aware_at or now
    if aware_at > now + CLOCK_TOLERANCE:
        errors["aware_at"] = [_("The site cannot become aware of an event in the future.")]
    elif aware_at < report.onset_at and "onset_at" not in errors:
        errors["aware_at"] = [_("The site became aware of the event after its onset, not before.")]
    term = (report.term or "").strip() or None
    term_code = (report.term_code or "").strip() or None
    if term_code and not term:
        errors["term"] = [_("Give the term the code stands for.")]
    if errors:
        raise InvalidInput(
            _("The adverse event was not recorded: %(problems)s", problems=summarize(errors)),
            errors=errors,
        )
    event = AdverseEvent(
        patient_id=patient.id,
        infusion_id=infusion.id if infusion else None,
        onset_at=report.onset_at,
        description=report.description.strip(),
        grade=report.grade,
        seriousness=report.seriousness,
        outcome=report.outcome,
        recorded_at=now,
        recorded_by_id=actor.id,
        serious_criteria=",".join(sorted(report.serious_criteria)) or None,
        aware_at=aware_at,
        term=term,
        term_code=term_code,
    )
    session.add(event)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="adverse_event.recorded",
        entity_type="adverse_event",
        entity_id=event.id,
        changes={
            "patient": (None, patient.study_id),
            "infusion": (None, event.infusion_id),
            "onset_at": (None, event.onset_at),
            "description": (None, event.description),
            "grade": (None, event.grade),
            "seriousness": (None, event.seriousness),
            "outcome": (None, event.outcome),
            "serious_criteria": (None, event.serious_criteria),
            "aware_at": (None, event.aware_at),
            "term": (None, event.term),
            "term_code": (None, event.term_code),
        },
    )
    clock = reporting.reporting_clock(event, now=now)
    if clock is not None:  # a serious event: its reporting clock runs from now
        notifications.notify(
            session,
            "serious_adverse_event",
            entity_type="adverse_event",
            entity_id=event.id,
            params={
                "patient_id": patient.id,
                "patient": patient.study_id,
                "grade": event.grade,
                "description": event.description,
                "aware_at": clock.aware_at,
                "initial_due_at": clock.initial_due,
            },
            actor=actor,
            now=now,
        )
    return event


def update_outcome(
    session: DbSession,
    event: AdverseEvent,
    *,
    outcome: str,
    reason: str | None,
    actor: User,
    now: dt.datetime,
) -> AdverseEvent:
    """Change the event's outcome as it evolves: a different, known outcome with a reason;
    the grade rules still hold (fatal only for grade 5, and a grade 5 event stays fatal).
    The old value stays in the audit trail. Of two changes at once, one wins."""
    errors: dict[str, list[str]] = {}
    old = event.outcome
    if outcome not in _values(Outcome):
        errors["outcome"] = [_("Choose one of: %(choices)s.", choices=_choices(Outcome))]
    elif outcome == old:
        errors["outcome"] = [_("The outcome is already %(outcome)s.", outcome=Outcome(old).label)]
    elif outcome == Outcome.FATAL and event.grade != FATAL_GRADE:
        errors["outcome"] = [
            _(
                "A fatal outcome is grade 5, and this event is grade %(grade)s: record the "
                "death as a new grade 5 event.",
                grade=event.grade,
            )
        ]
    elif event.grade == FATAL_GRADE:
        errors["outcome"] = [_("A grade 5 event is a death: its outcome stays fatal.")]
    if not (reason or "").strip():
        errors["reason"] = [_("Say why the outcome changed (e.g. what the last visit found).")]
    if errors:
        raise InvalidInput(
            _("The outcome was not changed: %(problems)s", problems=summarize(errors)),
            errors=errors,
        )
    if not update_if(session, event, AdverseEvent.outcome == old, outcome=outcome):
        raise Conflict(
            _(
                "The outcome of adverse event %(event)s was changed by someone else a moment "
                "ago; reload the page to see it.",
                event=event.id,
            ),
            title=_("Changed concurrently"),
        )
    audit.record(
        session,
        actor=actor,
        at=now,
        action="adverse_event.outcome_updated",
        entity_type="adverse_event",
        entity_id=event.id,
        changes={"outcome": (old, outcome)},
        reason=reason,
        reason_required=True,
    )
    return event


def classification_errors(grade: int, seriousness: str, outcome: str) -> dict[str, list[str]]:
    """What is wrong with a grade, seriousness and outcome together, by field: unknown values,
    a grade 5 that is not fatal (or fatal that is not grade 5), grade 4–5 not serious."""
    errors: dict[str, list[str]] = {}
    if grade not in GRADES:
        errors["grade"] = [_("The CTCAE grade is 1, 2, 3, 4 or 5.")]
    if seriousness not in _values(Seriousness):
        errors["seriousness"] = [_("Choose one of: %(choices)s.", choices=_choices(Seriousness))]
    if outcome not in _values(Outcome):
        errors["outcome"] = [_("Choose one of: %(choices)s.", choices=_choices(Outcome))]
    if errors:
        return errors
    if grade == FATAL_GRADE and outcome != Outcome.FATAL:
        errors["outcome"] = [_("A grade 5 event is a death: its outcome is fatal.")]
    elif outcome == Outcome.FATAL and grade != FATAL_GRADE:
        errors["grade"] = [_("A fatal outcome is grade 5 (death related to the event).")]
    if grade in SERIOUS_GRADES and seriousness != Seriousness.SERIOUS:
        kind = _("a death") if grade == FATAL_GRADE else _("life-threatening")
        errors["seriousness"] = [
            _(
                "A grade %(grade)s event is %(kind)s, which is a seriousness criterion: it is "
                "serious.",
                grade=grade,
                kind=kind,
            )
        ]
    return errors


def criteria_errors(grade: int, seriousness: str, criteria: frozenset[str]) -> dict[str, list[str]]:
    """What is wrong with the seriousness criteria given the seriousness and grade: unknown
    criteria, a serious event without one, a non-serious event with one, a grade 5 event
    without "death"."""
    unknown = sorted(criteria - SERIOUS_CRITERIA)
    if unknown:
        return {
            "serious_criteria": [_("Unknown criteria: %(criteria)s.", criteria=", ".join(unknown))]
        }
    if seriousness == Seriousness.SERIOUS and not criteria:
        return {
            "serious_criteria": [
                _("A serious event meets at least one seriousness criterion (ICH E2A): name it.")
            ]
        }
    if seriousness == Seriousness.NON_SERIOUS and criteria:
        return {
            "serious_criteria": [
                _("An event meeting a seriousness criterion is serious: record it as serious.")
            ]
        }
    if grade == FATAL_GRADE and seriousness == Seriousness.SERIOUS and "death" not in criteria:
        return {
            "serious_criteria": [_("A grade 5 event is a death: it meets the criterion death.")]
        }
    return {}


def serious_criteria_of(event: AdverseEvent) -> list[str]:
    """The event's seriousness criteria, as codes."""
    return event.serious_criteria.split(",") if event.serious_criteria else []


def get_adverse_event(session: DbSession, event_id: int) -> AdverseEvent:
    return get_or_404(session, AdverseEvent, event_id, "adverse event", id_prefix="")


def adverse_events_of(session: DbSession, patient: Patient) -> list[AdverseEvent]:
    """The patient's adverse events, by onset."""
    return list(
        session.execute(
            select(AdverseEvent)
            .where(AdverseEvent.patient_id == patient.id)
            .order_by(AdverseEvent.onset_at, AdverseEvent.id)
        ).scalars()
    )


def infusions_of(session: DbSession, patient: Patient) -> list[Infusion]:
    """The patient's infusions (an event may be linked to the one it followed), by start."""
    return list(
        session.execute(
            select(Infusion)
            .where(Infusion.patient_id == patient.id)
            .order_by(Infusion.started_at, Infusion.id)
        ).scalars()
    )


def _values(kind: type[Outcome] | type[Seriousness]) -> set[str]:
    return {member.value for member in kind}


def _choices(kind: type[Outcome] | type[Seriousness]) -> str:
    return ", ".join(member.label for member in kind)
