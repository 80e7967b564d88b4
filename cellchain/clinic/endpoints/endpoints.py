"""Recording efficacy endpoints at the evaluation visits and reading a patient's table over
time (issue 19). The scores are computed from the items by ``scores.py``.

An assessment belongs to a patient and a visit code: ``BL`` (baseline) or an evaluation visit
of the patient's protocol (M6, M12), once each. Every item and laboratory value is
range-checked here; a value out of range refuses the whole record (422, every problem on its
field, nothing saved).

An assessment is tied to its visit (``visit_windows``), on the site's calendar:

- **Baseline** is assessed on or before the day the first infusion started; for an arm that
  never receives cells, on or before its day 0 (the start of its treatment and the anchor of
  its evaluations). Later it is refused (422 on ``assessed_on``): an assessment after the
  treatment started is not a baseline. Before the first infusion of an arm that receives
  cells, any day from enrolment on is before it.
- **Months 6 and 12** use the visit's window as the follow-up schedule computes it
  (``patients.schedule``: from the first infusion, provisionally from day 0 before it, from
  day 0 for an arm without infusions; a rescheduled visit's window). An assessment before the
  window opens is refused (422 on ``assessed_on``): it is not that visit's assessment. One
  after the window closed is **accepted and flagged "outside window"** (a late assessment is
  still data; the deviation is explained in the trial's deviation log, not by losing the
  data), as is one of a visit moved outside the protocol whose deviation the investigator has
  not signed yet. The flag is computed from the schedule whenever the table is read, like a
  follow-up visit's; the window and the flag at the time of recording are in the audit entry.
- A visit recorded as missed (``scheduling.record_missed``) takes no endpoints: 409.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cellchain.clinic.endpoints import scores
from cellchain.clinic.models import EfficacyEndpoints
from cellchain.core import audit
from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.dosing import patients
from cellchain.dosing.models import Patient
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession

#: The baseline assessment's code (not a visit of the protocol's schedule).
BASELINE = "BL"

BASDAI_FIELDS = tuple(f"basdai_q{i}" for i in range(1, 7))
BASFI_FIELDS = tuple(f"basfi_q{i}" for i in range(1, 11))
#: field → (lowest, highest, unit for the message)
RANGES: dict[str, tuple[float, float, str]] = {
    **{name: (scores.ITEM_MIN, scores.ITEM_MAX, "") for name in BASDAI_FIELDS + BASFI_FIELDS},
    "patient_global": (scores.ITEM_MIN, scores.ITEM_MAX, ""),
    "crp_mg_l": (0.0, scores.CRP_MAX_MG_L, " mg/L"),
    "esr_mm_h": (0.0, scores.ESR_MAX_MM_H, " mm/h"),
}
VALUE_FIELDS = tuple(RANGES)


@dataclass(frozen=True)
class VisitWindow:
    """When a visit's endpoints may be assessed (site calendar): from ``opens_on`` (refused
    before), and for an evaluation visit within its window until ``closes_on`` (after it,
    accepted and flagged outside the window); baseline is refused after ``closes_on``, the
    first infusion's day. None: no bound known yet (a baseline before the first infusion)."""

    opens_on: dt.date | None
    closes_on: dt.date | None
    #: baseline: refused after ``closes_on``; an evaluation: flagged after it
    baseline: bool = False
    #: the visit was recorded as missed: it takes no endpoints
    missed: bool = False
    #: moved outside the protocol window, the investigator's signature still awaited
    deviation_pending: bool = False
    #: what the window counts from, for the messages
    anchor: str = ""

    def outside(self, day: dt.date) -> bool:
        """Whether an assessment on ``day`` is outside the visit's window (a deviation to
        explain); a baseline never is (one after its window is refused)."""
        if self.baseline:
            return False
        before = self.opens_on is not None and day < self.opens_on
        after = self.closes_on is not None and day > self.closes_on
        return before or after or self.deviation_pending


@dataclass(frozen=True)
class TableRow:
    """One visit of a patient's endpoint table: its code and name, the assessment with its
    scores if one was recorded, the visit's window and whether the assessment lies outside
    it (``VisitWindow``)."""

    visit: str
    name: str
    record: EfficacyEndpoints | None
    scores: scores.Scores | None
    window: VisitWindow | None = None

    @property
    def opens_on(self) -> dt.date | None:
        return self.window.opens_on if self.window else None

    @property
    def closes_on(self) -> dt.date | None:
        return self.window.closes_on if self.window else None

    @property
    def missed(self) -> bool:
        return bool(self.window and self.window.missed)

    @property
    def outside_window(self) -> bool:
        """Assessed outside the visit's window: a deviation to explain, not a refusal."""
        return bool(self.record and self.window and self.window.outside(self.record.assessed_on))


def evaluation_visits(patient: Patient) -> list[tuple[str, str]]:
    """(code, name) of the visits endpoints are recorded at: baseline, then the protocol's
    evaluation visits in order."""
    return [(BASELINE, _("Baseline"))] + [
        (code, name) for code, name, infusion in patients.protocol_visits(patient) if not infusion
    ]


def visit_windows(session: DbSession, patient: Patient, zone: ZoneInfo) -> dict[str, VisitWindow]:
    """The window of each visit endpoints are recorded at (module docstring), from the
    patient's schedule as the follow-up module computes it."""
    facts = patients.facts_of(session, patient, zone)
    enrolled_on = patient.enrolled_at.astimezone(zone).date()
    if patients.receives_cells(patient):
        baseline_until = facts.first_infusion_on
        anchor = (
            _("the first infusion on %(day)s", day=baseline_until.isoformat())
            if baseline_until is not None
            else _(
                "day 0 (%(day)s), provisionally: no infusion has started",
                day=patient.day0.isoformat(),
            )
        )
    else:
        baseline_until = patient.day0
        anchor = _("day 0 (%(day)s; this arm receives no infusion)", day=patient.day0.isoformat())
    windows = {
        BASELINE: VisitWindow(
            opens_on=enrolled_on, closes_on=baseline_until, baseline=True, anchor=anchor
        )
    }
    for visit in patients.schedule(patient, facts):
        if visit.infusion:
            continue
        windows[visit.code] = VisitWindow(
            opens_on=visit.earliest,
            closes_on=visit.latest,
            missed=visit.missed,
            deviation_pending=visit.deviation_pending,
            anchor=(
                _("rescheduled to %(day)s", day=visit.planned_on.isoformat())
                if visit.rescheduled
                else anchor
            ),
        )
    return windows


def scores_of(record: EfficacyEndpoints) -> scores.Scores:
    """The composite scores of a recorded assessment."""
    return scores.scores(
        [getattr(record, name) for name in BASDAI_FIELDS],
        [getattr(record, name) for name in BASFI_FIELDS],
        patient_global=record.patient_global,
        crp_mg_l=record.crp_mg_l,
    )


def range_errors(values: dict[str, float]) -> dict[str, list[str]]:
    """Each value missing, not a finite number, or outside its range, on its field."""
    errors: dict[str, list[str]] = {}
    for name, (low, high, unit) in RANGES.items():
        value = values.get(name)
        lowest, highest = f"{low:g}", f"{high:g}{unit}"
        if value is None or not math.isfinite(value):
            errors[name] = [
                _(
                    "%(field)s is required as a number from %(low)s to %(high)s.",
                    field=name,
                    low=lowest,
                    high=highest,
                )
            ]
        elif not low <= value <= high:
            shown = f"{value:g}{unit}"
            errors[name] = [
                _(
                    "%(field)s %(value)s is out of range (%(low)s–%(high)s).",
                    field=name,
                    value=shown,
                    low=lowest,
                    high=highest,
                )
            ]
    return errors


def record_endpoints(
    session: DbSession,
    patient: Patient,
    *,
    visit: str,
    assessed_on: dt.date,
    values: dict[str, float],
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
) -> EfficacyEndpoints:
    """Record the efficacy endpoints of one of the patient's evaluation visits, once.

    Refused with every problem on its field, nothing saved (422): a visit that is neither
    baseline nor an evaluation visit of the protocol, a day in the future or before
    enrolment (site calendar), a baseline after the first infusion's day, an evaluation
    before its window opens (module docstring), any item or laboratory value out of range.
    A visit recorded as missed, or already assessed, is a 409. An evaluation assessed after
    its window closed is recorded, flagged outside the window.
    """
    code = visit.strip().upper()
    today = now.astimezone(zone).date()
    enrolled_on = patient.enrolled_at.astimezone(zone).date()
    visits = dict(evaluation_visits(patient))
    windows = visit_windows(session, patient, zone)
    window = windows.get(code) if code in visits else None
    if window is not None and window.missed:
        raise Conflict(
            _(
                "%(visit)s (%(code)s) of %(patient)s was recorded as missed: a missed visit "
                "takes no endpoints.",
                visit=visits[code],
                code=code,
                patient=patient.study_id,
            ),
            title=_("Visit missed"),
        )
    errors: dict[str, list[str]] = {}
    if code not in visits:
        errors["visit"] = [
            _(
                "Endpoints are recorded at %(visits)s, not at %(visit)s.",
                visits=", ".join(visits),
                visit=repr(code or visit),
            )
        ]
    if assessed_on > today:
        errors["assessed_on"] = [
            _(
                "%(day)s is in the future (today is %(today)s).",
                day=assessed_on.isoformat(),
                today=today.isoformat(),
            )
        ]
    elif assessed_on < enrolled_on:
        errors["assessed_on"] = [
            _(
                "%(day)s is before %(patient)s was enrolled (%(enrolled)s).",
                day=assessed_on.isoformat(),
                patient=patient.study_id,
                enrolled=enrolled_on.isoformat(),
            )
        ]
    elif window is not None:
        problem = _window_problem(visits[code], window, assessed_on)
        if problem:
            errors["assessed_on"] = [problem]
    errors.update(range_errors(values))
    if errors:
        raise InvalidInput(
            _("The endpoints were not recorded: %(problems)s", problems=patients.summarize(errors)),
            errors=errors,
        )
    existing = session.execute(
        select(EfficacyEndpoints.id).where(
            EfficacyEndpoints.patient_id == patient.id, EfficacyEndpoints.visit == code
        )
    ).scalar_one_or_none()
    already = Conflict(
        _(
            "The %(visit)s (%(code)s) endpoints of %(patient)s are already recorded.",
            visit=visits[code],
            code=code,
            patient=patient.study_id,
        ),
        title=_("Already recorded"),
    )
    if existing is not None:
        raise already
    row = EfficacyEndpoints(
        patient_id=patient.id,
        visit=code,
        assessed_on=assessed_on,
        recorded_at=now,
        recorded_by_id=actor.id,
        **{name: float(values[name]) for name in VALUE_FIELDS},
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        # Someone recorded the same visit a moment ago (the unique patient + visit row).
        raise already from None
    computed = scores_of(row)
    audit.record(
        session,
        actor=actor,
        at=now,
        action="endpoints.recorded",
        entity_type="patient",
        entity_id=patient.id,
        changes={
            "visit": (None, code),
            "assessed_on": (None, assessed_on),
            "window": (None, _window_text(window)),
            "outside_window": (None, window.outside(assessed_on) if window else False),
            **{name: (None, float(values[name])) for name in VALUE_FIELDS},
            "basdai": (None, computed.basdai),
            "basfi": (None, computed.basfi),
            "asdas_crp": (None, computed.asdas_crp),
        },
    )
    return row


def endpoint_table(session: DbSession, patient: Patient, zone: ZoneInfo) -> list[TableRow]:
    """The patient's endpoints over time: one row per evaluation visit (baseline, M6, M12)
    with its assessment and scores, or none yet, each visit's window on the site's calendar
    and whether the assessment lies outside it."""
    recorded = {
        row.visit: row
        for row in session.execute(
            select(EfficacyEndpoints).where(EfficacyEndpoints.patient_id == patient.id)
        ).scalars()
    }
    windows = visit_windows(session, patient, zone)
    rows = []
    for code, name in evaluation_visits(patient):
        record = recorded.get(code)
        rows.append(
            TableRow(code, name, record, scores_of(record) if record else None, windows.get(code))
        )
    return rows


def _window_problem(name: str, window: VisitWindow, assessed_on: dt.date) -> str | None:
    """Why ``assessed_on`` is not an assessment of the visit: a baseline after the treatment
    started, an evaluation before its window opens; None when it is one."""
    day = assessed_on.isoformat()
    if window.baseline:
        if window.closes_on is not None and assessed_on > window.closes_on:
            return _(
                "%(day)s is after %(anchor)s: a baseline is assessed on or before the day the "
                "treatment starts.",
                day=day,
                anchor=window.anchor,
            )
        return None
    if window.opens_on is not None and assessed_on < window.opens_on:
        closes = window.closes_on.isoformat() if window.closes_on else _("open-ended")
        return _(
            "%(day)s is before the %(visit)s window opens (%(opens)s to %(closes)s, counted "
            "from %(anchor)s): it is not the %(visit)s assessment.",
            day=day,
            visit=name,
            opens=window.opens_on.isoformat(),
            closes=closes,
            anchor=window.anchor,
        )
    return None


def _window_text(window: VisitWindow | None) -> str | None:
    if window is None:
        return None
    opens = window.opens_on.isoformat() if window.opens_on else ""
    closes = window.closes_on.isoformat() if window.closes_on else ""
    return f"{opens}..{closes}"
