"""Tank temperature readings imported from a monitoring system's CSV export (issue 22).

The file is UTF-8 CSV with a header row naming its columns (any order, any case):

- ``timestamp``: when the tank was read, ISO 8601 with its UTC offset
  (``2026-12-01T08:00:00+08:00`` or ``…Z``); a time without an offset is refused;
- ``tank`` (or ``sensor``): the tank's asset ID, e.g. ``LN2-01``;
- ``temperature_c``: the temperature in °C;
- ``level_percent`` (optional column, optional value): the LN2 level in percent.

Every row is checked first; a file with any bad row is refused whole, each problem named by
its row number (the header is row 1), and nothing is saved. A row for a tank and time already
on file (or earlier in the same file) is skipped and counted. Each new reading is recorded by
``storage.record_tank_reading``, exactly as a typed one: audited, and above a lot's storage
limit it opens the storage-excursion deviation on every lot stored in the tank then.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.errors import InvalidInput
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import Deviation, Equipment, EquipmentKind, TankReading
from cellchain.manufacturing.storage import storage

#: The largest file accepted, and the most rows.
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ROWS = 50_000
#: At most this many row problems are named in the refusal's sentence (all in its errors).
NAMED_PROBLEMS = 5

_TANK_COLUMNS = ("tank", "sensor")


@dataclass(frozen=True)
class _Row:
    number: int
    tank: Equipment
    at: dt.datetime
    temperature_c: float
    level_percent: float | None


@dataclass
class ImportOutcome:
    imported: int = 0
    #: rows for a tank and time already on file, or repeated in the file
    duplicates: int = 0
    deviations: list[Deviation] = field(default_factory=list)


def import_readings(
    session: DbSession,
    content: bytes,
    *,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
) -> ImportOutcome:
    """Import the readings of a monitoring system's CSV export: all of them, or none."""
    rows = _checked_rows(session, content, now=now)
    outcome = ImportOutcome()
    seen = _on_file(session, rows)
    for row in rows:
        key = (row.tank.id, row.at)
        if key in seen:
            outcome.duplicates += 1
            continue
        seen.add(key)
        recorded = storage.record_tank_reading(
            session,
            row.tank,
            temperature_c=row.temperature_c,
            at=row.at,
            actor=actor,
            now=now,
            zone=zone,
            level_percent=row.level_percent,
        )
        outcome.imported += 1
        outcome.deviations.extend(recorded.deviations)
    return outcome


def _refuse(problems: list[str]) -> InvalidInput:
    named = "; ".join(problems[:NAMED_PROBLEMS])
    more = len(problems) - NAMED_PROBLEMS
    if more > 0:
        detail = _(
            "The file was not imported; nothing was saved. %(problems)s; and %(more)s more.",
            problems=named,
            more=more,
        )
    else:
        detail = _("The file was not imported; nothing was saved. %(problems)s.", problems=named)
    return InvalidInput(detail, errors={"file": problems})


def _checked_rows(session: DbSession, content: bytes, *, now: dt.datetime) -> list[_Row]:
    if not content:
        raise _refuse([_("The file is empty.")])
    if len(content) > MAX_FILE_BYTES:
        raise _refuse([_("The file is larger than %(most)s MB.", most=MAX_FILE_BYTES // 2**20)])
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _refuse([_("The file is not UTF-8 text.")]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in next(reader, [])]
    tank_column = next((name for name in _TANK_COLUMNS if name in header), None)
    missing = [
        name
        for name, present in (
            ("timestamp", "timestamp" in header),
            ("tank", tank_column is not None),
            ("temperature_c", "temperature_c" in header),
        )
        if not present
    ]
    if missing:
        raise _refuse(
            [
                _(
                    "Row 1 (the header) lacks the column(s) %(columns)s; the columns are "
                    "timestamp, tank, temperature_c and optionally level_percent.",
                    columns=", ".join(missing),
                )
            ]
        )
    where = {name: index for index, name in enumerate(header)}
    tanks = {
        tank.code: tank
        for tank in session.execute(
            select(Equipment).where(Equipment.kind == EquipmentKind.LN2_TANK.value)
        ).scalars()
    }
    problems: list[str] = []
    rows: list[_Row] = []
    number = 1
    for values in reader:
        number += 1
        if not any(value.strip() for value in values):
            continue  # a blank line
        if len(rows) + len(problems) >= MAX_ROWS:
            raise _refuse([_("The file has more than %(most)s rows.", most=MAX_ROWS)])

        def cell(name: str, values: list[str] = values) -> str:
            index = where.get(name)
            return values[index].strip() if index is not None and index < len(values) else ""

        row_problems: list[str] = []
        at = _timestamp(cell("timestamp"), row_problems, now)
        code = cell(tank_column or "tank").upper()
        tank = tanks.get(code)
        if not code:
            row_problems.append(_("no tank"))
        elif tank is None:
            row_problems.append(_("%(code)s is not an LN2 tank on file", code=code))
        temperature = _number(cell("temperature_c"), row_problems, _("temperature"))
        if temperature is not None and not (
            storage.MIN_TEMPERATURE_C <= temperature <= storage.MAX_TEMPERATURE_C
        ):
            row_problems.append(
                _("temperature %(value)s °C is not possible", value=format(temperature, "g"))
            )
        level = None
        if cell("level_percent"):
            level = _number(cell("level_percent"), row_problems, _("level"))
            if level is not None and not 0 <= level <= 100:
                row_problems.append(
                    _("level %(value)s %% is not 0 to 100", value=format(level, "g"))
                )
        if row_problems:
            problems.append(
                _("row %(row)s: %(problems)s", row=number, problems=", ".join(row_problems))
            )
            continue
        assert tank is not None and at is not None and temperature is not None
        rows.append(_Row(number, tank, at, temperature, level))
    if problems:
        raise _refuse(problems)
    if not rows:
        raise _refuse([_("The file has no reading.")])
    return rows


def _timestamp(text: str, problems: list[str], now: dt.datetime) -> dt.datetime | None:
    if not text:
        problems.append(_("no timestamp"))
        return None
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        problems.append(_("timestamp %(value)s is not ISO 8601", value=repr(text)))
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        problems.append(_("timestamp %(value)s has no UTC offset", value=repr(text)))
        return None
    at = at.astimezone(dt.UTC)
    if at > now:
        problems.append(_("timestamp %(value)s is in the future", value=repr(text)))
        return None
    return at


def _number(text: str, problems: list[str], what: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        problems.append(_("%(what)s %(value)s is not a number", what=what, value=repr(text)))
        return None
    if not math.isfinite(value):
        problems.append(_("%(what)s %(value)s is not a number", what=what, value=repr(text)))
        return None
    return value


def _on_file(session: DbSession, rows: list[_Row]) -> set[tuple[int, dt.datetime]]:
    """The (tank, time) pairs of the file already on file."""
    earliest = min(row.at for row in rows)
    latest = max(row.at for row in rows)
    found = session.execute(
        select(TankReading.tank_id, TankReading.at).where(
            TankReading.tank_id.in_({row.tank.id for row in rows}),
            TankReading.at >= earliest,
            TankReading.at <= latest,
        )
    ).all()
    return {(tank_id, at.astimezone(dt.UTC)) for tank_id, at in found}
