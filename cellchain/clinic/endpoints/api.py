"""API of efficacy endpoints: a patient's table over time, and recording a visit's endpoints."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.clinic.endpoints import endpoints
from cellchain.clinic.endpoints.commands import record_endpoints_as_user
from cellchain.clinic.endpoints.schemas import EndpointRowOut, EndpointsIn
from cellchain.core.roles import Permission
from cellchain.dosing import patients
from cellchain.extensions import db
from cellchain.http import requires, site_zone, unit_of_work

endpoints_api = Blueprint(
    "endpoints_api", __name__, url_prefix="/api/v1", description="Efficacy endpoints"
)
blueprints = (endpoints_api,)


@endpoints_api.get("/patients/<int:patient_id>/endpoints")
@requires(Permission.READ_RECORDS)
@endpoints_api.response(200, EndpointRowOut(many=True))
def patient_endpoints(patient_id: int) -> Any:
    """The patient's endpoints over time: baseline, then each evaluation visit, with the
    items, CRP, ESR and the computed BASDAI, BASFI and ASDAS-CRP (null where not recorded),
    the visit's window (``opens_on``, ``closes_on``), whether it was recorded as missed, and
    ``outside_window`` for an assessment after its window closed."""
    patient = patients.get_patient(db.session, patient_id)
    return endpoints.endpoint_table(db.session, patient, site_zone())


@endpoints_api.post("/patients/<int:patient_id>/endpoints")
@requires(Permission.RECORD_FOLLOW_UP)
@endpoints_api.arguments(EndpointsIn)
@endpoints_api.response(201, EndpointRowOut)
def record_endpoints(data: dict[str, Any], patient_id: int) -> Any:
    """Record a visit's endpoints (BL, M6, M12) once; a value out of range, a baseline after
    the first infusion's day or an evaluation before its window opens is a 422 with nothing
    saved, a visit recorded as missed or already recorded a 409. An evaluation after its
    window closed is recorded and flagged ``outside_window``."""
    with unit_of_work() as session:
        row = record_endpoints_as_user(session, patient_id, data)
    return row
