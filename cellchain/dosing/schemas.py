"""Marshmallow schemas of the dosing package: shapes in and out. What an answer shows beyond
the record's own columns (a patient's arm receiving cells, the visit schedule, a dose's
signatures) is read by the API and handed in; no schema calls a service or the database."""

from __future__ import annotations

from typing import Any, cast

import marshmallow as ma
from marshmallow import validate

from cellchain.chain.schemas import UnitOut
from cellchain.core.i18n import _
from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.schemas import SignatureOut, SiteDateTime, WholeNumber
from cellchain.documents.schemas import VersionedDocumentOut
from cellchain.dosing.models import DoseStatus, PatientStatus, Sex
from cellchain.traceability.notice_schemas import recalls_field


class ProtocolOut(VersionedDocumentOut):
    """A version of a trial protocol."""


class AnswerIn(ma.Schema):
    answer = ma.fields.Boolean(load_default=None, allow_none=True)
    value = ma.fields.Float(load_default=None, allow_none=True)


class EnrolIn(ma.Schema):
    """Enrol a patient: study ID, date of birth, sex, the planned day 0 and every checklist
    item (yes/no; a value for numeric items). The arm and randomization number are drawn
    from the signed randomization schedule at enrolment: sending either is refused."""

    study_id = ma.fields.String(required=True, validate=validate.Length(min=1, max=30))
    protocol = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=40),
        metadata={
            "description": "The code of the protocol in force to enrol under; may be left out"
            " when only one protocol is in force"
        },
    )
    site_id = WholeNumber(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "The clinical site (id) the patient is enrolled at: one of the"
            " enrolling user's active clinical sites; may be left out when they have one"
        },
    )
    date_of_birth = ma.fields.Date(required=True)
    sex = ma.fields.String(required=True, validate=validate.OneOf([s.value for s in Sex]))
    day0 = ma.fields.Date(required=True, metadata={"description": "Planned first infusion"})
    answers = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.Nested(AnswerIn), load_default=dict
    )

    @ma.pre_load
    def refuse_chosen_arm(self, data: Any, **_kwargs: Any) -> Any:
        """The enroller never picks the arm (allocation concealment, issue 19)."""
        if isinstance(data, dict):
            chosen = sorted(name for name in ("arm", "randomization_number") if name in data)
            if chosen:
                raise ma.ValidationError(
                    {
                        name: [
                            _(
                                "Not chosen at enrolment: the arm and randomization number are"
                                " drawn from the signed randomization schedule when the patient"
                                " is enrolled."
                            )
                        ]
                        for name in chosen
                    }
                )
        return data


class WeightIn(ma.Schema):
    weight_kg = ma.fields.Float(required=True)
    measured_at = SiteDateTime(load_default=None, allow_none=True)
    source = ma.fields.String(load_default="calibrated clinic scale")


class WeightConfirmIn(ma.Schema):
    """A second person's countersignature on a weight that changed: their own password."""

    password = ma.fields.String(required=True, load_only=True)


class OverrideIn(ma.Schema):
    investigator = ma.fields.String(required=True, metadata={"description": "Username"})
    password = ma.fields.String(required=True, load_only=True)
    reason = ma.fields.String(required=True, validate=validate.Length(min=1))


class DoseOrderIn(ma.Schema):
    visit = ma.fields.String(required=True, metadata={"description": "D0 or M3"})
    override = ma.fields.Nested(OverrideIn, load_default=None, allow_none=True)


class SecondCheckIn(ma.Schema):
    volume_ml = ma.fields.Float(required=True, metadata={"description": "Re-entered volume"})
    bags = ma.fields.List(ma.fields.String(), required=True, metadata={"description": "Scanned"})
    password = ma.fields.String(required=True, load_only=True)


class DoseCancelIn(ma.Schema):
    """Cancel a dose order: why, signed with the actor's password."""

    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))
    password = ma.fields.String(required=True, load_only=True)


class DoseDestroyIn(DoseCancelIn):
    """Destroy a prepared dose: why, the actor's signature and a witness's."""

    witness = ma.fields.String(
        required=True, metadata={"description": "The witness's username, exactly as typed"}
    )
    witness_password = ma.fields.String(required=True, load_only=True)


class WeightOut(ma.Schema):
    id = ma.fields.Integer()
    weight_kg = ma.fields.Float()
    measured_at = ma.fields.AwareDateTime()
    source = ma.fields.String()
    recorded_at = ma.fields.AwareDateTime()
    recorded_by = ma.fields.Function(lambda w: w.recorded_by.username)
    change_percent = ma.fields.Float(
        allow_none=True,
        metadata={"description": "Change by the protocol's flag or more, from change_reference"},
    )
    change_reference = ma.fields.String(allow_none=True)
    needs_confirmation = ma.fields.Boolean(
        metadata={"description": "Changed and not yet re-weighed or countersigned: no dose"}
    )
    confirmation = ma.fields.String(allow_none=True)
    confirmed_at = ma.fields.AwareDateTime(allow_none=True)
    confirmed_by = ma.fields.Function(lambda w: w.confirmed_by.username if w.confirmed_by else None)


class VisitOut(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()
    day = ma.fields.Integer()
    planned_on = ma.fields.Date()
    earliest = ma.fields.Date()
    latest = ma.fields.Date()
    infusion = ma.fields.Boolean()


class PatientOut(ma.Schema):
    id = ma.fields.Integer()
    study_id = ma.fields.String()
    coi = ma.fields.String()
    protocol = ma.fields.Function(lambda p: f"{p.protocol.code} v{p.protocol.version}")
    date_of_birth = ma.fields.Date()
    sex = ma.fields.String()
    arm = ma.fields.String()
    #: handed in by the API (``patients.receives_cells``): a schema calls no service
    receives_cells = ma.fields.Function(lambda p: p.receives_cells)
    randomization_number = ma.fields.String(allow_none=True)
    day0 = ma.fields.Date()
    status = ma.fields.String()
    enrolled_at = ma.fields.AwareDateTime()
    enrolled_by = ma.fields.Function(lambda p: p.enrolled_by.username)
    #: the clinical site's code (issue 22)
    site = ma.fields.Function(lambda p: p.site.code)
    checklist = ma.fields.Dict()
    recalls = recalls_field()


class PatientDetailOut(PatientOut):
    weights = ma.fields.List(ma.fields.Nested(WeightOut))
    visits = ma.fields.Method("dump_visits")
    recalls = recalls_field()

    def dump_visits(self, patient: Any) -> list[dict[str, Any]]:
        """The visit schedule the API hands in (``patients.schedule``)."""
        return cast(list[dict[str, Any]], VisitOut(many=True).dump(patient.visits))


class DoseBagOut(ma.Schema):
    unit = ma.fields.Nested(UnitOut)
    volume_ml = ma.fields.Float()
    cells = ma.fields.Float()
    whole_bag = ma.fields.Boolean()


class DoseOrderOut(ma.Schema):
    id = ma.fields.Integer()
    patient = ma.fields.Function(lambda o: o.patient.study_id)
    coi = ma.fields.Function(lambda o: o.patient.coi)
    visit = ma.fields.String()
    planned_on = ma.fields.Date()
    weight = ma.fields.Nested(WeightOut)
    target_cells = ma.fields.Float()
    volume_ml = ma.fields.Float()
    delivered_cells = ma.fields.Float()
    deviation_percent = ma.fields.Float()
    dmso_g_per_kg = ma.fields.Float()
    endotoxin_eu_per_kg = ma.fields.Float(allow_none=True)
    weight_change_percent = ma.fields.Float(allow_none=True)
    weight_change_flag = ma.fields.Boolean()
    override_reason = ma.fields.String(allow_none=True)
    deviation_id = ma.fields.Integer(allow_none=True)
    working = ma.fields.List(ma.fields.String())
    status = ma.fields.String()
    #: what may be done with the dose as it is (second_check, cancel, destroy), handed in
    actions = ma.fields.List(ma.fields.String())
    ordered_at = ma.fields.AwareDateTime()
    prepared_by = ma.fields.Function(lambda o: o.prepared_by.username)
    checked_at = ma.fields.AwareDateTime(allow_none=True)
    checked_by = ma.fields.Function(lambda o: o.checked_by.username if o.checked_by else None)
    dose_unit = ma.fields.Nested(UnitOut, allow_none=True)
    bags = ma.fields.List(ma.fields.Nested(DoseBagOut))
    signatures = ma.fields.Method("dump_signatures")

    def dump_signatures(self, order: Any) -> list[dict[str, Any]]:
        """The signatures the API hands in (``orders.order_signatures``), each checked."""
        return cast(list[dict[str, Any]], SignatureOut(many=True).dump(order.signatures))


class DoseDetailOut(DoseOrderOut):
    """One dose order, with the recalls that name it (withdrew it or name its units)."""

    recalls = recalls_field()


class DosePlanOut(ma.Schema):
    visit = ma.fields.Function(lambda p: p.visit.code)
    weight = ma.fields.Nested(WeightOut)
    target_cells = ma.fields.Function(lambda p: p.calculation.target_cells)
    volume_ml = ma.fields.Function(lambda p: p.calculation.volume_ml)
    delivered_cells = ma.fields.Function(lambda p: p.calculation.delivered_cells)
    deviation_percent = ma.fields.Function(lambda p: p.calculation.deviation_percent)
    within_tolerance = ma.fields.Function(lambda p: p.calculation.within_tolerance)
    dmso_g_per_kg = ma.fields.Function(lambda p: p.calculation.dmso_g_per_kg)
    endotoxin_eu_per_kg = ma.fields.Function(lambda p: p.calculation.endotoxin_eu_per_kg)
    acceptable = ma.fields.Function(lambda p: p.calculation.acceptable)
    weight_change_percent = ma.fields.Float(allow_none=True)
    weight_change_flag = ma.fields.Boolean()
    bags = ma.fields.Function(
        lambda p: [
            {
                "code": d.bag.code,
                "volume_ml": d.volume_ml,
                "cells": d.cells,
                "whole_bag": d.whole_bag,
            }
            for d in p.calculation.draws
        ]
    )
    working = ma.fields.Function(lambda p: list(p.calculation.working))


class PermutedBlockIn(ma.Schema):
    """Generate a permuted-block schedule: the seed (kept by the statistician, stored only as
    its SHA-256), the block sizes (multiples of the ratio's total) and the password."""

    seed = ma.fields.String(required=True, load_only=True)
    block_sizes = ma.fields.List(
        ma.fields.Integer(validate=validate.Range(min=1, max=100)),
        load_default=None,
        allow_none=True,
        metadata={"description": "e.g. [2, 4] for 1:1; default: the ratio's total and twice it"},
    )
    protocol = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=40),
        metadata={"description": "The randomized protocol; may be left out when only one is"},
    )
    password = ma.fields.String(required=True, load_only=True)


class RandomizationListIn(ma.Schema):
    """Import a randomization list: CSV lines "randomization number,arm" (a header line
    allowed), one per planned patient, signed with the password."""

    csv = ma.fields.String(required=True, validate=validate.Length(min=1, max=100_000))
    protocol = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=40),
        metadata={"description": "The randomized protocol; may be left out when only one is"},
    )
    password = ma.fields.String(required=True, load_only=True)


class RandomizationSlotOut(ma.Schema):
    sequence = ma.fields.Integer()
    randomization_number = ma.fields.String()
    arm = ma.fields.String()
    used = ma.fields.Function(lambda s: s.patient_id is not None)
    allocated_at = ma.fields.AwareDateTime(allow_none=True)


class RandomizationScheduleOut(ma.Schema):
    id = ma.fields.Integer()
    protocol = ma.fields.String(attribute="protocol_code")
    method = ma.fields.String()
    ratio = ma.fields.String()
    planned_enrolment = ma.fields.Integer()
    block_sizes = ma.fields.String(allow_none=True)
    source_sha256 = ma.fields.String(
        metadata={"description": "SHA-256 of the seed (never stored) or of the imported list"}
    )
    status = ma.fields.String()
    created_at = ma.fields.AwareDateTime()
    created_by = ma.fields.Function(lambda s: s.created_by.username)
    signatures = ma.fields.Method("dump_signatures")

    def dump_signatures(self, schedule: Any) -> list[dict[str, Any]]:
        """The signatures the API hands in, each checked."""
        return cast(list[dict[str, Any]], SignatureOut(many=True).dump(schedule.signatures))


class RandomizationStatusOut(ma.Schema):
    """The trial's randomization: used and remaining slots; the slots with their arms only
    for the statistician (handed in as ``slots``, else null)."""

    protocol = ma.fields.String()
    planned_enrolment = ma.fields.Integer(attribute="planned")
    used = ma.fields.Integer()
    remaining = ma.fields.Integer()
    schedule = ma.fields.Nested(RandomizationScheduleOut, allow_none=True)
    slots = ma.fields.List(ma.fields.Nested(RandomizationSlotOut), allow_none=True)


class ProtocolQueryIn(ma.Schema):
    """Which protocol a page or report is about (its code); may be left out when only one
    protocol is in force."""

    protocol = ma.fields.String(load_default=None, validate=validate.Length(max=40))


class PatientQueryIn(ListQueryIn):
    """The patients list's page (``core.listing``; by study ID; sort by study_id, enrolled,
    day0 or status; ``q`` searches the study ID and the COI identifier), by status."""

    status = ma.fields.String(validate=validate.OneOf([s.value for s in PatientStatus]))


class DoseQueryIn(ListQueryIn):
    """The doses list's page (``core.listing``; newest first; sort by ordered, status,
    study_id or visit; ``q`` searches the patient's study ID and COI identifier and the bag
    codes), filtered by status and visit."""

    status = ma.fields.String(validate=validate.OneOf([s.value for s in DoseStatus]))
    visit = ma.fields.String(
        validate=validate.Length(min=1, max=10),
        metadata={"description": "The visit's code in the protocol (D0, M3)"},
    )


class DoseListOut(ma.Schema):
    """A dose order in the site-wide list: who it is for, the visit, the target, its status,
    the bags allocated to it and when its infusion started (null before)."""

    id = ma.fields.Integer(attribute="order.id")
    patient_id = ma.fields.Integer(attribute="order.patient_id")
    patient = ma.fields.Function(lambda d: d.order.patient.study_id)
    coi = ma.fields.Function(lambda d: d.order.patient.coi)
    visit = ma.fields.String(attribute="order.visit")
    planned_on = ma.fields.Date(attribute="order.planned_on")
    target_cells = ma.fields.Float(attribute="order.target_cells")
    status = ma.fields.String(attribute="order.status")
    bags = ma.fields.List(
        ma.fields.String(),
        attribute="bag_codes",
        metadata={"description": "The codes of the bags allocated to the dose"},
    )
    ordered_at = ma.fields.AwareDateTime(attribute="order.ordered_at")
    infused_at = ma.fields.AwareDateTime(
        allow_none=True, metadata={"description": "When its infusion started; null before"}
    )
    recalls = recalls_field()
