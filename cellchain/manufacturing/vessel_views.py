"""The page of the vessels in culture (issue 21): the bench's work list, the longest in
culture first; a bad value in the address is dropped with a note (``core.listing``)."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import now, requires, site_zone
from cellchain.manufacturing import vessels
from cellchain.manufacturing.vessel_schemas import VesselQueryIn
from cellchain.web.listing import page_request

blueprint = Blueprint("vessels", __name__)


@blueprint.get("/manufacturing/vessels")
@requires(Permission.READ_RECORDS)
def vessels_in_culture() -> ResponseReturnValue:
    query, page_asked, notes = page_request(VesselQueryIn(), request.args)
    page = vessels.vessels_page(
        db.session,
        page_asked,
        now=now(),
        zone=site_zone(),
        passage=query.get("passage"),
        due=bool(query.get("due")),
    )
    return render_template(
        "manufacturing/vessels.html", vessels=page.items, page=page, notes=notes, query=query
    )
