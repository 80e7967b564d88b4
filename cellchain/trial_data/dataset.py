"""What the trial's data export holds: the forms (their items, types, units and code lists)
and the pseudonymised records read from the database, one snapshot for both file formats.

Pseudonymisation (docs/trial-data-export.md):

- A subject is its **study ID** (the ODM ``SubjectKey``) and its **chain-of-identity
  identifier**; the system holds no patient name or record number (DOMAIN.md §9).
- The date of birth leaves as the **year of birth** and the **age at enrolment** only.
- **No person of the site appears**: no user's name, full name or username. Who recorded or
  signed what is in the audit trail, not in a file that leaves the site.
- Free text (an adverse event's description, an infusion reaction, a deviation) is exported
  as typed: the clinical record needs it, and the site's rule is that no name is typed there.

Dates and times are the real ones (UTC, ISO 8601): the analysis needs the intervals.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cellchain.clinic.endpoints import endpoints
from cellchain.clinic.follow_up import follow_up
from cellchain.clinic.models import (
    AdverseEvent,
    Causality,
    CountPlace,
    EfficacyEndpoints,
    FollowUpVisit,
    Infusion,
    InfusionStatus,
    MissedVisit,
    Outcome,
    PostThawCount,
    PostThawDecision,
    Seriousness,
    VisitReschedule,
)
from cellchain.core.models import AuditEntry
from cellchain.core.types import canonical_json
from cellchain.dosing import patients
from cellchain.dosing.models import (
    DoseOrder,
    DoseStatus,
    Patient,
    PatientStatus,
    PreInfusionRecheck,
    Sex,
    Weight,
)
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import Deviation

#: The status a dose order is exported with when it was destroyed: the table keeps it as
#: ``cancelled`` and the audit trail's ``dose.destroyed`` says which (dosing/exceptions.py).
DESTROYED = "destroyed"
DOSE_STATUSES = (*(status.value for status in DoseStatus), DESTROYED)


VISIT_STATUSES = tuple(status.value for status in follow_up.VisitStatus)
#: What a deviation of the trial is: an investigator's override of a dose outside tolerance,
#: the decision to infuse a dose counted outside tolerance after thaw (both in quality's
#: deviation register), or a visit moved outside its protocol window (signed on the move).
DOSE_OVERRIDE = "dose_override"
POST_THAW_DECISION = "post_thaw_decision"
VISIT_OUTSIDE_WINDOW = "visit_outside_window"
DEVIATION_KINDS = (DOSE_OVERRIDE, POST_THAW_DECISION, VISIT_OUTSIDE_WINDOW)
#: open or closed in the register; a visit's deviation is open until the investigator signs it
DEVIATION_STATUSES = ("open", "closed", "signed")


@dataclass(frozen=True)
class Item:
    """One field of a form: its name in the files, its label, ODM data type and unit."""

    name: str
    label: str
    #: an ODM 1.3.2 data type: text, integer, float, date, datetime, boolean
    data_type: str
    unit: str | None = None
    #: the code list's values, when the field takes one of them
    codes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Form:
    """A form of the export: one CSV file, one ODM FormDef with one ItemGroupDef."""

    name: str  #: ENROL, DOSE, …: the file's stem and the OIDs' part
    label: str
    #: the record may occur more than once in one visit (a dose and its replacement)
    repeating: bool
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Event:
    """A study event (visit): baseline, each infusion and evaluation, and the log."""

    code: str
    label: str
    #: Scheduled (a visit of the protocol) or Common (records of the whole trial)
    kind: str
    forms: tuple[str, ...]


@dataclass
class Record:
    """One row of a form: a subject's values at an event (``repeat`` counts from 1)."""

    subject: str
    event: str
    form: str
    repeat: int
    values: dict[str, Any]


@dataclass
class Dataset:
    """Everything an export writes, read in one go."""

    protocol_code: str
    protocol_title: str
    protocol_versions: list[str]
    events: list[Event]
    forms: list[Form]
    subjects: list[str]
    records: list[Record] = field(default_factory=list)

    def form(self, name: str) -> Form:
        return next(form for form in self.forms if form.name == name)

    def records_of(self, form: str) -> list[Record]:
        return [record for record in self.records if record.form == form]

    def digest(self) -> str:
        """SHA-256 over the data themselves (not a file's layout): equal for an ODM and a CSV
        export of the same data, printed in both."""
        body = [
            [r.subject, r.event, r.form, r.repeat, sorted(r.values.items())] for r in self.records
        ]
        return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def _codes(*values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(str(getattr(v, "value", v)) for group in values for v in group)


SCORE_ITEMS = tuple(
    Item(name, label, "float")
    for name, label in (
        *((f"basdai_q{i}", f"BASDAI Q{i} (0–10)") for i in range(1, 7)),
        *((f"basfi_q{i}", f"BASFI item {i} (0–10)") for i in range(1, 11)),
        ("patient_global", "Patient global assessment (0–10)"),
    )
)

FORMS: tuple[Form, ...] = (
    Form(
        "ENROL",
        "Enrolment",
        False,
        (
            Item("coi", "Chain-of-identity identifier (ISBT 128 ST-028)", "text"),
            Item("protocol_version", "Protocol code and version enrolled under", "text"),
            Item("arm", "Arm (randomized)", "text"),
            Item("arm_source", "Where the arm came from", "text"),
            Item("randomization_number", "Randomization number", "text"),
            Item("enrolled_at", "Enrolled (UTC)", "datetime"),
            Item("day0", "Day 0 as scheduled (after any reschedule)", "date"),
            Item("year_of_birth", "Year of birth", "integer"),
            Item("age_at_enrolment", "Age at enrolment", "integer", unit="years"),
            Item("sex", "Sex", "text", codes=_codes(Sex)),
            Item("status", "Subject status", "text", codes=_codes(PatientStatus)),
        ),
    ),
    Form(
        "CHECKLIST",
        "Eligibility checklist as answered",
        True,
        (
            Item("criterion", "Criterion code in the protocol", "text"),
            Item("kind", "Inclusion or exclusion", "text", codes=("inclusion", "exclusion")),
            Item("answer", "Answer", "boolean"),
            Item("value", "Measured value, where the criterion has one", "float"),
        ),
    ),
    Form(
        "WEIGHT",
        "Body weight",
        True,
        (
            Item("measured_at", "Measured (UTC)", "datetime"),
            Item("weight_kg", "Weight", "float", unit="kg"),
            Item("source", "How it was measured", "text"),
            Item("change_percent", "Change needing confirmation", "float", unit="%"),
            Item("confirmation", "How the change was confirmed", "text"),
        ),
    ),
    Form(
        "VISIT",
        "Visit: planned, done or missed",
        False,
        (
            Item("planned_on", "Planned on (after any reschedule)", "date"),
            Item("window_earliest", "Window opens", "date"),
            Item("window_latest", "Window closes", "date"),
            Item(
                "provisional", "Planned from day 0: the first infusion not yet started", "boolean"
            ),
            Item("rescheduled", "Rescheduled", "boolean"),
            Item(
                "deviation_pending",
                "Moved outside the protocol, deviation not signed yet",
                "boolean",
            ),
            Item("status", "Status on the export's day", "text", codes=VISIT_STATUSES),
            Item("done_on", "Done on (infused, or evaluation recorded)", "date"),
            Item("outside_window", "Done outside its window", "boolean"),
            Item("missed_reason", "Why it was missed", "text"),
            Item("missed_recorded_at", "Recorded as missed (UTC)", "datetime"),
        ),
    ),
    Form(
        "RESCHEDULE",
        "Visit rescheduled",
        True,
        (
            Item("reschedule_id", "Reschedule number", "integer"),
            Item("recorded_at", "Recorded (UTC)", "datetime"),
            Item("previous_on", "Planned on before", "date"),
            Item("planned_on", "Moved to", "date"),
            Item("reason", "Reason", "text"),
            Item(
                "protocol_earliest", "Protocol window of the visit as first planned: from", "date"
            ),
            Item("protocol_latest", "Protocol window of the visit as first planned: to", "date"),
            Item(
                "outside_protocol", "Outside the protocol window (a protocol deviation)", "boolean"
            ),
            Item("deviation_signed_at", "Deviation signed by the investigator (UTC)", "datetime"),
            Item("superseded", "Superseded by a later move of the same visit", "boolean"),
        ),
    ),
    Form(
        "RECHECK",
        "Pre-infusion re-check, one row per item answered",
        True,
        (
            Item("recheck_id", "Re-check number", "integer"),
            Item("recorded_at", "Recorded (UTC)", "datetime"),
            Item("passed", "The re-check passed (every item met)", "boolean"),
            Item("item", "Item code in the protocol's pre-infusion re-check", "text"),
            Item("answer", "Yes/no answer (yes: the item is met)", "boolean"),
            Item("option", "Option chosen (pregnancy test)", "text"),
            Item("value", "Re-measured value, in the item's unit", "float"),
            Item("value_unit", "Unit of the re-measured value", "text"),
            Item("reason", "Reason given for the option (e.g. not applicable: male)", "text"),
            Item("met", "The item is met", "boolean"),
            Item("note", "Note on the re-check", "text"),
        ),
    ),
    Form(
        "DOSE",
        "Dose order",
        True,
        (
            Item("dose_id", "Dose order number", "integer"),
            Item("planned_on", "Planned", "date"),
            Item("ordered_at", "Ordered (UTC)", "datetime"),
            Item("weight_kg", "Weight the dose was computed from", "float", unit="kg"),
            Item("target_cells", "Target viable cells", "float", unit="cells"),
            Item("delivered_cells", "Viable cells in the dose", "float", unit="cells"),
            Item("volume_ml", "Volume", "float", unit="mL"),
            Item("deviation_percent", "Deviation from the target", "float", unit="%"),
            Item("dmso_g_per_kg", "DMSO", "float", unit="g/kg"),
            Item("status", "Status", "text", codes=DOSE_STATUSES),
            Item("override_reason", "Investigator's reason for a dose outside tolerance", "text"),
            Item("deviation_id", "Deviation recorded for the override", "integer"),
        ),
    ),
    Form(
        "INFUSION",
        "Infusion",
        True,
        (
            Item("dose_id", "Dose order number", "integer"),
            Item("status", "Status", "text", codes=_codes(InfusionStatus)),
            Item("started_at", "Started (UTC)", "datetime"),
            Item("ended_at", "Ended (UTC)", "datetime"),
            Item("volume_infused_ml", "Volume infused", "float", unit="mL"),
            Item("rate_ml_per_h", "Rate", "float", unit="mL/h"),
            Item("reaction", "Infusion reaction, in words", "text"),
        ),
    ),
    Form(
        "POSTTHAW",
        "Post-thaw count",
        True,
        (
            Item("dose_id", "Dose order number", "integer"),
            Item("counted_at", "Counted (UTC)", "datetime"),
            Item("total_cells_per_ml", "Total nucleated cells", "float", unit="cells/mL"),
            Item("viability_percent", "Viability", "float", unit="%"),
            Item("place", "Where counted", "text", codes=_codes(CountPlace)),
            Item("method", "Method and instrument", "text"),
            Item("reason", "Why counted again", "text"),
            Item("delivered_cells", "Viable cells delivered at this count", "float", unit="cells"),
            Item("deviation_percent", "Deviation from the target", "float", unit="%"),
            Item("within_tolerance", "Within the protocol's tolerance", "boolean"),
            Item("decision", "Investigator's decision", "text", codes=_codes(PostThawDecision)),
            Item("decision_reason", "Reason for the decision", "text"),
            Item("deviation_id", "Deviation recorded for the decision", "integer"),
        ),
    ),
    Form(
        "FOLLOWUP",
        "Follow-up evaluation done",
        False,
        (
            Item("done_on", "Done on", "date"),
            Item("note", "Note", "text"),
        ),
    ),
    Form(
        "ENDPOINTS",
        "Efficacy endpoints",
        False,
        (
            Item("assessed_on", "Assessed on", "date"),
            *SCORE_ITEMS,
            Item("crp_mg_l", "C-reactive protein", "float", unit="mg/L"),
            Item("esr_mm_h", "Erythrocyte sedimentation rate", "float", unit="mm/h"),
            Item("basdai", "BASDAI (computed)", "float"),
            Item("basfi", "BASFI (computed)", "float"),
            Item("asdas_crp", "ASDAS-CRP (computed)", "float"),
        ),
    ),
    Form(
        "AE",
        "Adverse event",
        True,
        (
            Item("event_id", "Adverse event number", "integer"),
            Item("onset_at", "Onset (UTC)", "datetime"),
            Item("aware_at", "Site aware (UTC)", "datetime"),
            Item("term", "MedDRA-style term", "text"),
            Item("term_code", "Term code", "text"),
            Item("description", "Description", "text"),
            Item("ctcae_grade", "CTCAE grade", "integer", codes=("1", "2", "3", "4", "5")),
            Item("seriousness", "Seriousness", "text", codes=_codes(Seriousness)),
            Item("serious_criteria", "Seriousness criteria (ICH E2A), comma-separated", "text"),
            Item("causality", "Causality (investigator)", "text", codes=_codes(Causality)),
            Item("expected", "Expected", "boolean"),
            Item("outcome", "Outcome", "text", codes=_codes(Outcome)),
            Item("infusion_visit", "Infusion it followed", "text"),
            Item("initial_reported_at", "Initial sponsor report (UTC)", "datetime"),
            Item("initial_report_ref", "Initial report reference", "text"),
            Item("follow_up_reported_at", "Follow-up sponsor report (UTC)", "datetime"),
            Item("follow_up_report_ref", "Follow-up report reference", "text"),
        ),
    ),
    Form(
        "DEVIATION",
        "Deviation",
        True,
        (
            Item("kind", "What the deviation is", "text", codes=DEVIATION_KINDS),
            Item("deviation_id", "Deviation number (quality's register)", "integer"),
            Item("category", "Category", "text"),
            Item("description", "Description", "text"),
            Item("status", "Status", "text", codes=DEVIATION_STATUSES),
            Item("opened_at", "Opened (UTC)", "datetime"),
            Item("closed_at", "Closed (UTC)", "datetime"),
            Item("resolution", "Resolution", "text"),
            Item("visit", "Visit it concerns", "text"),
            Item("dose_id", "Dose order it concerns", "integer"),
            Item("reschedule_id", "Visit reschedule it concerns", "integer"),
            Item("signed_at", "Signed by the investigator (UTC)", "datetime"),
        ),
    ),
)


def form_named(name: str) -> Form:
    return next(form for form in FORMS if form.name == name)


#: The events that are not a visit of the protocol's schedule.
BASELINE = "BASELINE"
LOG = "LOG"

#: Told after each subject is read: (subjects read, subjects in all).
ProgressCallback = Callable[[int, int], None]


def destroyed_dose_ids(session: DbSession) -> set[int]:
    """The dose orders that were destroyed (kept as cancelled; the trail says which)."""
    return {
        int(entity_id)
        for entity_id in session.scalars(
            select(AuditEntry.entity_id).where(
                AuditEntry.action == "dose.destroyed", AuditEntry.entity_type == "dose_order"
            )
        )
    }


def dose_status(order: DoseOrder, destroyed: set[int]) -> str:
    return DESTROYED if order.id in destroyed else order.status


def _events(trial: Sequence[Patient]) -> list[Event]:
    """Baseline, each visit of the protocols the subjects were enrolled under (in order of
    their day), then the log of the whole trial."""
    visits: dict[str, tuple[int, str, bool]] = {}
    for protocol in {patient.protocol_id: patient.protocol for patient in trial}.values():
        parameters = protocol.parameters
        for infusion, key in ((True, "infusions"), (False, "follow_up")):
            for item in parameters.get(key, []):
                visits.setdefault(item["code"], (int(item["day"]), item["name"], infusion))
    events = [
        Event(BASELINE, "Baseline (enrolment)", "Scheduled", ("ENROL", "CHECKLIST", "ENDPOINTS"))
    ]
    for code, (_day, name, infusion) in sorted(visits.items(), key=lambda item: item[1][0]):
        forms = (
            ("RECHECK", "DOSE", "POSTTHAW", "INFUSION") if infusion else ("FOLLOWUP", "ENDPOINTS")
        )
        events.append(Event(code, name, "Scheduled", forms))
    events.append(
        Event(
            LOG,
            "Trial log (weights, adverse events, deviations)",
            "Common",
            ("WEIGHT", "AE", "DEVIATION"),
        )
    )
    return events


def collect(
    session: DbSession,
    *,
    protocol_code: str,
    today: dt.date,
    zone: ZoneInfo,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Read the trial's data (every subject enrolled under ``protocol_code``) into a dataset;
    ``today`` (the site's calendar, ``zone``) is the day each visit's status is told for."""
    trial = list(
        session.scalars(
            select(Patient)
            .where(Patient.protocol.has(code=protocol_code))
            .order_by(Patient.study_id)
        )
    )
    versions = sorted({str(p.protocol.version) for p in trial})
    title = trial[-1].protocol.title if trial else protocol_code
    data = Dataset(
        protocol_code=protocol_code,
        protocol_title=title,
        protocol_versions=versions,
        events=_events(trial),
        forms=list(FORMS),
        subjects=[p.study_id for p in trial],
    )
    destroyed = destroyed_dose_ids(session)
    ids = [p.id for p in trial]
    for index, patient in enumerate(trial):
        data.records.extend(_subject_records(session, patient, destroyed))
        data.records.extend(_visits(session, patient, today=today, zone=zone))
        if progress is not None:
            progress(index + 1, len(trial))
    data.records.extend(_deviations(session, ids))
    return data


def _subject_records(session: DbSession, patient: Patient, destroyed: set[int]) -> Iterator[Record]:
    study_id = patient.study_id
    born = patient.date_of_birth
    yield Record(
        study_id,
        BASELINE,
        "ENROL",
        1,
        {
            "coi": patient.coi,
            "protocol_version": f"{patient.protocol.code} v{patient.protocol.version}",
            "arm": patient.arm,
            "arm_source": patient.arm_source,
            "randomization_number": patient.randomization_number,
            "enrolled_at": patient.enrolled_at,
            "day0": patient.day0,
            "year_of_birth": born.year,
            "age_at_enrolment": patients.age_on(born, patient.enrolled_at.date()),
            "sex": patient.sex,
            "status": patient.status,
        },
    )
    parameters = patient.protocol.parameters
    kinds = {item["code"]: "inclusion" for item in parameters.get("inclusion", [])}
    kinds.update({item["code"]: "exclusion" for item in parameters.get("exclusion", [])})
    for repeat, (code, answer) in enumerate(sorted(patient.checklist.items()), start=1):
        yield Record(
            study_id,
            BASELINE,
            "CHECKLIST",
            repeat,
            {
                "criterion": code,
                "kind": kinds.get(code),
                "answer": answer.get("answer"),
                "value": answer.get("value"),
            },
        )
    weights = session.scalars(
        select(Weight)
        .where(Weight.patient_id == patient.id)
        .order_by(Weight.measured_at, Weight.id)
    )
    for repeat, weight in enumerate(weights, start=1):
        yield Record(
            study_id,
            LOG,
            "WEIGHT",
            repeat,
            {
                "measured_at": weight.measured_at,
                "weight_kg": weight.weight_kg,
                "source": weight.source,
                "change_percent": weight.change_percent,
                "confirmation": weight.confirmation,
            },
        )
    yield from _rechecks(session, patient)
    orders = session.scalars(
        select(DoseOrder).where(DoseOrder.patient_id == patient.id).order_by(DoseOrder.id)
    )
    dose_repeats: dict[str, int] = {}
    for order in orders:
        dose_repeats[order.visit] = dose_repeats.get(order.visit, 0) + 1
        yield Record(
            study_id,
            order.visit,
            "DOSE",
            dose_repeats[order.visit],
            {
                "dose_id": order.id,
                "planned_on": order.planned_on,
                "ordered_at": order.ordered_at,
                "weight_kg": order.weight.weight_kg,
                "target_cells": order.target_cells,
                "delivered_cells": order.delivered_cells,
                "volume_ml": order.volume_ml,
                "deviation_percent": order.deviation_percent,
                "dmso_g_per_kg": order.dmso_g_per_kg,
                "status": dose_status(order, destroyed),
                "override_reason": order.override_reason,
                "deviation_id": order.deviation_id,
            },
        )
    counts = session.execute(
        select(PostThawCount, DoseOrder.visit)
        .join(DoseOrder, DoseOrder.id == PostThawCount.dose_order_id)
        .where(DoseOrder.patient_id == patient.id)
        .order_by(PostThawCount.counted_at, PostThawCount.id)
    ).all()
    count_repeats: dict[str, int] = {}
    for count, visit in counts:
        count_repeats[visit] = count_repeats.get(visit, 0) + 1
        yield Record(
            study_id,
            visit,
            "POSTTHAW",
            count_repeats[visit],
            {
                "dose_id": count.dose_order_id,
                "counted_at": count.counted_at,
                "total_cells_per_ml": count.total_cells_per_ml,
                "viability_percent": count.viability_percent,
                "place": count.place,
                "method": count.method,
                "reason": count.reason,
                "delivered_cells": count.delivered_cells,
                "deviation_percent": count.deviation_percent,
                "within_tolerance": count.within_tolerance,
                "decision": count.decision,
                "decision_reason": count.decision_reason,
                "deviation_id": count.deviation_id,
            },
        )
    infusions = session.scalars(
        select(Infusion).where(Infusion.patient_id == patient.id).order_by(Infusion.started_at)
    )
    infusion_repeats: dict[str, int] = {}
    for infusion in infusions:
        visit = infusion.dose_order.visit
        infusion_repeats[visit] = infusion_repeats.get(visit, 0) + 1
        yield Record(
            study_id,
            visit,
            "INFUSION",
            infusion_repeats[visit],
            {
                "dose_id": infusion.dose_order_id,
                "status": infusion.status,
                "started_at": infusion.started_at,
                "ended_at": infusion.ended_at,
                "volume_infused_ml": infusion.volume_infused_ml,
                "rate_ml_per_h": infusion.rate_ml_per_h,
                "reaction": infusion.reaction,
            },
        )
    for visit_done in session.scalars(
        select(FollowUpVisit)
        .where(FollowUpVisit.patient_id == patient.id)
        .order_by(FollowUpVisit.visit)
    ):
        yield Record(
            study_id,
            visit_done.visit,
            "FOLLOWUP",
            1,
            {"done_on": visit_done.done_on, "note": visit_done.note},
        )
    for assessment in session.scalars(
        select(EfficacyEndpoints)
        .where(EfficacyEndpoints.patient_id == patient.id)
        .order_by(EfficacyEndpoints.assessed_on)
    ):
        computed = endpoints.scores_of(assessment)
        yield Record(
            study_id,
            BASELINE if assessment.visit == endpoints.BASELINE else assessment.visit,
            "ENDPOINTS",
            1,
            {
                "assessed_on": assessment.assessed_on,
                **{item.name: getattr(assessment, item.name) for item in SCORE_ITEMS},
                "crp_mg_l": assessment.crp_mg_l,
                "esr_mm_h": assessment.esr_mm_h,
                "basdai": computed.basdai,
                "basfi": computed.basfi,
                "asdas_crp": computed.asdas_crp,
            },
        )
    events = session.scalars(
        select(AdverseEvent).where(AdverseEvent.patient_id == patient.id).order_by(AdverseEvent.id)
    )
    for repeat, event in enumerate(events, start=1):
        yield Record(
            study_id,
            LOG,
            "AE",
            repeat,
            {
                "event_id": event.id,
                "onset_at": event.onset_at,
                "aware_at": event.aware_at,
                "term": event.term,
                "term_code": event.term_code,
                "description": event.description,
                "ctcae_grade": event.grade,
                "seriousness": event.seriousness,
                "serious_criteria": event.serious_criteria,
                "causality": event.causality,
                "expected": event.expected,
                "outcome": event.outcome,
                "infusion_visit": event.infusion.dose_order.visit if event.infusion else None,
                "initial_reported_at": event.initial_reported_at,
                "initial_report_ref": event.initial_report_ref,
                "follow_up_reported_at": event.follow_up_reported_at,
                "follow_up_report_ref": event.follow_up_report_ref,
            },
        )


def _rechecks(session: DbSession, patient: Patient) -> Iterator[Record]:
    """Each pre-infusion re-check at the infusion visit it is for: one row per item as
    answered, in the protocol's order, the re-check's result on each row. Who recorded it is
    the audit trail's, not the file's."""
    repeats: dict[str, int] = {}
    for recheck in session.scalars(
        select(PreInfusionRecheck)
        .where(PreInfusionRecheck.patient_id == patient.id)
        .order_by(PreInfusionRecheck.recorded_at, PreInfusionRecheck.id)
    ):
        config = recheck.protocol.parameters.get("pre_infusion_recheck") or {}
        order = [str(item["code"]) for item in config.get("items", [])]
        units = {
            str(item["code"]): item["measure"].get("unit")
            for item in config.get("items", [])
            if item.get("measure")
        }
        answers = recheck.answers
        codes = [c for c in order if c in answers] + sorted(set(answers) - set(order))
        for code in codes:
            answer = answers[code]
            repeats[recheck.visit] = repeats.get(recheck.visit, 0) + 1
            yield Record(
                patient.study_id,
                recheck.visit,
                "RECHECK",
                repeats[recheck.visit],
                {
                    "recheck_id": recheck.id,
                    "recorded_at": recheck.recorded_at,
                    "passed": recheck.passed,
                    "item": code,
                    "answer": answer.get("answer"),
                    "option": answer.get("option"),
                    "value": _number(answer.get("value")),
                    "value_unit": units.get(code) if answer.get("value") is not None else None,
                    "reason": answer.get("reason"),
                    "met": answer.get("met"),
                    "note": recheck.note,
                },
            )


def _number(value: Any) -> float | None:
    """A measured value as a float (JSON keeps 80.0 as 80), so both files write it alike."""
    return None if value is None else float(value)


def _visits(
    session: DbSession, patient: Patient, *, today: dt.date, zone: ZoneInfo
) -> Iterator[Record]:
    """Each visit of the subject's schedule (VISIT, at the visit) with its status on ``today``,
    then each move of a visit (RESCHEDULE, at the visit moved), in the order recorded."""
    missed = {
        row.visit: row
        for row in session.scalars(select(MissedVisit).where(MissedVisit.patient_id == patient.id))
    }
    for scheduled in follow_up.patient_schedule(session, patient, today=today, zone=zone):
        visit = scheduled.visit
        missed_row = missed.get(visit.code)
        yield Record(
            patient.study_id,
            visit.code,
            "VISIT",
            1,
            {
                "planned_on": visit.planned_on,
                "window_earliest": visit.earliest,
                "window_latest": visit.latest,
                "provisional": visit.provisional,
                "rescheduled": visit.rescheduled,
                "deviation_pending": visit.deviation_pending,
                "status": scheduled.status.value,
                "done_on": scheduled.done_on,
                "outside_window": scheduled.outside_window if scheduled.done_on else None,
                "missed_reason": missed_row.reason if missed_row else None,
                "missed_recorded_at": missed_row.recorded_at if missed_row else None,
            },
        )
    moves = list(
        session.scalars(
            select(VisitReschedule)
            .where(VisitReschedule.patient_id == patient.id)
            .order_by(VisitReschedule.recorded_at, VisitReschedule.id)
        )
    )
    latest = {move.visit: move.id for move in moves}
    repeats: dict[str, int] = {}
    for move in moves:
        repeats[move.visit] = repeats.get(move.visit, 0) + 1
        yield Record(
            patient.study_id,
            move.visit,
            "RESCHEDULE",
            repeats[move.visit],
            {
                "reschedule_id": move.id,
                "recorded_at": move.recorded_at,
                "previous_on": move.previous_on,
                "planned_on": move.planned_on,
                "reason": move.reason,
                "protocol_earliest": move.protocol_earliest,
                "protocol_latest": move.protocol_latest,
                "outside_protocol": move.outside_protocol,
                "deviation_signed_at": move.deviation_signed_at,
                "superseded": latest[move.visit] != move.id,
            },
        )


@dataclass(frozen=True)
class TrialDeviation:
    """A deviation of the trial as the export and the DSMB summary count it."""

    study_id: str
    kind: str
    status: str
    opened_at: dt.datetime
    description: str
    visit: str | None = None
    dose_id: int | None = None
    deviation_id: int | None = None
    category: str | None = None
    closed_at: dt.datetime | None = None
    resolution: str | None = None
    reschedule_id: int | None = None
    signed_at: dt.datetime | None = None

    @property
    def open(self) -> bool:
        return self.status == "open"


def trial_deviations(session: DbSession, patient_ids: Sequence[int]) -> list[TrialDeviation]:
    """The deviations of the trial's subjects, once each, by subject and when opened:

    - each deviation of quality's register a subject's dose order names (the investigator's
      override of a dose outside tolerance) or a post-thaw count of it names (the decision
      to infuse a dose counted outside tolerance);
    - each visit moved outside its protocol window: signed by the investigator (``signed``),
      or, while it is the visit's latest move, waiting for that signature (``open``). An
      unsigned move superseded by a later one is no deviation (the visit never took place on
      that day); it stays in RESCHEDULE.
    """
    if not patient_ids:
        return []
    found: dict[int, TrialDeviation] = {}
    for kind, link in (
        (DOSE_OVERRIDE, DoseOrder.deviation_id),
        (POST_THAW_DECISION, PostThawCount.deviation_id),
    ):
        query = (
            select(Patient.study_id, DoseOrder.id, DoseOrder.visit, Deviation)
            .join(DoseOrder, DoseOrder.patient_id == Patient.id)
            .where(Patient.id.in_(patient_ids))
        )
        if link is PostThawCount.deviation_id:
            query = query.join(PostThawCount, PostThawCount.dose_order_id == DoseOrder.id)
        for study_id, order_id, visit, deviation in session.execute(
            query.join(Deviation, Deviation.id == link)
        ).all():
            found.setdefault(
                deviation.id,
                TrialDeviation(
                    study_id=study_id,
                    kind=kind,
                    status=deviation.status,
                    opened_at=deviation.opened_at,
                    description=deviation.description,
                    visit=visit,
                    dose_id=order_id,
                    deviation_id=deviation.id,
                    category=deviation.category,
                    closed_at=deviation.closed_at,
                    resolution=deviation.resolution,
                ),
            )
    rows = list(found.values())
    moves = session.execute(
        select(Patient.study_id, VisitReschedule)
        .join(VisitReschedule, VisitReschedule.patient_id == Patient.id)
        .where(Patient.id.in_(patient_ids))
        .order_by(VisitReschedule.recorded_at, VisitReschedule.id)
    ).all()
    latest = {(move.patient_id, move.visit): move.id for _s, move in moves}
    for study_id, move in moves:
        if not move.outside_protocol:
            continue
        signed = move.deviation_signed_at is not None
        if not signed and latest[(move.patient_id, move.visit)] != move.id:
            continue
        rows.append(
            TrialDeviation(
                study_id=study_id,
                kind=VISIT_OUTSIDE_WINDOW,
                status="signed" if signed else "open",
                opened_at=move.recorded_at,
                description=(
                    f"{move.visit} moved from {move.previous_on.isoformat()} to "
                    f"{move.planned_on.isoformat()}, outside its protocol window "
                    f"{move.protocol_earliest.isoformat()} to {move.protocol_latest.isoformat()}: "
                    f"{move.reason}"
                ),
                visit=move.visit,
                reschedule_id=move.id,
                signed_at=move.deviation_signed_at,
            )
        )
    return sorted(rows, key=lambda row: (row.study_id, row.opened_at, row.kind))


def _deviations(session: DbSession, patient_ids: Sequence[int]) -> Iterator[Record]:
    repeats: dict[str, int] = {}
    for row in trial_deviations(session, patient_ids):
        repeats[row.study_id] = repeats.get(row.study_id, 0) + 1
        yield Record(
            row.study_id,
            LOG,
            "DEVIATION",
            repeats[row.study_id],
            {
                "kind": row.kind,
                "deviation_id": row.deviation_id,
                "category": row.category,
                "description": row.description,
                "status": row.status,
                "opened_at": row.opened_at,
                "closed_at": row.closed_at,
                "resolution": row.resolution,
                "visit": row.visit,
                "dose_id": row.dose_id,
                "reschedule_id": row.reschedule_id,
                "signed_at": row.signed_at,
            },
        )


def text_value(value: Any) -> str | None:
    """A value as the files write it: ISO 8601 UTC times and dates, ``true``/``false``,
    numbers in Python's shortest exact form; ``None`` when there is none."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)
