"""The equipment API (issue 22): the list with due states, one piece with its history,
registration, intervals, calibrations and maintenances, and a certificate file."""

from __future__ import annotations

import io
from typing import Any

from flask import request, send_file
from flask_smorest import Blueprint

from cellchain.core.listing import PageRequest
from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import requires, unit_of_work
from cellchain.manufacturing.equipment import service
from cellchain.manufacturing.equipment.commands import (
    certificate_upload,
    change_intervals_as_user,
    import_readings_as_user,
    record_event_as_user,
    register_equipment_as_user,
    today,
)
from cellchain.manufacturing.equipment.schemas import (
    CertificateFileIn,
    EquipmentDetailOut,
    EquipmentEventOut,
    EquipmentIn,
    EquipmentOut,
    EquipmentQueryIn,
    EventIn,
    ImportOut,
    IntervalsChangeIn,
    ReadingsFileIn,
    with_state,
)
from cellchain.manufacturing.models import Equipment, EquipmentKind
from cellchain.web.listing import PAGINATION_HEADERS, paged

equipment_api = Blueprint(
    "equipment_api",
    __name__,
    url_prefix="/api/v1",
    description="Equipment: calibration and maintenance",
)
blueprints = (equipment_api,)


def _out(item: Equipment, **more: Any) -> dict[str, Any]:
    return with_state(item, service.due_state(item, today()).value, **more)


def _detail(item: Equipment) -> dict[str, Any]:
    return _out(item, history=service.history(db.session, item))


@equipment_api.get("/equipment")
@requires(Permission.READ_RECORDS)
@equipment_api.arguments(EquipmentQueryIn, location="query")
@equipment_api.response(200, EquipmentOut(many=True), headers=PAGINATION_HEADERS)
def list_equipment(args: dict[str, Any]) -> Any:
    """Equipment by asset ID, a page at a time (the ``X-Pagination`` header), each with its
    due dates and state; ``due=1``: only those due within 14 days, overdue or not
    calibrated; ``kind`` to filter; ``q`` searches the ID and name."""
    page = service.equipment_page(
        db.session,
        PageRequest.of(args),
        today=today(),
        due=bool(args.get("due")),
        kind=EquipmentKind(args["kind"]) if "kind" in args else None,
    )
    return paged(page, [_out(item) for item in page.items])


@equipment_api.post("/equipment")
@requires(Permission.REGISTER_EQUIPMENT)
@equipment_api.arguments(EquipmentIn)
@equipment_api.response(201, EquipmentOut)
def register_equipment(data: dict[str, Any]) -> Any:
    """Register a piece of equipment under its site asset ID, with its calibration interval
    (or ``calibration_exempt_reason``) and its maintenance interval."""
    with unit_of_work() as session:
        item = register_equipment_as_user(session, data)
        answer = _out(item)
    return answer


@equipment_api.get("/equipment/<int:equipment_id>")
@requires(Permission.READ_RECORDS)
@equipment_api.response(200, EquipmentDetailOut)
def get_equipment(equipment_id: int) -> Any:
    """One piece of equipment with every calibration and maintenance, newest first."""
    return _detail(service.get_equipment(db.session, equipment_id))


@equipment_api.put("/equipment/<int:equipment_id>/intervals")
@requires(Permission.REGISTER_EQUIPMENT)
@equipment_api.arguments(IntervalsChangeIn)
@equipment_api.response(200, EquipmentOut)
def change_intervals(data: dict[str, Any], equipment_id: int) -> Any:
    """Change the calibration and maintenance intervals (or the exemption), with a reason."""
    with unit_of_work() as session:
        item = change_intervals_as_user(session, equipment_id, data)
        answer = _out(item)
    return answer


@equipment_api.post("/equipment/<int:equipment_id>/events")
@requires(Permission.RECORD_CALIBRATIONS)
@equipment_api.arguments(EventIn, location="form")
@equipment_api.arguments(CertificateFileIn, location="files")
@equipment_api.response(201, EquipmentEventOut)
def record_event(data: dict[str, Any], _files: dict[str, Any], equipment_id: int) -> Any:
    """Record a calibration or maintenance (``multipart/form-data``; the certificate file, a
    PDF, PNG or JPEG of at most 5 MB, in ``certificate``)."""
    upload = certificate_upload(request.files.get("certificate"))
    with unit_of_work() as session:
        event = record_event_as_user(session, equipment_id, data, upload)
    return event


@equipment_api.get("/equipment/<int:equipment_id>/events/<int:equipment_event_id>/certificate")
@requires(Permission.READ_RECORDS)
@equipment_api.response(200, description="The certificate file as uploaded")
def certificate(equipment_id: int, equipment_event_id: int) -> Any:
    """The certificate file of a calibration or maintenance, as uploaded."""
    item = service.get_equipment(db.session, equipment_id)
    stored = service.certificate_of(
        db.session, service.get_event(db.session, item, equipment_event_id)
    )
    return send_file(
        io.BytesIO(stored.content),
        mimetype=stored.media_type,
        as_attachment=True,
        download_name=stored.file_name,
    )


# --- tank readings from a monitoring system's CSV export ----------------------------------------


@equipment_api.post("/tank-readings/import")
@requires(Permission.RECORD_STORAGE)
@equipment_api.arguments(ReadingsFileIn, location="files")
@equipment_api.response(200, ImportOut)
def import_readings(_files: dict[str, Any]) -> Any:
    """Import tank readings from a monitoring system's CSV export (multipart field ``file``;
    columns ``timestamp`` with its UTC offset, ``tank``, ``temperature_c``, optional
    ``level_percent``). A bad row refuses the whole file (422, each problem by row number);
    readings of a tank and time on file are skipped and counted; a reading above a lot's
    storage limit opens its deviation, as a typed reading does."""
    content = request.files["file"].read()
    with unit_of_work() as session:
        outcome = import_readings_as_user(session, content)
        answer = {
            "imported": outcome.imported,
            "duplicates": outcome.duplicates,
            "deviations": [deviation.id for deviation in outcome.deviations],
        }
    return answer
