"""``GET /api/v1/lookup?code=``: any code the scan box reads, to the record it names (issue 21).

The unit scan ``GET /api/v1/scan`` (``chain/api.py``, with its fast path ``ScanAhead``) stays
as it is; this answers every kind: ``{kind, id, code, url, label}``, or the refusal as
problem+json with ``errors={"code": [...]}``: 422 a text that is no code (or a code without its
check character), 404 a code of no record the user may see; a code naming several records is
300 Multiple Choices, listing each (``matches``) to choose from.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Response, jsonify
from flask_smorest import Blueprint

from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import acting_user, requires
from cellchain.scanning import codes
from cellchain.scanning.schemas import AmbiguousOut, LookupOut, LookupQueryIn
from cellchain.web.resolve import record_url

lookup_api = Blueprint(
    "lookup_api", __name__, url_prefix="/api/v1", description="Any code, to its record"
)
blueprints = (lookup_api,)


@lookup_api.get("/lookup")
@requires(Permission.USE_APP)
@lookup_api.arguments(LookupQueryIn, location="query")
@lookup_api.response(200, LookupOut)
@lookup_api.alt_response(
    300, schema=AmbiguousOut, description="The code names several records: each is listed"
)
def lookup(args: dict[str, Any]) -> Any:
    """What a scanned or typed code names: a DIN, unit code, lot number, chain-of-identity
    identifier, patient study ID, shipper ID, material lot number or equipment ID.

    A code without its check character, or no code at all, is 422; a code of no record (or of
    one the user may not see) 404; a code naming several records 300, listing them.
    """
    try:
        found = codes.find(db.session, args["code"], roles=acting_user().roles)
    except codes.AmbiguousCode as error:
        return _choices(error)
    return _answer(found)


def _answer(found: codes.Match) -> dict[str, Any]:
    return {**asdict(found), "url": record_url(found)}


def _choices(error: codes.AmbiguousCode) -> Response:
    body = {
        "title": error.title,
        "detail": error.detail,
        "errors": error.errors,
        "matches": [_answer(match) for match in error.matches],
    }
    response = jsonify(AmbiguousOut().dump(body))
    response.status_code = 300
    return response
