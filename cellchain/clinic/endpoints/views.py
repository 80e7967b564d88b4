"""Pages of efficacy endpoints: a patient's table over time (baseline, months 6 and 12) and
the form recording a visit's endpoints."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.clinic.endpoints import endpoints
from cellchain.clinic.endpoints.commands import record_endpoints_as_user
from cellchain.clinic.endpoints.schemas import EndpointsIn
from cellchain.core.i18n import _
from cellchain.core.roles import Permission
from cellchain.dosing import patients
from cellchain.dosing.models import Patient
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import requires, site_zone, unit_of_work
from cellchain.web.forms import load_form, refusal_context

blueprint = Blueprint("endpoints", __name__)


@blueprint.get("/patients/<int:patient_id>/endpoints")
@requires(Permission.READ_RECORDS)
def patient(patient_id: int) -> ResponseReturnValue:
    return _patient_page(patients.get_patient(db.session, patient_id))


@blueprint.post("/patients/<int:patient_id>/endpoints")
@requires(Permission.RECORD_FOLLOW_UP)
def record(patient_id: int) -> ResponseReturnValue:
    patients.get_patient(db.session, patient_id)
    try:
        data = load_form(EndpointsIn(), request.form)
        with unit_of_work() as session:
            row = record_endpoints_as_user(session, patient_id, data)
            message = _(
                "Endpoints of %(name)s (%(visit)s) recorded.", name=row.name, visit=row.visit
            )
    except DomainError as error:
        return _patient_page(patients.get_patient(db.session, patient_id), error)
    flash(message, "success")
    return redirect(url_for("endpoints.patient", patient_id=patient_id))


def _patient_page(patient: Patient, error: DomainError | None = None) -> ResponseReturnValue:
    """The table over time and the form; after a refusal the form keeps what was typed and
    shows its field errors."""
    table = endpoints.endpoint_table(db.session, patient, site_zone())
    return (
        render_template(
            "clinic/endpoints/patient.html",
            **refusal_context(error, patient=patient),
            table=table,
            open_visits=[
                {"value": row.visit, "label": f"{row.name} ({row.visit})"}
                for row in table
                if row.record is None and not row.missed
            ],
            basdai_fields=endpoints.BASDAI_FIELDS,
            basfi_fields=endpoints.BASFI_FIELDS,
            other_fields=("patient_global", "crp_mg_l", "esr_mm_h"),
            ranges=endpoints.RANGES,
        ),
        error.status if error else 200,
    )
