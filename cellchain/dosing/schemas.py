"""Marshmallow schemas of the dosing package."""

from __future__ import annotations

import marshmallow as ma

from cellchain.core.schemas import SignatureOut


class ProtocolOut(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    version = ma.fields.Integer()
    title = ma.fields.String()
    status = ma.fields.String()
    parameters = ma.fields.Dict()
    created_at = ma.fields.AwareDateTime()
    effective_at = ma.fields.AwareDateTime(allow_none=True)
    signatures = ma.fields.List(ma.fields.Nested(SignatureOut))
