"""Acting-user glue of the work queues, shared by the home page and the API: the acting
user's roles, the request's time and the site's calendar, then the service."""

from __future__ import annotations

from flask import current_app

from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone
from cellchain.worklists import service


def worklist_of_acting_user(session: DbSession) -> list[service.RoleQueue]:
    """The queues of the acting user's roles, counted now (the site's day for visits)."""
    zone = site_zone()
    at = now()
    moment = service.Moment(
        now=at,
        today=at.astimezone(zone).date(),
        zone=zone,
        material_warning_days=current_app.config["MATERIAL_EXPIRY_WARNING_DAYS"],
    )
    return service.worklists(session, acting_user().roles, at=moment)
