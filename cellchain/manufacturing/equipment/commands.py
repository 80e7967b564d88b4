"""Acting-user glue of equipment, shared by the API and the pages: the acting user, the time
and the site's day from the request, then the service. No rules here."""

from __future__ import annotations

from typing import Any

from werkzeug.datastructures import FileStorage

from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone
from cellchain.manufacturing.equipment import service
from cellchain.manufacturing.models import (
    Equipment,
    EquipmentEvent,
    EquipmentEventKind,
    EquipmentKind,
)
from cellchain.manufacturing.storage import reading_import


def today() -> Any:
    """The site's calendar day of this request."""
    return now().astimezone(site_zone()).date()


def register_equipment_as_user(session: DbSession, data: dict[str, Any]) -> Equipment:
    """A piece of equipment from loaded ``EquipmentIn`` data."""
    return service.register_equipment(
        session,
        service.EquipmentInput(
            code=data["code"],
            kind=EquipmentKind(data["kind"]),
            name=data["name"],
            calibration_interval_days=data.get("calibration_interval_days"),
            calibration_exempt_reason=data.get("calibration_exempt_reason"),
            maintenance_interval_days=data.get("maintenance_interval_days"),
        ),
        actor=acting_user(),
        now=now(),
    )


def change_intervals_as_user(
    session: DbSession, equipment_id: int, data: dict[str, Any]
) -> Equipment:
    """New intervals from loaded ``IntervalsChangeIn`` data."""
    item = service.get_equipment(session, equipment_id)
    return service.change_intervals(
        session,
        item,
        service.Intervals(
            data.get("calibration_interval_days"),
            data.get("calibration_exempt_reason"),
            data.get("maintenance_interval_days"),
        ),
        reason=data["reason"],
        actor=acting_user(),
        now=now(),
    )


def certificate_upload(upload: FileStorage | None) -> service.CertificateFile | None:
    """The uploaded certificate file, if one was chosen (read whole: the service checks the
    size; the request's own limit, MAX_CONTENT_LENGTH, bounds it first)."""
    if upload is None or not upload.filename:
        return None
    return service.CertificateFile(file_name=upload.filename, content=upload.read())


def record_event_as_user(
    session: DbSession,
    equipment_id: int,
    data: dict[str, Any],
    certificate: service.CertificateFile | None,
) -> EquipmentEvent:
    """A calibration or maintenance from loaded ``EventIn`` data and the uploaded file."""
    item = service.get_equipment(session, equipment_id)
    return service.record_event(
        session,
        item,
        service.EventInput(
            kind=EquipmentEventKind(data["kind"]),
            performed_on=data["performed_on"],
            performed_by=data["performed_by"],
            passed=data["result"] == "pass",
            certificate_ref=data.get("certificate_ref"),
            notes=data.get("notes"),
            certificate=certificate,
        ),
        actor=acting_user(),
        now=now(),
        today=today(),
    )


def import_readings_as_user(session: DbSession, content: bytes) -> reading_import.ImportOutcome:
    """Tank readings from a monitoring system's CSV export, all or none."""
    return reading_import.import_readings(
        session, content, actor=acting_user(), now=now(), zone=site_zone()
    )
