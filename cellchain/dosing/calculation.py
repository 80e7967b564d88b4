"""The dose arithmetic of DOMAIN.md §7, as pure functions with the working shown.

Everything is computed in full precision; only the volume to draw is rounded, to the syringe
graduation (0.1 mL, half up), and what is actually delivered is recomputed from the rounded
volume. A draw never takes more than a bag holds. Example (DOMAIN.md): 70 kg at 1.0 × 10⁶/kg
is 7.0 × 10⁷ viable cells; 5.0 × 10⁶ total cells/mL at 90 % viability is 4.5 × 10⁶ viable/mL;
15.555… mL rounds to 15.6 mL, which delivers 7.02 × 10⁷ viable cells (+0.29 %).

A bag's concentration is the TOTAL count of its fill (its label's "total cells/mL"); the viability
(the release result) is applied to it here, in ``Bag.viable_per_ml``, and nowhere else: every
viable figure below is derived from that one product and never multiplied by a viability again.

The endotoxin ceiling is per kg per hour; a dose is checked as if it were infused within one
hour (its whole endotoxin load per kg against the hourly ceiling), which is the strictest case.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from cellchain.core.display import scientific
from cellchain.core.i18n import _


@dataclass(frozen=True)
class DoseParameters:
    """The protocol's numbers a dose is computed and checked with."""

    dose_per_kg: float
    tolerance_percent: float
    graduation_ml: float
    dmso_density_g_per_ml: float
    dmso_ceiling_g_per_kg: float
    endotoxin_ceiling_eu_per_kg_per_h: float

    @classmethod
    def from_protocol(cls, parameters: Mapping[str, Any]) -> DoseParameters:
        return cls(
            dose_per_kg=float(parameters["dose_viable_cells_per_kg"]),
            tolerance_percent=float(parameters["dose_tolerance_percent"]),
            graduation_ml=float(parameters["syringe_graduation_ml"]),
            dmso_density_g_per_ml=float(parameters["dmso_density_g_per_ml"]),
            dmso_ceiling_g_per_kg=float(parameters["dmso_ceiling_g_per_kg"]),
            endotoxin_ceiling_eu_per_kg_per_h=float(
                parameters["endotoxin_ceiling_eu_per_kg_per_h"]
            ),
        )


@dataclass(frozen=True)
class Bag:
    """What the arithmetic needs of one released bag."""

    code: str
    total_cells_per_ml: float  #: TOTAL cells per mL counted at fill (the label's concentration)
    viability_percent: float  #: the release (post-thaw) viability, applied once
    volume_ml: float
    dmso_percent: float
    endotoxin_eu_per_ml: float | None
    expires_at: dt.datetime

    @property
    def viable_per_ml(self) -> float:
        """viable conc. = total cells per mL × viability: the one place viability is applied."""
        return self.total_cells_per_ml * self.viability_percent / 100

    @property
    def viable_cells(self) -> float:
        return self.viable_per_ml * self.volume_ml


@dataclass(frozen=True)
class Draw:
    """The volume drawn from one bag and the viable cells it holds."""

    bag: Bag
    volume_ml: float
    cells: float
    whole_bag: bool


@dataclass(frozen=True)
class DoseCalculation:
    """A dose computed for one weight from chosen bags, with each figure and its check."""

    weight_kg: float
    target_cells: float
    draws: tuple[Draw, ...]
    delivered_cells: float
    deviation_percent: float
    within_tolerance: bool
    dmso_g_per_kg: float
    dmso_within: bool
    endotoxin_eu_per_kg: float | None
    endotoxin_within: bool
    working: tuple[str, ...]

    @property
    def volume_ml(self) -> float:
        return round(sum(draw.volume_ml for draw in self.draws), 6)

    @property
    def acceptable(self) -> bool:
        """Within tolerance and under both ceilings."""
        return self.within_tolerance and self.dmso_within and self.endotoxin_within


class NotEnoughCells(ValueError):
    """The bags on offer cannot make the dose."""


def target_cells(weight_kg: float, parameters: DoseParameters) -> float:
    return parameters.dose_per_kg * weight_kg


def round_volume(volume_ml: float, graduation_ml: float) -> float:
    """To the syringe graduation, half up (15.55 → 15.6)."""
    step = Decimal(str(graduation_ml))
    steps = (Decimal(repr(volume_ml)) / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return float(steps * step)


def floor_volume(volume_ml: float, graduation_ml: float) -> float:
    step = Decimal(str(graduation_ml))
    steps = (Decimal(repr(volume_ml)) / step).quantize(Decimal(1), rounding=ROUND_FLOOR)
    return float(steps * step)


def choose_bags(candidates: Sequence[Bag], target: float) -> list[Bag]:
    """The fewest bags whose viable cells make ``target``; among those, the first-expiring.

    Raises ``NotEnoughCells`` when all of them together do not."""
    if sum(bag.viable_cells for bag in candidates) < target:
        raise NotEnoughCells(
            _(
                "The %(count)s bag(s) available hold fewer viable cells than the dose needs "
                "(%(target)s).",
                count=len(candidates),
                target=_sci(target),
            )
        )
    largest = sorted((bag.viable_cells for bag in candidates), reverse=True)
    count = next(k for k in range(1, len(largest) + 1) if sum(largest[:k]) >= target)
    by_expiry = sorted(candidates, key=lambda bag: (bag.expires_at, -bag.viable_cells, bag.code))
    chosen: list[Bag] = []
    remaining = list(by_expiry)
    needed = target
    while needed > 0 and len(chosen) < count:
        slots = count - len(chosen) - 1
        for bag in remaining:
            others = sorted((b.viable_cells for b in remaining if b is not bag), reverse=True)
            if bag.viable_cells + sum(others[:slots]) >= needed:
                chosen.append(bag)
                remaining.remove(bag)
                needed -= bag.viable_cells
                break
    return chosen


def calculate(weight_kg: float, bags: Sequence[Bag], parameters: DoseParameters) -> DoseCalculation:
    """The dose for ``weight_kg`` drawn from ``bags`` in order: whole bags first, the rest
    from the last one (rounded to the graduation, never more than it holds)."""
    if weight_kg <= 0:
        raise ValueError("weight must be positive")
    if not bags:
        raise NotEnoughCells(_("No bag was chosen for the dose."))
    target = target_cells(weight_kg, parameters)
    working = [
        f"target cells = {_sci(parameters.dose_per_kg)}/kg × {weight_kg:g} kg = {_sci(target)}"
    ]
    draws: list[Draw] = []
    needed = target
    for index, bag in enumerate(bags):
        last = index == len(bags) - 1
        working.append(
            f"{bag.code}: viable concentration (release count at fill) = "
            f"{_sci(bag.total_cells_per_ml)} total cells/mL × "
            f"{bag.viability_percent:g} % viable = {_sci(bag.viable_per_ml)} viable cells/mL"
        )
        if not last:
            draws.append(Draw(bag, bag.volume_ml, bag.viable_cells, whole_bag=True))
            needed -= bag.viable_cells
            working.append(
                f"{bag.code}: the whole bag, {bag.volume_ml:g} mL = "
                f"{_sci(bag.viable_cells)} viable cells"
            )
            continue
        exact = needed / bag.viable_per_ml
        volume = round_volume(exact, parameters.graduation_ml)
        capped = volume > bag.volume_ml
        if capped:
            volume = floor_volume(bag.volume_ml, parameters.graduation_ml)
        cells = volume * bag.viable_per_ml
        draws.append(Draw(bag, volume, cells, whole_bag=math.isclose(volume, bag.volume_ml)))
        working.append(
            f"{bag.code}: volume to draw = {_sci(needed)} / {_sci(bag.viable_per_ml)} viable/mL = "
            f"{exact:.3f} mL → {volume:.1f} mL"
            + (f" (all the bag holds, {bag.volume_ml:g} mL)" if capped else "")
        )
    delivered = sum(draw.cells for draw in draws)
    deviation = (delivered - target) / target * 100
    within = abs(deviation) <= parameters.tolerance_percent + 1e-9
    working.append(
        f"delivered viable cells = {_sci(delivered)}; deviation = ({_sci(delivered)} − "
        f"{_sci(target)}) / {_sci(target)} = {deviation:+.2f} % "
        f"(tolerance ± {parameters.tolerance_percent:g} %)"
    )
    dmso = (
        sum(
            draw.volume_ml * draw.bag.dmso_percent / 100 * parameters.dmso_density_g_per_ml
            for draw in draws
        )
        / weight_kg
    )
    dmso_terms = " + ".join(
        f"{draw.volume_ml:.1f} mL × {draw.bag.dmso_percent:g} %" for draw in draws
    )
    working.append(
        f"DMSO = ({dmso_terms}) × {parameters.dmso_density_g_per_ml:g} g/mL / {weight_kg:g} kg "
        f"= {dmso:.3f} g/kg (ceiling {parameters.dmso_ceiling_g_per_kg:g} g/kg)"
    )
    endotoxin = _endotoxin(draws, weight_kg)
    if endotoxin is None:
        working.append("endotoxin: no release result on file for a bag's lot")
    else:
        terms = " + ".join(
            f"{draw.volume_ml:.1f} mL × {draw.bag.endotoxin_eu_per_ml:g} EU/mL" for draw in draws
        )
        working.append(
            f"endotoxin = ({terms}) / {weight_kg:g} kg = {endotoxin:.3f} EU/kg (ceiling "
            f"{parameters.endotoxin_ceiling_eu_per_kg_per_h:g} EU/kg/h, infused within an hour)"
        )
    return DoseCalculation(
        weight_kg=weight_kg,
        target_cells=target,
        draws=tuple(draws),
        delivered_cells=delivered,
        deviation_percent=deviation,
        within_tolerance=within,
        dmso_g_per_kg=dmso,
        dmso_within=dmso <= parameters.dmso_ceiling_g_per_kg + 1e-12,
        endotoxin_eu_per_kg=endotoxin,
        endotoxin_within=endotoxin is not None
        and endotoxin <= parameters.endotoxin_ceiling_eu_per_kg_per_h + 1e-12,
        working=tuple(working),
    )


@dataclass(frozen=True)
class Recount:
    """A dose recomputed from a post-thaw count: the volumes already drawn, at the count's
    viable concentration."""

    viable_per_ml: float
    delivered_cells: float
    deviation_percent: float
    within_tolerance: bool
    working: tuple[str, ...]


def recount(
    target: float,
    volumes: Sequence[tuple[str, float]],
    *,
    total_cells_per_ml: float,
    viability_percent: float,
    source: str,
    tolerance_percent: float,
) -> Recount:
    """The dose at a post-thaw count (DOMAIN.md §7 "post-thaw count when one was taken").

    The count replaces the release count at fill for the whole dose: its TOTAL cells per mL
    times its OWN viability is the viable concentration, and the release viability is not
    applied on top (it would count the loss of viability twice). ``volumes`` are the bags'
    draws as ordered and second-checked: (bag code, mL); ``source`` names the count in the
    working ("post-thaw count 2026-12-06 10:42 +08:00 by …")."""
    if target <= 0:
        raise ValueError("target must be positive")
    viable = total_cells_per_ml * viability_percent / 100
    working = [
        f"viable concentration ({source}) = {_sci(total_cells_per_ml)} total cells/mL × "
        f"{viability_percent:g} % viable = {_sci(viable)} viable cells/mL (replaces the release "
        "count at fill; the release viability is not applied again)"
    ]
    delivered = 0.0
    for code, volume in volumes:
        cells = volume * viable
        delivered += cells
        working.append(
            f"{code}: {volume:.1f} mL × {_sci(viable)} viable/mL = {_sci(cells)} viable cells"
        )
    deviation = (delivered - target) / target * 100
    within = abs(deviation) <= tolerance_percent + 1e-9
    working.append(
        f"delivered viable cells = {_sci(delivered)}; deviation = ({_sci(delivered)} − "
        f"{_sci(target)}) / {_sci(target)} = {deviation:+.2f} % "
        f"(tolerance ± {tolerance_percent:g} %)"
    )
    return Recount(
        viable_per_ml=viable,
        delivered_cells=delivered,
        deviation_percent=deviation,
        within_tolerance=within,
        working=tuple(working),
    )


def _endotoxin(draws: Sequence[Draw], weight_kg: float) -> float | None:
    if any(draw.bag.endotoxin_eu_per_ml is None for draw in draws):
        return None
    return sum(draw.volume_ml * (draw.bag.endotoxin_eu_per_ml or 0) for draw in draws) / weight_kg


def _sci(value: float) -> str:
    """``7.02 × 10⁷``: three significant figures, as counts read everywhere (``core.display``)."""
    return scientific(value)
