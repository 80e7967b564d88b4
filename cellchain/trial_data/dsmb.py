"""The DSMB summary (issue 19): enrolment, doses, deviations and adverse events by arm.

Unblinded (counts by arm): only the holders of ``Permission.READ_TRIAL_SUMMARY`` read it. The
page and the PDF print what ``trial_summary`` prepares and decide nothing themselves.
Counts only: no subject is named, not even by study ID.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from cellchain.clinic.models import AdverseEvent, Causality, MissedVisit, Seriousness
from cellchain.core.i18n import LazyText, _, document_text, lazy
from cellchain.dosing import patients, randomization
from cellchain.dosing.models import DoseOrder, Patient, PatientStatus, Protocol, RandomizationSlot
from cellchain.errors import Conflict
from cellchain.extensions import DbSession
from cellchain.trial_data import dataset

#: The dose columns of the summary, in order: every order, then by what became of it.
DOSE_COLUMNS: tuple[tuple[str, LazyText], ...] = (
    ("ordered", lazy("Ordered")),
    ("allocated", lazy("Awaiting check")),
    ("prepared", lazy("Prepared")),
    ("infused", lazy("Infused")),
    ("cancelled", lazy("Cancelled")),
    (dataset.DESTROYED, lazy("Destroyed")),
)
GRADES = (1, 2, 3, 4, 5)
#: The causality columns: the investigator's three answers and "not yet assessed".
CAUSALITIES: tuple[tuple[str, LazyText], ...] = (
    (Causality.RELATED_MSC.value, lazy("Related to MSC")),
    (Causality.RELATED_DMARD.value, lazy("Related to DMARDs")),
    (Causality.UNRELATED.value, lazy("Unrelated")),
    ("not_assessed", lazy("Not yet assessed")),
)


@dataclass
class ArmSummary:
    """The counts of one arm."""

    code: str
    name: str
    #: the arm's share of the planned enrolment by the protocol's ratio (None when the
    #: protocol's planned enrolment cannot be split by it)
    planned: int | None = None
    #: slots of the signed randomization schedule used (drawn at enrolment) for this arm
    randomized: int = 0
    enrolled: int = 0
    withdrawn: int = 0
    #: visit → dose column → count
    doses: dict[str, Counter[str]] = field(default_factory=dict)
    deviations: int = 0
    deviations_open: int = 0
    #: visits recorded as missed (not a deviation of their own)
    missed_visits: int = 0
    adverse_events: int = 0
    subjects_with_events: int = 0
    serious: int = 0
    subjects_with_serious: int = 0
    by_grade: Counter[int] = field(default_factory=Counter)
    by_causality: Counter[str] = field(default_factory=Counter)

    def dose_count(self, visit: str, column: str) -> int:
        return self.doses.get(visit, Counter())[column]


@dataclass(frozen=True)
class ScheduleSummary:
    """What the summary says of the trial's signed randomization schedule."""

    method: str
    signed_at: dt.datetime
    planned: int
    used: int

    def describe(self, signed: str) -> str:
        """In words, with ``signed`` the signing time as the reader's page shows it."""
        method = _("permuted blocks") if self.method == "permuted_block" else _("imported list")
        return _(
            "signed schedule (%(method)s) of %(signed)s: %(used)s of %(planned)s slots used",
            method=method,
            signed=signed,
            used=self.used,
            planned=self.planned,
        )


@dataclass
class TrialSummary:
    protocol_code: str
    protocol_title: str
    planned_enrolment: int | None
    ratio: str | None
    arms: list[ArmSummary]
    #: the infusion visits, in order
    visits: list[str]
    as_of: dt.datetime
    #: the signed randomization schedule: how made and signed when, slots used of planned;
    #: never an unused slot's number or arm
    schedule: ScheduleSummary | None = None

    @property
    def enrolled(self) -> int:
        return sum(arm.enrolled for arm in self.arms)


def trial_summary(session: DbSession, *, protocol_code: str, now: dt.datetime) -> TrialSummary:
    """The counts by arm of every subject enrolled under ``protocol_code``, as of ``now``."""
    trial = list(
        session.scalars(
            select(Patient)
            .where(Patient.protocol.has(code=protocol_code))
            .order_by(Patient.study_id)
        )
    )
    protocol = (
        trial[-1].protocol if trial else patients.protocol_in_force(session, protocol_code, at=now)
    )
    parameters = protocol.parameters
    arms = {arm["code"]: ArmSummary(arm["code"], arm["name"]) for arm in parameters.get("arms", [])}
    for code, planned_in_arm in _planned_by_arm(protocol).items():
        if code in arms:
            arms[code].planned = planned_in_arm
    visits = [item["code"] for item in parameters.get("infusions", [])]
    arm_of: dict[int, ArmSummary] = {}
    for patient in trial:
        arm = arms.setdefault(patient.arm, ArmSummary(patient.arm, patient.arm))
        arm_of[patient.id] = arm
        arm.enrolled += 1
        if patient.status == PatientStatus.WITHDRAWN.value:
            arm.withdrawn += 1
    ids = list(arm_of)
    schedule = _schedule(session, protocol.code, arm_of)
    destroyed = dataset.destroyed_dose_ids(session)
    for order in session.scalars(select(DoseOrder).where(DoseOrder.patient_id.in_(ids))):
        counts = arm_of[order.patient_id].doses.setdefault(order.visit, Counter())
        if order.visit not in visits:
            visits.append(order.visit)
        counts["ordered"] += 1
        counts[dataset.dose_status(order, destroyed)] += 1
    by_study_id = {patient.study_id: arm_of[patient.id] for patient in trial}
    for deviation in dataset.trial_deviations(session, ids):
        arm = by_study_id[deviation.study_id]
        arm.deviations += 1
        arm.deviations_open += deviation.open
    for patient_id in session.scalars(
        select(MissedVisit.patient_id).where(MissedVisit.patient_id.in_(ids))
    ):
        arm_of[patient_id].missed_visits += 1
    with_events: dict[str, set[int]] = {}
    with_serious: dict[str, set[int]] = {}
    for event in session.scalars(select(AdverseEvent).where(AdverseEvent.patient_id.in_(ids))):
        arm = arm_of[event.patient_id]
        arm.adverse_events += 1
        with_events.setdefault(arm.code, set()).add(event.patient_id)
        if event.seriousness == Seriousness.SERIOUS.value:
            arm.serious += 1
            with_serious.setdefault(arm.code, set()).add(event.patient_id)
        arm.by_grade[event.grade] += 1
        arm.by_causality[event.causality or "not_assessed"] += 1
    for arm in arms.values():
        arm.subjects_with_events = len(with_events.get(arm.code, ()))
        arm.subjects_with_serious = len(with_serious.get(arm.code, ()))
    design = parameters.get("randomization", {})
    planned = design.get("planned_enrolment")
    return TrialSummary(
        protocol_code=protocol.code,
        protocol_title=protocol.title,
        planned_enrolment=int(planned) if planned is not None else None,
        ratio=design.get("ratio"),
        arms=list(arms.values()),
        visits=visits,
        as_of=now,
        schedule=schedule,
    )


def _schedule(
    session: DbSession, protocol_code: str, arm_of: dict[int, ArmSummary]
) -> ScheduleSummary | None:
    """The active signed schedule, with each arm's ``randomized`` counted from its used
    slots (the arm the slot gave). Unused slots are counted, never read: their arms stay
    concealed (the investigator who enrols reads this summary too)."""
    schedule = randomization.active_schedule(session, protocol_code)
    if schedule is None:
        return None
    used = list(
        session.scalars(
            select(RandomizationSlot).where(
                RandomizationSlot.schedule_id == schedule.id,
                RandomizationSlot.patient_id.is_not(None),
            )
        )
    )
    for slot in used:
        arm = arm_of.get(slot.patient_id or 0)
        if arm is not None:
            arm.randomized += 1
    return ScheduleSummary(
        method=schedule.method,
        signed_at=schedule.created_at,
        planned=schedule.planned_enrolment,
        used=len(used),
    )


@dataclass(frozen=True)
class SummaryTable:
    """One table of the summary as the page and the PDF print it: a row per arm (and one
    per arm and visit for the doses), then the total."""

    key: str
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _total(rows: Sequence[tuple[str, ...]], label_columns: int) -> tuple[str, ...]:
    sums = [sum(int(row[i]) for row in rows) for i in range(label_columns, len(rows[0]))]
    return (_("Total"), *([""] * (label_columns - 1)), *(str(s) for s in sums))


def _planned_by_arm(protocol: Protocol) -> dict[str, int]:
    """The planned enrolment split by the protocol's ratio, by arm; empty (no planned column
    filled) when the protocol has no ratio or one the planned enrolment cannot be split by."""
    try:
        return dict(randomization.expected_counts(protocol))
    except (Conflict, KeyError):
        return {}


def summary_tables(summary: TrialSummary) -> list[SummaryTable]:
    """The summary's tables: enrolment, doses by visit, deviations, adverse events by
    seriousness, grade and causality."""
    arms = summary.arms
    tables = []
    enrolment = [
        (
            f"{document_text(arm.name)} ({arm.code})",
            "—" if arm.planned is None else str(arm.planned),
            str(arm.randomized),
            str(arm.enrolled),
            str(arm.withdrawn),
        )
        for arm in arms
    ]
    total = _total([row[:1] + row[2:] for row in enrolment], 1) if enrolment else ()
    planned = [arm.planned for arm in arms]
    tables.append(
        SummaryTable(
            "enrolment",
            _(
                "Enrolment by arm: planned (the protocol's, by its ratio), randomized (the"
                " signed schedule's slots used)"
            ),
            (_("Arm"), _("Planned"), _("Randomized"), _("Enrolled"), _("Withdrawn")),
            (
                *enrolment,
                (
                    total[0],
                    "—" if None in planned else str(sum(p or 0 for p in planned)),
                    *total[1:],
                ),
            )
            if enrolment
            else (),
        )
    )
    doses = [
        (arm.code, visit, *(str(arm.dose_count(visit, key)) for key, _label in DOSE_COLUMNS))
        for arm in arms
        for visit in summary.visits
    ]
    tables.append(
        SummaryTable(
            "doses",
            _("Doses by arm and visit"),
            (_("Arm"), _("Visit"), *(str(label) for _key, label in DOSE_COLUMNS)),
            (*doses, _total(doses, 2)) if doses else (),
        )
    )
    deviations = [
        (arm.code, str(arm.deviations), str(arm.deviations_open), str(arm.missed_visits))
        for arm in arms
    ]
    tables.append(
        SummaryTable(
            "deviations",
            _(
                "Deviations (dose overrides, post-thaw decisions, visits moved outside their"
                " window) and missed visits"
            ),
            (_("Arm"), _("Deviations"), _("Still open or unsigned"), _("Missed visits")),
            (*deviations, _total(deviations, 1)) if deviations else (),
        )
    )
    events = [
        (
            arm.code,
            str(arm.adverse_events),
            str(arm.subjects_with_events),
            str(arm.serious),
            str(arm.subjects_with_serious),
        )
        for arm in arms
    ]
    tables.append(
        SummaryTable(
            "adverse-events",
            _("Adverse events"),
            (
                _("Arm"),
                _("Events"),
                _("Subjects with an event"),
                _("Serious events"),
                _("Subjects with a serious event"),
            ),
            (*events, _total(events, 1)) if events else (),
        )
    )
    grades = [(arm.code, *(str(arm.by_grade[g]) for g in GRADES)) for arm in arms]
    tables.append(
        SummaryTable(
            "ae-grades",
            _("Adverse events by CTCAE grade"),
            (_("Arm"), *(_("Grade %(grade)s", grade=g) for g in GRADES)),
            (*grades, _total(grades, 1)) if grades else (),
        )
    )
    causality = [(arm.code, *(str(arm.by_causality[c]) for c, _l in CAUSALITIES)) for arm in arms]
    tables.append(
        SummaryTable(
            "ae-causality",
            _("Adverse events by causality (investigator's assessment)"),
            (_("Arm"), *(str(label) for _c, label in CAUSALITIES)),
            (*causality, _total(causality, 1)) if causality else (),
        )
    )
    return tables
