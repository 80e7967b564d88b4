"""How times and counts read wherever a person reads them: pages, labels, PDFs, messages.

One rule each (issue 21), so that a page, a label and a printed record never disagree:

- **A time** is the site's local time with its offset from UTC, ``2026-12-05 17:13 +08:00``:
  an abbreviation such as ``CST`` names three different zones (China, Cuba, the US centre)
  and is never printed. Times are stored in UTC; only their text is local.
- **A count** (cells, cells per mL) has three significant figures and a power of ten,
  ``5.00 × 10⁶`` (``10^6`` where the font has no superscripts), never ``5e+06``.

A leaf module: it imports nothing of the application.
"""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

#: the zone of stored times, and of a service's texts when its caller names no site zone
UTC_ZONE = ZoneInfo("UTC")

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def utc_offset(value: dt.datetime) -> str:
    """The offset of an aware time from UTC as ``+08:00`` (``+00:00`` for UTC itself)."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("naive datetime refused: a time read by a person must be aware")
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def local_time(value: dt.datetime, zone: ZoneInfo, *, seconds: bool = False) -> str:
    """A stored (aware) time in the site's zone with its UTC offset:
    ``2026-12-05 17:13 +08:00`` (``17:13:05`` with ``seconds``)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime refused: stored times are aware UTC")
    local = value.astimezone(zone)
    clock = "%H:%M:%S" if seconds else "%H:%M"
    return f"{local.strftime('%Y-%m-%d ' + clock)} {utc_offset(local)}"


def local_date(value: dt.datetime, zone: ZoneInfo) -> str:
    """The site's calendar date of a stored time: ``2026-12-06`` for 2026-12-05 16:30 UTC in
    Shanghai (the UTC date would be a day early)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime refused: stored times are aware UTC")
    return value.astimezone(zone).date().isoformat()


def scientific(value: float, *, superscript: bool = True) -> str:
    """Three significant figures and a power of ten: ``1.60 × 10⁸`` (``10^8`` without
    superscripts), as counts read on pages, labels and records."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    exponent = math.floor(math.log10(abs(value)))
    mantissa = round(value / 10**exponent, 2)
    if abs(mantissa) >= 10:  # 9.996e8 rounds to 10.00 × 10⁸: write 1.00 × 10⁹
        exponent += 1
        mantissa = round(value / 10**exponent, 2)
    return f"{mantissa:.2f} × {power_of_ten(exponent, superscript=superscript)}"


def power_of_ten(exponent: int, *, superscript: bool = True) -> str:
    """``10⁶`` (``10^6`` without superscripts)."""
    return "10" + (str(exponent).translate(_SUPERSCRIPT) if superscript else f"^{exponent}")
