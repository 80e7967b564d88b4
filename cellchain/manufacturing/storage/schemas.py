"""Schemas of LN2 storage and tank readings: the API's bodies and the pages' forms (in), and
what the API returns (out). No rules here."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from cellchain.chain.schemas import UnitOut
from cellchain.core.schemas import SiteDateTime, WholeNumber
from cellchain.manufacturing.deviations.schemas import DeviationOut

# --- input schemas (the API's bodies and the pages' forms) -------------------------------------


class PlacementIn(ma.Schema):
    """Where in the tank: rack, box and slot as printed on them, and when (now if absent)."""

    rack = ma.fields.String(required=True, validate=validate.Length(min=1, max=20))
    box = ma.fields.String(required=True, validate=validate.Length(min=1, max=20))
    slot = ma.fields.String(required=True, validate=validate.Length(min=1, max=20))
    at = SiteDateTime(
        metadata={"description": "When it was put there; now if absent. No offset: site time."}
    )


class StoreIn(PlacementIn):
    """Store the unit of the URL in a slot of a tank (moving it if it is stored elsewhere)."""

    tank_id = WholeNumber(required=True, strict=True)


class StoreScanIn(PlacementIn):
    """The page's form: the unit is scanned (its code typed by the scanner)."""

    code = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "The unit's code as scanned"},
    )


class ReadingIn(ma.Schema):
    temperature_c = ma.fields.Float(required=True, allow_nan=False)
    at = SiteDateTime(
        metadata={"description": "When the tank was read; now if absent. No offset: site time."}
    )


# --- output schemas -----------------------------------------------------------------------------


class ReadingOut(ma.Schema):
    id = ma.fields.Integer()
    tank_id = ma.fields.Integer()
    at = ma.fields.AwareDateTime()
    temperature_c = ma.fields.Float()
    recorded_at = ma.fields.AwareDateTime()
    recorded_by_id = ma.fields.Integer(allow_none=True)


class TankOut(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    active = ma.fields.Boolean()
    occupied = ma.fields.Integer(metadata={"description": "Slots holding a unit"})
    last_reading = ma.fields.Nested(ReadingOut, allow_none=True)


class PositionOut(ma.Schema):
    id = ma.fields.Integer()
    tank_id = ma.fields.Integer()
    tank = ma.fields.String(attribute="tank.code")
    rack = ma.fields.String()
    box = ma.fields.String()
    slot = ma.fields.String()
    label = ma.fields.String()
    since = ma.fields.AwareDateTime(allow_none=True)
    unit = ma.fields.Nested(UnitOut, allow_none=True)
    lot_number = ma.fields.String(allow_none=True)


class TankDetailOut(TankOut):
    positions = ma.fields.List(ma.fields.Nested(PositionOut))
    readings = ma.fields.List(
        ma.fields.Nested(ReadingOut), metadata={"description": "Latest first"}
    )


class ReadingResultOut(ma.Schema):
    reading = ma.fields.Nested(ReadingOut)
    deviations = ma.fields.List(
        ma.fields.Nested(DeviationOut), metadata={"description": "Opened by this reading"}
    )
