"""Acting-user glue of sites, shared by the API and the pages: the loaded input, the acting
user and the time from the request, the records loaded (or 404), then the service."""

from __future__ import annotations

from typing import Any

from cellchain.core import accounts
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now
from cellchain.sites import service
from cellchain.sites.models import Site


def create_site(session: DbSession, data: dict[str, Any]) -> Site:
    return service.create_site(session, service.SiteForm(**data), actor=acting_user(), now=now())


def update_site(session: DbSession, site_id: int, data: dict[str, Any]) -> Site:
    site = service.get_site(session, site_id)
    return service.update_site(
        session,
        site,
        service.SiteForm(code=site.code, kind=site.kind, **data),
        actor=acting_user(),
        now=now(),
    )


def set_memberships(session: DbSession, user_id: int, data: dict[str, Any]) -> list[Site]:
    user = accounts.get_user(session, user_id)
    return service.set_memberships(session, user, data["site_ids"], actor=acting_user(), now=now())
