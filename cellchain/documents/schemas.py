"""Marshmallow schemas of the controlled documents: a version as the API shows it."""

from __future__ import annotations

import marshmallow as ma

from cellchain.core.schemas import SignatureOut


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
    signatures = ma.fields.List(ma.fields.Nested(SignatureOut))
