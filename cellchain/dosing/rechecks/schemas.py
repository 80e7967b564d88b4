"""Marshmallow schemas of pre-infusion re-checks: input (…In) and output (…Out).

Shape only; which items, their ranges and what is met are the service's
(``rechecks.py``), so the page and the API refuse alike."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate


class RecheckAnswerIn(ma.Schema):
    """One item: ``answer`` (yes = met) for a yes/no item, ``option`` (and ``reason`` where
    the option needs one) for a choice, ``value`` for a measured item."""

    answer = ma.fields.Boolean(load_default=None, allow_none=True)
    option = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    value = ma.fields.Float(load_default=None, allow_none=True, allow_nan=False)
    reason = ma.fields.String(load_default=None, allow_none=True)


class RecheckIn(ma.Schema):
    """A re-check of every item of the protocol's ``pre_infusion_recheck`` for one visit."""

    visit = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=10),
        metadata={"description": "The infusion visit re-checked for (M3)"},
    )
    answers = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.Nested(RecheckAnswerIn), load_default=dict
    )
    note = ma.fields.String(load_default=None, allow_none=True)


class RecheckOut(ma.Schema):
    """A recorded re-check (``rechecks.Shown``)."""

    id = ma.fields.Integer(attribute="record.id")
    patient_id = ma.fields.Integer(attribute="record.patient_id")
    visit = ma.fields.String(attribute="record.visit")
    passed = ma.fields.Boolean(attribute="record.passed")
    answers = ma.fields.Function(
        lambda s: s.record.answers,
        metadata={"description": "code → the item as answered, and whether it was met"},
    )
    failed_items = ma.fields.List(ma.fields.String(), metadata={"description": "Not met"})
    note = ma.fields.String(attribute="record.note", allow_none=True)
    recorded_at = ma.fields.AwareDateTime(attribute="record.recorded_at")
    recorded_by = ma.fields.Function(lambda s: s.record.recorded_by.username)
    valid_until = ma.fields.AwareDateTime()


class RecheckStatusOut(ma.Schema):
    """Whether a visit's infusion may go ahead as far as the re-check goes."""

    visit = ma.fields.String()
    name = ma.fields.String()
    ok = ma.fields.Boolean()
    problem = ma.fields.String(allow_none=True)
    latest = ma.fields.Nested(RecheckOut, allow_none=True)
