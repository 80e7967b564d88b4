"""The page of the labels printed and not yet applied or destroyed, linked from the
technician's work queue (issue 21). A route of the labels blueprint (``labels.outstanding``)."""

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
    """Unit label prints with copies neither applied on their container nor destroyed."""
    return render_template("labels/outstanding.html", prints=rules.outstanding_prints(db.session))
