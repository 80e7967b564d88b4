"""Marshmallow schemas of the donors package: the API's bodies and the pages' forms."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from cellchain.chain.schemas import UnitOut
from cellchain.core.i18n import N_
from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.schemas import SignatureOut, SiteDateTime, WholeNumber
from cellchain.donors.inputs import (
    DEFAULT_RECEIPT_LOCATION,
    DonationRegistration,
    NewDonor,
    Receipt,
    ResultEntry,
)
from cellchain.donors.models import (
    ContainerCondition,
    DonationStatus,
    Eligibility,
    InfectiousResult,
    ScreeningOutcome,
)
from cellchain.traceability.notice_schemas import RecallNoticeOut, recalls_field

NEW_DONOR_FIELDS = ("consent_date", "consent_form_version", "screening_outcome", "screening_date")


def _choices(enum_type: type[Any]) -> list[str]:
    return [member.value for member in enum_type]


class DonationRegisterIn(ma.Schema):
    """A donation and, unless ``donor_code`` names a donor on file, its new donor."""

    product_code = ma.fields.String(load_default="UC-MSC", validate=validate.Length(max=40))
    umbilical_cord = ma.fields.Boolean(load_default=False)
    placenta = ma.fields.Boolean(load_default=False)
    delivery_at = SiteDateTime(required=True, metadata={"description": "Birth"})
    collected_at = SiteDateTime(required=True, metadata={"description": "Tissue recovery"})
    collection_site = ma.fields.String(required=True, validate=validate.Length(min=1, max=120))
    collector = ma.fields.String(required=True, validate=validate.Length(min=1, max=120))
    transport_conditions = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    reserved_din = ma.fields.String(
        validate=validate.Length(max=60),
        metadata={"description": "A DIN reserved for label stock; a new one if absent"},
    )
    donor_code = ma.fields.String(
        validate=validate.Length(max=20),
        metadata={"description": "An existing donor (a second birth); else the fields below"},
    )
    consent_date = ma.fields.Date()
    consent_form_version = ma.fields.String(validate=validate.Length(min=1, max=40))
    screening_outcome = ma.fields.String(validate=validate.OneOf(_choices(ScreeningOutcome)))
    screening_date = ma.fields.Date()
    screening_notes = ma.fields.String(validate=validate.Length(max=2000))

    @ma.validates_schema
    def new_donor_complete(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("donor_code"):
            given = [name for name in (*NEW_DONOR_FIELDS, "screening_notes") if name in data]
            if given:
                raise ma.ValidationError(
                    N_("Give an existing donor code or a new donor's consent, not both."),
                    "donor_code",
                )
            return
        missing = {
            name: [N_("Required for a new donor.")] for name in NEW_DONOR_FIELDS if name not in data
        }
        if missing:
            raise ma.ValidationError(missing)

    @ma.post_load
    def to_registration(self, data: dict[str, Any], **_kwargs: Any) -> DonationRegistration:
        new_donor = None
        if not data.get("donor_code"):
            new_donor = NewDonor(
                consent_date=data["consent_date"],
                consent_form_version=data["consent_form_version"],
                screening_outcome=ScreeningOutcome(data["screening_outcome"]),
                screening_date=data["screening_date"],
                screening_notes=data.get("screening_notes"),
            )
        return DonationRegistration(
            umbilical_cord=data["umbilical_cord"],
            placenta=data["placenta"],
            delivery_at=data["delivery_at"],
            collected_at=data["collected_at"],
            collection_site=data["collection_site"],
            collector=data["collector"],
            transport_conditions=data["transport_conditions"],
            product_code=data["product_code"],
            new_donor=new_donor,
            donor_code=data.get("donor_code") or None,
            reserved_din=data.get("reserved_din") or None,
        )


class ReceiptIn(ma.Schema):
    received_at = SiteDateTime(required=True)
    temperature_c = ma.fields.Float(required=True, allow_nan=False)
    condition = ma.fields.String(
        required=True, validate=validate.OneOf(_choices(ContainerCondition))
    )
    decision = ma.fields.String(required=True, validate=validate.OneOf(["accept", "reject"]))
    note = ma.fields.String(validate=validate.Length(max=2000))
    location = ma.fields.String(
        load_default=DEFAULT_RECEIPT_LOCATION, validate=validate.Length(min=1, max=120)
    )

    @ma.post_load
    def to_receipt(self, data: dict[str, Any], **_kwargs: Any) -> Receipt:
        return Receipt(
            received_at=data["received_at"],
            temperature_c=data["temperature_c"],
            condition=ContainerCondition(data["condition"]),
            accept=data["decision"] == "accept",
            note=data.get("note"),
            location=data["location"],
        )


class ResultIn(ma.Schema):
    test_code = ma.fields.String(required=True, validate=validate.Length(min=1, max=20))
    specimen_date = ma.fields.Date(required=True)
    result = ma.fields.String(required=True, validate=validate.OneOf(_choices(InfectiousResult)))
    method = ma.fields.String(validate=validate.Length(max=200))

    @ma.post_load
    def to_entry(self, data: dict[str, Any], **_kwargs: Any) -> ResultEntry:
        return ResultEntry(
            test_code=data["test_code"],
            specimen_date=data["specimen_date"],
            result=InfectiousResult(data["result"]),
            method=data.get("method"),
        )


class ResultCorrectionIn(ma.Schema):
    specimen_date = ma.fields.Date(required=True)
    result = ma.fields.String(required=True, validate=validate.OneOf(_choices(InfectiousResult)))
    method = ma.fields.String(validate=validate.Length(max=200))
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))


def correction_entry(test_code: str, data: dict[str, Any]) -> ResultEntry:
    """The corrected result of ``test_code`` from a loaded ``ResultCorrectionIn``."""
    return ResultEntry(
        test_code=test_code,
        specimen_date=data["specimen_date"],
        result=InfectiousResult(data["result"]),
        method=data.get("method"),
    )


class ScreeningCorrectionIn(ma.Schema):
    screening_outcome = ma.fields.String(
        required=True, validate=validate.OneOf(_choices(ScreeningOutcome))
    )
    screening_date = ma.fields.Date(required=True)
    screening_notes = ma.fields.String(validate=validate.Length(max=2000))
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=2000))


class DeterminationIn(ma.Schema):
    """QA's determination, signed by re-entering their password."""

    outcome = ma.fields.String(required=True, validate=validate.OneOf(["eligible", "ineligible"]))
    reason = ma.fields.String(validate=validate.Length(max=2000))
    password = ma.fields.String(required=True, load_only=True)


class DonationQueryIn(ListQueryIn):
    """The donations list's page (``core.listing``; sort by registered, din, birth,
    collected, status or eligibility; ``q`` searches the DIN and the donor's code) and its
    filters. ``per_page`` is the earlier name of ``page_size``, kept for existing clients."""

    status = ma.fields.String(validate=validate.OneOf(_choices(DonationStatus)))
    eligibility = ma.fields.String(validate=validate.OneOf(_choices(Eligibility)))
    per_page = WholeNumber(
        validate=validate.Range(min=1, max=100),
        metadata={"description": "Deprecated: the page_size"},
    )


class EligibilityQueueIn(ListQueryIn):
    """The eligibility queue's page (longest waiting first; the same sort keys and search
    as the donations list), filtered by the donation's status."""

    status = ma.fields.String(validate=validate.OneOf(_choices(DonationStatus)))


# --- output -----------------------------------------------------------------------------------


class DonorOut(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String(metadata={"description": "Pseudonymous donor code"})
    consent_date = ma.fields.Date()
    consent_form_version = ma.fields.String()
    consent_recorded_by = ma.fields.String(
        attribute="consent_recorded_by.username", allow_none=True
    )
    consent_recorded_at = ma.fields.AwareDateTime()
    screening_outcome = ma.fields.String()
    screening_date = ma.fields.Date()
    screening_notes = ma.fields.String(allow_none=True)


class DonorDetailOut(DonorOut):
    donations = ma.fields.Pluck("DonationSummaryOut", "din", many=True)


class DonationSummaryOut(ma.Schema):
    id = ma.fields.Integer()
    din = ma.fields.String()
    donor_code = ma.fields.String(attribute="donor.code")
    tissues = ma.fields.List(ma.fields.String())
    delivery_at = ma.fields.AwareDateTime()
    collected_at = ma.fields.AwareDateTime()
    status = ma.fields.String()
    eligibility = ma.fields.String()
    in_quarantine = ma.fields.Boolean()
    recalls = recalls_field()


class DonationPageOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DonationSummaryOut))
    page = ma.fields.Integer()
    per_page = ma.fields.Integer()
    total = ma.fields.Integer()
    pages = ma.fields.Integer()


class ResultOut(ma.Schema):
    id = ma.fields.Integer()
    test_code = ma.fields.String()
    specimen_date = ma.fields.Date()
    result = ma.fields.String()
    method = ma.fields.String(allow_none=True)
    recorded_at = ma.fields.AwareDateTime()
    recorded_by = ma.fields.String(attribute="recorded_by.username")
    corrects_id = ma.fields.Integer(allow_none=True)
    correction_reason = ma.fields.String(allow_none=True)
    superseded_at = ma.fields.AwareDateTime(allow_none=True)
    superseded_by_id = ma.fields.Integer(allow_none=True)


class ResultRecordedOut(ResultOut):
    """A result just recorded or corrected, and what it did to the donor's eligibility."""

    eligibility = ma.fields.String(
        metadata={"description": "The donation's eligibility after the result"}
    )
    reopened_determination_id = ma.fields.Integer(
        allow_none=True,
        metadata={"description": "The eligible determination this result re-opened, if any"},
    )
    lookback = ma.fields.Nested(
        RecallNoticeOut,
        allow_none=True,
        metadata={"description": "The lookback recall this result opened, if any"},
    )


class CheckOut(ma.Schema):
    label = ma.fields.String()
    ok = ma.fields.Boolean()
    passed = ma.fields.Boolean(metadata={"description": "Whether this check passed"})
    state = ma.fields.String(metadata={"description": "PASSED, FAILED or NOT YET"})
    detail = ma.fields.String()


class EligibilityReviewOut(ma.Schema):
    donation_id = ma.fields.Integer()
    din = ma.fields.String()
    eligibility = ma.fields.String()
    complete = ma.fields.Boolean(metadata={"description": "Every panel test has a result"})
    eligible_possible = ma.fields.Boolean(metadata={"description": "Every check passes"})
    missing_tests = ma.fields.List(ma.fields.String())
    checks = ma.fields.List(ma.fields.Nested(CheckOut))
    recalls = recalls_field()


class DeterminationOut(ma.Schema):
    id = ma.fields.Integer()
    outcome = ma.fields.String()
    reason = ma.fields.String(allow_none=True)
    determined_at = ma.fields.AwareDateTime()
    determined_by = ma.fields.String(attribute="determined_by.username")
    signatures = ma.fields.List(ma.fields.Nested(SignatureOut))
    reopened_at = ma.fields.AwareDateTime(
        allow_none=True, metadata={"description": "When a later donor result re-opened it"}
    )
    reopened_by_result_id = ma.fields.Integer(allow_none=True)
    reopened_reason = ma.fields.String(allow_none=True)


class ProcessingClockOut(ma.Schema):
    hours_elapsed = ma.fields.Float()
    limit_hours = ma.fields.Float()
    started = ma.fields.Boolean()
    exceeded = ma.fields.Boolean()


class DonationOut(DonationSummaryOut):
    donor = ma.fields.Nested(DonorOut)
    product = ma.fields.String(metadata={"description": "Product definition code and version"})
    collection_site = ma.fields.String()
    collector = ma.fields.String()
    transport_conditions = ma.fields.String()
    registered_at = ma.fields.AwareDateTime()
    registered_by = ma.fields.String(attribute="registered_by.username", allow_none=True)
    received_at = ma.fields.AwareDateTime(allow_none=True)
    received_by = ma.fields.String(attribute="received_by.username", allow_none=True)
    arrival_temperature_c = ma.fields.Float(allow_none=True)
    container_condition = ma.fields.String(allow_none=True)
    receipt_note = ma.fields.String(allow_none=True)
    processing_started_at = ma.fields.AwareDateTime(allow_none=True)
    processing_clock = ma.fields.Nested(ProcessingClockOut)
    donor_test_panel = ma.fields.Dict(
        metadata={"description": "The donor test panel version (id, code, version) in force at "
        "registration: its tests are the ones required"}
    )
    panel = ma.fields.List(ma.fields.Dict())
    results = ma.fields.List(ma.fields.Nested(ResultOut))
    determination = ma.fields.Nested(
        DeterminationOut,
        allow_none=True,
        metadata={"description": "The determination in force (none while re-opened)"},
    )
    reopened_determinations = ma.fields.List(
        ma.fields.Nested(DeterminationOut),
        metadata={"description": "Earlier determinations re-opened by a later donor result"},
    )
    recalls = recalls_field()
    units = ma.fields.List(ma.fields.Nested(UnitOut))
