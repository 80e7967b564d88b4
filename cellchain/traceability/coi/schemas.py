"""Output schemas of the chain-of-identity report (``GET /api/v1/patients/<id>/coi-report``).

They dump the :class:`cellchain.traceability.coi.coi.CoiReport` as it is: the same figures, codes
and signatures as the page and the PDF. Times are ISO 8601 in the site's zone (``at``) with
the words the report prints (``text``). Every schema name starts with ``Coi`` so that the
OpenAPI document has one component per schema.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma


class CoiMomentOut(ma.Schema):
    at = ma.fields.Method("dump_at", metadata={"description": "ISO 8601 in the site's zone"})
    text = ma.fields.String(metadata={"description": "As printed, with the zone"})

    def dump_at(self, moment: Any) -> str:
        return str(moment.at.isoformat())


class CoiCodeOut(ma.Schema):
    code = ma.fields.String(metadata={"description": "As stored, ending in its check character"})
    display = ma.fields.String(metadata={"description": "Display form, check character boxed"})


class CoiSignatureOut(ma.Schema):
    printed_name = ma.fields.String()
    username = ma.fields.String()
    signed_at = ma.fields.Nested(CoiMomentOut)
    meaning = ma.fields.String()
    valid = ma.fields.Boolean(
        metadata={"description": "False when the signed content changed after signing"}
    )
    status = ma.fields.String(metadata={"description": "VALID or INVALID — signed content changed"})


def _signatures() -> ma.fields.List[Any]:
    return ma.fields.List(ma.fields.Nested(CoiSignatureOut))


class CoiPatientOut(ma.Schema):
    id = ma.fields.Integer()
    study_id = ma.fields.String()
    coi = ma.fields.Nested(CoiCodeOut)
    protocol = ma.fields.String()
    arm = ma.fields.String(
        allow_none=True, metadata={"description": "Null for a role that does not see arms"}
    )
    arm_name = ma.fields.String()
    status = ma.fields.String()


class CoiBagOut(ma.Schema):
    code = ma.fields.Nested(CoiCodeOut)
    lot_number = ma.fields.String(allow_none=True)
    volume_ml = ma.fields.Float()
    cells = ma.fields.Float()
    cells_text = ma.fields.String()
    whole_bag = ma.fields.Boolean()


class CoiLotOut(ma.Schema):
    lot_number = ma.fields.String()
    status = ma.fields.String()
    expires_at = ma.fields.Nested(CoiMomentOut, allow_none=True)
    decision = ma.fields.String(allow_none=True)
    decided_at = ma.fields.Nested(CoiMomentOut, allow_none=True)
    decided_by = ma.fields.String(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    signatures = _signatures()


class CoiDonationOut(ma.Schema):
    din = ma.fields.Nested(CoiCodeOut)
    donor_code = ma.fields.String()
    collected_at = ma.fields.Nested(CoiMomentOut)
    eligibility = ma.fields.String()
    determined_at = ma.fields.Nested(CoiMomentOut, allow_none=True)
    determined_by = ma.fields.String(allow_none=True)
    eligibility_reason = ma.fields.String(allow_none=True)
    signatures = _signatures()
    reopened_at = ma.fields.Nested(
        CoiMomentOut,
        allow_none=True,
        metadata={"description": "When a later donor result re-opened the determination"},
    )
    reopened_reason = ma.fields.String(allow_none=True)


class CoiRecallOut(ma.Schema):
    """A recall naming the patient or a unit of the path: named and linked."""

    id = ma.fields.Integer()
    number = ma.fields.String()
    status = ma.fields.String()
    reason = ma.fields.String()
    target = ma.fields.String()
    opened_at = ma.fields.Nested(CoiMomentOut)
    automatic = ma.fields.Boolean()
    url = ma.fields.String()


class CoiDoseOut(ma.Schema):
    visit = ma.fields.String()
    order_id = ma.fields.Integer()
    status = ma.fields.String()
    weight_kg = ma.fields.Float()
    weight_measured_at = ma.fields.Nested(CoiMomentOut)
    target_cells = ma.fields.Float()
    target_cells_text = ma.fields.String()
    delivered_cells = ma.fields.Float()
    delivered_cells_text = ma.fields.String()
    volume_ml = ma.fields.Float()
    deviation_percent = ma.fields.Float()
    deviation_text = ma.fields.String()
    dmso_g_per_kg = ma.fields.Float()
    override_reason = ma.fields.String(allow_none=True)
    working = ma.fields.List(ma.fields.String())
    ordered_at = ma.fields.Nested(CoiMomentOut)
    ordered_by = ma.fields.String()
    signatures = _signatures()


class CoiShipmentOut(ma.Schema):
    id = ma.fields.Integer()
    shipper_id = ma.fields.String()
    logger_id = ma.fields.String()
    destination = ma.fields.String()
    status = ma.fields.String()
    dispatched_at = ma.fields.Nested(CoiMomentOut)
    dispatched_by = ma.fields.String()
    received_at = ma.fields.Nested(CoiMomentOut, allow_none=True)
    received_by = ma.fields.String(allow_none=True)
    arrival_temperature_c = ma.fields.Float(allow_none=True)
    condition = ma.fields.String(allow_none=True)
    logger_excursion = ma.fields.Boolean(allow_none=True)
    hold_reason = ma.fields.String(allow_none=True)
    decision_reason = ma.fields.String(allow_none=True)
    signatures = _signatures()


class CoiThawOut(ma.Schema):
    code = ma.fields.Nested(CoiCodeOut)
    started_at = ma.fields.Nested(CoiMomentOut)
    started_by = ma.fields.String()
    completed_at = ma.fields.Nested(CoiMomentOut, allow_none=True)
    completed_by = ma.fields.String(allow_none=True)


class CoiCheckOut(ma.Schema):
    title = ma.fields.String()
    passed = ma.fields.Boolean()
    result = ma.fields.String()
    detail = ma.fields.String()


class CoiOtherCheckOut(ma.Schema):
    kind = ma.fields.String(metadata={"description": "stop, or recheck (made at the start)"})
    label = ma.fields.String()
    checked_at = ma.fields.Nested(CoiMomentOut)
    checked_by = ma.fields.String()
    verdict = ma.fields.String()
    failed = ma.fields.String()
    wristband = ma.fields.String(allow_none=True)


class CoiVerificationOut(ma.Schema):
    checked_at = ma.fields.Nested(CoiMomentOut)
    checked_by = ma.fields.String()
    verdict = ma.fields.String()
    checks = ma.fields.List(ma.fields.Nested(CoiCheckOut))
    signatures = _signatures()
    others = ma.fields.List(ma.fields.Nested(CoiOtherCheckOut))


class CoiInfusionRecordOut(ma.Schema):
    id = ma.fields.Integer()
    status = ma.fields.String()
    started_at = ma.fields.Nested(CoiMomentOut)
    ended_at = ma.fields.Nested(CoiMomentOut, allow_none=True)
    volume_infused_ml = ma.fields.Float(allow_none=True)
    rate_ml_per_h = ma.fields.Float(allow_none=True)
    administered_by = ma.fields.String()
    reaction = ma.fields.String()


class CoiInfusionOut(ma.Schema):
    number = ma.fields.Integer()
    visit = ma.fields.String()
    dose_unit = ma.fields.Nested(CoiCodeOut, allow_none=True)
    bags = ma.fields.List(ma.fields.Nested(CoiBagOut))
    lots = ma.fields.List(ma.fields.Nested(CoiLotOut))
    donation = ma.fields.Nested(CoiDonationOut)
    dose = ma.fields.Nested(CoiDoseOut)
    shipment = ma.fields.Nested(CoiShipmentOut, allow_none=True)
    thaws = ma.fields.List(ma.fields.Nested(CoiThawOut))
    verification = ma.fields.Nested(CoiVerificationOut, allow_none=True)
    infusion = ma.fields.Nested(CoiInfusionRecordOut)
    recalls = ma.fields.List(
        ma.fields.Nested(CoiRecallOut),
        metadata={"description": "Recalls naming a unit of this infusion's path"},
    )


class CoiReportOut(ma.Schema):
    """A patient's chain-of-identity report: every infusion in the order started."""

    patient = ma.fields.Nested(CoiPatientOut)
    zone = ma.fields.String(metadata={"description": "The site's time zone"})
    empty = ma.fields.Boolean(metadata={"description": "True when no infusion is recorded"})
    summary = ma.fields.String()
    signature_count = ma.fields.Integer()
    invalid_count = ma.fields.Integer(
        metadata={"description": "Signatures whose signed content changed after signing"}
    )
    infusions = ma.fields.List(ma.fields.Nested(CoiInfusionOut))
    recalls = ma.fields.List(
        ma.fields.Nested(CoiRecallOut),
        metadata={"description": "Every recall naming the patient or their infusions' paths"},
    )
