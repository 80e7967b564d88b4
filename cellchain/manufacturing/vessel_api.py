"""API of the vessels in culture (issue 21): the work list of the culture vessels still in
culture, the longest in culture first, a page at a time."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core.listing import PageRequest
from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import now, requires, site_zone
from cellchain.manufacturing import vessels
from cellchain.manufacturing.vessel_schemas import VesselOut, VesselQueryIn
from cellchain.web.listing import PAGINATION_HEADERS, paged

vessels_api = Blueprint(
    "vessels_api", __name__, url_prefix="/api/v1/vessels", description="Vessels in culture"
)
blueprints = (vessels_api,)


@vessels_api.get("/in-culture")
@requires(Permission.READ_RECORDS)
@vessels_api.arguments(VesselQueryIn, location="query")
@vessels_api.response(200, VesselOut(many=True), headers=PAGINATION_HEADERS)
def list_vessels_in_culture(args: dict[str, Any]) -> Any:
    """The culture vessels still in culture, the longest in culture first (seeded first), a
    page at a time (the ``X-Pagination`` header): ``passage`` and ``due`` (due for their
    harvest today) to filter, ``q`` to search
    the vessel code and the DIN; ``sort`` by seeded, passage, code or format. Days in
    culture are counted on the site's calendar."""
    return paged(
        vessels.vessels_page(
            db.session,
            PageRequest.of(args),
            now=now(),
            zone=site_zone(),
            passage=args.get("passage"),
            due=args.get("due", False),
        )
    )
