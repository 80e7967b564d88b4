"""Pages of material stock (issue 22): the stock list (the materials page,
``manufacturing.materials``, renders it through ``materials_page``), a lot's page with its
receipt, uses and adjustments, adjusting its stock, and the materials' reorder levels."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.core.i18n import _
from cellchain.core.roles import Permission
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import requires, unit_of_work
from cellchain.manufacturing.models import MaterialCategory, StockAdjustmentKind, StockUnit
from cellchain.manufacturing.stock import commands, service
from cellchain.manufacturing.stock.schemas import AdjustmentIn, ReorderLevelIn, StockQueryIn
from cellchain.manufacturing.stock.service import StockState
from cellchain.web.forms import load_form, refusal_context
from cellchain.web.listing import page_request

blueprint = Blueprint("stock", __name__)


def materials_page(error: DomainError | None = None) -> ResponseReturnValue:
    """The stock list: every material lot with what remains, its unit, expiry and status,
    a page at a time; the receipt form; the reorder levels."""
    session = db.session
    query, page_asked, notes = page_request(StockQueryIn(), request.args)
    state = StockState(query["state"]) if "state" in query else None
    page = commands.stock_page(session, page_asked, state)
    page_html = render_template(
        "manufacturing/stock/stock.html",
        page=page,
        rows=page.items,
        notes=notes,
        state=state.value if state else "",
        states=list(StockState),
        categories=list(MaterialCategory),
        units=list(StockUnit),
        today=commands.today(),
        within_days=commands.warning_days(),
        levels=service.reorder_levels(session),
        low=service.low_materials(session, today=commands.today()),
        **refusal_context(error),
    )
    return (page_html, error.status) if error else page_html


@blueprint.get("/materials/<int:lot_id>")
@requires(Permission.READ_RECORDS)
def material_lot(lot_id: int) -> ResponseReturnValue:
    return _lot_page(lot_id)


def _lot_page(lot_id: int, error: DomainError | None = None) -> ResponseReturnValue:
    found = commands.lot_stock(db.session, lot_id)
    page = render_template(
        "manufacturing/stock/lot.html",
        stock=found,
        lot=found.lot,
        actions=found.actions,
        kinds=list(StockAdjustmentKind),
        today=commands.today(),
        **refusal_context(error),
    )
    return (page, error.status) if error else page


@blueprint.post("/materials/<int:lot_id>/adjustments")
@requires(Permission.MANAGE_MATERIALS)
def adjust(lot_id: int) -> ResponseReturnValue:
    try:
        entry = load_form(AdjustmentIn(), request.form)
        with unit_of_work() as session:
            commands.adjust_as_user(session, lot_id, entry)
    except DomainError as error:
        db.session.rollback()
        return _lot_page(lot_id, error)
    flash(_("Stock adjusted."), "success")
    return redirect(url_for("stock.material_lot", lot_id=lot_id))


@blueprint.post("/materials/reorder-levels")
@requires(Permission.MANAGE_MATERIALS)
def set_reorder_level() -> ResponseReturnValue:
    try:
        data: dict[str, Any] = load_form(ReorderLevelIn(), request.form)
        with unit_of_work() as session:
            commands.set_reorder_level_as_user(session, data)
    except DomainError as error:
        db.session.rollback()
        return materials_page(error)
    flash(_("Reorder level set."), "success")
    return redirect(url_for("manufacturing.materials", _anchor="reorder-levels"))
