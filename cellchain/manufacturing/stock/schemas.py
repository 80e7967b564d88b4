"""Shapes of material stock (issue 22): the stock list's query and rows, a lot's stock, an
adjustment, a reorder level. No rules, no database."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from cellchain.core.i18n import N_
from cellchain.core.listing_schemas import ListQueryIn
from cellchain.manufacturing.models import StockAdjustmentKind, StockUnit
from cellchain.manufacturing.stock.inputs import AdjustmentInput, StockState


class StockQueryIn(ListQueryIn):
    """The stock list's page (``core.listing``; soonest expiry first; sort by expiry,
    material, lot, received or remaining; ``q`` searches the material, lot number and
    supplier), filtered by ``state``: in_stock, expiring (within the site's warning days),
    expired_in_stock, low (materials below their reorder level)."""

    state = ma.fields.String(validate=validate.OneOf([s.value for s in StockState]))


class StockLotOut(ma.Schema):
    """A material lot with what remains of it (null when the lot is not counted)."""

    id = ma.fields.Integer()
    material = ma.fields.String()
    category = ma.fields.String()
    supplier = ma.fields.String()
    lot_number = ma.fields.String()
    expiry_date = ma.fields.Date()
    received_at = ma.fields.AwareDateTime()
    quantity_received = ma.fields.Float(allow_none=True)
    unit = ma.fields.String(allow_none=True, metadata={"description": "mL, g or units"})
    remaining = ma.fields.Float(allow_none=True)
    released_at = ma.fields.AwareDateTime(allow_none=True)
    released_by = ma.fields.String(allow_none=True)
    recalled_at = ma.fields.AwareDateTime(allow_none=True)
    actions = ma.fields.List(
        ma.fields.String(), metadata={"description": "release, adjust (permissions apart)"}
    )

    @staticmethod
    def of(lot: Any, remaining: float | None, actions: Any) -> dict[str, Any]:
        return {
            **{
                name: getattr(lot, name)
                for name in StockLotOut._declared_fields
                if hasattr(lot, name)
            },
            "released_by": lot.released_by.username if lot.released_by else None,
            "remaining": remaining,
            "actions": sorted(str(act) for act in actions),
        }


class UseOut(ma.Schema):
    """A step's use of the lot."""

    step_id = ma.fields.Integer()
    step_kind = ma.fields.String()
    performed_at = ma.fields.AwareDateTime()
    performed_by = ma.fields.String()
    lot_id = ma.fields.Integer(allow_none=True, metadata={"description": "The lot it ended in"})
    quantity = ma.fields.Float(allow_none=True)
    quantity_source = ma.fields.String(allow_none=True, metadata={"description": "step or entered"})


class AdjustmentOut(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    quantity = ma.fields.Float(metadata={"description": "The change: negative takes away"})
    reason = ma.fields.String()
    made_at = ma.fields.AwareDateTime()
    made_by = ma.fields.String(attribute="made_by.username")


class LotStockOut(StockLotOut):
    used = ma.fields.Float()
    adjusted = ma.fields.Float()
    uses = ma.fields.List(ma.fields.Nested(UseOut))
    adjustments = ma.fields.List(ma.fields.Nested(AdjustmentOut))


class AdjustmentIn(ma.Schema):
    """A write-off or spillage (``quantity``: taken away) or a count correction
    (``quantity``: what the count found), with its reason."""

    kind = ma.fields.String(
        required=True,
        validate=validate.OneOf(
            [k.value for k in StockAdjustmentKind], error=N_("Choose one of the kinds listed.")
        ),
    )
    quantity = ma.fields.Float(
        required=True,
        allow_nan=False,
        validate=validate.Range(min=0, error=N_("Zero or more.")),
        metadata={"description": "Taken away; for a count correction, the quantity counted"},
    )
    reason = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000, error=N_("Required; at most 2000 characters.")),
    )

    @ma.post_load
    def to_input(self, data: dict[str, Any], **_kwargs: Any) -> AdjustmentInput:
        return AdjustmentInput(
            kind=StockAdjustmentKind(data["kind"]), quantity=data["quantity"], reason=data["reason"]
        )


class ReorderLevelIn(ma.Schema):
    material = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=120, error=N_("Required; at most 120 characters.")),
    )
    unit = ma.fields.String(
        required=True,
        validate=validate.OneOf(
            [u.value for u in StockUnit], error=N_("Choose one of the units listed.")
        ),
    )
    level = ma.fields.Float(
        required=True, allow_nan=False, validate=validate.Range(min=0, error=N_("Zero or more."))
    )


class ReorderLevelOut(ma.Schema):
    id = ma.fields.Integer()
    material = ma.fields.String()
    unit = ma.fields.String()
    level = ma.fields.Float()
    set_at = ma.fields.AwareDateTime()
