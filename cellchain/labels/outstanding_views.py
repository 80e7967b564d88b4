"""The page of the labels to print (bags never labelled, or released under a quarantine
label) and of those printed and not yet applied or destroyed, linked from the technician's
work queue (issue 21). A route of the labels blueprint (``labels.outstanding``)."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import requires
from cellchain.labels import outstanding as rules
from cellchain.labels.views import blueprint


@blueprint.get("/labels/outstanding")
@requires(Permission.READ_RECORDS)
def outstanding() -> ResponseReturnValue:
    """The bags needing a label printed, and the unit label prints with copies neither
    applied on their container nor destroyed."""
    return render_template(
        "labels/outstanding.html",
        to_print=rules.labels_to_print(db.session),
        prints=rules.outstanding_prints(db.session),
    )
