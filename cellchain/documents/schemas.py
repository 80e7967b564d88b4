"""Marshmallow schemas of the controlled documents: a version as the API shows it, a new
draft, a draft's change, QA's signature into force and the differences from the version in
force."""

from __future__ import annotations

import marshmallow as ma

from cellchain.core.schemas import SignatureOut, SignIn, SiteDateTime


class VersionedDocumentOut(ma.Schema):
    """A version of a QA-approved configuration document, with its signatures."""

    id = ma.fields.Integer()
    code = ma.fields.String()
    version = ma.fields.Integer()
    title = ma.fields.String()
    status = ma.fields.String()
    parameters = ma.fields.Dict()
    created_at = ma.fields.AwareDateTime()
    effective_at = ma.fields.AwareDateTime(allow_none=True)
    change_reason = ma.fields.String(allow_none=True)
    signatures = ma.fields.List(ma.fields.Nested(SignatureOut))


class DraftIn(ma.Schema):
    """A new version of ``code``, written as a draft (nothing uses it until QA signs it)."""

    code = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=40))
    title = ma.fields.String(required=True, validate=ma.validate.Length(max=300))
    reason = ma.fields.String(
        required=True,
        validate=ma.validate.Length(max=2000),
        metadata={"description": "Why the document changes (kept in the audit trail)"},
    )
    parameters = ma.fields.Dict(required=True)


class DraftChangeIn(ma.Schema):
    """A change to a draft; a signed version is refused (409): it is never changed in place."""

    title = ma.fields.String(validate=ma.validate.Length(max=300))
    reason = ma.fields.String(required=True, validate=ma.validate.Length(max=2000))
    parameters = ma.fields.Dict()


class ApproveIn(SignIn):
    """QA's e-signature, and when the version takes effect (default: at the signing; never
    before it)."""

    effective_at = SiteDateTime(load_default=None, allow_none=True)


class LineOut(ma.Schema):
    """One line of a text of several lines compared line by line."""

    change = ma.fields.String(metadata={"description": "kept (context), removed or added"})
    old_number = ma.fields.Integer(allow_none=True, metadata={"description": "1-based"})
    new_number = ma.fields.Integer(allow_none=True, metadata={"description": "1-based"})
    text = ma.fields.String()
    hunk = ma.fields.Integer(metadata={"description": "the group of a change and its context"})


class DifferenceOut(ma.Schema):
    path = ma.fields.String()
    change = ma.fields.String(metadata={"description": "changed, added or removed"})
    old = ma.fields.Raw(allow_none=True)
    new = ma.fields.Raw(allow_none=True)
    lines = ma.fields.List(
        ma.fields.Nested(LineOut),
        allow_none=True,
        metadata={
            "description": "A text of several lines (a label template's TOML) line by line: "
            "the lines removed and added, with 3 lines kept around each change; null for "
            "other values"
        },
    )
    unified = ma.fields.String(
        allow_none=True, metadata={"description": "The same lines as a unified diff, or null"}
    )


class ComparisonOut(ma.Schema):
    """A version beside the version in force (or ``against``)."""

    document_id = ma.fields.Integer(attribute="document.id")
    version = ma.fields.Integer(attribute="document.version")
    against_id = ma.fields.Integer(attribute="base.id", allow_none=True)
    against_version = ma.fields.Integer(attribute="base.version", allow_none=True)
    title_changed = ma.fields.Boolean()
    differences = ma.fields.List(ma.fields.Nested(DifferenceOut), attribute="rows")


class DifferencesQuery(ma.Schema):
    against = ma.fields.Integer(
        load_default=None, metadata={"description": "Another version's id (default: in force)"}
    )
