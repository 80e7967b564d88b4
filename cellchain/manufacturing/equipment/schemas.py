"""Schemas of equipment (issue 22): registration, intervals, calibration and maintenance
records (in), the equipment and its history (out), and the list's query. No rules here."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from cellchain.core.i18n import N_
from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.schemas import WholeNumber
from cellchain.manufacturing.models import EquipmentEventKind, EquipmentKind

#: The longest interval a form accepts (the service says the same: ``MAX_INTERVAL_DAYS``).
_INTERVAL = validate.Range(min=1, max=3650, error=N_("From 1 to 3650 days."))


def _text(maximum: int, message: str) -> validate.Length:
    return validate.Length(min=1, max=maximum, error=message)


class IntervalsIn(ma.Schema):
    """A calibration interval in days, or the reason it is not subject to calibration; a
    maintenance interval in days if it has scheduled maintenance."""

    calibration_interval_days = WholeNumber(load_default=None, allow_none=True, validate=_INTERVAL)
    calibration_exempt_reason = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=500, error=N_("At most 500 characters.")),
        metadata={"description": "Why it is not subject to calibration (then no interval)"},
    )
    maintenance_interval_days = WholeNumber(load_default=None, allow_none=True, validate=_INTERVAL)


class EquipmentIn(IntervalsIn):
    code = ma.fields.String(
        required=True, validate=_text(40, N_("Required; at most 40 characters."))
    )
    kind = ma.fields.String(
        required=True,
        validate=validate.OneOf(
            [k.value for k in EquipmentKind], error=N_("Choose one of the kinds listed.")
        ),
    )
    name = ma.fields.String(
        required=True, validate=_text(120, N_("Required; at most 120 characters."))
    )


class IntervalsChangeIn(IntervalsIn):
    reason = ma.fields.String(
        required=True, validate=_text(500, N_("Required; at most 500 characters."))
    )


class EventIn(ma.Schema):
    """A calibration or maintenance (multipart form: the certificate file is ``certificate``)."""

    kind = ma.fields.String(
        required=True,
        validate=validate.OneOf(
            [k.value for k in EquipmentEventKind], error=N_("Choose one of the kinds listed.")
        ),
    )
    performed_on = ma.fields.Date(required=True)
    performed_by = ma.fields.String(
        required=True,
        validate=_text(120, N_("Required; at most 120 characters.")),
        metadata={"description": "Who performed it: a person or a service provider"},
    )
    result = ma.fields.String(
        required=True,
        validate=validate.OneOf(["pass", "fail"], error=N_("Choose one of the kinds listed.")),
    )
    certificate_ref = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=80, error=N_("At most 80 characters.")),
    )
    notes = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=2000, error=N_("At most 2000 characters.")),
    )


class CertificateFileIn(ma.Schema):
    certificate = ma.fields.Raw(
        metadata={"type": "string", "format": "binary", "description": "PDF, PNG or JPEG"}
    )


class EquipmentQueryIn(ListQueryIn):
    """The equipment list's page (``core.listing``; by asset ID; sort by code, kind,
    calibration_due or maintenance_due; ``q`` searches the ID and name), ``due=1``: only
    those due within 14 days, overdue or not calibrated; ``kind`` to filter."""

    due = ma.fields.Boolean()
    kind = ma.fields.String(validate=validate.OneOf([k.value for k in EquipmentKind]))


# --- out --------------------------------------------------------------------------------------


class CertificateOut(ma.Schema):
    file_name = ma.fields.String()
    media_type = ma.fields.String()
    size_bytes = ma.fields.Integer()
    sha256 = ma.fields.String()


class EquipmentEventOut(ma.Schema):
    id = ma.fields.Integer()
    equipment_id = ma.fields.Integer()
    kind = ma.fields.String()
    performed_on = ma.fields.Date()
    performed_by = ma.fields.String()
    passed = ma.fields.Boolean()
    certificate_ref = ma.fields.String(allow_none=True)
    notes = ma.fields.String(allow_none=True)
    next_due_on = ma.fields.Date(allow_none=True)
    recorded_at = ma.fields.AwareDateTime()
    recorded_by = ma.fields.Function(lambda e: e.recorded_by.username)
    certificate = ma.fields.Nested(CertificateOut, allow_none=True)


class EquipmentOut(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    kind = ma.fields.String()
    name = ma.fields.String()
    active = ma.fields.Boolean()
    calibration_interval_days = ma.fields.Integer(allow_none=True)
    calibration_exempt_reason = ma.fields.String(allow_none=True)
    maintenance_interval_days = ma.fields.Integer(allow_none=True)
    calibration_due_on = ma.fields.Date(allow_none=True)
    maintenance_due_on = ma.fields.Date(allow_none=True)
    #: in_date, due_soon, overdue, not_calibrated, out_of_service (handed in by the interface)
    due_state = ma.fields.String()


class EquipmentDetailOut(EquipmentOut):
    history = ma.fields.List(ma.fields.Nested(EquipmentEventOut))


def with_state(item: Any, state: str, **more: Any) -> dict[str, Any]:
    """An equipment's fields with its due state (and more) for ``EquipmentOut``."""
    return {
        **{name: getattr(item, name) for name in EquipmentOut().fields if hasattr(item, name)},
        "due_state": state,
        **more,
    }


class ReadingsFileIn(ma.Schema):
    file = ma.fields.Raw(
        required=True, metadata={"type": "string", "format": "binary", "description": "CSV"}
    )


class ImportOut(ma.Schema):
    imported = ma.fields.Integer()
    duplicates = ma.fields.Integer()
    deviations = ma.fields.List(ma.fields.Integer(), metadata={"description": "Deviation ids"})
