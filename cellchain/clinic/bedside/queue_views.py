"""The clinic's queue pages the home page links to (issue 21): the doses to thaw today and
the post-thaw counts waiting for an investigator's decision. Routes of the bedside blueprint
(their endpoints ``bedside.to_thaw_today`` and ``bedside.decisions_awaited``)."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from cellchain.clinic.bedside import queues
from cellchain.clinic.bedside.views import blueprint
from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import now, requires, site_zone


@blueprint.get("/clinic/to-thaw-today")
@requires(Permission.READ_RECORDS)
def to_thaw_today() -> ResponseReturnValue:
    """Doses received, not thawed, planned for today on the site's calendar."""
    today = now().astimezone(site_zone()).date()
    return render_template(
        "clinic/bedside/to_thaw_today.html",
        today=today,
        doses=queues.to_thaw_on(db.session, today),
    )


@blueprint.get("/clinic/post-thaw-decisions")
@requires(Permission.READ_RECORDS)
def decisions_awaited() -> ResponseReturnValue:
    """Post-thaw counts outside tolerance waiting for an investigator's signed decision."""
    return render_template(
        "clinic/bedside/decisions_awaited.html", counts=queues.decisions_awaited(db.session)
    )
