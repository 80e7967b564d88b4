"""Pages of pre-infusion re-checks: a patient's re-checks with the state of each visit that
needs one, and the form recording a re-check."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from cellchain.core.i18n import _, document_text
from cellchain.core.roles import Permission
from cellchain.dosing import patients
from cellchain.dosing.models import Patient
from cellchain.dosing.rechecks import rechecks
from cellchain.dosing.rechecks.commands import record_recheck_as_user
from cellchain.dosing.rechecks.schemas import RecheckIn
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import now, requires, site_zone, unit_of_work
from cellchain.web.forms import load_form, refusal_context

blueprint = Blueprint("rechecks", __name__)


@blueprint.get("/patients/<int:patient_id>/rechecks")
@requires(Permission.READ_RECORDS)
def patient(patient_id: int) -> ResponseReturnValue:
    return _page(patients.get_patient(db.session, patient_id))


@blueprint.post("/patients/<int:patient_id>/rechecks")
@requires(rechecks.PERMISSION)
def record(patient_id: int) -> ResponseReturnValue:
    patient = patients.get_patient(db.session, patient_id)
    try:
        data = load_form(RecheckIn(), _recheck_form(request.form, patient))
        with unit_of_work() as session:
            recheck = record_recheck_as_user(session, patient_id, data)
            passed, visit = recheck.passed, recheck.visit
    except DomainError as error:
        return _page(patients.get_patient(db.session, patient_id), error)
    if passed:
        flash(_("%(visit)s re-check recorded: every item met.", visit=visit), "success")
    else:
        flash(
            _(
                "%(visit)s re-check recorded as NOT MET: the patient is not eligible for this"
                " infusion.",
                visit=visit,
            ),
            "error",
        )
    return redirect(url_for("rechecks.patient", patient_id=patient_id))


def _recheck_form(form: MultiDict[str, str], patient: Patient) -> MultiDict[str, Any]:
    """The flat HTML form (``answer.<code>`` = yes/no, ``option.<code>``, ``reason.<code>``,
    ``value.<code>``) as ``RecheckIn``'s nested answers."""
    flat: MultiDict[str, Any] = MultiDict(
        {
            k: v
            for k, v in form.items()
            if not k.startswith(("answer.", "option.", "value.", "reason."))
        }
    )
    answers = {}
    for item in rechecks.items(db.session, patient, at=now()):
        code = item["code"]
        answers[code] = {
            "answer": {"yes": True, "no": False}.get(form.get(f"answer.{code}", "")),
            "option": form.get(f"option.{code}", "").strip() or None,
            "value": form.get(f"value.{code}", "").strip() or None,
            "reason": form.get(f"reason.{code}", "").strip() or None,
        }
    flat["answers"] = answers
    return flat


def _page(patient: Patient, error: DomainError | None = None) -> ResponseReturnValue:
    """The visits that need a re-check, the re-checks recorded, and the form; after a refusal
    the form keeps what was typed and shows its field errors."""
    at = now()
    states = rechecks.visit_states(db.session, patient, now=at, zone=site_zone())
    return (
        render_template(
            "dosing/rechecks/patient.html",
            **refusal_context(error, patient=patient),
            states=states,
            history=[rechecks.shown(r) for r in rechecks.rechecks_of(db.session, patient)],
            items=rechecks.items(db.session, patient, at=at),
            valid_days=rechecks.valid_days(db.session, patient, at=at),
            missing=rechecks.missing(db.session, patient, at=at),
            visit_choices=[
                {"value": s.visit, "label": f"{document_text(s.name)} ({s.visit})"} for s in states
            ],
        ),
        error.status if error else 200,
    )
