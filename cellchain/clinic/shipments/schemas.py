"""Marshmallow schemas of shipments: dispatch, hand-offs, receipt, QA's decision on a hold."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from cellchain.clinic.models import Condition, ShipmentStatus
from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.schemas import SCANNED_CODE, SiteDateTime, WholeNumber
from cellchain.traceability.notice_schemas import recalls_field


class DispatchIn(ma.Schema):
    """Send prepared doses to the clinic: the shipper, its logger, where to, the courier who
    takes custody, and the dose labels scanned."""

    shipper_id = ma.fields.String(required=True, validate=validate.Length(max=60))
    logger_id = ma.fields.String(required=True, validate=validate.Length(max=60))
    site_id = WholeNumber(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "The active clinical site (id) it goes to; may be left out when"
            " only one clinical site is active"
        },
    )
    destination = ma.fields.String(
        load_default="",
        validate=validate.Length(max=120),
        metadata={"description": "Where at the site (e.g. infusion room 2); default its name"},
    )
    courier = ma.fields.String(required=True, validate=validate.Length(max=120))
    doses = ma.fields.List(ma.fields.String(), required=True, metadata={"description": "Scanned"})


class HandOffIn(ma.Schema):
    scan = ma.fields.String(
        required=True, validate=SCANNED_CODE, metadata={"description": "Shipper ID or a dose label"}
    )
    counterparty = ma.fields.String(required=True, validate=validate.Length(max=120))
    location = ma.fields.String(load_default=None, allow_none=True)
    temperature_c = ma.fields.Float(load_default=None, allow_none=True)
    at = SiteDateTime(load_default=None, allow_none=True)


class ShipmentReceiptIn(ma.Schema):
    scan = ma.fields.String(
        required=True, validate=SCANNED_CODE, metadata={"description": "Shipper ID or a dose label"}
    )
    temperature_c = ma.fields.Float(
        required=True,
        allow_none=True,
        metadata={"description": "Inside the shipper on arrival, °C"},
    )
    condition = ma.fields.String(
        required=True, validate=validate.OneOf([c.value for c in Condition])
    )
    logger_excursion = ma.fields.Boolean(load_default=False)
    received_at = SiteDateTime(load_default=None, allow_none=True)
    note = ma.fields.String(load_default=None, allow_none=True)


class DecisionIn(ma.Schema):
    accept = ma.fields.Boolean(
        required=True, metadata={"description": "true: accept for use; false: reject"}
    )
    reason = ma.fields.String(required=True)
    password = ma.fields.String(required=True, load_only=True)


def _code(unit: Any) -> str | None:
    return unit.code if unit is not None else None


class ShipmentOut(ma.Schema):
    id = ma.fields.Integer()
    #: the clinical site it goes to (issue 22)
    site = ma.fields.Function(lambda s: s.destination_site.code)
    shipper_id = ma.fields.String()
    logger_id = ma.fields.String()
    destination = ma.fields.String()
    status = ma.fields.String()
    dispatched_at = ma.fields.AwareDateTime()
    dispatched_by = ma.fields.String(attribute="dispatched_by.username")
    received_at = ma.fields.AwareDateTime(allow_none=True)
    received_by = ma.fields.Function(lambda s: s.received_by.username if s.received_by else None)
    arrival_temperature_c = ma.fields.Float(allow_none=True)
    condition = ma.fields.String(allow_none=True)
    logger_excursion = ma.fields.Boolean(allow_none=True)
    hold_reason = ma.fields.String(allow_none=True)
    decided_at = ma.fields.AwareDateTime(allow_none=True)
    decided_by = ma.fields.Function(lambda s: s.decided_by.username if s.decided_by else None)
    decision_reason = ma.fields.String(allow_none=True)
    doses = ma.fields.Function(
        lambda s: [
            {"dose_order_id": i.dose_order_id, "dose_unit": _code(i.dose_order.dose_unit)}
            for i in s.items
        ]
    )
    recalls = recalls_field()


class ShipmentDetailOut(ShipmentOut):
    """One shipment, with the recalls that name its doses."""


class ShipmentQueryIn(ListQueryIn):
    """The shipments list's page (``core.listing``; newest first, 100 a page; sort by
    dispatched, status, received or shipper; ``q`` searches the shipper and logger IDs, the
    destination and the patients' study IDs), filtered by status."""

    status = ma.fields.String(validate=validate.OneOf([s.value for s in ShipmentStatus]))
