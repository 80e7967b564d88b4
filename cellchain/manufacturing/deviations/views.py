"""Pages of deviations: the list with the form that opens one, and a deviation's page where
QA closes it or authorises a limit excursion, signing with their password. On a refusal the
page is shown again with the message, the fields to fix and what the person typed (never the
password), and nothing is saved.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.core import audit, signatures
from cellchain.core.i18n import _
from cellchain.core.roles import Permission
from cellchain.donors import service as donors
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import requires, unit_of_work
from cellchain.manufacturing.deviations import commands, deviations
from cellchain.manufacturing.deviations.deviations import DeviationStatus
from cellchain.manufacturing.deviations.schemas import (
    DeviationCloseIn,
    DeviationFormIn,
    DeviationQueryIn,
    ExcursionAuthoriseIn,
)
from cellchain.manufacturing.models import DeviationCategory
from cellchain.manufacturing.pages import storage_pages as blueprint
from cellchain.web.forms import load_form, refusal_context
from cellchain.web.listing import page_request

CATEGORIES = list(DeviationCategory)
STATUSES = list(DeviationStatus)


# --- deviations ---------------------------------------------------------------------------------


def _deviations_page(error: DomainError | None = None) -> ResponseReturnValue:
    query, request_of_page, notes = page_request(DeviationQueryIn(), request.args)
    page = deviations.deviations_page(
        db.session,
        request_of_page,
        status=query.get("status"),
        category=DeviationCategory(query["category"]) if "category" in query else None,
    )
    context: dict[str, Any] = {
        "deviations": page.items,
        "page": page,
        "notes": notes,
        "query": query,
        "categories": CATEGORIES,
        "statuses": STATUSES,
        **refusal_context(error),
    }
    return render_template("manufacturing/deviations/deviations.html", **context), (
        error.status if error else 200
    )


@blueprint.get("/deviations")
@requires(Permission.READ_RECORDS)
def deviations_list() -> ResponseReturnValue:
    return _deviations_page()


@blueprint.post("/deviations")
@requires(Permission.OPEN_DEVIATIONS)
def open_deviation() -> ResponseReturnValue:
    try:
        data = load_form(DeviationFormIn(), request.form)
        with unit_of_work() as session:
            deviation_id = commands.open_deviation_by_codes(session, data).id
    except DomainError as error:
        db.session.rollback()
        return _deviations_page(error)
    flash(_("Deviation #%(id)s opened.", id=deviation_id), "success")
    return redirect(url_for("storage.deviation", deviation_id=deviation_id))


def _deviation_page(deviation_id: int, error: DomainError | None = None) -> ResponseReturnValue:
    session = db.session
    found = deviations.get_deviation(session, deviation_id)
    context: dict[str, Any] = {
        "deviation": found,
        "manifests": signatures.manifest(session, found),
        "audit_entries": audit.list_entries(
            session, audit.AuditFilter(entity_type="deviation", entity_id=str(found.id))
        ),
        "meaning": deviations.CLOSE_MEANING,
        "authorise_meaning": deviations.AUTHORISE_MEANING,
        "authorisation_manifests": (
            signatures.manifest(session, found.authorisation) if found.authorisation else []
        ),
        "actions": deviations.deviation_actions(found),
        "donation": donors.get_donation(session, found.donation_id) if found.donation_id else None,
        "limits": (
            deviations.product_limits(donors.get_donation(session, found.donation_id))
            if found.category == DeviationCategory.LIMIT_EXCURSION.value and found.donation_id
            else None
        ),
        "which": request.endpoint if error else None,
        **refusal_context(error),
    }
    return render_template("manufacturing/deviations/deviation.html", **context), (
        error.status if error else 200
    )


@blueprint.get("/deviations/<int:deviation_id>")
@requires(Permission.READ_RECORDS)
def deviation(deviation_id: int) -> ResponseReturnValue:
    return _deviation_page(deviation_id)


@blueprint.post("/deviations/<int:deviation_id>/close")
@requires(Permission.CLOSE_DEVIATIONS)
def close_deviation(deviation_id: int) -> ResponseReturnValue:
    deviations.get_deviation(db.session, deviation_id)  # 404 before anything else
    try:
        data = load_form(DeviationCloseIn(), request.form)
        with unit_of_work() as session:
            commands.close_deviation_as_user(session, deviation_id, data)
    except DomainError as error:
        db.session.rollback()
        return _deviation_page(deviation_id, error)
    flash(_("Signed: deviation #%(id)s closed.", id=deviation_id), "success")
    return redirect(url_for("storage.deviation", deviation_id=deviation_id))


@blueprint.post("/deviations/<int:deviation_id>/authorise")
@requires(Permission.CLOSE_DEVIATIONS)
def authorise_excursion(deviation_id: int) -> ResponseReturnValue:
    deviations.get_deviation(db.session, deviation_id)  # 404 before anything else
    try:
        data = load_form(ExcursionAuthoriseIn(), request.form)
        with unit_of_work() as session:
            commands.authorise_excursion_as_user(session, deviation_id, data)
    except DomainError as error:
        db.session.rollback()
        return _deviation_page(deviation_id, error)
    flash(_("Signed: limit excursion of deviation #%(id)s authorised.", id=deviation_id), "success")
    return redirect(url_for("storage.deviation", deviation_id=deviation_id))
