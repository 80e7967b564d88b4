"""What makes a protocol version usable (``PROTOCOLS.check``): refused before QA can sign it.

A dose that is not a positive number could not be calculated; visit windows that overlap
would let one day count for two visits. Each problem is named by its parameter, so the
draft form lists them field by field.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from cellchain.core.i18n import _
from cellchain.core.wording import joined_text
from cellchain.errors import InvalidInput

DOSE = "dose_viable_cells_per_kg"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _visits(
    parameters: Mapping[str, Any], errors: dict[str, list[str]]
) -> list[tuple[str, int, int, str]]:
    """(code, day, window, field) of every infusion and follow-up visit, ``field`` naming it
    as the draft form labels it (``follow_up[M6]``); a malformed one noted."""
    visits: list[tuple[str, int, int, str]] = []
    for group in ("infusions", "follow_up"):
        items = parameters.get(group, [])
        if not isinstance(items, list):
            errors.setdefault(group, []).append(_("A list of visits is expected."))
            continue
        for index, item in enumerate(items):
            code = item.get("code") if isinstance(item, Mapping) else None
            field = f"{group}[{code}]" if isinstance(code, str) else f"{group}[{index}]"
            if not isinstance(item, Mapping):
                errors.setdefault(field, []).append(_("A visit is a table of its fields."))
                continue
            day, window = item.get("day"), item.get("window_days", 0)
            if not isinstance(day, int) or isinstance(day, bool) or day < 0:
                errors.setdefault(f"{field}.day", []).append(
                    _("The day is a whole number of days from 0, not %(value)s.", value=repr(day))
                )
                continue
            if not isinstance(window, int) or isinstance(window, bool) or window < 0:
                errors.setdefault(f"{field}.window_days", []).append(
                    _(
                        "The window is a whole number of days from 0, not %(value)s.",
                        value=repr(window),
                    )
                )
                continue
            visits.append((str(item.get("code", field)), day, window, field))
    return visits


def check_protocol(parameters: Mapping[str, Any]) -> None:
    """Refuse a protocol version whose dose is not a positive number or whose visit windows
    overlap (or are malformed), naming each field."""
    errors: dict[str, list[str]] = {}
    dose: Any = parameters.get(DOSE)
    if not _number(dose) or not dose > 0:
        errors[DOSE] = [
            _(
                "The dose is a positive number of viable cells per kg, not %(value)s.",
                value=repr(dose),
            )
        ]
    codes: set[str] = set()
    ordered = sorted(_visits(parameters, errors), key=lambda visit: visit[1])
    for code, _day, _window, field in ordered:
        if code in codes:
            errors.setdefault(f"{field}.code", []).append(
                _("Visit %(code)s appears twice.", code=code)
            )
        codes.add(code)
    for earlier, later in itertools.pairwise(ordered):
        (code, day, window, _field), (next_code, next_day, next_window, next_field) = earlier, later
        if day + window >= next_day - next_window:
            # named at the later visit's window, where the draft form shows it
            errors.setdefault(f"{next_field}.window_days", []).append(
                _(
                    "The windows of %(first)s (day %(day)s ± %(window)s) and %(second)s (day "
                    "%(next_day)s ± %(next_window)s) overlap.",
                    first=code,
                    day=day,
                    window=window,
                    second=next_code,
                    next_day=next_day,
                    next_window=next_window,
                )
            )
    if errors:
        messages = [message for field in errors.values() for message in field]
        raise InvalidInput(joined_text(messages), errors=errors)
