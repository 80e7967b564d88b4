"""Material stock (issue 22): what a material lot received, what each step used of it, its
adjustments, and what remains.

What remains is never stored: it is the quantity received, less every step's use, plus every
adjustment (a write-off or a spillage takes away, a count correction takes away or adds),
computed in one SQL expression (``remaining_column``) that the stock list sorts and filters
by and the service reads before a use or an adjustment. Both are refused when they would take
more than remains; the lot's row is locked first (``resources.usable_material_lots`` for a
step, ``_locked`` for an adjustment), so two steps using the last millilitres one after the
other cannot both pass.

A lot on file before stock was kept (migration 0041) has no quantity: it is *not counted*;
its uses are recorded as before (with a quantity only if one is entered) and it has no
remaining, no adjustment and no low-stock warning.

A step's use of a counted lot is its own figure where the step records one (``default_use``)
or the quantity the technician entered (which always wins); without either the step is
refused, nothing saved. The time of use (release, expiry, recall) is checked where the lots
are taken, ``resources.usable_material_lots``.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import selectinload

from cellchain.core import audit, listing
from cellchain.core.display import local_time
from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.core.transactions import write_lock_before_reading
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import (
    MaterialCategory,
    MaterialLot,
    ProcessingStep,
    ReorderLevel,
    StepKind,
    StepMaterial,
    StockAdjustment,
    StockAdjustmentKind,
    StockUnit,
)
from cellchain.manufacturing.stock.inputs import AdjustmentInput as AdjustmentInput
from cellchain.manufacturing.stock.inputs import StockState as StockState

#: A lot expiring within this many days is shown in the technician's queue, unless the site
#: sets ``CELLCHAIN_MATERIAL_EXPIRY_WARNING_DAYS`` (``MATERIAL_EXPIRY_WARNING_DAYS``).
DEFAULT_EXPIRY_WARNING_DAYS = 30
#: Quantities are compared to this many decimal places (floats of typed millilitres).
_PLACES = 6
#: The largest quantity a lot, a use or an adjustment may hold (a typo guard).
MAX_QUANTITY = 1.0e9


class QuantitySource(enum.StrEnum):
    STEP = "step"  #: computed from the step's own figures (``default_use``)
    ENTERED = "entered"  #: entered by the technician


class StockAction(enum.StrEnum):
    """What may be done with a material lot (permissions apart)."""

    RELEASE = "release"  #: received, not yet released, not expired, not recalled
    ADJUST = "adjust"  #: a write-off, a spillage or a count correction (counted lots)


# --- what remains ----------------------------------------------------------------------------


def _used() -> ColumnElement[float]:
    return (
        select(func.coalesce(func.sum(StepMaterial.quantity), 0.0))
        .where(StepMaterial.material_lot_id == MaterialLot.id)
        .correlate(MaterialLot)
        .scalar_subquery()
    )


def _adjusted() -> ColumnElement[float]:
    return (
        select(func.coalesce(func.sum(StockAdjustment.quantity), 0.0))
        .where(StockAdjustment.material_lot_id == MaterialLot.id)
        .correlate(MaterialLot)
        .scalar_subquery()
    )


def remaining_column() -> ColumnElement[float | None]:
    """What remains of the lot of the row, as SQL: received − used + adjusted (null for a lot
    not counted)."""
    return (MaterialLot.quantity_received - _used() + _adjusted()).label("remaining")


def remaining_of(session: DbSession, lot_ids: Sequence[int]) -> dict[int, float | None]:
    """What remains of each lot (one statement); ``None`` for a lot not counted."""
    if not lot_ids:
        return {}
    rows = session.execute(
        select(MaterialLot.id, remaining_column()).where(MaterialLot.id.in_(list(lot_ids)))
    )
    return {lot_id: _rounded(value) for lot_id, value in rows}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), _PLACES)


def amount(value: float | None, unit: str | None) -> str:
    """A quantity as a person reads it: ``250 mL``, ``12 units``; an empty text for none."""
    if value is None:
        return ""
    return f"{format(round(value, _PLACES), 'g')} {unit or ''}".strip()


# --- whether a lot may be used at a time --------------------------------------------------------


@dataclass(frozen=True)
class LotRefusal:
    """Why a lot may not be used at a time: the refusal, the field's note, its title, and the
    few words a form shows beside the lot ("expired 2026-11-30")."""

    message: str
    note: str
    title: str
    why: str


def lot_refusal(lot: MaterialLot, *, at: dt.datetime, zone: ZoneInfo) -> LotRefusal | None:
    """The rule of a lot's use by a step performed ``at``: refused if recalled, released after
    ``at`` (or not at all), or expired on ``at``'s day in the site's calendar (``zone``); None
    when it may be used. ``resources.usable_material_lots`` raises it, the step forms show it."""
    if lot.recalled_at is not None:
        return LotRefusal(
            _("%(lot)s has been recalled; it may not be used.", lot=lot.label),
            _("%(lot)s: recalled.", lot=lot.label),
            _("Material recalled"),
            _("recalled"),
        )
    if not lot.released:
        return LotRefusal(
            _("%(lot)s has not been released for use.", lot=lot.label),
            _("%(lot)s: not released.", lot=lot.label),
            _("Material not released"),
            _("not released"),
        )
    if lot.released_at is not None and lot.released_at > at:
        return LotRefusal(
            _(
                "%(lot)s was released for use at %(released)s, after this step's time "
                "%(at)s; it may not be used before its release.",
                lot=lot.label,
                released=local_time(lot.released_at, zone),
                at=local_time(at, zone),
            ),
            _("%(lot)s: not yet released then.", lot=lot.label),
            _("Material not released"),
            _("not yet released"),
        )
    if lot.expiry_date < at.astimezone(zone).date():
        return LotRefusal(
            _("%(lot)s expired on %(date)s.", lot=lot.label, date=lot.expiry_date.isoformat()),
            _("%(lot)s: expired.", lot=lot.label),
            _("Material expired"),
            _("expired %(date)s", date=lot.expiry_date.isoformat()),
        )
    return None


def nothing_left(remains: float | None) -> bool:
    """A counted lot of which nothing remains: any use of it is more than remains
    (``plan_uses`` refuses it); a lot not counted (``None``) never runs out here."""
    return remains is not None and remains <= 0


# --- a step's use ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepFigures:
    """What a step records that a material's use can be read from."""

    kind: StepKind
    #: the vessels, vials or bags the step made
    containers: int = 0
    #: the volume filled into its bags or vials (mL), or of the bags it froze
    volume_ml: float | None = None
    #: the lot's DMSO, at its fill and at its freezing
    dmso_percent: float | None = None


@dataclass(frozen=True)
class Use:
    """How much of a lot a step uses, and where the figure came from."""

    lot: MaterialLot
    quantity: float | None
    source: QuantitySource | None


def default_use(
    lot: MaterialLot, figures: StepFigures, lots: Sequence[MaterialLot]
) -> float | None:
    """The quantity of ``lot`` the step used, read from its own figures, or ``None`` when the
    step records no figure for it (the technician enters it).

    Only where the figure is that material's and no other lot of the step could share it (a
    second lot of the same category and unit makes it ambiguous):

    - a cryoprotectant in mL at a fill or at the freezing of a lot: the bags' volume × the
      lot's DMSO %;
    - an excipient in mL at a fill: the rest of the bags' volume (volume × (100 − DMSO) %);
    - a consumable counted in units: the vessels, vials or bags the step made.
    """
    if lot.unit is None:
        return None
    alike = [other for other in lots if (other.category, other.unit) == (lot.category, lot.unit)]
    if len(alike) != 1:
        return None
    category, unit = MaterialCategory(lot.category), StockUnit(lot.unit)
    volume, dmso = figures.volume_ml, figures.dmso_percent
    if unit == StockUnit.ML and volume is not None and dmso is not None:
        if category == MaterialCategory.CRYOPROTECTANT and figures.kind in (
            StepKind.FILL,
            StepKind.FREEZING,
        ):
            return _positive_or_none(volume * dmso / 100)
        if category == MaterialCategory.EXCIPIENT and figures.kind == StepKind.FILL:
            return _positive_or_none(volume * (100 - dmso) / 100)
    if unit == StockUnit.UNITS and category == MaterialCategory.CONSUMABLE:
        return _positive_or_none(float(figures.containers))
    return None


def _positive_or_none(value: float) -> float | None:
    value = round(value, _PLACES)
    return value if value > 0 else None


def plan_uses(
    session: DbSession,
    lots: Sequence[MaterialLot],
    figures: StepFigures,
    entered: Mapping[int, float],
) -> list[Use]:
    """Each lot's use by the step: entered, else from the step's figures; refused when a
    counted lot has neither, when a quantity is given for a lot the step does not use, or
    when a use is more than remains of its lot (the lots are locked by
    ``resources.usable_material_lots``). Nothing is written."""
    on_step = {lot.id for lot in lots}
    stray = sorted(set(entered) - on_step)
    if stray:
        raise InvalidInput(
            _(
                "A quantity was given for material lot #%(lot)s, which this step does not use.",
                lot=stray[0],
            ),
            errors={"material_quantities": [_("Only for the lots the step uses.")]},
        )
    uses = []
    for lot in lots:
        typed = entered.get(lot.id)
        if typed is not None:
            _check_quantity(typed, "material_quantities")
            uses.append(Use(lot, round(typed, _PLACES), QuantitySource.ENTERED))
            continue
        computed = default_use(lot, figures, lots)
        if computed is not None:
            uses.append(Use(lot, computed, QuantitySource.STEP))
        elif lot.quantity_received is not None:
            raise InvalidInput(
                _(
                    "Enter the quantity of %(lot)s used (in %(unit)s): this step records no "
                    "figure for it.",
                    lot=lot.label,
                    unit=lot.unit,
                ),
                errors={"material_quantities": [_("%(lot)s: quantity required.", lot=lot.label)]},
                title=_("Quantity used required"),
            )
        else:
            uses.append(Use(lot, None, None))
    left = remaining_of(session, [use.lot.id for use in uses if use.quantity is not None])
    for use in uses:
        remains = left.get(use.lot.id)
        if use.quantity is not None and remains is not None and use.quantity > remains:
            raise Conflict(
                _(
                    "%(lot)s: %(used)s used is more than the %(left)s that remains.",
                    lot=use.lot.label,
                    used=amount(use.quantity, use.lot.unit),
                    left=amount(remains, use.lot.unit),
                ),
                errors={"material_quantities": [_("%(lot)s: not enough left.", lot=use.lot.label)]},
                title=_("Not enough material left"),
            )
    return uses


def record_uses(session: DbSession, step: ProcessingStep, uses: Sequence[Use]) -> None:
    """Write the step's uses (after ``plan_uses``); the step's audit entry names them."""
    session.add_all(
        StepMaterial(
            step_id=step.id,
            material_lot_id=use.lot.id,
            quantity=use.quantity,
            quantity_source=use.source.value if use.source else None,
        )
        for use in uses
    )


def uses_audited(uses: Sequence[Use]) -> list[str]:
    """The uses as the step's audit entry keeps them: ``label: 20 mL (entered)``."""
    return [
        f"{use.lot.label}: {amount(use.quantity, use.lot.unit)} ({use.source.value})"
        if use.quantity is not None and use.source is not None
        else f"{use.lot.label}: not counted"
        for use in uses
    ]


def _check_quantity(value: float, name: str) -> None:
    if not math.isfinite(value) or not 0 < value <= MAX_QUANTITY:
        raise InvalidInput(
            _(
                "A quantity is more than zero and at most %(most)s; %(value)s is not.",
                most=format(MAX_QUANTITY, "g"),
                value=format(value, "g"),
            ),
            errors={name: [_("More than zero.")]},
        )


def check_received(quantity: float | None, unit: StockUnit | None) -> None:
    """A receipt's quantity: more than zero, with its unit (both, or neither for a lot not
    counted, which only the service's callers of before stock was kept use)."""
    if (quantity is None) != (unit is None):
        raise InvalidInput(
            _("Give the quantity received with its unit."),
            errors={"quantity": [_("With its unit.")]},
        )
    if quantity is not None:
        _check_quantity(quantity, "quantity")


# --- adjustments -----------------------------------------------------------------------------


def adjust_stock(
    session: DbSession,
    lot: MaterialLot,
    entry: AdjustmentInput,
    *,
    actor: User,
    now: dt.datetime,
) -> StockAdjustment:
    """Record a write-off or spillage of ``entry.quantity`` (taken away), or a count
    correction to ``entry.quantity`` (the quantity the count found), with its reason.
    Refused for a lot not counted, without a reason, for more than remains, and for a count
    that finds what the record already says."""
    reason = entry.reason.strip()
    if not reason:
        raise InvalidInput(
            _("Give the reason for the adjustment."), errors={"reason": [_("Required.")]}
        )
    if lot.quantity_received is None:
        raise Conflict(
            _("%(lot)s is not counted: it was on file before stock was kept.", lot=lot.label),
            title=_("Material not counted"),
        )
    _locked(session, lot)
    remains = remaining_of(session, [lot.id])[lot.id] or 0.0
    if entry.kind == StockAdjustmentKind.COUNT_CORRECTION:
        if not math.isfinite(entry.quantity) or not 0 <= entry.quantity <= MAX_QUANTITY:
            raise InvalidInput(
                _(
                    "The quantity counted is zero or more; %(value)s is not.",
                    value=format(entry.quantity, "g"),
                ),
                errors={"quantity": [_("Zero or more.")]},
            )
        change = round(entry.quantity - remains, _PLACES)
        if change == 0:
            raise Conflict(
                _(
                    "The count finds %(counted)s, what the record already says; nothing to "
                    "correct.",
                    counted=amount(entry.quantity, lot.unit),
                ),
                errors={"quantity": [_("Same as the record.")]},
            )
    else:
        _check_quantity(entry.quantity, "quantity")
        change = -round(entry.quantity, _PLACES)
        if entry.quantity > remains:
            raise Conflict(
                _(
                    "%(lot)s: %(taken)s is more than the %(left)s that remains.",
                    lot=lot.label,
                    taken=amount(entry.quantity, lot.unit),
                    left=amount(remains, lot.unit),
                ),
                errors={"quantity": [_("More than remains.")]},
                title=_("Not enough material left"),
            )
    adjustment = StockAdjustment(
        material_lot_id=lot.id,
        kind=entry.kind.value,
        quantity=change,
        reason=reason,
        made_at=now,
        made_by_id=actor.id,
    )
    session.add(adjustment)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action=f"material_lot.{entry.kind.value}",
        entity_type="material_lot",
        entity_id=lot.id,
        changes={
            "remaining": (remains, round(remains + change, _PLACES)),
            "unit": (None, lot.unit),
        },
        reason=adjustment.reason,
    )
    return adjustment


def _locked(session: DbSession, lot: MaterialLot) -> None:
    """Lock the lot's row (PostgreSQL) or the database for writing (SQLite) before what remains
    is read: a step using it, or another adjustment, waits."""
    write_lock_before_reading(session)
    session.execute(select(MaterialLot.id).where(MaterialLot.id == lot.id).with_for_update())


# --- reorder levels --------------------------------------------------------------------------


def set_reorder_level(
    session: DbSession,
    *,
    material: str,
    unit: StockUnit,
    level: float,
    actor: User,
    now: dt.datetime,
) -> ReorderLevel:
    """Set (or change) the level below which the material's usable stock is low; 0 turns the
    warning off."""
    material = material.strip()
    if not material:
        raise InvalidInput(_("Name the material."), errors={"material": [_("Required.")]})
    if not math.isfinite(level) or not 0 <= level <= MAX_QUANTITY:
        raise InvalidInput(
            _("A reorder level is zero or more; %(value)s is not.", value=format(level, "g")),
            errors={"level": [_("Zero or more.")]},
        )
    found = session.execute(
        select(ReorderLevel).where(ReorderLevel.material == material, ReorderLevel.unit == unit)
    ).scalar_one_or_none()
    before = found.level if found else None
    actor_id = actor.id
    if found is None:
        found = ReorderLevel(
            material=material, unit=unit.value, level=level, set_at=now, set_by_id=actor_id
        )
        session.add(found)
    else:
        found.level, found.set_at, found.set_by_id = level, now, actor_id
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="reorder_level.set",
        entity_type="reorder_level",
        entity_id=found.id,
        changes={
            "material": (None, material),
            "unit": (None, unit.value),
            "level": (before, level),
        },
    )
    return found


def reorder_levels(session: DbSession) -> list[ReorderLevel]:
    return list(
        session.execute(select(ReorderLevel).order_by(ReorderLevel.material, ReorderLevel.unit))
        .scalars()
        .all()
    )


# --- the stock list --------------------------------------------------------------------------


def _usable(today: dt.date) -> ColumnElement[bool]:
    return and_(
        MaterialLot.released_at.is_not(None),
        MaterialLot.recalled_at.is_(None),
        MaterialLot.expiry_date >= today,
    )


def _low_materials(today: dt.date) -> Select[Any]:
    """The (material, unit) pairs whose usable stock is below their reorder level."""
    usable = (
        select(func.coalesce(func.sum(remaining_column()), 0.0))
        .where(
            MaterialLot.material == ReorderLevel.material,
            MaterialLot.unit == ReorderLevel.unit,
            _usable(today),
        )
        .correlate(ReorderLevel)
        .scalar_subquery()
    )
    pair: tuple[Any, Any] = (ReorderLevel.material, ReorderLevel.unit)
    return select(*pair).where(ReorderLevel.level > 0, usable < ReorderLevel.level)


def _state_condition(state: StockState, today: dt.date, within_days: int) -> ColumnElement[bool]:
    remaining = remaining_column()
    holds = or_(MaterialLot.quantity_received.is_(None), remaining > 0)
    if state == StockState.IN_STOCK:
        return and_(holds, MaterialLot.recalled_at.is_(None))
    if state == StockState.EXPIRING:
        return and_(
            MaterialLot.recalled_at.is_(None),
            MaterialLot.expiry_date >= today,
            MaterialLot.expiry_date <= today + dt.timedelta(days=within_days),
            holds,
        )
    if state == StockState.EXPIRED_IN_STOCK:
        return and_(MaterialLot.expiry_date < today, remaining > 0)
    low = _low_materials(today).subquery()
    return exists(
        select(literal(1)).where(
            low.c.material == MaterialLot.material, low.c.unit == MaterialLot.unit
        )
    )


#: The stock list: soonest expiry first; searched in the material, its lot number and
#: supplier.
STOCK_LIST = listing.ListSpec(
    sorts={
        "expiry": MaterialLot.expiry_date,
        "material": MaterialLot.material,
        "lot": MaterialLot.lot_number,
        "received": MaterialLot.received_at,
        # a lot not counted sorts below every counted one, on every database (NULLs do not)
        "remaining": func.coalesce(MaterialLot.quantity_received - _used() + _adjusted(), -1.0),
    },
    default_sort="expiry",
    default_direction=listing.Direction.ASC,
    tiebreaker=MaterialLot.id,
    searched=(MaterialLot.material, MaterialLot.lot_number, MaterialLot.supplier),
)


@dataclass(frozen=True)
class StockRow:
    """One row of the stock list: the lot and what remains of it."""

    lot: MaterialLot
    remaining: float | None
    actions: frozenset[StockAction]


def stock_page(
    session: DbSession,
    request: listing.PageRequest,
    *,
    today: dt.date,
    state: StockState | None = None,
    within_days: int = DEFAULT_EXPIRY_WARNING_DAYS,
) -> listing.Page[StockRow]:
    """A page of the material lots with what remains of each (two statements, and one for
    the users who released them)."""
    remaining: Any = remaining_column()  # one more column: typed Select[Any], as fetch_page takes
    query: Select[Any] = select(MaterialLot, remaining).options(
        selectinload(MaterialLot.released_by)
    )
    if state is not None:
        query = query.where(_state_condition(state, today, within_days))
    page = listing.fetch_page(session, query, STOCK_LIST, request)
    rows = [
        StockRow(
            lot, _rounded(remaining), material_lot_actions(lot, today=today, remaining=remaining)
        )
        for lot, remaining in page.items
    ]
    return page.with_items(rows)


def material_lot_actions(
    lot: MaterialLot, *, today: dt.date, remaining: float | None = None
) -> frozenset[StockAction]:
    """The acts the lot allows now (the page offers these; permissions apart). Release is
    refused once expired (``resources.release_material_lot``), and by its state."""
    acts = set()
    if lot.released_at is None and lot.recalled_at is None and lot.expiry_date >= today:
        acts.add(StockAction.RELEASE)
    if lot.quantity_received is not None:
        acts.add(StockAction.ADJUST)
    return frozenset(acts)


# --- the technician's queue ------------------------------------------------------------------


@dataclass(frozen=True)
class StockWarnings:
    expiring: int
    expired_in_stock: int
    low: int


def count_warnings(session: DbSession, *, today: dt.date, within_days: int) -> StockWarnings:
    """The queue's three counts in two statements: the lots expiring within ``within_days``
    and the expired lots still holding stock (one), the materials below their reorder level
    (the other). The same conditions as the list's filters (``_state_condition``)."""
    expiring = _state_condition(StockState.EXPIRING, today, within_days)
    expired = _state_condition(StockState.EXPIRED_IN_STOCK, today, within_days)
    row = session.execute(
        select(
            func.coalesce(func.sum(case((expiring, 1), else_=0)), 0),
            func.coalesce(func.sum(case((expired, 1), else_=0)), 0),
        ).select_from(MaterialLot)
    ).one()
    low = session.execute(
        select(func.count()).select_from(_low_materials(today).subquery())
    ).scalar_one()
    return StockWarnings(expiring=int(row[0]), expired_in_stock=int(row[1]), low=int(low))


def low_materials(session: DbSession, *, today: dt.date) -> list[tuple[str, str]]:
    """The materials (and units) below their reorder level, for the stock page's note."""
    return [(material, unit) for material, unit in session.execute(_low_materials(today))]


# --- one lot ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LotStock:
    """A lot's page: its receipt, every step's use and every adjustment, what remains."""

    lot: MaterialLot
    remaining: float | None
    uses: list[StepMaterial]
    adjustments: list[StockAdjustment]
    actions: frozenset[StockAction]

    @property
    def used(self) -> float:
        return round(sum(use.quantity or 0.0 for use in self.uses), _PLACES)

    @property
    def adjusted(self) -> float:
        return round(sum(row.quantity for row in self.adjustments), _PLACES)


def lot_stock(session: DbSession, lot: MaterialLot, *, today: dt.date) -> LotStock:
    uses = list(
        session.execute(
            select(StepMaterial)
            .join(ProcessingStep, ProcessingStep.id == StepMaterial.step_id)
            .where(StepMaterial.material_lot_id == lot.id)
            .options(selectinload(StepMaterial.step).selectinload(ProcessingStep.performed_by))
            .order_by(ProcessingStep.performed_at, ProcessingStep.id)
        ).scalars()
    )
    adjustments = list(
        session.execute(
            select(StockAdjustment)
            .where(StockAdjustment.material_lot_id == lot.id)
            .options(selectinload(StockAdjustment.made_by))
            .order_by(StockAdjustment.made_at, StockAdjustment.id)
        ).scalars()
    )
    remaining = remaining_of(session, [lot.id])[lot.id]
    return LotStock(
        lot=lot,
        remaining=remaining,
        uses=uses,
        adjustments=adjustments,
        actions=material_lot_actions(lot, today=today, remaining=remaining),
    )
