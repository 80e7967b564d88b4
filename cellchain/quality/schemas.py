"""Marshmallow schemas of the quality package."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from cellchain.chain.schemas import UnitOut
from cellchain.core.schemas import SignatureOut, SignIn, SiteDateTime, WholeNumber
from cellchain.documents.schemas import VersionedDocumentOut
from cellchain.manufacturing.deviations.schemas import DeviationOut
from cellchain.quality.evaluation import criterion_text
from cellchain.quality.results import SampleRequest
from cellchain.traceability.notice_schemas import recalls_field


class SpecificationOut(VersionedDocumentOut):
    """A version of a release specification: its tests and acceptance criteria."""


# --- samples and results -------------------------------------------------------------------------


class SampleIn(ma.Schema):
    """Draw labelled QC sample tubes from one bag of the lot (scanned or typed code)."""

    bag = ma.fields.String(required=True, validate=validate.Length(min=1, max=40))
    tubes = WholeNumber(load_default=1)
    purpose = ma.fields.String(load_default=None, allow_none=True)
    bag_used_up = ma.fields.Boolean(
        load_default=True,
        metadata={"description": "The whole bag goes to testing (a QC bag) and is consumed"},
    )
    taken_at = SiteDateTime(load_default=None, allow_none=True)

    @staticmethod
    def request(data: dict[str, Any]) -> SampleRequest:
        """The loaded data as the service's request."""
        return SampleRequest(
            bag_code=data["bag"],
            tubes=data["tubes"],
            purpose=data["purpose"],
            bag_used_up=data["bag_used_up"],
            taken_at=data["taken_at"],
        )


class SampleOut(ma.Schema):
    unit = ma.fields.Nested(UnitOut)
    lot_id = ma.fields.Integer()
    taken_from = ma.fields.Function(lambda s: s.taken_from.code)
    taken_at = ma.fields.AwareDateTime()
    taken_by = ma.fields.Function(lambda s: s.taken_by.username)
    purpose = ma.fields.String(allow_none=True)


class ResultLineIn(ma.Schema):
    test = ma.fields.String(required=True, metadata={"description": "Test code, e.g. CD73"})
    value = ma.fields.Raw(
        required=True,
        metadata={"description": "A number for a numeric test, else one of its categories"},
    )
    unit = ma.fields.String(load_default=None, allow_none=True)
    instrument = ma.fields.String(
        required=True,
        metadata={
            "description": "The instrument; a registered equipment's asset ID links the "
            "result to it, and it must then be in date (calibration, maintenance) that day"
        },
    )
    tested_on = ma.fields.Date(required=True)


class ResultsIn(ma.Schema):
    """Results measured on one QC sample tube: all are recorded, or none."""

    sample = ma.fields.String(required=True, metadata={"description": "The sample tube's code"})
    results = ma.fields.List(
        ma.fields.Nested(ResultLineIn), required=True, validate=validate.Length(min=1)
    )


def _path(*names: str) -> Any:
    """A getter for ``names`` followed from a result, or None where a link is empty.

    It reads the result object (lists) as well as the dict of its fields the detail endpoint
    dumps with the signatures added (``QcResultDetailOut``); a lambda reading attributes
    failed on that dict and made every ``GET /results/{id}`` a 500.
    """

    def get(record: Any) -> Any:
        value = record
        for name in names:
            if value is None:
                return None
            value = value[name] if isinstance(value, dict) else getattr(value, name)
        return value

    return get


def _specification_label(record: Any) -> str:
    specification = _path("specification")(record)
    return f"{specification.code} v{specification.version}"


class QcResultOut(ma.Schema):
    id = ma.fields.Integer()
    lot_id = ma.fields.Integer()
    sample = ma.fields.Function(_path("sample", "unit", "code"))
    specification = ma.fields.Function(_specification_label)
    test_code = ma.fields.String()
    test_name = ma.fields.String()
    method = ma.fields.String()
    value = ma.fields.Raw()
    unit = ma.fields.String(allow_none=True)
    labelled_value = ma.fields.Float(allow_none=True)
    criterion = ma.fields.String()
    passes = ma.fields.Boolean()
    out_of_specification = ma.fields.Boolean()
    instrument = ma.fields.String()
    #: the registered equipment the instrument is, if its asset ID was typed (issue 22)
    equipment_id = ma.fields.Integer(allow_none=True)
    tested_on = ma.fields.Date()
    analyst = ma.fields.Function(_path("analyst", "username"))
    recorded_at = ma.fields.AwareDateTime()
    status = ma.fields.String()
    invalidated_at = ma.fields.AwareDateTime(allow_none=True)
    invalidated_by = ma.fields.Function(_path("invalidated_by", "username"))
    invalidation_reason = ma.fields.String(allow_none=True)


class QcResultDetailOut(QcResultOut):
    signatures = ma.fields.List(ma.fields.Nested(SignatureOut))


class InvalidateIn(SignIn):
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=5000))


# --- disposition ---------------------------------------------------------------------------------


class ReleaseIn(SignIn):
    comment = ma.fields.String(load_default=None, allow_none=True)


class RejectIn(SignIn):
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=5000))


class ReleaseCheckOut(ma.Schema):
    key = ma.fields.String()
    label = ma.fields.String(metadata={"description": "The precondition by its positive name"})
    ok = ma.fields.Boolean()
    passed = ma.fields.Boolean(metadata={"description": "Whether this precondition passed"})
    state = ma.fields.String(metadata={"description": "PASSED or FAILED"})
    detail = ma.fields.String()


class TestLineOut(ma.Schema):
    code = ma.fields.Function(lambda line: line.test["code"])
    name = ma.fields.Function(lambda line: line.test["name"])
    criterion = ma.fields.Function(lambda line: criterion_text(line.test))
    state = ma.fields.String(metadata={"description": "passes, out of specification or missing"})
    result = ma.fields.Nested(QcResultOut, allow_none=True)
    invalidated = ma.fields.List(ma.fields.Nested(QcResultOut))


class DispositionOut(ma.Schema):
    id = ma.fields.Integer()
    decision = ma.fields.String()
    reason = ma.fields.String(allow_none=True)
    decided_at = ma.fields.AwareDateTime()
    decided_by = ma.fields.Function(lambda d: d.decided_by.username)


class ReviewOut(ma.Schema):
    """The release review: every precondition, every test, and the decision if made."""

    lot_id = ma.fields.Integer()
    lot_number = ma.fields.String()
    status = ma.fields.String()
    din = ma.fields.String()
    expires_at = ma.fields.AwareDateTime(allow_none=True)
    specification = ma.fields.String(allow_none=True)
    ready = ma.fields.Boolean(metadata={"description": "Every precondition of release holds"})
    verdict = ma.fields.String(
        metadata={"description": "READY only when every check passed; NOT READY; DECIDED"}
    )
    summary = ma.fields.String(metadata={"description": "How many preconditions passed/failed"})
    checks = ma.fields.List(ma.fields.Nested(ReleaseCheckOut))
    tests = ma.fields.List(ma.fields.Nested(TestLineOut))
    other_results = ma.fields.List(ma.fields.Nested(QcResultOut))
    out_of_specification = ma.fields.Boolean()
    open_deviations = ma.fields.List(ma.fields.Nested(DeviationOut))
    disposition = ma.fields.Nested(DispositionOut, allow_none=True)
    signatures = ma.fields.List(ma.fields.Nested(SignatureOut))
    barred = ma.fields.List(
        ma.fields.String(),
        metadata={"description": "Why the requesting user may not release this lot, if so"},
    )
    recalls = recalls_field()


class OutOfSpecificationOut(ma.Schema):
    lot_id = ma.fields.Integer()
    lot_number = ma.fields.String()
    results = ma.fields.List(ma.fields.Nested(QcResultOut))
    recalls = recalls_field()
