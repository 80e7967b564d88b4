"""Recording efficacy endpoints at the evaluation visits and reading a patient's table over
time (issue 19). The scores are computed from the items by ``scores.py``.

An assessment belongs to a patient and a visit code: ``BL`` (baseline, before the first
infusion) or an evaluation visit of the patient's protocol (M6, M12), once each. Every item
and laboratory value is range-checked here; a value out of range refuses the whole record
(422, every problem on its field, nothing saved).

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
class TableRow:
    """One visit of a patient's endpoint table: its code and name, and the assessment with
    its scores if one was recorded."""

    visit: str
    name: str
    record: EfficacyEndpoints | None
    scores: scores.Scores | None


def evaluation_visits(patient: Patient) -> list[tuple[str, str]]:
    """(code, name) of the visits endpoints are recorded at: baseline, then the protocol's
    evaluation visits in order."""
    return [(BASELINE, "Baseline")] + [
        (code, name) for code, name, infusion in patients.protocol_visits(patient) if not infusion
    ]


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
        if value is None or not math.isfinite(value):
            errors[name] = [f"{name} is required as a number from {low:g} to {high:g}{unit}."]
        elif not low <= value <= high:
            errors[name] = [f"{name} {value:g}{unit} is out of range ({low:g}–{high:g}{unit})."]
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
    enrolment (site calendar), any item or laboratory value out of range. A visit already
    assessed is a 409.
    """
    code = visit.strip().upper()
    today = now.astimezone(zone).date()
    enrolled_on = patient.enrolled_at.astimezone(zone).date()
    visits = dict(evaluation_visits(patient))
    errors: dict[str, list[str]] = {}
    if code not in visits:
        errors["visit"] = [
            f"Endpoints are recorded at {', '.join(visits)}, not at {code or visit!r}."
        ]
    if assessed_on > today:
        errors["assessed_on"] = [f"{assessed_on.isoformat()} is in the future (today is {today})."]
    elif assessed_on < enrolled_on:
        errors["assessed_on"] = [
            f"{assessed_on.isoformat()} is before {patient.study_id} was enrolled ({enrolled_on})."
        ]
    errors.update(range_errors(values))
    if errors:
        raise InvalidInput(
            "The endpoints were not recorded: " + patients.summarize(errors), errors=errors
        )
    existing = session.execute(
        select(EfficacyEndpoints.id).where(
            EfficacyEndpoints.patient_id == patient.id, EfficacyEndpoints.visit == code
        )
    ).scalar_one_or_none()
    already = Conflict(
        f"The {visits[code]} ({code}) endpoints of {patient.study_id} are already recorded.",
        title="Already recorded",
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
            **{name: (None, float(values[name])) for name in VALUE_FIELDS},
            "basdai": (None, computed.basdai),
            "basfi": (None, computed.basfi),
            "asdas_crp": (None, computed.asdas_crp),
        },
    )
    return row


def endpoint_table(session: DbSession, patient: Patient) -> list[TableRow]:
    """The patient's endpoints over time: one row per evaluation visit (baseline, M6, M12)
    with its assessment and scores, or none yet."""
    recorded = {
        row.visit: row
        for row in session.execute(
            select(EfficacyEndpoints).where(EfficacyEndpoints.patient_id == patient.id)
        ).scalars()
    }
    rows = []
    for code, name in evaluation_visits(patient):
        record = recorded.get(code)
        rows.append(TableRow(code, name, record, scores_of(record) if record else None))
    return rows
