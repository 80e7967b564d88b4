"""Population-doubling arithmetic (DOMAIN.md §4). Pure functions: no database, no Flask.

PD = log2(cells harvested / cells seeded) for one passage; the cumulative PD (CPD) adds the
PDs up along the lineage. Both are computed from the counts people record, never typed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from cellchain.core.i18n import _
from cellchain.errors import InvalidInput


def population_doublings(seeded: float, harvested: float) -> float:
    """log2(harvested / seeded); both counts must be positive, finite numbers."""
    if not math.isfinite(seeded) or seeded <= 0:
        raise InvalidInput(
            _("Cells seeded must be a positive number; got %(value)s.", value=seeded)
        )
    if not math.isfinite(harvested) or harvested <= 0:
        raise InvalidInput(
            _("Cells harvested must be a positive number; got %(value)s.", value=harvested)
        )
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
        return _(
            "The vessels would be harvested at the moment they were seeded (0 days in culture); "
            "enter when the harvest was performed."
        )
    if doublings is not None and doublings > 0 and hours / doublings < min_doubling_time_hours:
        return _(
            "%(doublings)s population doublings in %(hours)s h of culture is one every "
            "%(every)s h; these cells double no faster than every %(minimum)s h. Check the "
            "counts and when the harvest was performed.",
            doublings=format(doublings, ".2f"),
            hours=format(hours, ".1f"),
            every=format(hours / doublings, ".1f"),
            minimum=format(min_doubling_time_hours, "g"),
        )
    return None
