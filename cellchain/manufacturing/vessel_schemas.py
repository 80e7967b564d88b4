"""Schemas of the vessels in culture (issue 21): the list's query and its rows."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from cellchain.core.identifiers import parse_identifier
from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.schemas import WholeNumber


class VesselQueryIn(ListQueryIn):
    """The vessels in culture's page (``core.listing``; the longest in culture first; sort
    by seeded, passage, code or format; ``q`` searches the vessel code and the DIN), filtered
    by passage."""

    passage = WholeNumber(
        validate=validate.Range(min=0, max=1000),
        metadata={"description": "Only the vessels at this passage"},
    )
    due = ma.fields.Boolean(
        load_default=False,
        metadata={
            "description": "Only the vessels due for their harvest today (the product "
            "definition's harvest_due_days, on the site's calendar)"
        },
    )


class VesselOut(ma.Schema):
    """A culture vessel in culture."""

    id = ma.fields.Integer()
    code = ma.fields.String(metadata={"description": "Canonical unit code with check character"})
    display = ma.fields.Method("dump_display", metadata={"description": "As printed, K boxed"})
    status = ma.fields.String()
    donation_id = ma.fields.Integer()
    din = ma.fields.String()
    passage = ma.fields.Integer()
    vessel_format = ma.fields.String(allow_none=True)
    seeded_at = ma.fields.AwareDateTime(metadata={"description": "When it was seeded"})
    seeded_on = ma.fields.Date(metadata={"description": "The site's day it was seeded"})
    days_in_culture = ma.fields.Integer(
        metadata={"description": "Whole days from the site's day of seeding to today's"}
    )
    location = ma.fields.String()

    def dump_display(self, vessel: Any) -> str:
        return parse_identifier(vessel.code).display
