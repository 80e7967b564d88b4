"""API of material stock (issue 22): the stock list, a lot's receipt, uses and adjustments,
adjusting a lot's stock, the materials' reorder levels. Load → command → dump."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core.listing import PageRequest
from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import requires, unit_of_work
from cellchain.manufacturing.stock import commands, service
from cellchain.manufacturing.stock.schemas import (
    AdjustmentIn,
    AdjustmentOut,
    LotStockOut,
    ReorderLevelIn,
    ReorderLevelOut,
    StockLotOut,
    StockQueryIn,
)
from cellchain.manufacturing.stock.service import AdjustmentInput, StockState
from cellchain.web.listing import PAGINATION_HEADERS, paged

stock_api = Blueprint("stock_api", __name__, url_prefix="/api/v1", description="Material stock")
blueprints = (stock_api,)


def lot_stock_out(found: service.LotStock) -> dict[str, Any]:
    return {
        **StockLotOut.of(found.lot, found.remaining, found.actions),
        "used": found.used,
        "adjusted": found.adjusted,
        "uses": [
            {
                "step_id": use.step.id,
                "step_kind": use.step.kind,
                "performed_at": use.step.performed_at,
                "performed_by": use.step.performed_by.username,
                "lot_id": use.step.lot_id,
                "quantity": use.quantity,
                "quantity_source": use.quantity_source,
            }
            for use in found.uses
        ],
        "adjustments": found.adjustments,
    }


@stock_api.get("/stock")
@requires(Permission.READ_RECORDS)
@stock_api.arguments(StockQueryIn, location="query")
@stock_api.response(200, StockLotOut(many=True), headers=PAGINATION_HEADERS)
def stock_list(args: dict[str, Any]) -> Any:
    """Material lots with what remains of each, soonest expiry first, a page at a time (the
    ``X-Pagination`` header); ``state`` to filter (expiring, expired_in_stock, low,
    in_stock), ``q`` to search the material, lot number and supplier."""
    state = StockState(args["state"]) if "state" in args else None
    page = commands.stock_page(db.session, PageRequest.of(args), state)
    return paged(page, [StockLotOut.of(row.lot, row.remaining, row.actions) for row in page.items])


@stock_api.get("/materials/<int:lot_id>/stock")
@requires(Permission.READ_RECORDS)
@stock_api.response(200, LotStockOut)
def lot_stock(lot_id: int) -> Any:
    """A material lot's receipt, every step's use of it, its adjustments, what remains."""
    return lot_stock_out(commands.lot_stock(db.session, lot_id))


@stock_api.post("/materials/<int:lot_id>/adjustments")
@requires(Permission.MANAGE_MATERIALS)
@stock_api.arguments(AdjustmentIn)
@stock_api.response(201, AdjustmentOut)
def adjust(entry: AdjustmentInput, lot_id: int) -> Any:
    """A write-off or spillage (``quantity`` taken away) or a count correction (``quantity``
    counted), with its reason; refused beyond what remains and for a lot not counted."""
    with unit_of_work() as session:
        adjustment = commands.adjust_as_user(session, lot_id, entry)
    return adjustment


@stock_api.get("/reorder-levels")
@requires(Permission.READ_RECORDS)
@stock_api.response(200, ReorderLevelOut(many=True))
def reorder_levels() -> Any:
    """Every material's reorder level (below it, the technician's queue says it runs low)."""
    return service.reorder_levels(db.session)


@stock_api.put("/reorder-levels")
@requires(Permission.MANAGE_MATERIALS)
@stock_api.arguments(ReorderLevelIn)
@stock_api.response(200, ReorderLevelOut)
def set_reorder_level(data: dict[str, Any]) -> Any:
    """Set a material's reorder level, per unit (0 turns the warning off)."""
    with unit_of_work() as session:
        level = commands.set_reorder_level_as_user(session, data)
    return level
