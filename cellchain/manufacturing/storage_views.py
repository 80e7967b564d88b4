"""Pages of LN2 storage, tank readings and deviations.

The tank page is made for a tablet beside the tank: scan a bag into the code box, type rack,
box and slot, store; or type the temperature read off the tank's display. Each form posts to
its own view; on a refusal the page is shown again with the message, the fields to fix and
what the person typed, and nothing is saved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from cellchain.chain import service as chain
from cellchain.chain.models import Unit
from cellchain.core import audit, signatures
from cellchain.core.roles import Permission
from cellchain.donors import service as donors
from cellchain.errors import DomainError, InvalidInput, NotFound
from cellchain.extensions import DbSession, db
from cellchain.http import acting_user, now, requires, unit_of_work
from cellchain.manufacturing import deviations, processing, storage
from cellchain.manufacturing.deviations import DeviationStatus
from cellchain.manufacturing.models import DeviationCategory, Equipment
from cellchain.manufacturing.storage_api import (
    DeviationCloseIn,
    DeviationFormIn,
    DeviationQueryIn,
    ExcursionAuthoriseIn,
    ReadingIn,
    StoreScanIn,
)
from cellchain.web.forms import load_form

blueprint = Blueprint("storage", __name__)

CATEGORIES = list(DeviationCategory)
STATUSES = list(DeviationStatus)


def _typed(exclude: tuple[str, ...] = ("password", "csrf_token")) -> dict[str, str]:
    """What the person typed, to show again after a refusal (never the password)."""
    return {key: value for key, value in request.form.items() if key not in exclude}


def _refused(error: DomainError) -> dict[str, Any]:
    return {"form": _typed(), "error": error.detail, "errors": error.errors}


# --- tanks --------------------------------------------------------------------------------------


@blueprint.get("/storage")
@requires(Permission.READ_RECORDS)
def tanks() -> ResponseReturnValue:
    return render_template("storage/tanks.html", tanks=storage.list_tanks(db.session))


def _tank_page(
    tank: Equipment, *, failed: str | None = None, error: DomainError | None = None
) -> ResponseReturnValue:
    session = db.session
    positions = storage.tank_contents(session, tank)
    context: dict[str, Any] = {
        "tank": tank,
        "positions": positions,
        "lots": storage.lots_of_units(session, [p.unit for p in positions if p.unit]),
        "readings": storage.readings_of(session, tank),
        "failed": failed,
        "form": {},
        "error": None,
        "errors": {},
        **(_refused(error) if error else {}),
    }
    return render_template("storage/tank.html", **context), error.status if error else 200


@blueprint.get("/storage/tanks/<int:tank_id>")
@requires(Permission.READ_RECORDS)
def tank(tank_id: int) -> ResponseReturnValue:
    return _tank_page(storage.get_tank(db.session, tank_id))


def _post_on_tank(
    tank_id: int, form_name: str, action: Callable[[DbSession, Equipment], tuple[str, str]]
) -> ResponseReturnValue:
    """Run ``action(session, tank)`` in one transaction; on refusal show the page again.

    ``action`` returns the message to flash and its category.
    """
    storage.get_tank(db.session, tank_id)  # 404 before anything else
    try:
        with unit_of_work() as session:
            message, category = action(session, storage.get_tank(session, tank_id))
    except DomainError as error:
        db.session.rollback()
        return _tank_page(storage.get_tank(db.session, tank_id), failed=form_name, error=error)
    flash(message, category)
    return redirect(url_for("storage.tank", tank_id=tank_id) + f"#{form_name}")


def _scanned_unit(session: DbSession, code: str) -> Unit:
    """The unit a scanned code names; a refusal is shown against the code field."""
    try:
        return chain.resolve_unit(session, code)
    except NotFound as error:
        raise NotFound(error.detail, errors={"code": ["Unknown code."]}) from error
    except InvalidInput as error:
        raise InvalidInput(error.detail, errors={"code": ["Not a unit's code."]}) from error


@blueprint.post("/storage/tanks/<int:tank_id>/store")
@requires(Permission.RECORD_STORAGE)
def store(tank_id: int) -> ResponseReturnValue:
    def act(session: DbSession, found: Equipment) -> tuple[str, str]:
        data = load_form(StoreScanIn(), request.form)
        unit = _scanned_unit(session, data["code"])
        position = storage.store_unit(
            session,
            unit,
            tank=found,
            rack=data["rack"],
            box=data["box"],
            slot=data["slot"],
            at=data.get("at"),
            actor=acting_user(),
            now=now(),
        )
        return f"{unit.code} stored in {position.label}.", "success"

    return _post_on_tank(tank_id, "store", act)


@blueprint.post("/storage/tanks/<int:tank_id>/readings")
@requires(Permission.RECORD_STORAGE)
def record_reading(tank_id: int) -> ResponseReturnValue:
    def act(session: DbSession, found: Equipment) -> tuple[str, str]:
        data = load_form(ReadingIn(), request.form)
        outcome = storage.record_tank_reading(
            session,
            found,
            temperature_c=data["temperature_c"],
            at=data.get("at"),
            actor=acting_user(),
            now=now(),
        )
        reading = f"Reading of {found.code} recorded: {outcome.reading.temperature_c:g} °C."
        if not outcome.deviations:
            return reading, "success"
        opened = ", ".join(
            f"#{d.id} (lot {d.lot.lot_number if d.lot else '—'})" for d in outcome.deviations
        )
        return (
            f"EXCURSION — {reading} Above the storage limit: deviation(s) opened on every lot "
            f"stored in the tank: {opened}. The lots cannot be released until QA closes them.",
            "error",
        )

    return _post_on_tank(tank_id, "reading", act)


# --- deviations ---------------------------------------------------------------------------------


def _deviations_page(error: DomainError | None = None) -> ResponseReturnValue:
    args = MultiDict([(key, value) for key, value in request.args.items() if value])
    try:
        query = load_form(DeviationQueryIn(), args)
    except DomainError as refused:
        flash(f"Filter ignored: {refused.detail}", "error")
        query = {}
    context: dict[str, Any] = {
        "deviations": deviations.list_deviations(db.session, query.get("status")),
        "query": query,
        "categories": CATEGORIES,
        "statuses": STATUSES,
        "form": {},
        "error": None,
        "errors": {},
        **(_refused(error) if error else {}),
    }
    return render_template("deviations/deviations.html", **context), (
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
            lot = donation = None
            if data.get("lot_number", "").strip():
                try:
                    lot = processing.find_lot(session, data["lot_number"])
                except NotFound as error:
                    raise NotFound(error.detail, errors={"lot_number": ["Unknown lot."]}) from None
            if data.get("din", "").strip():
                try:
                    donation = donors.find_donation(session, data["din"])
                except DomainError as error:
                    raise InvalidInput(error.detail, errors={"din": [error.detail]}) from None
            deviation = deviations.open_deviation(
                session,
                lot=lot,
                donation=donation,
                category=data["category"],
                description=data["description"],
                actor=acting_user(),
                now=now(),
            )
            deviation_id = deviation.id
    except DomainError as error:
        db.session.rollback()
        return _deviations_page(error)
    flash(f"Deviation #{deviation_id} opened.", "success")
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
        "may_authorise": found.category == DeviationCategory.LIMIT_EXCURSION.value
        and found.status == DeviationStatus.OPEN.value
        and found.authorisation is None,
        "donation": donors.get_donation(session, found.donation_id) if found.donation_id else None,
        "limits": (
            deviations.product_limits(donors.get_donation(session, found.donation_id))
            if found.category == DeviationCategory.LIMIT_EXCURSION.value and found.donation_id
            else None
        ),
        "which": request.endpoint if error else None,
        "form": {},
        "error": None,
        "errors": {},
        **(_refused(error) if error else {}),
    }
    return render_template("deviations/deviation.html", **context), (error.status if error else 200)


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
            deviations.close_deviation(
                session,
                deviations.get_deviation(session, deviation_id),
                resolution=data["resolution"],
                user=acting_user(),
                password=data["password"],
                now=now(),
            )
    except DomainError as error:
        db.session.rollback()
        return _deviation_page(deviation_id, error)
    flash(f"Signed: deviation #{deviation_id} closed.", "success")
    return redirect(url_for("storage.deviation", deviation_id=deviation_id))


@blueprint.post("/deviations/<int:deviation_id>/authorise")
@requires(Permission.CLOSE_DEVIATIONS)
def authorise_excursion(deviation_id: int) -> ResponseReturnValue:
    deviations.get_deviation(db.session, deviation_id)  # 404 before anything else
    try:
        data = load_form(ExcursionAuthoriseIn(), request.form)
        with unit_of_work() as session:
            deviations.authorise_excursion(
                session,
                deviations.get_deviation(session, deviation_id),
                max_passage=data.get("max_passage"),
                max_cumulative_pd=data.get("max_cumulative_pd"),
                justification=data["justification"],
                user=acting_user(),
                password=data["password"],
                now=now(),
            )
    except DomainError as error:
        db.session.rollback()
        return _deviation_page(deviation_id, error)
    flash(f"Signed: limit excursion of deviation #{deviation_id} authorised.", "success")
    return redirect(url_for("storage.deviation", deviation_id=deviation_id))
