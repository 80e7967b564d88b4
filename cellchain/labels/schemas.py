"""Marshmallow schemas of the labels package (the API and the forms share them)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from cellchain.core.i18n import N_
from cellchain.core.schemas import WholeNumber
from cellchain.labels.models import MAX_COPIES, OutputFormat

FORMATS = [member.value for member in OutputFormat]

#: the schemas' own messages, marked so that the catalogue has them: a form shows them in the
#: reader's language (``web.forms.load_form`` reads each through ``document_text``), the API
#: in English as marshmallow gives them
FORMAT_MESSAGE = N_("Choose PNG, PDF or ZPL.")
#: written out whole, so that the catalogue has the very text a form shows: ``MAX_COPIES``
#: is 50 (tests/labels/test_label_refusals_in_chinese.py holds the two together)
COPIES_MESSAGE = N_("From 1 to 50.")


class PrintIn(ma.Schema):
    """Print a label: which format, how many copies of each, and why if it is a reprint."""

    format = ma.fields.String(
        load_default=OutputFormat.PDF.value,
        validate=validate.OneOf(FORMATS, error=FORMAT_MESSAGE),
        metadata={"description": "png (one label, or a ZIP of one PNG per unit), pdf, zpl"},
    )
    copies = WholeNumber(
        load_default=1,
        validate=validate.Range(1, MAX_COPIES, error=COPIES_MESSAGE),
    )
    reason = ma.fields.String(
        load_default=None,
        allow_none=True,
        metadata={"description": "Required when a label of the unit was printed before"},
    )


class LotPrintIn(PrintIn):
    replace_quarantine_labels = ma.fields.Boolean(
        load_default=False,
        metadata={
            "description": "Only the bags whose label still says quarantine although the lot "
            "is released (the reason defaults to the release)"
        },
    )


class AppliedIn(ma.Schema):
    code = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=60),
        metadata={"description": "The label as scanned (payload) or its code typed"},
    )


class DestroyedIn(ma.Schema):
    count = WholeNumber(required=True, validate=validate.Range(min=1))
    reason = ma.fields.String(required=True, validate=validate.Length(min=1))


class LabelEventOut(ma.Schema):
    kind = ma.fields.String()
    count = ma.fields.Integer()
    reason = ma.fields.String(allow_none=True)
    at = ma.fields.AwareDateTime()
    recorded_by = ma.fields.Function(lambda event: event.recorded_by.username)


class LabelPrintOut(ma.Schema):
    id = ma.fields.Integer()
    unit = ma.fields.Function(
        lambda record: record.subject_code,
        metadata={"description": "The unit code, or the COI of a wristband"},
    )
    patient_id = ma.fields.Integer(allow_none=True)
    unit_id = ma.fields.Integer(allow_none=True)
    lot_id = ma.fields.Integer(allow_none=True)
    label_type = ma.fields.String()
    template_version = ma.fields.Integer()
    template_hash = ma.fields.String()
    format = ma.fields.String(attribute="output_format")
    copies = ma.fields.Integer()
    payload = ma.fields.String()
    quarantine = ma.fields.Boolean(metadata={"description": "Printed with the quarantine marking"})
    marking = ma.fields.String(
        metadata={"description": "The status marking printed (quarantine, recalled, …); '' none"}
    )
    isbt = ma.fields.Boolean(metadata={"description": "Carried the ISBT 128 Data Matrix"})
    unit_status = ma.fields.String()
    reason = ma.fields.String(allow_none=True, metadata={"description": "Why it was reprinted"})
    printed_at = ma.fields.AwareDateTime()
    printed_by = ma.fields.Function(lambda record: record.printed_by.username)
    applied = ma.fields.Integer()
    destroyed = ma.fields.Integer()
    outstanding = ma.fields.Integer()
    events = ma.fields.List(ma.fields.Nested(LabelEventOut))


class ReconciliationOut(ma.Schema):
    issued = ma.fields.Integer()
    applied = ma.fields.Integer()
    destroyed = ma.fields.Integer()
    outstanding = ma.fields.Integer()
    quarantine_labels_to_replace = ma.fields.Function(
        lambda r: [unit.code for unit in r.quarantine_labels_to_replace]
    )
    never_printed = ma.fields.Function(lambda r: [unit.code for unit in r.never_printed])


class LotLabelsOut(ma.Schema):
    lot = ma.fields.String()
    reconciliation = ma.fields.Nested(ReconciliationOut)
    prints = ma.fields.List(ma.fields.Nested(LabelPrintOut))
