"""Schemas of recalls: input shapes for opening, notifying and closing, and the output of
recalls for the API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.schemas import SignatureOut, SiteDateTime, WholeNumber
from cellchain.traceability.models import RecallStatus, RecallTarget
from cellchain.traceability.recalls.recalls import MIN_REASON_LENGTH


class RecallOpenIn(ma.Schema):
    target_type = ma.fields.String(
        required=True,
        validate=validate.OneOf([t.value for t in RecallTarget]),
        metadata={"description": "donation, lot or material_lot"},
    )
    target_id = WholeNumber(required=True, strict=False, validate=validate.Range(min=1))
    reason = ma.fields.String(
        required=True, validate=validate.Length(min=MIN_REASON_LENGTH, max=2000)
    )
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(max=200))


class NotificationIn(ma.Schema):
    notified_at = SiteDateTime(
        required=True,
        metadata={"description": "When the patient was told (ISO 8601; no offset: site time)"},
    )
    method = ma.fields.String(required=True, validate=validate.Length(min=2, max=40))
    note = ma.fields.String(load_default=None, validate=validate.Length(max=2000))


class RecallCloseIn(ma.Schema):
    note = ma.fields.String(
        required=True, validate=validate.Length(min=MIN_REASON_LENGTH, max=2000)
    )
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(max=200))


class RecallUnitOut(ma.Schema):
    unit = ma.fields.String(attribute="unit.code")
    status_before = ma.fields.String()
    outcome = ma.fields.String()
    status_now = ma.fields.String(attribute="unit.status")


class NotificationOut(ma.Schema):
    patient_id = ma.fields.Integer()
    study_id = ma.fields.String(attribute="patient.study_id")
    notified = ma.fields.Boolean()
    notified_at = ma.fields.AwareDateTime(allow_none=True)
    method = ma.fields.String(allow_none=True)
    note = ma.fields.String(allow_none=True)
    recorded_by = ma.fields.Function(lambda n: n.recorded_by.username if n.recorded_by else None)


class RecallOut(ma.Schema):
    id = ma.fields.Integer()
    number = ma.fields.String()
    target_type = ma.fields.String()
    target_id = ma.fields.Integer()
    target_label = ma.fields.String()
    reason = ma.fields.String()
    status = ma.fields.String()
    opened_at = ma.fields.AwareDateTime()
    opened_by = ma.fields.String(attribute="opened_by.username")
    closed_at = ma.fields.AwareDateTime(allow_none=True)
    closed_by = ma.fields.Function(lambda r: r.closed_by.username if r.closed_by else None)
    closing_note = ma.fields.String(allow_none=True)
    notifications = ma.fields.List(ma.fields.Nested(NotificationOut))


class WithdrawnDoseOut(ma.Schema):
    dose_order_id = ma.fields.Integer()
    patient = ma.fields.String(attribute="dose_order.patient.study_id")
    visit = ma.fields.String(attribute="dose_order.visit")
    status_before = ma.fields.String()
    status_now = ma.fields.String(attribute="dose_order.status")


class RecallDetailOut(ma.Schema):
    recall = ma.fields.Nested(RecallOut)
    withdrawn = ma.fields.List(
        ma.fields.Nested(WithdrawnDoseOut),
        metadata={"description": "Dose orders not yet infused, cancelled by the recall"},
    )
    blocked = ma.fields.List(ma.fields.Nested(RecallUnitOut))
    out_of_use = ma.fields.List(ma.fields.Nested(RecallUnitOut))
    infused = ma.fields.List(ma.fields.Nested(RecallUnitOut))
    opening_signatures = ma.fields.List(ma.fields.Nested(SignatureOut))
    closing_signatures = ma.fields.List(ma.fields.Nested(SignatureOut))


class RecallQueryIn(ListQueryIn):
    """The recalls list's page (``core.listing``; open first, then newest; sort by status,
    opened, number or closed; ``q`` searches the number, what is recalled and the reason),
    filtered by status."""

    status = ma.fields.String(validate=validate.OneOf([s.value for s in RecallStatus]))
