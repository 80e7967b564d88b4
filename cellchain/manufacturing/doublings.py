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
