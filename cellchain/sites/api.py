"""API of sites: list, read, create and edit sites; a user's site memberships.

Load → command → dump. No rules here."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from cellchain.core import accounts
from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import requires, unit_of_work
from cellchain.sites import commands, service
from cellchain.sites.schemas import MembershipsIn, SiteChangeIn, SiteIn, SiteOut

sites_api = Blueprint(
    "sites_api",
    __name__,
    url_prefix="/api/v1/sites",
    description="Sites: the manufacturing facility and the clinical sites",
)
blueprints = (sites_api,)


@sites_api.route("")
class Sites(MethodView):
    @requires(Permission.READ_RECORDS)
    @sites_api.response(200, SiteOut(many=True))
    def get(self) -> Any:
        """Every site, the manufacturing facility first."""
        return service.list_sites(db.session)

    @requires(Permission.MANAGE_SITES)
    @sites_api.arguments(SiteIn)
    @sites_api.response(201, SiteOut)
    def post(self, data: dict[str, Any]) -> Any:
        """Record a site (audited). There is one manufacturing facility; the time zone is an
        IANA zone; the code is unique for all time."""
        with unit_of_work() as session:
            site = commands.create_site(session, data)
        return site


@sites_api.get("/<int:site_id>")
@requires(Permission.READ_RECORDS)
@sites_api.response(200, SiteOut)
def get_site(site_id: int) -> Any:
    return service.get_site(db.session, site_id)


@sites_api.put("/<int:site_id>")
@requires(Permission.MANAGE_SITES)
@sites_api.arguments(SiteChangeIn)
@sites_api.response(200, SiteOut)
def update_site(data: dict[str, Any], site_id: int) -> Any:
    """Change a site's name, zone, address, contact or activity (audited)."""
    with unit_of_work() as session:
        site = commands.update_site(session, site_id, data)
    return site


@sites_api.get("/members/<int:user_id>")
@requires(Permission.MANAGE_SITES)
@sites_api.response(200, SiteOut(many=True))
def user_sites(user_id: int) -> Any:
    """The sites a user belongs to."""
    return service.sites_of(db.session, accounts.get_user(db.session, user_id))


@sites_api.put("/members/<int:user_id>")
@requires(Permission.MANAGE_SITES)
@sites_api.arguments(MembershipsIn)
@sites_api.response(200, SiteOut(many=True))
def set_user_sites(data: dict[str, Any], user_id: int) -> Any:
    """Replace the sites a user belongs to (audited with the old and new site codes)."""
    with unit_of_work() as session:
        sites = commands.set_memberships(session, user_id, data)
    return sites
