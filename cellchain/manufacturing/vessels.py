"""The vessels in culture (issue 21): a work list of the culture vessels still in culture,
the longest in culture first, a page at a time, searched, filtered and sorted in the
database.

A vessel is *in culture* while it is a culture vessel whose status is not final: no harvest,
discard or other step has finished it (a harvest consumes it; ``culture_schedule.in_culture``,
which also says when one is due for its harvest). Each row shows the vessel's
donation DIN, and from its cell record (written by the step that seeded it) its passage,
format and seeding time; its days in culture are counted on the site's calendar, from the
site's day it was seeded to today (seeded yesterday evening is one day, whatever the hour).

A page is two statements whatever the number of vessels: the count and the page's rows
(each vessel joined with its donation and its cell record, never read per vessel).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, or_, select

from cellchain.chain.models import Unit
from cellchain.core import listing
from cellchain.donors.models import Donation
from cellchain.extensions import DbSession
from cellchain.manufacturing import culture_schedule
from cellchain.manufacturing.culture_schedule import in_culture
from cellchain.manufacturing.models import CellRecord


def days_in_culture(seeded_at: dt.datetime, now: dt.datetime, zone: ZoneInfo) -> int:
    """Whole days from the site's day of the seeding to the site's day of ``now``."""
    return (now.astimezone(zone).date() - seeded_at.astimezone(zone).date()).days


@dataclass(frozen=True)
class VesselRow:
    """A vessel in culture as the list shows it; reads through to the unit for its own fields."""

    unit: Unit
    din: str
    passage: int
    seeded_at: dt.datetime
    vessel_format: str | None
    #: the site's day it was seeded, and the whole days since then on the site's calendar
    seeded_on: dt.date
    days_in_culture: int

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unit, name)


def _vessel_search(text: str) -> ColumnElement[bool]:
    """A vessel matches a search text in its code or its donation's DIN (spaces left out:
    a code typed as printed)."""
    pattern = "%" + listing.like_escaped(text.replace(" ", "")) + "%"
    return or_(Unit.code.ilike(pattern, escape="\\"), Donation.din.ilike(pattern, escape="\\"))


#: The vessels in culture: a work list, so the longest in culture (seeded first) come first.
VESSEL_LIST = listing.ListSpec(
    sorts={
        "seeded": CellRecord.made_at,
        "passage": CellRecord.passage,
        "code": Unit.code,
        "format": CellRecord.vessel_format,
    },
    default_sort="seeded",
    default_direction=listing.Direction.ASC,
    tiebreaker=Unit.id,
    search=_vessel_search,
)


def vessels_page(
    session: DbSession,
    request: listing.PageRequest,
    *,
    now: dt.datetime,
    zone: ZoneInfo,
    passage: int | None = None,
    due: bool = False,
) -> listing.Page[VesselRow]:
    """A page of the vessels in culture, filtered by passage, and with ``due`` to those due
    for their harvest today (``culture_schedule``: one more statement, the schedules in
    use); their days in culture counted to ``now`` on the calendar of ``zone``."""
    query = cast(
        "Select[Any]",
        select(Unit, Donation.din, CellRecord.passage, CellRecord.made_at, CellRecord.vessel_format)
        .join(Donation, Donation.id == Unit.donation_id)
        .join(CellRecord, CellRecord.unit_id == Unit.id)
        .where(in_culture()),
    )
    if passage is not None:
        query = query.where(CellRecord.passage == passage)
    if due:
        schedules = culture_schedule.schedules_in_culture(session)
        query = query.where(culture_schedule.due_by(schedules, now.astimezone(zone).date(), zone))
    page = listing.fetch_page(session, query, VESSEL_LIST, request)
    return page.with_items(
        [
            VesselRow(
                unit=unit,
                din=din,
                passage=number,
                seeded_at=seeded_at,
                vessel_format=vessel_format,
                seeded_on=seeded_at.astimezone(zone).date(),
                days_in_culture=days_in_culture(seeded_at, now, zone),
            )
            for unit, din, number, seeded_at, vessel_format in page.items
        ]
    )
