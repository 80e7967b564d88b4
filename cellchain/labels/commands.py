"""Acting-user glue of labels, shared by the API and the pages: the site's label settings,
printing a unit's, a lot's or a patient's labels from a loaded form or body, recording labels
applied or destroyed, and the file response. No rules here."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app

from cellchain.chain import service as chain
from cellchain.extensions import DbSession, db
from cellchain.http import acting_user, now, site_zone
from cellchain.labels import service
from cellchain.labels.content import IsbtSettings
from cellchain.labels.models import LabelPrint
from cellchain.labels.service import LabelSettings, PrintedFile
from cellchain.labels.template_documents import templates_in_force
from cellchain.manufacturing.processing import processing


def label_settings() -> LabelSettings:
    """The label templates in force (controlled documents), the site's zone and its ISBT 128
    product codes."""
    return LabelSettings(
        # read on every print, so the version and hash logged are those of the version used
        templates=templates_in_force(db.session, at=now()),
        zone=site_zone(),
        isbt=IsbtSettings(dict(current_app.config.get("ISBT128_PRODUCT_CODES") or {})),
    )


def file_response(printed: PrintedFile) -> Response:
    """The printed labels as a download, with the print log rows named in a header."""
    return Response(
        printed.data,
        mimetype=printed.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{printed.filename}"',
            "X-Label-Print-Ids": ",".join(str(print_id) for print_id in printed.print_ids),
        },
    )


def print_unit_labels(session: DbSession, unit_id: int, data: dict[str, Any]) -> PrintedFile:
    """Print one unit's label as the acting user, from loaded ``PrintIn`` data."""
    unit = chain.get_unit(session, unit_id)
    return service.print_labels(
        session,
        [unit],
        output_format=data["format"],
        copies=data["copies"],
        reason=data["reason"],
        settings=label_settings(),
        actor=acting_user(),
        now=now(),
        name=f"{unit.code}-label",
    )


def print_lot_labels(session: DbSession, lot_id: int, data: dict[str, Any]) -> PrintedFile:
    """Print a lot's bag labels as the acting user, from loaded ``LotPrintIn`` data."""
    return service.print_lot_labels(
        session,
        processing.get_lot(session, lot_id),
        output_format=data["format"],
        copies=data["copies"],
        reason=data["reason"],
        settings=label_settings(),
        actor=acting_user(),
        now=now(),
        only_to_replace=data["replace_quarantine_labels"],
    )


def print_wristband(session: DbSession, patient_id: int, data: dict[str, Any]) -> PrintedFile:
    """Print a patient's wristband as the acting user, from loaded ``PrintIn`` data."""
    from cellchain.dosing import patients

    return service.print_wristband(
        session,
        patients.get_patient(session, patient_id),
        output_format=data["format"],
        copies=data["copies"],
        reason=data["reason"],
        settings=label_settings(),
        actor=acting_user(),
        now=now(),
    )


def record_unit_label_applied(session: DbSession, unit_id: int, data: dict[str, Any]) -> LabelPrint:
    """A unit's own label (a prepared dose's: it has no lot) scanned on it, from ``AppliedIn``."""
    return service.record_applied(
        session,
        None,
        data["code"],
        actor=acting_user(),
        now=now(),
        unit=chain.get_unit(session, unit_id),
    )


def record_lot_label_applied(session: DbSession, lot_id: int, data: dict[str, Any]) -> LabelPrint:
    """A lot's label scanned on its container as the acting user, from ``AppliedIn``."""
    return service.record_applied(
        session,
        processing.get_lot(session, lot_id),
        data["code"],
        actor=acting_user(),
        now=now(),
    )


def destroy_labels(session: DbSession, print_id: int, data: dict[str, Any]) -> LabelPrint:
    """Copies of a print destroyed as the acting user, from loaded ``DestroyedIn`` data."""
    return service.destroy_labels(
        session,
        service.get_print(session, print_id),
        data["count"],
        data["reason"],
        actor=acting_user(),
        now=now(),
    )
