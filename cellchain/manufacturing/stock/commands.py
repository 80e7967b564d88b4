"""Acting-user glue of material stock, shared by the API and the pages: the acting user,
the time of the request and the site's calendar, then the service. No rules here."""

from __future__ import annotations

from typing import Any

from flask import current_app

from cellchain.core import listing
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone
from cellchain.manufacturing.models import ReorderLevel, StockAdjustment, StockUnit
from cellchain.manufacturing.processing import resources
from cellchain.manufacturing.stock import service
from cellchain.manufacturing.stock.service import AdjustmentInput, StockState


def today() -> Any:
    """The site's day now."""
    return now().astimezone(site_zone()).date()


def warning_days() -> int:
    """The site's ``MATERIAL_EXPIRY_WARNING_DAYS``."""
    return int(
        current_app.config.get("MATERIAL_EXPIRY_WARNING_DAYS", service.DEFAULT_EXPIRY_WARNING_DAYS)
    )


def stock_page(
    session: DbSession, request: listing.PageRequest, state: StockState | None
) -> listing.Page[service.StockRow]:
    """A page of the stock list on the site's day."""
    return service.stock_page(
        session, request, today=today(), state=state, within_days=warning_days()
    )


def lot_stock(session: DbSession, lot_id: int) -> service.LotStock:
    return service.lot_stock(session, resources.get_material_lot(session, lot_id), today=today())


def adjust_as_user(session: DbSession, lot_id: int, entry: AdjustmentInput) -> StockAdjustment:
    """A write-off, spillage or count correction of the lot, by the acting user, now."""
    return service.adjust_stock(
        session,
        resources.get_material_lot(session, lot_id),
        entry,
        actor=acting_user(),
        now=now(),
    )


def set_reorder_level_as_user(session: DbSession, data: dict[str, Any]) -> ReorderLevel:
    """A material's reorder level, set by the acting user, now."""
    return service.set_reorder_level(
        session,
        material=data["material"],
        unit=StockUnit(data["unit"]),
        level=data["level"],
        actor=acting_user(),
        now=now(),
    )
