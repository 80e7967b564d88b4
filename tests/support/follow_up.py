"""Follow-up set-up: a patient's day 0 moved into the past and an infusion row made directly."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cellchain.clinic.models import BedsideCheck, Infusion
from cellchain.core.types import utcnow
from cellchain.dosing.models import DoseOrder
from cellchain.extensions import db


def today() -> dt.date:
    return utcnow().date()


def back_date(patient: Any, days: int) -> Any:
    """Day 0 ``days`` ago, enrolled that day (enrolment refuses a past day 0)."""
    patient.day0 = today() - dt.timedelta(days=days)
    patient.enrolled_at = utcnow() - dt.timedelta(days=days)
    db.session.commit()
    return patient


def infuse(
    clinic: Any, patient: Any, visit: str = "D0", *, status: str = "completed", at: Any = None
) -> Infusion:
    """An infusion row for the patient's ``visit``, as the bedside services would leave it
    (a dose order, a signed "go" and the infusion), made directly: the schedule only asks
    whether an infusion exists."""
    started_at = at or utcnow() - dt.timedelta(hours=1)
    weight = clinic.weigh(patient, 70.0)
    order = DoseOrder(
        patient_id=patient.id,
        protocol_id=patient.protocol_id,
        visit=visit,
        planned_on=started_at.date(),
        weight_id=weight.id,
        target_cells=7.0e7,
        volume_ml=15.6,
        delivered_cells=7.02e7,
        deviation_percent=0.3,
        dmso_g_per_kg=0.22,
        endotoxin_eu_per_kg=None,
        working_json=json.dumps([]),
        status="infused",
        ordered_at=started_at - dt.timedelta(days=1),
        prepared_by_id=clinic.lab.tech.id,
    )
    db.session.add(order)
    db.session.flush()
    check = BedsideCheck(
        checked_at=started_at,
        checked_by_id=clinic.clinician.id,
        wristband_scan=patient.coi,
        label_scan="dose label",
        patient_id=patient.id,
        dose_order_id=order.id,
        verdict="go",
        checks_json=json.dumps([]),
    )
    db.session.add(check)
    db.session.flush()
    infusion = Infusion(
        dose_order_id=order.id,
        patient_id=patient.id,
        bedside_check_id=check.id,
        status=status,
        started_at=started_at,
        administered_by_id=clinic.clinician.id,
        ended_at=None if status == "in_progress" else started_at + dt.timedelta(minutes=30),
    )
    db.session.add(infusion)
    db.session.commit()
    return infusion
