"""Pages of the chain-of-identity report: a patient's report as a printable page and as a PDF.

Both show :func:`cellchain.traceability.coi.coi.patient_report`, with times in the site's zone;
anyone who may read records may read it (it names the patient by study ID and COI only).
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, render_template
from flask.typing import ResponseReturnValue

from cellchain.core.read_replica import reads
from cellchain.core.roles import Permission
from cellchain.dosing import patients
from cellchain.http import acting_user, now, requires, site_zone
from cellchain.traceability.coi.coi import as_seen_by, patient_report
from cellchain.traceability.coi.coi_pdf import render_coi_report_pdf

blueprint = Blueprint("coi", __name__)


@blueprint.get("/patients/<int:patient_id>/coi-report")
@requires(Permission.READ_RECORDS)
def report(patient_id: int) -> ResponseReturnValue:
    """The report as a page laid out for the screen and for printing."""
    found = as_seen_by(
        patient_report(reads(), patients.get_patient(reads(), patient_id), zone=site_zone()),
        acting_user().roles,
    )
    return render_template("traceability/coi/coi_report.html", report=found, generated_at=now())


@blueprint.get("/patients/<int:patient_id>/coi-report.pdf")
@requires(Permission.READ_RECORDS)
def report_pdf(patient_id: int) -> ResponseReturnValue:
    """The same report as an A4 PDF, naming who generated it and when on every page."""
    found = as_seen_by(
        patient_report(reads(), patients.get_patient(reads(), patient_id), zone=site_zone()),
        acting_user().roles,
    )
    pdf = render_coi_report_pdf(
        found,
        site_name=current_app.config["SITE_NAME"],
        zone=site_zone(),
        generated_at=now(),
        generated_by=acting_user().full_name,
    )
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{_file_name(found.patient.study_id)}"'},
    )


def _file_name(study_id: str) -> str:
    """A safe file name: a study ID is typed at enrolment and may hold any character."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", study_id) + "-coi-report.pdf"
