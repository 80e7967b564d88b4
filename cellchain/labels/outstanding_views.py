"""The page of the labels to print (bags never labelled, or released under a quarantine
label) and of those printed and not yet applied or destroyed, linked from the technician's
work queue (issue 21). A route of the labels blueprint (``labels.outstanding``)."""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

from cellchain.core.listing_schemas import ListQueryIn
from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import requires
from cellchain.labels import outstanding as rules
from cellchain.labels.views import blueprint
from cellchain.web.listing import page_request


@blueprint.get("/labels/outstanding")
@requires(Permission.READ_RECORDS)
def outstanding() -> ResponseReturnValue:
    """The bags needing a label printed (paged, searched), and the oldest unit label
    prints with copies neither applied on their container nor destroyed (all of them in
    the print log, filtered)."""
    _query, page_asked, notes = page_request(ListQueryIn(), request.args)
    page = rules.labels_to_print_page(db.session, page_asked)
    return render_template(
        "labels/outstanding.html",
        to_print=page.items,
        page=page,
        notes=notes,
        prints=rules.outstanding_prints(db.session, limit=rules.LABELS_TO_APPLY_SHOWN),
        prints_total=rules.count_outstanding_prints(db.session),
    )
