"""Marshmallow schemas of efficacy endpoints: input (…In) and output (…Out).

They check shape only (numbers, dates); the ranges and which visits are the service's
(``endpoints.py``), so the page and the API refuse alike.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate


def _number(description: str) -> ma.fields.Float:
    return ma.fields.Float(required=True, allow_nan=False, metadata={"description": description})


_ITEM = "0–10 numerical rating scale"


class EndpointsIn(ma.Schema):
    """The endpoints of one evaluation visit: BASDAI Q1–Q6, BASFI Q1–Q10, the patient's
    global assessment, CRP and ESR."""

    visit = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=10),
        metadata={"description": "BL (baseline) or an evaluation visit of the protocol: M6, M12"},
    )
    assessed_on = ma.fields.Date(required=True, metadata={"description": "On the site's calendar"})
    basdai_q1 = _number("BASDAI Q1 fatigue, " + _ITEM)
    basdai_q2 = _number("BASDAI Q2 back pain, " + _ITEM)
    basdai_q3 = _number("BASDAI Q3 peripheral pain/swelling, " + _ITEM)
    basdai_q4 = _number("BASDAI Q4 tenderness, " + _ITEM)
    basdai_q5 = _number("BASDAI Q5 morning stiffness severity, " + _ITEM)
    basdai_q6 = _number("BASDAI Q6 morning stiffness duration, " + _ITEM)
    basfi_q1 = _number("BASFI item 1, " + _ITEM)
    basfi_q2 = _number("BASFI item 2, " + _ITEM)
    basfi_q3 = _number("BASFI item 3, " + _ITEM)
    basfi_q4 = _number("BASFI item 4, " + _ITEM)
    basfi_q5 = _number("BASFI item 5, " + _ITEM)
    basfi_q6 = _number("BASFI item 6, " + _ITEM)
    basfi_q7 = _number("BASFI item 7, " + _ITEM)
    basfi_q8 = _number("BASFI item 8, " + _ITEM)
    basfi_q9 = _number("BASFI item 9, " + _ITEM)
    basfi_q10 = _number("BASFI item 10, " + _ITEM)
    patient_global = _number("Patient global assessment of disease activity, " + _ITEM)
    crp_mg_l = _number("C-reactive protein, mg/L (0–500)")
    esr_mm_h = _number("Erythrocyte sedimentation rate, mm/h (0–200)")


class ScoresOut(ma.Schema):
    basdai = ma.fields.Float()
    basfi = ma.fields.Float()
    asdas_crp = ma.fields.Float()


class AssessmentOut(ma.Schema):
    id = ma.fields.Integer()
    patient_id = ma.fields.Integer()
    visit = ma.fields.String()
    assessed_on = ma.fields.Date()
    recorded_at = ma.fields.AwareDateTime()
    recorded_by = ma.fields.Function(lambda r: r.recorded_by.username)
    basdai_q1 = ma.fields.Float()
    basdai_q2 = ma.fields.Float()
    basdai_q3 = ma.fields.Float()
    basdai_q4 = ma.fields.Float()
    basdai_q5 = ma.fields.Float()
    basdai_q6 = ma.fields.Float()
    basfi_q1 = ma.fields.Float()
    basfi_q2 = ma.fields.Float()
    basfi_q3 = ma.fields.Float()
    basfi_q4 = ma.fields.Float()
    basfi_q5 = ma.fields.Float()
    basfi_q6 = ma.fields.Float()
    basfi_q7 = ma.fields.Float()
    basfi_q8 = ma.fields.Float()
    basfi_q9 = ma.fields.Float()
    basfi_q10 = ma.fields.Float()
    patient_global = ma.fields.Float()
    crp_mg_l = ma.fields.Float()
    esr_mm_h = ma.fields.Float()


class EndpointRowOut(ma.Schema):
    """One visit of the patient's table: the assessment and its scores, or null if none."""

    visit = ma.fields.String()
    name = ma.fields.String()
    assessment = ma.fields.Nested(AssessmentOut, attribute="record", allow_none=True)
    scores = ma.fields.Nested(ScoresOut, allow_none=True)
    opens_on = ma.fields.Date(
        allow_none=True,
        metadata={"description": "First day of the visit's window (site calendar)"},
    )
    closes_on = ma.fields.Date(
        allow_none=True,
        metadata={
            "description": "Last day of the window; for baseline the first infusion's day (day "
            "0 for an arm without infusions), null before the first infusion"
        },
    )
    missed = ma.fields.Boolean(metadata={"description": "The visit was recorded as missed"})
    outside_window = ma.fields.Boolean(
        metadata={
            "description": "Assessed after the window closed (or moved outside the protocol "
            "with the deviation unsigned): recorded, a deviation to explain"
        }
    )
