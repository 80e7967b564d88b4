"""Schemas of deviations: the API's bodies and the pages' forms (in), and what the API
returns (out). No rules here."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.schemas import SignatureOut, WholeNumber
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.deviations.deviations import DeviationStatus
from cellchain.manufacturing.models import DeviationCategory

CATEGORY_CHOICES = [category.value for category in DeviationCategory]
STATUS_CHOICES = [status.value for status in DeviationStatus]


# --- input schemas (the API's bodies and the pages' forms) -------------------------------------


class DeviationBaseIn(ma.Schema):
    category = ma.fields.String(required=True, validate=validate.OneOf(CATEGORY_CHOICES))
    description = ma.fields.String(
        required=True, validate=validate.Length(min=1, max=deviations.MAX_TEXT)
    )


class DeviationOpenIn(DeviationBaseIn):
    lot_id = WholeNumber(
        strict=True, allow_none=True, metadata={"description": "The lot concerned, if any"}
    )
    donation_id = WholeNumber(
        strict=True,
        allow_none=True,
        metadata={
            "description": "The donation concerned, when there is no lot yet (required for a "
            "limit excursion without a lot)"
        },
    )


class DeviationFormIn(DeviationBaseIn):
    """The page's form names the lot by its number, or the donation by its DIN (optional)."""

    lot_number = ma.fields.String(validate=validate.Length(max=40))
    din = ma.fields.String(validate=validate.Length(max=40))


class ExcursionAuthoriseIn(ma.Schema):
    """QA authorises a limit excursion: up to which passage and/or CPD, and why."""

    max_passage = WholeNumber(
        allow_none=True, metadata={"description": "Highest passage allowed (P number)"}
    )
    max_cumulative_pd = ma.fields.Float(
        allow_none=True, allow_nan=False, metadata={"description": "Highest CPD allowed"}
    )
    justification = ma.fields.String(
        required=True, validate=validate.Length(min=1, max=deviations.MAX_TEXT)
    )
    password = ma.fields.String(required=True, load_only=True)


class DeviationCloseIn(ma.Schema):
    resolution = ma.fields.String(
        required=True, validate=validate.Length(min=1, max=deviations.MAX_TEXT)
    )
    password = ma.fields.String(required=True, load_only=True)


class DeviationQueryIn(ListQueryIn):
    """The deviations list's page (``core.listing``; newest first; sort by opened, status,
    category or closed; ``q`` searches the number, the lot number and the description)
    and its filters."""

    status = ma.fields.String(validate=validate.OneOf(STATUS_CHOICES))
    category = ma.fields.String(validate=validate.OneOf([c.value for c in DeviationCategory]))


# --- output schemas -----------------------------------------------------------------------------

#: How the OpenAPI document describes a computed text field that may be null.
NULLABLE_TEXT = {"type": "string", "nullable": True}


class DeviationOut(ma.Schema):
    id = ma.fields.Integer()
    lot_id = ma.fields.Integer(allow_none=True)
    lot_number = ma.fields.Function(
        lambda d: d.lot.lot_number if d.lot else None, metadata=NULLABLE_TEXT
    )
    donation_id = ma.fields.Integer(allow_none=True)
    category = ma.fields.String()
    description = ma.fields.String()
    status = ma.fields.String()
    opened_at = ma.fields.AwareDateTime()
    opened_by = ma.fields.Function(
        lambda d: d.opened_by.username if d.opened_by else None, metadata=NULLABLE_TEXT
    )
    closed_at = ma.fields.AwareDateTime(allow_none=True)
    closed_by = ma.fields.Function(
        lambda d: d.closed_by.username if d.closed_by else None, metadata=NULLABLE_TEXT
    )
    resolution = ma.fields.String(allow_none=True)


class ExcursionAuthorisationOut(ma.Schema):
    id = ma.fields.Integer()
    max_passage = ma.fields.Integer(allow_none=True)
    max_cumulative_pd = ma.fields.Float(allow_none=True)
    justification = ma.fields.String()
    authorised_at = ma.fields.AwareDateTime()
    authorised_by = ma.fields.String(attribute="authorised_by.username")
    signatures = ma.fields.List(ma.fields.Nested(SignatureOut))


class DeviationDetailOut(DeviationOut):
    signatures = ma.fields.List(ma.fields.Nested(SignatureOut))
    authorisation = ma.fields.Nested(
        ExcursionAuthorisationOut,
        allow_none=True,
        metadata={"description": "QA's signed authorisation of a limit excursion, if any"},
    )
