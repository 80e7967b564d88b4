"""Marshmallow schemas of the trial-data exports and the DSMB summary: input (…In) and
output (…Out). Shapes only; the rules are the services'."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from cellchain.trial_data.models import ExportFormat


class ExportIn(ma.Schema):
    """Which file to make."""

    format = ma.fields.String(
        required=True,
        validate=validate.OneOf([f.value for f in ExportFormat]),
        metadata={"description": "odm (CDISC ODM 1.3.2 XML) or csv (a zip of CSV files)"},
    )
    protocol = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=40),
        metadata={"description": "The trial (protocol code); may be left out when only one"},
    )


class TrialQueryIn(ma.Schema):
    """Which trial (protocol code) a summary is of; may be left out when only one."""

    protocol = ma.fields.String(load_default=None, validate=validate.Length(max=40))


class ExportOut(ma.Schema):
    """An export and how far its generation is."""

    id = ma.fields.Integer()
    protocol = ma.fields.String(attribute="protocol_code")
    format = ma.fields.String()
    status = ma.fields.String(metadata={"description": "queued, running, done or failed"})
    percent = ma.fields.Integer(metadata={"description": "0–100"})
    step = ma.fields.String(allow_none=True)
    requested_at = ma.fields.AwareDateTime()
    requested_by = ma.fields.Function(lambda e: e.requested_by.username)
    started_at = ma.fields.AwareDateTime(allow_none=True)
    finished_at = ma.fields.AwareDateTime(allow_none=True)
    file_name = ma.fields.String(allow_none=True)
    media_type = ma.fields.String(allow_none=True)
    sha256 = ma.fields.String(allow_none=True)
    size_bytes = ma.fields.Integer(allow_none=True)
    subjects = ma.fields.Integer(allow_none=True)
    rows = ma.fields.Integer(allow_none=True)
    error = ma.fields.String(allow_none=True)


class ArmOut(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()
    planned = ma.fields.Integer(
        allow_none=True,
        metadata={"description": "the arm's share of the planned enrolment by the ratio"},
    )
    randomized = ma.fields.Integer(
        metadata={"description": "slots of the signed randomization schedule used"}
    )
    enrolled = ma.fields.Integer()
    withdrawn = ma.fields.Integer()
    doses = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer()),
        metadata={
            "description": "visit → ordered, allocated, prepared, infused, cancelled, destroyed"
        },
    )
    deviations = ma.fields.Integer()
    deviations_open = ma.fields.Integer()
    missed_visits = ma.fields.Integer()
    adverse_events = ma.fields.Integer()
    subjects_with_events = ma.fields.Integer()
    serious = ma.fields.Integer()
    subjects_with_serious = ma.fields.Integer()
    by_grade = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    by_causality = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())


class ScheduleOut(ma.Schema):
    """The signed randomization schedule: counts only, never an unused slot."""

    method = ma.fields.String()
    signed_at = ma.fields.AwareDateTime()
    planned = ma.fields.Integer()
    used = ma.fields.Integer()


class TrialSummaryOut(ma.Schema):
    """The DSMB summary: counts by arm (unblinded)."""

    protocol_code = ma.fields.String()
    protocol_title = ma.fields.String()
    planned_enrolment = ma.fields.Integer(allow_none=True)
    ratio = ma.fields.String(allow_none=True)
    enrolled = ma.fields.Integer()
    visits = ma.fields.List(ma.fields.String())
    as_of = ma.fields.AwareDateTime()
    arms = ma.fields.List(ma.fields.Nested(ArmOut))
    schedule = ma.fields.Nested(ScheduleOut, allow_none=True)
