"""Adverse events for regulators: the investigator's signed causality and expectedness, and the
clock of the sponsor reports of a serious event.

- **Causality** (related to the MSC, related to the DMARDs, unrelated) and **expectedness** are
  the investigator's judgement: assessed once, e-signed by an investigator (``Role.INVESTIGATOR``,
  as the dose override), the signature covering the event as it is then. "Related to the MSC"
  is refused for an event whose patient had no infusion started before its onset (a patient of
  an arm receiving no cells, or an event before the first infusion): ``infused_before``.
- **The reporting clock** starts when the site became aware of a serious event (``aware_at``;
  events recorded before it was kept count from their recording). The initial report to the
  sponsor is due 24 hours later (ICH E6(R2) 4.11.1: "immediately"; the trial's 24 h), the
  follow-up report ``follow_up_days`` after awareness (default ``FOLLOW_UP_REPORT_DAYS`` = 15
  calendar days, the complete report of ICH E2A III.A.1 and 21 CFR 312.32(c)(1); a site sets
  its protocol's figure in ``AE_FOLLOW_UP_REPORT_DAYS``).
- A report is recorded with its time and the sponsor's reference; the follow-up only after the
  initial one. A serious event is listed (``reports_due``) until both are recorded, with its
  deadlines and whether it is overdue.
- **A report overdue** raises, once per event and report, an urgent notification to the
  investigators and QA (``remind_overdue_reports``, audited ``adverse_event.report_overdue``):
  the timer that sends the e-mails (``cellchain notifications deliver``) runs it first.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from cellchain.clinic.models import AdverseEvent, Causality, Infusion, ReportKind, Seriousness
from cellchain.core import audit, signatures
from cellchain.core.display import UTC_ZONE, local_time
from cellchain.core.guarded import update_if
from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.core.roles import Role, require
from cellchain.dosing.models import Patient
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession
from cellchain.notifications import service as notifications
from cellchain.notifications.models import Notification

#: The initial report of a serious event to the sponsor is due this long after awareness.
INITIAL_REPORT_WITHIN = dt.timedelta(hours=24)
#: The follow-up report is due this many calendar days after awareness, unless configured.
FOLLOW_UP_REPORT_DAYS = 15
#: A clock a few minutes apart from the server's is not "the future".
CLOCK_TOLERANCE = dt.timedelta(minutes=5)
ASSESSMENT_MEANING = "Causality and expectedness assessed by the investigator"


@dataclass(frozen=True)
class ReportingClock:
    """A serious event's sponsor reports: when each is due, when it was made, and whether it
    is overdue at ``now``."""

    event: AdverseEvent
    aware_at: dt.datetime
    initial_due: dt.datetime
    follow_up_due: dt.datetime
    now: dt.datetime

    @property
    def initial_overdue(self) -> bool:
        return self.event.initial_reported_at is None and self.now > self.initial_due

    @property
    def follow_up_overdue(self) -> bool:
        return self.event.follow_up_reported_at is None and self.now > self.follow_up_due

    @property
    def overdue(self) -> bool:
        return self.initial_overdue or self.follow_up_overdue

    @property
    def next_due(self) -> dt.datetime | None:
        """The deadline of the next report not yet made (None once both are)."""
        if self.event.initial_reported_at is None:
            return self.initial_due
        if self.event.follow_up_reported_at is None:
            return self.follow_up_due
        return None


def reporting_clock(
    event: AdverseEvent, *, now: dt.datetime, follow_up_days: int = FOLLOW_UP_REPORT_DAYS
) -> ReportingClock | None:
    """The event's reporting clock, or None for a non-serious event (nothing to report)."""
    if event.seriousness != Seriousness.SERIOUS:
        return None
    aware = event.aware_at or event.recorded_at
    return ReportingClock(
        event=event,
        aware_at=aware,
        initial_due=aware + INITIAL_REPORT_WITHIN,
        follow_up_due=aware + dt.timedelta(days=follow_up_days),
        now=now,
    )


def reports_due(
    session: DbSession, *, now: dt.datetime, follow_up_days: int = FOLLOW_UP_REPORT_DAYS
) -> list[ReportingClock]:
    """Every serious event of the trial with a report not yet made, the next deadline first."""
    events = session.execute(
        select(AdverseEvent).where(
            AdverseEvent.seriousness == Seriousness.SERIOUS.value,
            (AdverseEvent.initial_reported_at.is_(None))
            | (AdverseEvent.follow_up_reported_at.is_(None)),
        )
    ).scalars()
    clocks = [reporting_clock(e, now=now, follow_up_days=follow_up_days) for e in events]
    pending = [c for c in clocks if c is not None and c.next_due is not None]
    return sorted(pending, key=lambda c: (c.next_due or now, c.event.id))


def count_to_assess(session: DbSession) -> int:
    """How many adverse events await the investigator's causality assessment (one statement):
    those with no causality, the events ``acts.adverse_event_actions`` offers ``assess`` on
    and ``assess`` accepts."""
    return session.execute(
        select(func.count()).select_from(AdverseEvent).where(AdverseEvent.causality.is_(None))
    ).scalar_one()


def trial_listing(session: DbSession) -> list[AdverseEvent]:
    """The trial's line listing: every adverse event, by patient then onset."""
    return list(
        session.execute(
            select(AdverseEvent)
            .join(Patient, Patient.id == AdverseEvent.patient_id)
            .order_by(Patient.study_id, AdverseEvent.onset_at, AdverseEvent.id)
        ).scalars()
    )


def infused_before(session: DbSession, event: AdverseEvent) -> bool:
    """Whether an infusion of the event's patient had started by the event's onset: only then
    can the event be related to the MSC (never for a patient of an arm receiving no cells, nor
    for an event before a patient's first infusion)."""
    return (
        session.execute(
            select(Infusion.id)
            .where(
                Infusion.patient_id == event.patient_id,
                Infusion.started_at <= event.onset_at,
            )
            .limit(1)
        ).first()
        is not None
    )


def assess(
    session: DbSession,
    event: AdverseEvent,
    *,
    causality: str,
    expected: bool,
    actor: User,
    password: str,
    now: dt.datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> AdverseEvent:
    """Record the investigator's causality and expectedness, e-signed: refused for anyone but
    an investigator, for an unknown causality, for an event already assessed, and "related to
    the MSC" for an event whose patient had no infusion started before its onset."""
    require(actor, Role.INVESTIGATOR)
    if causality not in {c.value for c in Causality}:
        raise InvalidInput(
            _("The assessment was not recorded: unknown causality."),
            errors={
                "causality": [
                    _("Choose one of: %(choices)s.", choices=", ".join(c.value for c in Causality))
                ]
            },
        )
    if event.causality is not None:
        raise Conflict(
            _(
                "Adverse event %(event)s is already assessed (%(causality)s).",
                event=event.id,
                causality=event.causality,
            )
        )
    if causality == Causality.RELATED_MSC and not infused_before(session, event):
        raise InvalidInput(
            _(
                "The assessment was not recorded: %(patient)s had no MSC infusion started "
                "before the event's onset (%(onset)s), so the event cannot be related to the MSC.",
                patient=event.patient.study_id,
                onset=local_time(event.onset_at, zone),
            ),
            errors={
                "causality": [
                    _(
                        "No MSC infusion had started before the onset: related to the DMARDs or "
                        "unrelated."
                    )
                ]
            },
        )
    if not update_if(
        session,
        event,
        AdverseEvent.causality.is_(None),
        causality=causality,
        expected=expected,
        assessed_at=now,
        assessed_by_id=actor.id,
    ):
        raise Conflict(
            _(
                "Adverse event %(event)s was assessed by someone else a moment ago; reload it.",
                event=event.id,
            ),
            title=_("Changed concurrently"),
        )
    signatures.sign(
        session,
        record=event,
        meaning=ASSESSMENT_MEANING,
        user=actor,
        password=password,
        now=now,
        permission=Role.INVESTIGATOR,
    )
    audit.record(
        session,
        actor=actor,
        at=now,
        action="adverse_event.assessed",
        entity_type="adverse_event",
        entity_id=event.id,
        changes={"causality": (None, causality), "expected": (None, expected)},
    )
    return event


def record_report(
    session: DbSession,
    event: AdverseEvent,
    *,
    kind: str,
    reported_at: dt.datetime,
    reference: str,
    actor: User,
    now: dt.datetime,
) -> AdverseEvent:
    """Record that the initial or follow-up report of a serious event was sent to the sponsor:
    when, and the sponsor's reference. Refused for a non-serious event, a report already
    recorded, a follow-up before the initial report, a time in the future or before the site
    became aware, and without a reference."""
    errors: dict[str, list[str]] = {}
    if kind not in {k.value for k in ReportKind}:
        errors["kind"] = [_("Choose initial or follow_up.")]
    if not reference.strip():
        errors["reference"] = [_("Give the sponsor's reference of the report.")]
    aware = event.aware_at or event.recorded_at
    if reported_at > now + CLOCK_TOLERANCE:
        errors["reported_at"] = [_("A report cannot be sent in the future.")]
    elif reported_at < aware:
        errors["reported_at"] = [_("A report is sent after the site became aware of the event.")]
    if errors:
        raise InvalidInput(_("The report was not recorded."), errors=errors)
    if event.seriousness != Seriousness.SERIOUS:
        raise Conflict(
            _("Adverse event %(event)s is not serious: it has no sponsor report.", event=event.id)
        )
    if kind == ReportKind.INITIAL:
        column, at_name, ref_name = (
            AdverseEvent.initial_reported_at,
            "initial_reported_at",
            "initial_report_ref",
        )
    else:
        if event.initial_reported_at is None:
            raise Conflict(_("Record the initial report before the follow-up report."))
        column, at_name, ref_name = (
            AdverseEvent.follow_up_reported_at,
            "follow_up_reported_at",
            "follow_up_report_ref",
        )
    label = kind.replace("_", "-")
    if getattr(event, at_name) is not None or not update_if(
        session, event, column.is_(None), **{at_name: reported_at, ref_name: reference.strip()}
    ):
        raise Conflict(
            _(
                "The %(kind)s report of adverse event %(event)s is already recorded.",
                kind=label,
                event=event.id,
            )
        )
    audit.record(
        session,
        actor=actor,
        at=now,
        action=f"adverse_event.{kind}_reported",
        entity_type="adverse_event",
        entity_id=event.id,
        changes={at_name: (None, reported_at), ref_name: (None, reference.strip())},
    )
    return event


#: The columns of the line listing (CSV), in order.
LISTING_COLUMNS = (
    "event_id",
    "patient",
    "onset_at",
    "aware_at",
    "term",
    "term_code",
    "description",
    "ctcae_grade",
    "seriousness",
    "serious_criteria",
    "causality",
    "expected",
    "outcome",
    "infusion_visit",
    "initial_reported_at",
    "initial_report_ref",
    "follow_up_reported_at",
    "follow_up_report_ref",
)


def listing_row(event: AdverseEvent) -> dict[str, str]:
    """One line of the line listing, as text (UTC times in ISO 8601; empty when unknown)."""

    def when(value: dt.datetime | None) -> str:
        return value.isoformat() if value else ""

    return {
        "event_id": str(event.id),
        "patient": event.patient.study_id,
        "onset_at": when(event.onset_at),
        "aware_at": when(event.aware_at),
        "term": event.term or "",
        "term_code": event.term_code or "",
        "description": event.description,
        "ctcae_grade": str(event.grade),
        "seriousness": event.seriousness,
        "serious_criteria": event.serious_criteria or "",
        "causality": event.causality or "",
        "expected": "" if event.expected is None else ("yes" if event.expected else "no"),
        "outcome": event.outcome,
        "infusion_visit": event.infusion.dose_order.visit if event.infusion else "",
        "initial_reported_at": when(event.initial_reported_at),
        "initial_report_ref": event.initial_report_ref or "",
        "follow_up_reported_at": when(event.follow_up_reported_at),
        "follow_up_report_ref": event.follow_up_report_ref or "",
    }


#: The notification raised when each report becomes overdue, by report.
OVERDUE_NOTIFICATIONS: dict[ReportKind, str] = {
    ReportKind.INITIAL: "sae_initial_report_overdue",
    ReportKind.FOLLOW_UP: "sae_follow_up_report_overdue",
}


def remind_overdue_reports(
    session: DbSession, *, now: dt.datetime, follow_up_days: int = FOLLOW_UP_REPORT_DAYS
) -> int:
    """Raise, once per serious event and report, an urgent notification that its report to
    the sponsor is overdue at ``now``, with an audit entry of the system (no actor: time
    passed, nobody acted). A report recorded since is not reminded; one already reminded is
    not reminded twice, however often this runs. Returns how many were raised."""
    overdue = [
        (clock, report, due)
        for clock in reports_due(session, now=now, follow_up_days=follow_up_days)
        for report, late, due in (
            (ReportKind.INITIAL, clock.initial_overdue, clock.initial_due),
            (ReportKind.FOLLOW_UP, clock.follow_up_overdue, clock.follow_up_due),
        )
        if late
    ]
    if not overdue:
        return 0
    # two timers running at once (one still sending when the next starts, or one per
    # server) must remind once: on PostgreSQL the second waits here for the first's commit,
    # then reads its reminders. SQLite has no row locks: a site on it runs one timer.
    session.execute(
        select(AdverseEvent.id)
        .where(AdverseEvent.id.in_({clock.event.id for clock, _r, _d in overdue}))
        .with_for_update()
    ).all()
    reminded = {
        (kind, entity_id)
        for kind, entity_id in session.execute(
            select(Notification.kind, Notification.entity_id).where(
                Notification.kind.in_(OVERDUE_NOTIFICATIONS.values()),
                Notification.entity_type == "adverse_event",
                Notification.entity_id.in_({clock.event.id for clock, _r, _d in overdue}),
            )
        )
    }
    raised = 0
    for clock, report, due in overdue:
        kind = OVERDUE_NOTIFICATIONS[report]
        if (kind, clock.event.id) in reminded:
            continue
        event = clock.event
        audit.record(
            session,
            actor=None,
            at=now,
            action="adverse_event.report_overdue",
            entity_type="adverse_event",
            entity_id=event.id,
            changes={"report": (None, report.value), "due_at": (None, due)},
        )
        patient = session.get(Patient, event.patient_id)
        notifications.notify(
            session,
            kind,
            entity_type="adverse_event",
            entity_id=event.id,
            params={
                "patient_id": event.patient_id,
                "patient": patient.study_id if patient else "?",
                "grade": event.grade,
                "description": event.description,
                "aware_at": clock.aware_at,
                "due_at": due,
            },
            actor=None,
            now=now,
        )
        raised += 1
    return raised
