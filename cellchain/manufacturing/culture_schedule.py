"""When a culture vessel is due for its harvest (a passage, a bank freeze or the fill).

MSC in culture are harvested near confluence, which a technician judges at the microscope;
what the tracker can know is how long each vessel has been in culture. The product
definition says after how many days a vessel is due for that look (``harvest_due_days``:
``primary`` for the P0 vessels seeded from tissue, whose outgrowth is slow, ``subculture``
for the vessels seeded at a passage or from a bank vial). A vessel is *in culture* while it
is a culture vessel that no step has consumed, discarded or otherwise finished; it is *due*
on the site's day on which its seeding plus those days falls, and stays due until harvested.

The days are whole days of the site's calendar (a vessel seeded on Monday evening with 4
days is due on Friday, whatever the hour and across a change of daylight-saving time),
counted as ``manufacturing.vessels.days_in_culture`` counts them on the vessels' list.

The days come from the product definition the vessel's donation was registered under (the
version it is made under, as every other limit of its processing). A version without
``harvest_due_days`` (one signed before the parameter existed) sets no schedule, so its
vessels are never counted as due: no day is invented for them. ``check_parameters`` refuses
a version whose days are not whole numbers from 1 to ``MAX_DAYS`` before QA can sign it; a
stored value that is not (written some other way) is logged and read as no schedule, never
a failed home page.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, false, func, or_, select

from cellchain.chain.models import Unit, UnitKind, UnitStatus
from cellchain.core.i18n import _
from cellchain.core.wording import joined_text
from cellchain.donors.models import Donation
from cellchain.errors import InvalidInput
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import CellRecord, ProductDefinition

#: the product parameter naming the days in culture after which a vessel is due
PARAMETER = "harvest_due_days"
#: its two keys: vessels seeded from tissue (P0), and vessels seeded at a passage or a thaw
PRIMARY, SUBCULTURE = "primary", "subculture"

#: the most days a vessel may be given before it is due (a schedule beyond is a typo)
MAX_DAYS = 365

#: statuses of a culture vessel still in culture (the others are final)
IN_CULTURE_STATUSES = tuple(status.value for status in UnitStatus if not status.final)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DueDays:
    """Whole days in culture after which a vessel is due, by how it was seeded."""

    primary: int
    subculture: int


def _whole_days(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_DAYS


def due_days(parameters: Mapping[str, Any]) -> DueDays | None:
    """The schedule a product definition's parameters set; ``None`` when they set none (or
    one that could not apply, logged)."""
    days = parameters.get(PARAMETER)
    if days is None:
        return None
    if (
        not isinstance(days, Mapping)
        or set(days) != {PRIMARY, SUBCULTURE}
        or not all(_whole_days(days[key]) for key in (PRIMARY, SUBCULTURE))
    ):
        log.error("product parameter %s=%r cannot apply: no vessel counted due", PARAMETER, days)
        return None
    return DueDays(primary=days[PRIMARY], subculture=days[SUBCULTURE])


def check_parameters(parameters: Mapping[str, Any]) -> None:
    """Refuse a product definition whose schedule could not be applied (before it is signed)."""
    if PARAMETER not in parameters:
        return
    days = parameters[PARAMETER]
    problems = []
    if not isinstance(days, Mapping) or set(days) != {PRIMARY, SUBCULTURE}:
        problems.append(
            _(
                "%(parameter)s gives the days for '%(primary)s' and '%(subculture)s' vessels, "
                "and nothing else.",
                parameter=PARAMETER,
                primary=PRIMARY,
                subculture=SUBCULTURE,
            )
        )
    else:
        for key in (PRIMARY, SUBCULTURE):
            value = days[key]
            if not _whole_days(value):
                problems.append(
                    _(
                        "%(parameter)s.%(key)s is a whole number of days from 1 to %(most)s, "
                        "not %(value)s.",
                        parameter=PARAMETER,
                        key=key,
                        most=MAX_DAYS,
                        value=repr(value),
                    )
                )
    if problems:
        raise InvalidInput(joined_text(problems), errors={"parameters": problems})


def in_culture() -> ColumnElement[bool]:
    """A unit that is a culture vessel still in culture."""
    return and_(Unit.kind == UnitKind.CULTURE_VESSEL.value, Unit.status.in_(IN_CULTURE_STATUSES))


def end_of_site_day(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """The first instant after ``day`` in the site's zone, in UTC: a vessel due at any time
    of that day is due on it."""
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return midnight.astimezone(dt.UTC)


def schedules_in_culture(session: DbSession) -> dict[int, DueDays]:
    """The schedule of each product definition some vessel in culture was made under
    (one statement; a handful of rows: the versions in use)."""
    rows = session.execute(
        select(ProductDefinition.id, ProductDefinition.parameters_json).where(
            ProductDefinition.id.in_(
                select(Donation.product_definition_id)
                .join(Unit, Unit.donation_id == Donation.id)
                .where(in_culture())
            )
        )
    ).all()
    schedules = {}
    for definition_id, parameters_json in rows:
        schedule = due_days(json.loads(parameters_json))
        if schedule is not None:
            schedules[definition_id] = schedule
    return schedules


def due_by(schedules: Mapping[int, DueDays], today: dt.date, zone: ZoneInfo) -> ColumnElement[bool]:
    """Vessels (joined to their ``CellRecord``, written when they were seeded, and their
    donation) due on the site's ``today``: seeded on a site day at least their schedule's
    days before it (before the end of the site day ``today − days``)."""
    conditions = []
    for definition_id, days in schedules.items():
        for is_primary, count in ((True, days.primary), (False, days.subculture)):
            passage_matches = CellRecord.passage == 0 if is_primary else CellRecord.passage > 0
            cutoff = end_of_site_day(today - dt.timedelta(days=count), zone)
            conditions.append(
                and_(
                    Donation.product_definition_id == definition_id,
                    passage_matches,
                    CellRecord.made_at < cutoff,
                )
            )
    return or_(*conditions) if conditions else false()


def count_vessels_due(session: DbSession, *, today: dt.date, zone: ZoneInfo) -> int:
    """How many vessels in culture are due for their harvest by the end of the site's
    ``today`` (two statements: the schedules in use, then the count)."""
    schedules = schedules_in_culture(session)
    if not schedules:
        return 0
    statement = (
        select(func.count())
        .select_from(Unit)
        .join(CellRecord, CellRecord.unit_id == Unit.id)
        .join(Donation, Donation.id == Unit.donation_id)
        .where(in_culture(), due_by(schedules, today, zone))
    )
    return session.execute(statement).scalar_one()
