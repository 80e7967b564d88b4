"""The scan box's API shapes: the code in, what it names out (issue 21)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate


class LookupQueryIn(ma.Schema):
    #: any text: ``scanning.codes.find`` says in words what is wrong with it (the bound only
    #: keeps a pasted page out)
    code = ma.fields.String(required=True, validate=validate.Length(max=2000))


class LookupOut(ma.Schema):
    kind = ma.fields.String(
        metadata={
            "description": "What the code is: din, unit, coi, lot, patient, shipper, "
            "material_lot or equipment (scanning.codes.CodeKind)"
        }
    )
    id = ma.fields.String(
        attribute="entity_id",
        allow_none=True,
        metadata={"description": "The record's id; null for an issued code attached to nothing"},
    )
    code = ma.fields.String(metadata={"description": "The code as the record holds it"})
    url = ma.fields.String(metadata={"description": "The record's page"})
    label = ma.fields.String(metadata={"description": "The record, in words"})


class AmbiguousOut(ma.Schema):
    """A code naming several records (300 Multiple Choices): each, to choose from."""

    title = ma.fields.String()
    detail = ma.fields.String()
    errors = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()))
    matches = ma.fields.List(ma.fields.Nested(LookupOut))
