"""The site-wide list of units (issue 21): every unit of every donation, a page at a time,
newest first, searched, filtered and sorted in the database.

A page is read in three statements whatever the number of units: the count, the page's rows
(each unit with its donation's DIN and, when its cell record names one, its lot number:
joined, not read per unit) and the users who created the page's units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import selectinload

from cellchain.chain.models import Unit, UnitKind, UnitStatus
from cellchain.core import listing
from cellchain.donors.models import Donation
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import CellRecord, Lot


@dataclass(frozen=True)
class UnitRow:
    """A unit as the list shows it: the unit, its donation's DIN and its lot number (if any);
    reads through to the unit for its own fields."""

    unit: Unit
    din: str
    lot_number: str | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unit, name)


def _unit_search(text: str) -> ColumnElement[bool]:
    """A unit matches a search text in its code, its donation's DIN or its lot number
    (codes as typed or as printed: spaces are left out)."""
    squeezed = "%" + listing.like_escaped(text.replace(" ", "")) + "%"
    pattern = "%" + listing.like_escaped(text) + "%"
    return or_(
        Unit.code.ilike(squeezed, escape="\\"),
        Donation.din.ilike(squeezed, escape="\\"),
        Lot.lot_number.ilike(pattern, escape="\\"),
    )


#: The units list: newest first; searched in the unit code, the DIN and the lot number.
UNIT_LIST = listing.ListSpec(
    sorts={
        "created": Unit.created_at,
        "code": Unit.code,
        "kind": Unit.kind,
        "status": Unit.status,
    },
    default_sort="created",
    tiebreaker=Unit.id,
    search=_unit_search,
)


def units_page(
    session: DbSession,
    request: listing.PageRequest,
    *,
    kind: UnitKind | None = None,
    status: UnitStatus | None = None,
) -> listing.Page[UnitRow]:
    """A page of the units, filtered by kind and status (three statements)."""
    query = cast(
        "Select[Any]",
        select(Unit, Donation.din, Lot.lot_number)
        .join(Donation, Donation.id == Unit.donation_id)
        .outerjoin(CellRecord, CellRecord.unit_id == Unit.id)
        .outerjoin(Lot, Lot.id == CellRecord.lot_id)
        .options(selectinload(Unit.created_by)),
    )
    if kind is not None:
        query = query.where(Unit.kind == kind.value)
    if status is not None:
        query = query.where(Unit.status == status.value)
    page = listing.fetch_page(session, query, UNIT_LIST, request)
    return page.with_items([UnitRow(unit, din, lot) for unit, din, lot in page.items])
