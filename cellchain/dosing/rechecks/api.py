"""API of pre-infusion re-checks: a patient's re-checks and the state of each visit that
needs one, and recording a re-check. Load → command → dump; no rules here."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core.roles import Permission
from cellchain.dosing import patients
from cellchain.dosing.rechecks import rechecks
from cellchain.dosing.rechecks.commands import record_recheck_as_user
from cellchain.dosing.rechecks.schemas import RecheckIn, RecheckOut, RecheckStatusOut
from cellchain.extensions import db
from cellchain.http import now, requires, site_zone, unit_of_work

rechecks_api = Blueprint(
    "rechecks_api",
    __name__,
    url_prefix="/api/v1",
    description="Pre-infusion re-checks of eligibility",
)
blueprints = (rechecks_api,)


@rechecks_api.get("/patients/<int:patient_id>/rechecks")
@requires(Permission.READ_RECORDS)
@rechecks_api.response(200, RecheckOut(many=True))
def patient_rechecks(patient_id: int) -> Any:
    """The patient's re-checks, newest first, each with the items not met and until when it
    holds."""
    patient = patients.get_patient(db.session, patient_id)
    return [rechecks.shown(recheck) for recheck in rechecks.rechecks_of(db.session, patient)]


@rechecks_api.get("/patients/<int:patient_id>/rechecks/visits")
@requires(Permission.READ_RECORDS)
@rechecks_api.response(200, RecheckStatusOut(many=True))
def visit_states(patient_id: int) -> Any:
    """Each infusion visit that needs a re-check (M3): its latest re-check, and why its dose
    may not be ordered or infused now (null when it may, as far as the re-check goes)."""
    patient = patients.get_patient(db.session, patient_id)
    return rechecks.visit_states(db.session, patient, now=now(), zone=site_zone())


@rechecks_api.post("/patients/<int:patient_id>/rechecks")
@requires(rechecks.PERMISSION)
@rechecks_api.arguments(RecheckIn)
@rechecks_api.response(201, RecheckOut)
def record_recheck(data: dict[str, Any], patient_id: int) -> Any:
    """Re-confirm every item before an infusion after the first (pregnancy test, infection,
    other trials, creatinine, ejection fraction, ECOG score 0–5). An item unanswered or a value
    impossible (an ECOG of 7) is a 422 with nothing saved; an item not met is recorded, with
    ``passed`` false: the patient is not eligible for that infusion."""
    with unit_of_work() as session:
        recheck = record_recheck_as_user(session, patient_id, data)
        shown = rechecks.shown(recheck)
    return shown
