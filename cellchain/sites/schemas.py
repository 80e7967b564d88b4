"""Shapes of sites and site memberships, in and out (no rules, no database)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from cellchain.core.schemas import WholeNumber
from cellchain.sites.models import SiteKind


class SiteIn(ma.Schema):
    """A new site: its code (unique for all time), name, kind, IANA time zone, and optionally
    an address and a contact."""

    code = ma.fields.String(required=True, validate=validate.Length(min=2, max=20))
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=120))
    kind = ma.fields.String(
        load_default=SiteKind.CLINICAL_SITE.value,
        validate=validate.OneOf([kind.value for kind in SiteKind]),
    )
    time_zone = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=60),
        metadata={"description": "IANA time zone, e.g. Asia/Shanghai"},
    )
    address = ma.fields.String(load_default=None, allow_none=True)
    contact = ma.fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=200)
    )
    active = ma.fields.Boolean(load_default=True)


class SiteChangeIn(ma.Schema):
    """A site's new name, zone, address, contact and whether it is active (its code and kind
    never change)."""

    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=120))
    time_zone = ma.fields.String(required=True, validate=validate.Length(min=1, max=60))
    address = ma.fields.String(load_default=None, allow_none=True)
    contact = ma.fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=200)
    )
    active = ma.fields.Boolean(load_default=False)


class SiteOut(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    kind = ma.fields.String()
    time_zone = ma.fields.String()
    address = ma.fields.String(allow_none=True)
    contact = ma.fields.String(allow_none=True)
    active = ma.fields.Boolean()
    created_at = ma.fields.AwareDateTime()


class MembershipsIn(ma.Schema):
    """The sites (ids) a user belongs to, all of them: the list replaces the old one."""

    site_ids = ma.fields.List(WholeNumber(), required=True)
