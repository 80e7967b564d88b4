"""Pages of LN2 storage and tank readings.

The tank page is made for a tablet beside the tank: scan a bag into the code box, type rack,
box and slot, store; or type the temperature read off the tank's display. Each form posts to
its own view; on a refusal the page is shown again with the message, the fields to fix and
what the person typed, and nothing is saved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.core.i18n import _
from cellchain.core.roles import Permission
from cellchain.errors import DomainError
from cellchain.extensions import DbSession, db
from cellchain.http import requires, unit_of_work
from cellchain.manufacturing.models import Equipment
from cellchain.manufacturing.pages import storage_pages as blueprint
from cellchain.manufacturing.storage import commands, storage
from cellchain.manufacturing.storage.schemas import ReadingIn, StoreScanIn
from cellchain.web.forms import load_form, refusal_context

# --- tanks --------------------------------------------------------------------------------------


@blueprint.get("/storage")
@requires(Permission.READ_RECORDS)
def tanks() -> ResponseReturnValue:
    return render_template("manufacturing/storage/tanks.html", tanks=storage.list_tanks(db.session))


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
        **refusal_context(error),
    }
    return render_template(
        "manufacturing/storage/tank.html", **context
    ), error.status if error else 200


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


@blueprint.post("/storage/tanks/<int:tank_id>/store")
@requires(Permission.RECORD_STORAGE)
def store(tank_id: int) -> ResponseReturnValue:
    def act(session: DbSession, found: Equipment) -> tuple[str, str]:
        data = load_form(StoreScanIn(), request.form)
        unit = commands.scanned_unit(session, data["code"])
        position = commands.store_unit_as_user(session, unit, found, data)
        return _(
            "%(code)s stored in %(where)s.",
            code=unit.code,
            where=storage.position_name(position),
        ), "success"

    return _post_on_tank(tank_id, "store", act)


@blueprint.post("/storage/tanks/<int:tank_id>/readings")
@requires(Permission.RECORD_STORAGE)
def record_reading(tank_id: int) -> ResponseReturnValue:
    def act(session: DbSession, found: Equipment) -> tuple[str, str]:
        data = load_form(ReadingIn(), request.form)
        outcome = commands.record_reading_as_user(session, found, data)
        reading = _(
            "Reading of %(tank)s recorded: %(temperature)s °C.",
            tank=found.code,
            temperature=format(outcome.reading.temperature_c, "g"),
        )
        if not outcome.deviations:
            return reading, "success"
        opened = ", ".join(
            _("#%(id)s (lot %(lot)s)", id=d.id, lot=d.lot.lot_number if d.lot else "—")
            for d in outcome.deviations
        )
        return (
            _(
                "EXCURSION — %(reading)s Above the storage limit: deviation(s) opened on every "
                "lot stored in the tank: %(opened)s. The lots cannot be released until QA "
                "closes them.",
                reading=reading,
                opened=opened,
            ),
            "error",
        )

    return _post_on_tank(tank_id, "reading", act)
