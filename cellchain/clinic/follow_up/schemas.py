"""Marshmallow schemas of follow-up visits and adverse events: input (…In) and output (…Out).

They check shape only; the rules (which visits, which days, the grade and outcome rules) are
the services' (``follow_up.py``, ``adverse_events.py``).
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from cellchain.clinic.models import Outcome, Seriousness
from cellchain.core.schemas import SiteDateTime, WholeNumber
from cellchain.traceability.notice_schemas import recalls_field

#: Database ids are 32-bit; a larger number is no record (and no database error).
_ID = validate.Range(min=1, max=2**31 - 1)
OUTCOMES = [member.value for member in Outcome]
SERIOUSNESS = [member.value for member in Seriousness]


class DueQueryIn(ma.Schema):
    coming_up = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "Also list visits whose window opens within the next 14 days"},
    )


class VisitDoneIn(ma.Schema):
    """An evaluation visit done: its code in the protocol, the day, an optional note."""

    visit = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=10),
        metadata={"description": "An evaluation visit of the protocol: M6 or M12"},
    )
    done_on = ma.fields.Date(required=True, metadata={"description": "On the site's calendar"})
    note = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))


class AdverseEventIn(ma.Schema):
    """An adverse event: onset, what happened, CTCAE grade, seriousness, outcome, and the
    infusion it followed if it followed one."""

    onset_at = SiteDateTime(
        required=True, metadata={"description": "ISO 8601; without an offset, the site's zone"}
    )
    description = ma.fields.String(required=True, validate=validate.Length(min=1, max=4000))
    grade = WholeNumber(
        required=True, validate=validate.Range(min=1, max=5), metadata={"description": "CTCAE"}
    )
    seriousness = ma.fields.String(required=True, validate=validate.OneOf(SERIOUSNESS))
    outcome = ma.fields.String(required=True, validate=validate.OneOf(OUTCOMES))
    infusion_id = WholeNumber(load_default=None, allow_none=True, validate=_ID)


class OutcomeIn(ma.Schema):
    """The event's outcome now, and why it changed."""

    outcome = ma.fields.String(required=True, validate=validate.OneOf(OUTCOMES))
    reason = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        error_messages={"required": "Say why the outcome changed."},
    )


class ScheduledVisitOut(ma.Schema):
    """A visit of a patient's schedule and its status today (site calendar)."""

    patient_id = ma.fields.Integer(attribute="patient.id")
    patient = ma.fields.String(attribute="patient.study_id")
    code = ma.fields.String(attribute="visit.code")
    name = ma.fields.String(attribute="visit.name")
    day = ma.fields.Integer(attribute="visit.day")
    infusion = ma.fields.Boolean(attribute="visit.infusion")
    planned_on = ma.fields.Date(attribute="visit.planned_on")
    earliest = ma.fields.Date(attribute="visit.earliest")
    latest = ma.fields.Date(attribute="visit.latest")
    window_days = ma.fields.Integer(attribute="visit.window_days")
    recalls = recalls_field()
    status = ma.fields.String(
        metadata={"description": "done, not_applicable, upcoming, due or overdue"}
    )
    done_on = ma.fields.Date(allow_none=True)
    outside_window = ma.fields.Boolean()
    note = ma.fields.String(allow_none=True)


class FollowUpVisitOut(ma.Schema):
    id = ma.fields.Integer()
    patient_id = ma.fields.Integer()
    patient = ma.fields.Function(lambda v: v.patient.study_id)
    visit = ma.fields.String()
    done_on = ma.fields.Date()
    note = ma.fields.String(allow_none=True)
    recorded_at = ma.fields.AwareDateTime()
    recorded_by = ma.fields.Function(lambda v: v.recorded_by.username)


class AdverseEventOut(ma.Schema):
    id = ma.fields.Integer()
    patient_id = ma.fields.Integer()
    patient = ma.fields.Function(lambda e: e.patient.study_id)
    infusion_id = ma.fields.Integer(allow_none=True)
    infusion_visit = ma.fields.Function(
        lambda e: e.infusion.dose_order.visit if e.infusion else None
    )
    onset_at = ma.fields.AwareDateTime()
    description = ma.fields.String()
    grade = ma.fields.Integer()
    seriousness = ma.fields.String()
    outcome = ma.fields.String()
    recorded_at = ma.fields.AwareDateTime()
    recorded_by = ma.fields.Function(lambda e: e.recorded_by.username)
