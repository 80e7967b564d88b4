"""The recall notice in API answers: every answer that shows a recalled unit, lot, donation,
dose or patient carries ``recalls``, a list of these (empty when none names it)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma


class RecallNoticeOut(ma.Schema):
    """A recall that names the record: its number, status and reason, and where to read it."""

    id = ma.fields.Integer()
    number = ma.fields.String(metadata={"description": "The site's recall number, RC-YYYY-NNNN"})
    status = ma.fields.String(metadata={"description": "open or closed"})
    reason = ma.fields.String()
    target_type = ma.fields.String(metadata={"description": "donation, lot or material_lot"})
    target_label = ma.fields.String()
    opened_at = ma.fields.AwareDateTime()
    automatic = ma.fields.Boolean(
        metadata={"description": "Opened by the system on a late donor result (lookback)"}
    )
    url = ma.fields.Function(
        lambda recall: f"/recalls/{recall.id}", metadata={"description": "The recall's page"}
    )
    api_url = ma.fields.Function(lambda recall: f"/api/v1/recalls/{recall.id}")


def recalls_field() -> ma.fields.List[Any]:
    """The ``recalls`` field of an answer: the recalls naming what it shows."""
    return ma.fields.List(
        ma.fields.Nested(RecallNoticeOut),
        dump_default=[],
        metadata={"description": "The recalls that name this record, oldest first"},
    )
