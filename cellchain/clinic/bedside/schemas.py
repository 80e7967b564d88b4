"""Marshmallow schemas of the bedside: thaw, bedside checks and their sign-off, infusions."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from cellchain.core.schemas import SCANNED_CODE, SignatureOut, SiteDateTime, WholeNumber
from cellchain.traceability.notice_schemas import recalls_field


class ScanIn(ma.Schema):
    scan = ma.fields.String(required=True, validate=SCANNED_CODE)


class BedsideIn(ma.Schema):
    wristband = ma.fields.String(
        required=True, metadata={"description": "The wristband as scanned"}
    )
    label = ma.fields.String(
        required=True, metadata={"description": "The bag or dose label as scanned"}
    )


class SignOffIn(ma.Schema):
    """The acting clinician's password and the second clinician's username and password."""

    password = ma.fields.String(required=True, load_only=True)
    second_username = ma.fields.String(required=True)
    second_password = ma.fields.String(required=True, load_only=True)


class InfusionEndIn(ma.Schema):
    volume_infused_ml = ma.fields.Float(required=True)
    rate_ml_per_h = ma.fields.Float(required=True)
    reaction = ma.fields.String(load_default=None, allow_none=True)
    stopped_early = ma.fields.Boolean(load_default=False)
    ended_at = SiteDateTime(load_default=None, allow_none=True)


class TimeFlagAcknowledgementIn(ma.Schema):
    """A second clinician confirms flagged infusion times: what they checked, their password."""

    note = ma.fields.String(required=True)
    password = ma.fields.String(required=True, load_only=True)


def _code(unit: Any) -> str | None:
    return unit.code if unit is not None else None


class ThawOut(ma.Schema):
    dose_order_id = ma.fields.Integer()
    started = ma.fields.List(
        ma.fields.String(), metadata={"description": "Bags whose thaw started"}
    )
    completed = ma.fields.List(ma.fields.String(), metadata={"description": "Bags thawed"})
    expires_at = ma.fields.AwareDateTime(
        allow_none=True, metadata={"description": "Thaw + window: the infusion starts before"}
    )
    window_minutes = ma.fields.Integer()


class CheckResultOut(ma.Schema):
    code = ma.fields.String()
    title = ma.fields.String()
    passed = ma.fields.Boolean()
    detail = ma.fields.String()


class BedsideCheckOut(ma.Schema):
    """A bedside check: the verdict and every check behind it, the thaw deadline, the
    signatures and the infusion started from it, if any."""

    id = ma.fields.Function(lambda s: s.check.id)
    verdict = ma.fields.Function(lambda s: s.check.verdict, metadata={"description": "go or stop"})
    checks = ma.fields.Function(lambda s: CheckResultOut(many=True).dump(s.check.checks))
    checked_at = ma.fields.Function(lambda s: s.check.checked_at.isoformat())
    checked_by = ma.fields.Function(lambda s: s.check.checked_by.username)
    patient = ma.fields.Function(lambda s: s.check.patient.study_id if s.check.patient else None)
    coi = ma.fields.Function(lambda s: s.check.patient.coi if s.check.patient else None)
    dose_order_id = ma.fields.Function(lambda s: s.check.dose_order_id)
    dose_unit = ma.fields.Function(lambda s: _code(s.check.unit))
    recheck_of = ma.fields.Function(lambda s: s.check.recheck_of_id)
    thaw_expires_at = ma.fields.Function(
        lambda s: s.thaw_expires_at.isoformat() if s.thaw_expires_at else None
    )
    signed_by_two = ma.fields.Boolean()
    signatures = ma.fields.List(ma.fields.Nested(SignatureOut))
    infusion_id = ma.fields.Function(lambda s: s.infusion.id if s.infusion else None)


#: The keys of a check's result in an answer (``CheckResultOut``), in its order.
_RESULT_KEYS = ("code", "title", "passed", "detail")
_SIGNATURES = SignatureOut(many=True)


def bedside_check_answer(summary: Any) -> dict[str, Any]:
    """``BedsideCheckOut().dump(summary)`` built by hand: the same dict, for the answer of every
    bedside check (``POST /api/v1/bedside/checks``), where marshmallow's field-by-field dump
    was a measurable part of the request (issue 20). ``tests/clinic/test_bedside_answer.py``
    compares the two on go and stop checks, signed and not."""
    check = summary.check
    expires = summary.thaw_expires_at
    names = summary.names
    if names is None:  # from the check's relationships
        patient = check.patient
        names = (
            patient.study_id if patient else None,
            patient.coi if patient else None,
            _code(check.unit),
        )
    return {
        "id": check.id,
        "verdict": check.verdict,
        "checks": [
            {key: result[key] for key in _RESULT_KEYS if key in result} for result in check.checks
        ],
        "checked_at": check.checked_at.isoformat(),
        "checked_by": check.checked_by.username,
        "patient": names[0],
        "coi": names[1],
        "dose_order_id": check.dose_order_id,
        "dose_unit": names[2],
        "recheck_of": check.recheck_of_id,
        "thaw_expires_at": expires.isoformat() if expires else None,
        "signed_by_two": bool(summary.signed_by_two),
        "signatures": _SIGNATURES.dump(summary.signatures) if summary.signatures else [],
        "infusion_id": summary.infusion.id if summary.infusion else None,
    }


class InfusionOut(ma.Schema):
    id = ma.fields.Integer()
    dose_order_id = ma.fields.Integer()
    patient = ma.fields.String(attribute="patient.study_id")
    dose_unit = ma.fields.Function(lambda i: _code(i.dose_order.dose_unit))
    visit = ma.fields.String(attribute="dose_order.visit")
    bedside_check_id = ma.fields.Integer()
    status = ma.fields.String()
    started_at = ma.fields.AwareDateTime()
    administered_by = ma.fields.String(attribute="administered_by.username")
    volume_drawn_ml = ma.fields.Float(attribute="dose_order.volume_ml")
    ended_at = ma.fields.AwareDateTime(allow_none=True)
    volume_infused_ml = ma.fields.Float(allow_none=True)
    rate_ml_per_h = ma.fields.Float(allow_none=True)
    reaction = ma.fields.String(allow_none=True)
    time_flag = ma.fields.String(
        allow_none=True,
        metadata={"description": "Why end, volume and rate cannot all be true as recorded"},
    )
    time_flag_open = ma.fields.Boolean(
        metadata={"description": "Flagged and not yet acknowledged: no next dose until it is"}
    )
    time_flag_acknowledged_at = ma.fields.AwareDateTime(allow_none=True)
    time_flag_acknowledged_by = ma.fields.Function(
        lambda i: i.time_flag_acknowledged_by.username if i.time_flag_acknowledged_by else None
    )
    time_flag_note = ma.fields.String(allow_none=True)


class InfusionDetailOut(InfusionOut):
    """One infusion, with the recalls that name its dose (a lookback lists its patient)."""

    recalls = recalls_field()


class PostThawCountIn(ma.Schema):
    """A post-thaw count of the thawed dose: TOTAL cells per mL and the viability of the same
    count (viable = total × viability, applied once), where, how and when."""

    total_cells_per_ml = ma.fields.Float(
        required=True,
        allow_nan=False,
        metadata={"description": "TOTAL (nucleated, live and dead) cells per mL after thaw"},
    )
    viability_percent = ma.fields.Float(
        required=True, allow_nan=False, metadata={"description": "Viability of this count, 0–100 %"}
    )
    place = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(["bedside", "pharmacy"]),
        metadata={"description": "bedside or pharmacy"},
    )
    method = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=500),
        metadata={"description": "Method and instrument, in words"},
    )
    counted_at = SiteDateTime(
        load_default=None, allow_none=True, metadata={"description": "When counted (now if absent)"}
    )
    reason = ma.fields.String(
        load_default=None, allow_none=True, metadata={"description": "Why counted again"}
    )
    # required by the service, which says so in the reader's language (issue 22)
    counter = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=ma.validate.Length(max=40),
        metadata={
            "description": "Required: the registered cell counter's asset ID (e.g. CNT-01, "
            "any case or spacing): active, of kind cell_counter, in date on the count's day"
        },
    )


class PostThawDecisionIn(ma.Schema):
    """The investigator's decision on a dose outside tolerance at its post-thaw count, signed
    with their password."""

    count_id = WholeNumber(
        required=True, metadata={"description": "The count decided on: the dose's latest"}
    )
    decision = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(["proceed", "do_not_infuse"]),
        metadata={"description": "proceed (a deviation is recorded) or do_not_infuse"},
    )
    reason = ma.fields.String(required=True)
    password = ma.fields.String(required=True, load_only=True)


class PostThawCountOut(ma.Schema):
    id = ma.fields.Integer()
    dose_order_id = ma.fields.Integer()
    total_cells_per_ml = ma.fields.Float(metadata={"description": "TOTAL cells per mL"})
    viability_percent = ma.fields.Float()
    viable_cells_per_ml = ma.fields.Float(
        attribute="viable_per_ml",
        metadata={"description": "VIABLE cells per mL: total × viability"},
    )
    place = ma.fields.String()
    method = ma.fields.String()
    counter = ma.fields.Function(
        lambda c: c.counter.code if c.counter else None,
        allow_none=True,
        metadata={"description": "The cell counter's asset ID (none before migration 0048)"},
    )
    reason = ma.fields.String(allow_none=True)
    counted_at = ma.fields.AwareDateTime()
    counted_by = ma.fields.String(attribute="counted_by.username")
    recorded_at = ma.fields.AwareDateTime()
    delivered_cells = ma.fields.Float(metadata={"description": "VIABLE cells delivered"})
    deviation_percent = ma.fields.Float()
    within_tolerance = ma.fields.Boolean()
    working = ma.fields.List(ma.fields.String())
    decision = ma.fields.String(allow_none=True)
    decision_reason = ma.fields.String(allow_none=True)
    decided_at = ma.fields.AwareDateTime(allow_none=True)
    decided_by = ma.fields.Function(lambda c: c.decided_by.username if c.decided_by else None)
    deviation_id = ma.fields.Integer(allow_none=True)


class DoseCountOut(ma.Schema):
    """Which count a dose is judged by: the working that says so, and every post-thaw count."""

    dose_order_id = ma.fields.Function(lambda d: d.order.id)
    count_used = ma.fields.String(
        metadata={"description": "post-thaw count or release count at fill"}
    )
    working = ma.fields.List(ma.fields.String())
    decision_needed = ma.fields.Boolean(
        metadata={"description": "Outside tolerance at the latest count and not yet decided"}
    )
    counts = ma.fields.List(ma.fields.Nested(PostThawCountOut))
    signatures = ma.fields.List(ma.fields.Nested(SignatureOut))
