"""Pages of sites: the list (everyone reads it), a site's page, the administrator's forms
to create and edit a site and to set the sites a user belongs to."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.core import accounts
from cellchain.core.i18n import _
from cellchain.core.roles import Permission
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import requires, unit_of_work
from cellchain.sites import commands, service
from cellchain.sites.models import SiteKind
from cellchain.sites.schemas import MembershipsIn, SiteChangeIn, SiteIn
from cellchain.web.forms import load_form, refusal_context

blueprint = Blueprint("sites", __name__)


def _list_page(error: DomainError | None = None) -> ResponseReturnValue:
    return (
        render_template(
            "sites/sites.html",
            **refusal_context(
                error,
                sites=service.list_sites(db.session),
                kinds=[{"value": kind.value, "label": kind.label} for kind in SiteKind],
            ),
        ),
        error.status if error else 200,
    )


@blueprint.get("/sites")
@requires(Permission.READ_RECORDS)
def site_list() -> ResponseReturnValue:
    return _list_page()


@blueprint.post("/sites")
@requires(Permission.MANAGE_SITES)
def create_site() -> ResponseReturnValue:
    try:
        data = load_form(SiteIn(), request.form)
        with unit_of_work() as session:
            site_id = commands.create_site(session, data).id
    except DomainError as error:
        return _list_page(error)
    flash(_("Site saved."), "success")
    return redirect(url_for("sites.site", site_id=site_id))


def _site_page(site_id: int, error: DomainError | None = None) -> ResponseReturnValue:
    found = service.get_site(db.session, site_id)
    return (
        render_template(
            "sites/site.html",
            **refusal_context(error, site=found, members=service.members_of(db.session, found)),
        ),
        error.status if error else 200,
    )


@blueprint.get("/sites/<int:site_id>")
@requires(Permission.READ_RECORDS)
def site(site_id: int) -> ResponseReturnValue:
    return _site_page(site_id)


@blueprint.post("/sites/<int:site_id>")
@requires(Permission.MANAGE_SITES)
def update_site(site_id: int) -> ResponseReturnValue:
    try:
        data = load_form(SiteChangeIn(), request.form)
        with unit_of_work() as session:
            commands.update_site(session, site_id, data)
    except DomainError as error:
        return _site_page(site_id, error)
    flash(_("Site saved."), "success")
    return redirect(url_for("sites.site", site_id=site_id))


@blueprint.post("/users/<int:user_id>/sites")
@requires(Permission.MANAGE_SITES)
def set_user_sites(user_id: int) -> ResponseReturnValue:
    accounts.get_user(db.session, user_id)
    try:
        data: dict[str, Any] = load_form(MembershipsIn(), request.form, lists=("site_ids",))
        with unit_of_work() as session:
            commands.set_memberships(session, user_id, data)
    except DomainError as error:
        flash(error.detail, "error")
    else:
        flash(_("Saved."), "success")
    return redirect(url_for("admin.user", user_id=user_id))
