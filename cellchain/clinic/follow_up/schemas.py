"""Marshmallow schemas of follow-up visits and adverse events: input (…In) and output (…Out).

They check shape only; the rules (which visits, which days, the grade and outcome rules) are
the services' (``follow_up.py``, ``adverse_events.py``).
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from cellchain.clinic.models import Causality, Outcome, ReportKind, SeriousCriterion, Seriousness
from cellchain.core.schemas import SiteDateTime, WholeNumber
from cellchain.traceability.notice_schemas import recalls_field

#: Database ids are 32-bit; a larger number is no record (and no database error).
_ID = validate.Range(min=1, max=2**31 - 1)
OUTCOMES = [member.value for member in Outcome]
SERIOUSNESS = [member.value for member in Seriousness]
CRITERIA = [member.value for member in SeriousCriterion]
CAUSALITY = [member.value for member in Causality]
REPORT_KINDS = [member.value for member in ReportKind]


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
    serious_criteria = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(CRITERIA)),
        load_default=list,
        metadata={"description": "ICH E2A criteria met; at least one iff serious"},
    )
    aware_at = SiteDateTime(
        load_default=None,
        allow_none=True,
        metadata={"description": "When the site became aware; the reporting clock starts here"},
    )
    term = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=200),
        metadata={"description": "MedDRA-style term (free text; no dictionary is shipped)"},
    )
    term_code = ma.fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=20)
    )


class AssessmentIn(ma.Schema):
    """The investigator's causality and expectedness, e-signed with their password."""

    causality = ma.fields.String(required=True, validate=validate.OneOf(CAUSALITY))
    expected = ma.fields.Boolean(required=True)
    password = ma.fields.String(required=True, load_only=True)


class ReportIn(ma.Schema):
    """A sponsor report of a serious event sent: which, when, the sponsor's reference."""

    kind = ma.fields.String(required=True, validate=validate.OneOf(REPORT_KINDS))
    reported_at = SiteDateTime(required=True)
    reference = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))


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
        metadata={"description": "done, not_applicable, missed, planned, due or overdue"}
    )
    done_on = ma.fields.Date(allow_none=True)
    outside_window = ma.fields.Boolean()
    note = ma.fields.String(allow_none=True)
    provisional = ma.fields.Boolean(
        attribute="visit.provisional",
        metadata={"description": "Planned from the scheduled day 0: the first infusion is ahead"},
    )
    rescheduled = ma.fields.Boolean(attribute="visit.rescheduled")
    deviation_pending = ma.fields.Boolean(
        attribute="visit.deviation_pending",
        metadata={"description": "Moved outside the protocol; the investigator has not signed"},
    )
    reschedule_id = ma.fields.Integer(allow_none=True)


class RescheduleIn(ma.Schema):
    """A visit moved to another day, and why (``scheduling.reschedule_visit``)."""

    visit = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=10),
        metadata={"description": "A visit of the protocol: D0, M3, M6 or M12"},
    )
    planned_on = ma.fields.Date(
        required=True, metadata={"description": "The new day, today or later (site calendar)"}
    )
    reason = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        error_messages={"required": "Say why the visit moves."},
    )


class MissedIn(ma.Schema):
    """An overdue visit recorded as missed, and why (``scheduling.record_missed``)."""

    visit = ma.fields.String(required=True, validate=validate.Length(min=1, max=10))
    reason = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        error_messages={"required": "Say why the visit was missed."},
    )


class DeviationSignIn(ma.Schema):
    """The investigator's e-signature on a visit moved outside the protocol."""

    password = ma.fields.String(required=True, load_only=True)


class VisitRescheduleOut(ma.Schema):
    id = ma.fields.Integer()
    patient_id = ma.fields.Integer()
    patient = ma.fields.Function(lambda r: r.patient.study_id)
    visit = ma.fields.String()
    previous_on = ma.fields.Date()
    planned_on = ma.fields.Date()
    reason = ma.fields.String()
    protocol_earliest = ma.fields.Date()
    protocol_latest = ma.fields.Date()
    outside_protocol = ma.fields.Boolean()
    deviation_pending = ma.fields.Boolean()
    recorded_at = ma.fields.AwareDateTime()
    recorded_by = ma.fields.Function(lambda r: r.recorded_by.username)
    deviation_signed_at = ma.fields.AwareDateTime(allow_none=True)
    deviation_signed_by = ma.fields.Function(
        lambda r: r.deviation_signed_by.username if r.deviation_signed_by else None
    )


class MissedVisitOut(ma.Schema):
    id = ma.fields.Integer()
    patient_id = ma.fields.Integer()
    patient = ma.fields.Function(lambda v: v.patient.study_id)
    visit = ma.fields.String()
    reason = ma.fields.String()
    recorded_at = ma.fields.AwareDateTime()
    recorded_by = ma.fields.Function(lambda v: v.recorded_by.username)


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
    serious_criteria = ma.fields.Function(
        lambda e: e.serious_criteria.split(",") if e.serious_criteria else []
    )
    aware_at = ma.fields.AwareDateTime(allow_none=True)
    term = ma.fields.String(allow_none=True)
    term_code = ma.fields.String(allow_none=True)
    causality = ma.fields.String(allow_none=True)
    expected = ma.fields.Boolean(allow_none=True)
    assessed_at = ma.fields.AwareDateTime(allow_none=True)
    assessed_by = ma.fields.Function(lambda e: e.assessed_by.username if e.assessed_by else None)
    initial_reported_at = ma.fields.AwareDateTime(allow_none=True)
    initial_report_ref = ma.fields.String(allow_none=True)
    follow_up_reported_at = ma.fields.AwareDateTime(allow_none=True)
    follow_up_report_ref = ma.fields.String(allow_none=True)


class ReportingClockOut(ma.Schema):
    """A serious event with a sponsor report still to make: its deadlines (UTC)."""

    event = ma.fields.Nested(AdverseEventOut)
    aware_at = ma.fields.AwareDateTime()
    initial_due = ma.fields.AwareDateTime()
    follow_up_due = ma.fields.AwareDateTime()
    next_due = ma.fields.AwareDateTime(allow_none=True)
    initial_overdue = ma.fields.Boolean()
    follow_up_overdue = ma.fields.Boolean()
    overdue = ma.fields.Boolean()
