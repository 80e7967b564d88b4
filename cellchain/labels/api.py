"""API of the labels package: print a unit's or a lot's labels (the file is the response),
the print log and reconciliation, applied and destroyed labels, and scanning a photo."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import request
from flask_smorest import Blueprint

from cellchain.chain import service as chain
from cellchain.chain.api import scan_result
from cellchain.chain.schemas import ScanOut
from cellchain.core import numbering
from cellchain.core.listing import PageRequest
from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import requires, unit_of_work
from cellchain.labels import photo, print_log, service
from cellchain.labels.commands import (
    destroy_labels,
    file_response,
    print_lot_labels,
    print_unit_labels,
    print_wristband,
    record_lot_label_applied,
    record_unit_label_applied,
)
from cellchain.labels.schemas import (
    AppliedIn,
    DestroyedIn,
    LabelPrintOut,
    LotLabelsOut,
    LotPrintIn,
    PrintIn,
)
from cellchain.manufacturing.processing import processing
from cellchain.web.listing import PAGINATION_HEADERS, paged

labels_api = Blueprint(
    "labels_api", __name__, url_prefix="/api/v1", description="Labels: print, log, reconcile"
)
blueprints = (labels_api,)

_FILES = {
    "200": {
        "description": "The labels: PNG (a ZIP of PNGs for several units), PDF sheet or ZPL",
        "content": {
            "image/png": {},
            "application/zip": {},
            "application/pdf": {},
            "application/vnd.zebra.zpl": {},
        },
    }
}


@labels_api.get("/label-prints")
@requires(Permission.READ_RECORDS)
@labels_api.arguments(print_log.PrintLogQueryIn, location="query")
@labels_api.response(200, LabelPrintOut(many=True), headers=PAGINATION_HEADERS)
def print_log_list(args: dict[str, Any]) -> Any:
    """Every label printed on the site, newest first, a page at a time (the
    ``X-Pagination`` header); ``label_type``, ``format``, ``quarantine``, ``reprint`` and
    ``open`` (unit labels with copies to apply; yes or no) to filter, ``q`` to search the
    unit code (a wristband's study ID and COI), the lot number and the reprint reason."""
    page = print_log.prints_page(db.session, PageRequest.of(args), **print_log.filters_of(args))
    return paged(page)


@labels_api.post("/units/<int:unit_id>/labels")
@requires(Permission.PRINT_LABELS)
@labels_api.arguments(PrintIn)
@labels_api.doc(responses=_FILES)
def print_unit(data: dict[str, Any], unit_id: int) -> Any:
    """Print a unit's label; the response is the file. A reprint needs a reason."""
    with unit_of_work() as session:
        printed = print_unit_labels(session, unit_id, data)
    return file_response(printed)


@labels_api.get("/units/<int:unit_id>/labels")
@requires(Permission.READ_RECORDS)
@labels_api.arguments(ListQueryIn, location="query")
@labels_api.response(200, LabelPrintOut(many=True), headers=PAGINATION_HEADERS)
def unit_log(args: dict[str, Any], unit_id: int) -> Any:
    """The print log of one unit, newest first, a page at a time (the ``X-Pagination``
    header; sort by printed, unit or type)."""
    unit = chain.get_unit(db.session, unit_id)
    subject = print_log.Subject(unit_id=unit.id)
    return paged(print_log.prints_page(db.session, PageRequest.of(args), subject=subject))


@labels_api.post("/units/<int:unit_id>/labels/applied")
@requires(Permission.RECONCILE_LABELS)
@labels_api.arguments(AppliedIn)
@labels_api.response(200, LabelPrintOut)
def unit_applied(data: dict[str, Any], unit_id: int) -> Any:
    """The unit's label put on it, scanned there (a prepared dose's label: it has no lot)."""
    with unit_of_work() as session:
        record = record_unit_label_applied(session, unit_id, data)
    return record


@labels_api.post("/patients/<int:patient_id>/labels")
@requires(Permission.ENROL_PATIENTS)
@labels_api.arguments(PrintIn)
@labels_api.doc(responses=_FILES)
def print_patient(data: dict[str, Any], patient_id: int) -> Any:
    """Print a patient's wristband (study ID and COI identifier); the response is the file."""
    with unit_of_work() as session:
        printed = print_wristband(session, patient_id, data)
    return file_response(printed)


@labels_api.get("/patients/<int:patient_id>/labels")
@requires(Permission.READ_RECORDS)
@labels_api.arguments(ListQueryIn, location="query")
@labels_api.response(200, LabelPrintOut(many=True), headers=PAGINATION_HEADERS)
def patient_log(args: dict[str, Any], patient_id: int) -> Any:
    """The wristband print log of one patient, newest first, a page at a time (the
    ``X-Pagination`` header)."""
    from cellchain.dosing import patients

    patient = patients.get_patient(db.session, patient_id)
    subject = print_log.Subject(patient_id=patient.id)
    return paged(print_log.prints_page(db.session, PageRequest.of(args), subject=subject))


@labels_api.post("/lots/<int:lot_id>/labels")
@requires(Permission.PRINT_LABELS)
@labels_api.arguments(LotPrintIn)
@labels_api.doc(responses=_FILES)
def print_lot(data: dict[str, Any], lot_id: int) -> Any:
    """Print the labels of every bag of the lot (or only the quarantine labels to replace)."""
    with unit_of_work() as session:
        printed = print_lot_labels(session, lot_id, data)
    return file_response(printed)


@labels_api.get("/lots/<int:lot_id>/labels")
@requires(Permission.READ_RECORDS)
@labels_api.arguments(ListQueryIn, location="query")
@labels_api.response(200, LotLabelsOut, headers=PAGINATION_HEADERS)
def lot_log(args: dict[str, Any], lot_id: int) -> Any:
    """The lot's label reconciliation (issued = applied + destroyed + outstanding, of every
    print) and its print log, newest first, a page at a time (``prints``; the
    ``X-Pagination`` header)."""
    lot = processing.get_lot(db.session, lot_id)
    subject = print_log.Subject(lot_id=lot.id)
    prints, headers = paged(
        print_log.prints_page(db.session, PageRequest.of(args), subject=subject)
    )
    return {
        "lot": lot.lot_number,
        "reconciliation": service.reconciliation(db.session, lot),
        "prints": prints,
    }, headers


@labels_api.post("/lots/<int:lot_id>/labels/applied")
@requires(Permission.RECONCILE_LABELS)
@labels_api.arguments(AppliedIn)
@labels_api.response(200, LabelPrintOut)
def applied(data: dict[str, Any], lot_id: int) -> Any:
    """A label put on its container, scanned there."""
    with unit_of_work() as session:
        record = record_lot_label_applied(session, lot_id, data)
    return record


@labels_api.post("/label-prints/<int:print_id>/destroyed")
@requires(Permission.RECONCILE_LABELS)
@labels_api.arguments(DestroyedIn)
@labels_api.response(200, LabelPrintOut)
def destroyed(data: dict[str, Any], print_id: int) -> Any:
    """Copies of a print destroyed (spoiled, superseded, not used), with the reason."""
    with unit_of_work() as session:
        record = destroy_labels(session, print_id, data)
    return record


class PhotoIn(ma.Schema):
    photo = ma.fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


@labels_api.post("/scan/photo")
@requires(Permission.USE_APP)
@labels_api.arguments(PhotoIn, location="files")
@labels_api.response(200, ScanOut)
def scan_photo(data: dict[str, Any]) -> Any:
    """Read the label in a photo (multipart field ``photo``) and resolve it like a scan.

    No readable cellchain QR code: 422 with what to do. Otherwise as ``GET /scan``.
    """
    text = photo.read_photo(request.files["photo"].read())
    return scan_result(numbering.lookup(db.session, text))
