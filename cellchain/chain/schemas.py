"""Marshmallow schemas of the chain core: units, custody events, traces, scans."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from cellchain.chain.models import (
    CUSTODY_EVENTS,
    MAX_UNITS_PER_STEP,
    LineageOperation,
    UnitKind,
    UnitStatus,
)
from cellchain.core.identifiers import parse_identifier
from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.schemas import IdentifierOut, SiteDateTime, WholeNumber
from cellchain.traceability.notice_schemas import recalls_field

CUSTODY_CHOICES = [event.value for event in CUSTODY_EVENTS]


class UnitOut(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String(metadata={"description": "Canonical unit code with check character"})
    display = ma.fields.Method("dump_display", metadata={"description": "As printed, K boxed"})
    kind = ma.fields.String()
    status = ma.fields.String()
    donation_id = ma.fields.Integer()
    din = ma.fields.String(attribute="donation.din")
    location = ma.fields.String()
    created_at = ma.fields.AwareDateTime()
    created_by = ma.fields.String(attribute="created_by.username", allow_none=True)

    def dump_display(self, unit: Any) -> str:
        return parse_identifier(unit.code).display


class UnitListOut(UnitOut):
    """A unit in the site-wide list: its DIN and lot number read with the page."""

    din = ma.fields.String()
    lot_number = ma.fields.String(
        allow_none=True, metadata={"description": "The lot its cell record names, if any"}
    )


class UnitQueryIn(ListQueryIn):
    """The units list's page (``core.listing``; newest first; sort by created, code, kind or
    status; ``q`` searches the unit code, the DIN and the lot number), filtered by kind and
    status."""

    kind = ma.fields.String(validate=validate.OneOf([k.value for k in UnitKind]))
    status = ma.fields.String(validate=validate.OneOf([s.value for s in UnitStatus]))


class UnitEventOut(ma.Schema):
    id = ma.fields.Integer()
    unit_id = ma.fields.Integer()
    event_type = ma.fields.String()
    at = ma.fields.AwareDateTime()
    recorded_at = ma.fields.AwareDateTime()
    actor = ma.fields.String(attribute="actor.username", allow_none=True)
    location = ma.fields.String(allow_none=True)
    from_location = ma.fields.String(allow_none=True)
    counterparty = ma.fields.String(allow_none=True)
    temperature_c = ma.fields.Float(allow_none=True)
    note = ma.fields.String(allow_none=True)


class RelativeOut(ma.Schema):
    """A parent or child, with the operation on the edge between them."""

    unit = ma.fields.Nested(UnitOut)
    operation = ma.fields.String()


class UnitDetailOut(UnitOut):
    parents = ma.fields.List(ma.fields.Nested(RelativeOut))
    children = ma.fields.List(ma.fields.Nested(RelativeOut))
    history = ma.fields.List(ma.fields.Nested(UnitEventOut))
    recalls = recalls_field()


class TraceStepOut(ma.Schema):
    unit = ma.fields.Nested(UnitOut)
    distance = ma.fields.Integer(metadata={"description": "Lineage steps from the start"})


class TraceOut(ma.Schema):
    start = ma.fields.Nested(UnitOut)
    direction = ma.fields.String()
    units = ma.fields.List(ma.fields.Nested(TraceStepOut))


class CustodyIn(ma.Schema):
    event_type = ma.fields.String(required=True, validate=validate.OneOf(CUSTODY_CHOICES))
    at = SiteDateTime(
        metadata={"description": "When it happened; now if absent. No offset: site time."}
    )
    location = ma.fields.String(validate=validate.Length(max=120))
    counterparty = ma.fields.String(validate=validate.Length(max=120))
    temperature_c = ma.fields.Float(allow_nan=False)
    note = ma.fields.String(validate=validate.Length(max=2000))


class DeriveIn(ma.Schema):
    """Make new units from parents of one donation (a processing step)."""

    parents = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=60)),
        required=True,
        validate=validate.Length(min=1, max=50),
        metadata={"description": "Unit codes of the parents, as scanned"},
    )
    kind = ma.fields.String(required=True, validate=validate.OneOf([k.value for k in UnitKind]))
    operation = ma.fields.String(
        required=True, validate=validate.OneOf([o.value for o in LineageOperation])
    )
    count = WholeNumber(load_default=1, validate=validate.Range(1, MAX_UNITS_PER_STEP))
    location = ma.fields.String(required=True, validate=validate.Length(min=1, max=120))
    consume_parents = ma.fields.Boolean(load_default=False)


class ScanOut(IdentifierOut):
    url = ma.fields.String(metadata={"description": "Page of the record this code identifies"})
    unit = ma.fields.Nested(
        UnitOut, allow_none=True, metadata={"description": "The unit, when the code is a unit's"}
    )
