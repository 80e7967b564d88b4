"""Time zones the tests show times in."""

from __future__ import annotations

from zoneinfo import ZoneInfo

ZURICH = ZoneInfo("Europe/Zurich")
