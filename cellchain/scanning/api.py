"""``GET /api/v1/lookup?code=``: any code the scan box reads, to the record it names (issue 21).

The unit scan ``GET /api/v1/scan`` (``chain/api.py``, with its fast path ``ScanAhead``) stays
as it is; this answers every kind: ``{kind, id, code, url, label}``, or the refusal as
problem+json with ``errors={"code": [...]}``: 422 a text that is no code (or a code without its
check character), 404 a code of no record the user may see, 409 a code naming several.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask_smorest import Blueprint

from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import acting_user, requires
from cellchain.scanning import codes
from cellchain.scanning.schemas import LookupOut, LookupQueryIn
from cellchain.web.resolve import record_url

lookup_api = Blueprint(
    "lookup_api", __name__, url_prefix="/api/v1", description="Any code, to its record"
)
blueprints = (lookup_api,)


@lookup_api.get("/lookup")
@requires(Permission.USE_APP)
@lookup_api.arguments(LookupQueryIn, location="query")
@lookup_api.response(200, LookupOut)
def lookup(args: dict[str, Any]) -> Any:
    """What a scanned or typed code names: a DIN, unit code, lot number, chain-of-identity
    identifier, patient study ID, shipper ID, material lot number or equipment ID.

    A code without its check character, or no code at all, is 422; a code of no record (or of
    one the user may not see) 404; a code naming records of two kinds 409, listing them.
    """
    found = codes.find(db.session, args["code"], roles=acting_user().roles)
    return {**asdict(found), "url": record_url(found)}
