"""Population-doubling arithmetic (DOMAIN.md §4). Pure functions: no database, no Flask.

PD = log2(cells harvested / cells seeded) for one passage; the cumulative PD (CPD) adds the
PDs up along the lineage. Both are computed from the counts people record, never typed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from cellchain.errors import InvalidInput


def population_doublings(seeded: float, harvested: float) -> float:
    """log2(harvested / seeded); both counts must be positive, finite numbers."""
    for name, value in (("seeded", seeded), ("harvested", harvested)):
        if not math.isfinite(value) or value <= 0:
            raise InvalidInput(f"Cells {name} must be a positive number; got {value}.")
    return math.log2(harvested / seeded)


def cumulative_after(parent_cpds: Iterable[float | None], doublings: float | None) -> float:
    """The CPD after a harvest of vessels whose cells had reached ``parent_cpds``.

    Vessels pooled into one harvest may come from different branches; the highest CPD among
    them is carried on, so the limit is never understated. An unknown PD (an explant culture
    whose seeding could not be counted) adds nothing: CPD counts from the first counted seeding.
    Nor does a negative PD (fewer cells harvested than seeded): cells lost do not make the
    survivors younger, and letting the CPD go down would understate it against the limit.
    """
    known = [cpd for cpd in parent_cpds if cpd is not None]
    start = max(known) if known else 0.0
    return start + max(doublings or 0.0, 0.0)


#: The fastest MSC double when the product does not say (``min_doubling_time_hours``): about
#: 20–48 h in culture; no human stromal cell doubles in under 12 h.
DEFAULT_MIN_DOUBLING_TIME_HOURS = 12.0


def culture_time_problem(
    days_in_culture: float, doublings: float | None, min_doubling_time_hours: float
) -> str | None:
    """Why a harvest after ``days_in_culture`` with ``doublings`` cannot be true, or None.

    Harvested at (or before) the moment the vessels were seeded is no culture at all; counts
    that imply a doubling faster than the product's minimum are a miscount or a wrong date.
    """
    hours = days_in_culture * 24
    if hours <= 0:
        return (
            "The vessels would be harvested at the moment they were seeded (0 days in culture); "
            "enter when the harvest was performed."
        )
    if doublings is not None and doublings > 0 and hours / doublings < min_doubling_time_hours:
        return (
            f"{doublings:.2f} population doublings in {hours:.1f} h of culture is one every "
            f"{hours / doublings:.1f} h; these cells double no faster than every "
            f"{min_doubling_time_hours:g} h. Check the counts and when the harvest was performed."
        )
    return None
