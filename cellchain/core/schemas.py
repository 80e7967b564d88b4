"""Marshmallow schemas of the shared kernel: the shapes every feature uses (site date-times,
signatures, issued identifiers, scanning). Administration's schemas (users, tokens, the
audit viewer) are in ``cellchain.admin.schemas``.

The API and the HTML forms load input through these same schemas, so the shape rules are
written once. Unknown fields are refused (marshmallow's default), never silently dropped.
"""

from __future__ import annotations

import datetime as dt
import numbers
from contextvars import ContextVar
from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma
from marshmallow import validate

#: The site's time zone while input is loaded. The interface sets it for every request
#: (``cellchain.wiring``, from the app's configuration); a schema never reads the app. A
#: variable of our own, not marshmallow's experimental ``Context``: that one is a single
#: variable for every user of it, which any other ``with Context(...)`` would replace.
SITE_ZONE: ContextVar[ZoneInfo] = ContextVar("site_zone")

#: What a scanned or typed code may be: one to 200 characters (its form is checked by the
#: service that reads it).
SCANNED_CODE = validate.Length(min=1, max=200)

#: The largest value of the database's ``INTEGER`` column (PostgreSQL's is 32 bits): every id,
#: page and count a request carries must fit, or the database refuses the query with an error.
DB_INT_MAX = 2**31 - 1
DB_INT_MIN = -(2**31)


class WholeNumber(ma.fields.Integer):
    """An integer that fits the database's ``INTEGER`` column; never a fraction.

    marshmallow's ``Integer`` truncates ``1.5`` to ``1`` unless strict, and strict refuses the
    text an HTML form or a query string sends ("3"); this refuses any non-integral number
    (a JSON ``1.5`` or ``1.0``) and still reads "3". The range check (documented in the
    OpenAPI schema as ``minimum``/``maximum``) keeps a huge id away from the database, which
    would refuse it with an error rather than find nothing.
    """

    def __init__(self, **kwargs: Any) -> None:
        validators = kwargs.pop("validate", None)
        extra = [validators] if callable(validators) else list(validators or [])
        bounded = any(
            isinstance(v, validate.Range)
            and v.min is not None
            and v.max is not None
            and v.min >= DB_INT_MIN
            and v.max <= DB_INT_MAX
            for v in extra
        )
        if not bounded:
            extra.append(validate.Range(DB_INT_MIN, DB_INT_MAX))
        super().__init__(validate=extra, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, numbers.Number) and not isinstance(value, numbers.Integral):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class SiteDateTime(ma.fields.DateTime):
    """An ISO 8601 date-time; one without an offset is read in the site's time zone.

    HTML forms send ``datetime-local`` values (no offset) as the person saw them on the wall
    clock; API clients should send an offset. Either way the service gets an aware UTC time.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_site_zone())
        return parsed.astimezone(dt.UTC)


def _site_zone() -> ZoneInfo:
    try:
        return SITE_ZONE.get()
    except LookupError:
        raise RuntimeError(
            "A site date-time was loaded with no site time zone: the interface sets "
            "SITE_ZONE for every request (cellchain.wiring); set it around any other load."
        ) from None


class ScanQueryIn(ma.Schema):
    code = ma.fields.String(required=True, validate=SCANNED_CODE)


class IdentifierOut(ma.Schema):
    code = ma.fields.String(metadata={"description": "Canonical form with check character"})
    kind = ma.fields.String()
    issued_at = ma.fields.AwareDateTime()
    issued_by = ma.fields.String(attribute="issued_by.username", allow_none=True)
    purpose = ma.fields.String()
    entity_type = ma.fields.String(allow_none=True)
    entity_id = ma.fields.String(allow_none=True)


class SignIn(ma.Schema):
    """What a person re-enters to sign: their password, at the moment of signing."""

    password = ma.fields.String(required=True, load_only=True)


class SignatureOut(ma.Schema):
    signature_id = ma.fields.Integer()
    printed_name = ma.fields.String()
    username = ma.fields.String()
    signed_at = ma.fields.AwareDateTime()
    meaning = ma.fields.String()
    valid = ma.fields.Boolean(
        metadata={"description": "False when the signed content changed after signing"}
    )
