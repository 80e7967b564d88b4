"""Pages of the labels package: print a unit's or a lot's labels (the browser downloads the
file), the print log, the lot's label reconciliation, and reading a label from a photo."""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.chain import service as chain
from cellchain.chain.models import Unit
from cellchain.core import numbering
from cellchain.core.display import local_date
from cellchain.core.i18n import _, document_text
from cellchain.core.identifiers import InvalidIdentifier
from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.roles import Permission
from cellchain.dosing import orders, patients
from cellchain.errors import DomainError, NotFound
from cellchain.extensions import db
from cellchain.http import requires, site_zone, unit_of_work
from cellchain.labels import photo, print_log, service
from cellchain.labels.commands import (
    destroy_labels,
    file_response,
    label_settings,
    print_lot_labels,
    print_unit_labels,
    print_wristband,
    record_lot_label_applied,
    record_unit_label_applied,
)
from cellchain.labels.content import NotLabellable, UnitLabel, label_for, wristband_for
from cellchain.labels.models import MAX_COPIES, OutputFormat
from cellchain.labels.schemas import AppliedIn, DestroyedIn, LotPrintIn, PrintIn
from cellchain.manufacturing.models import Lot
from cellchain.manufacturing.processing import processing
from cellchain.traceability.notices import recalls_naming
from cellchain.web.forms import load_form
from cellchain.web.listing import page_request
from cellchain.web.resolve import record_url

blueprint = Blueprint("labels", __name__)


def _applied_message(record: Any) -> str:
    """What the technician reads once a label is scanned on its container; the print's
    date is the site's calendar day."""
    return _(
        "Label of %(code)s applied (%(applied)s of %(copies)s printed %(date)s).",
        code=record.subject_code,
        applied=record.applied,
        copies=record.copies,
        date=local_date(record.printed_at, site_zone()),
    )


@blueprint.get("/labels/prints")
@requires(Permission.READ_RECORDS)
def print_log_page() -> ResponseReturnValue:
    """Every label printed on the site, newest first, paged, sorted, filtered and searched."""
    query, page_asked, notes = page_request(print_log.PrintLogQueryIn(), request.args)
    page = print_log.prints_page(db.session, page_asked, **print_log.filters_of(query))
    return render_template(
        "labels/print_log.html",
        prints=page.items,
        page=page,
        notes=notes,
        label_types=print_log.LABEL_TYPES,
        format_options=[(f.value, f.value.upper()) for f in OutputFormat],
        yes_no=[("yes", _("yes")), ("no", _("no"))],
    )


@blueprint.get("/units/<int:unit_id>/labels")
@requires(Permission.READ_RECORDS)
def unit_labels(unit_id: int) -> ResponseReturnValue:
    return _unit_page(chain.get_unit(db.session, unit_id))


@blueprint.post("/units/<int:unit_id>/labels")
@requires(Permission.PRINT_LABELS)
def print_unit(unit_id: int) -> ResponseReturnValue:
    chain.get_unit(db.session, unit_id)  # 404 first
    try:
        data = load_form(PrintIn(), request.form)
        with unit_of_work() as session:
            printed = print_unit_labels(session, unit_id, data)
    except DomainError as error:
        return _unit_page(chain.get_unit(db.session, unit_id), error)
    return file_response(printed)


@blueprint.post("/units/<int:unit_id>/labels/applied")
@requires(Permission.RECONCILE_LABELS)
def unit_applied(unit_id: int) -> ResponseReturnValue:
    """The unit's label scanned on it (a prepared dose's label: it belongs to no lot)."""
    chain.get_unit(db.session, unit_id)  # 404 first
    try:
        data = load_form(AppliedIn(), request.form)
        with unit_of_work() as session:
            record = record_unit_label_applied(session, unit_id, data)
            message = _applied_message(record)
    except DomainError as error:
        return _unit_page(chain.get_unit(db.session, unit_id), error, "applied")
    flash(message, "success")
    return redirect(url_for("labels.unit_labels", unit_id=unit_id) + "#apply")


@blueprint.get("/patients/<int:patient_id>/labels")
@requires(Permission.READ_RECORDS)
def patient_labels(patient_id: int) -> ResponseReturnValue:
    return _patient_page(patient_id)


@blueprint.post("/patients/<int:patient_id>/labels")
@requires(Permission.ENROL_PATIENTS)
def print_patient(patient_id: int) -> ResponseReturnValue:
    patients.get_patient(db.session, patient_id)  # 404 first
    try:
        data = load_form(PrintIn(), request.form)
        with unit_of_work() as session:
            printed = print_wristband(session, patient_id, data)
    except DomainError as error:
        return _patient_page(patient_id, error)
    return file_response(printed)


@blueprint.get("/lots/<int:lot_id>/labels")
@requires(Permission.READ_RECORDS)
def lot_labels(lot_id: int) -> ResponseReturnValue:
    return _lot_page(processing.get_lot(db.session, lot_id))


@blueprint.post("/lots/<int:lot_id>/labels")
@requires(Permission.PRINT_LABELS)
def print_lot(lot_id: int) -> ResponseReturnValue:
    processing.get_lot(db.session, lot_id)  # 404 first
    which = "replace" if request.form.get("replace_quarantine_labels") else "print"
    try:
        data = load_form(LotPrintIn(), request.form)
        with unit_of_work() as session:
            printed = print_lot_labels(session, lot_id, data)
    except DomainError as error:
        return _lot_page(processing.get_lot(db.session, lot_id), error, which)
    return file_response(printed)


@blueprint.post("/lots/<int:lot_id>/labels/applied")
@requires(Permission.RECONCILE_LABELS)
def applied(lot_id: int) -> ResponseReturnValue:
    processing.get_lot(db.session, lot_id)
    try:
        data = load_form(AppliedIn(), request.form)
        with unit_of_work() as session:
            record = record_lot_label_applied(session, lot_id, data)
            message = _applied_message(record)
    except DomainError as error:
        return _lot_page(processing.get_lot(db.session, lot_id), error, "applied")
    flash(message, "success")
    return redirect(url_for("labels.lot_labels", lot_id=lot_id) + "#apply")


@blueprint.post("/label-prints/<int:print_id>/destroyed")
@requires(Permission.RECONCILE_LABELS)
def destroyed(print_id: int) -> ResponseReturnValue:
    record = service.get_print(db.session, print_id)
    lot_id, unit_id, patient_id = record.lot_id, record.unit_id, record.patient_id
    try:
        data = load_form(DestroyedIn(), request.form)
        with unit_of_work() as session:
            record = destroy_labels(session, print_id, data)
            message = _(
                "%(count)s label(s) of %(code)s recorded as destroyed.",
                count=data["count"],
                code=record.subject_code,
            )
    except DomainError as error:
        if lot_id is not None:
            return _lot_page(processing.get_lot(db.session, lot_id), error, f"destroy-{print_id}")
        if unit_id is not None:
            return _unit_page(chain.get_unit(db.session, unit_id), error, f"destroy-{print_id}")
        # a print names a unit or a patient (check constraint unit_or_patient)
        return _patient_page(cast(int, patient_id), error, f"destroy-{print_id}")
    flash(message, "success")
    if lot_id is not None:
        return redirect(url_for("labels.lot_labels", lot_id=lot_id) + "#log")
    if unit_id is not None:
        return redirect(url_for("labels.unit_labels", unit_id=unit_id) + "#log")
    return redirect(url_for("labels.patient_labels", patient_id=patient_id) + "#log")


@blueprint.post("/scan/photo")
@requires(Permission.USE_APP)
def scan_photo() -> ResponseReturnValue:
    """Read the label in an uploaded photo and open its record, or say why not."""
    upload = request.files.get("photo")
    try:
        text = photo.read_photo(upload.read() if upload else b"")
        issued = numbering.lookup(db.session, text)
    except (photo.UnreadablePhoto, InvalidIdentifier) as error:
        return _scan_error(error, "invalid", 422)
    except NotFound as error:
        return _scan_error(error, "unknown", 404)
    return redirect(record_url(issued))


# --- pages --------------------------------------------------------------------------------------


def _scan_error(error: DomainError, kind: str, status: int) -> ResponseReturnValue:
    return (
        render_template("web/scan.html", code="", error=error.detail, kind=kind, photo=True),
        status,
    )


def _preview(unit: Unit) -> tuple[UnitLabel | None, str | None]:
    """What the unit's label prints now, or why it cannot have one."""
    try:
        return label_for(db.session, unit, **_label_arguments()), None
    except NotLabellable as error:
        return None, error.detail


def _label_arguments() -> dict[str, Any]:
    settings = label_settings()
    return {"templates": settings.templates, "zone": settings.zone, "isbt": settings.isbt}


def _unit_page(
    unit: Unit, error: DomainError | None = None, which: str = "print"
) -> ResponseReturnValue:
    label, not_labellable = _preview(unit)
    log = _log_page(
        print_log.Subject(unit_id=unit.id), url_for("labels.unit_labels", unit_id=unit.id)
    )
    return _render(
        "labels/unit.html",
        error,
        which,
        unit=unit,
        label=label,
        not_labellable=not_labellable,
        **log,
        printed_before=bool(log["page"].total),
        label_state=service.label_state(db.session, unit) if label is not None else None,
        recalls=recalls_naming(db.session, units=[unit.id]).unit(unit.id),
    )


def _patient_page(
    patient_id: int, error: DomainError | None = None, which: str = "print"
) -> ResponseReturnValue:
    patient = patients.get_patient(db.session, patient_id)
    try:
        label, not_labellable = wristband_for(patient, templates=label_settings().templates), None
    except NotLabellable as refused:
        label, not_labellable = None, refused.detail
    log = _log_page(
        print_log.Subject(patient_id=patient.id),
        url_for("labels.patient_labels", patient_id=patient.id),
    )
    return _render(
        "labels/patient.html",
        error,
        which,
        patient=patient,
        label=label,
        not_labellable=not_labellable,
        **log,
        printed_before=bool(log["page"].total),
        doses=[o for o in orders.orders_of(db.session, patient) if o.dose_unit_id],
        recalls=recalls_naming(db.session, patients=[patient.id]).patient(patient.id),
    )


def _lot_page(
    lot: Lot, error: DomainError | None = None, which: str = "print"
) -> ResponseReturnValue:
    bags = processing.bags_of(db.session, lot)
    return _render(
        "labels/lot.html",
        error,
        which,
        lot=lot,
        bags=bags,
        reconciliation=service.reconciliation(db.session, lot),
        **_log_page(print_log.Subject(lot_id=lot.id), url_for("labels.lot_labels", lot_id=lot.id)),
        printed_before=bool(service.printed_before(db.session, bags)),
        release_reason=document_text(service.RELEASE_REPRINT_REASON),
        recalls=recalls_naming(db.session, lots=[lot.id]).lot(lot.id),
    )


def _log_page(subject: print_log.Subject, url: str) -> dict[str, Any]:
    """The page of a unit's, lot's or patient's print log the request asks for (the first,
    newest first, unless it says), for ``_print_log.html``: its prints, the page and the
    notes of what was corrected, and ``url``, the label page's, for the pager (a refused
    post renders the page at another address). A print form's answer reads this page again
    (app.js): the first page shows the new prints."""
    _query, page_asked, notes = page_request(ListQueryIn(), request.args)
    page = print_log.prints_page(db.session, page_asked, subject=subject)
    return {"prints": page.items, "page": page, "notes": notes, "log_url": url}


def _render(
    template: str, error: DomainError | None, which: str, **context: Any
) -> tuple[str, int]:
    return (
        render_template(
            template,
            error=error.detail if error else None,
            errors=error.errors if error else {},
            which=which if error else None,
            form={k: v for k, v in request.form.items() if k != "csrf_token"} if error else {},
            formats=[member.value for member in OutputFormat],
            max_copies=MAX_COPIES,
            **context,
        ),
        error.status if error else 200,
    )
