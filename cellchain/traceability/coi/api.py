"""API of the chain-of-identity report: a patient's report as JSON, the same report as the
page and the PDF."""

from __future__ import annotations

from flask_smorest import Blueprint

from cellchain.core.read_replica import reads
from cellchain.core.roles import Permission
from cellchain.dosing import patients
from cellchain.http import acting_user, requires, site_zone
from cellchain.traceability.coi.coi import CoiReport, as_seen_by, patient_report
from cellchain.traceability.coi.schemas import CoiReportOut

coi_api = Blueprint(
    "coi_api",
    __name__,
    url_prefix="/api/v1",
    description="Chain-of-identity report of a patient",
)
blueprints = (coi_api,)


@coi_api.get("/patients/<int:patient_id>/coi-report")
@requires(Permission.READ_RECORDS)
@coi_api.response(200, CoiReportOut)
def coi_report(patient_id: int) -> CoiReport:
    """The patient's chain-of-identity report.

    Each infusion of the patient, in the order started, traced back to the donor, with every
    signature manifested and marked invalid if its signed content changed. A patient without
    an infusion gets an empty report (``empty`` true); an unknown patient is a 404.
    """
    patient = patients.get_patient(reads(), patient_id)  # NotFound → 404 problem+json
    return as_seen_by(patient_report(reads(), patient, zone=site_zone()), acting_user().roles)
