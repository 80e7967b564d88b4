"""Rules of the batch record: processing steps as lineage operations on units (DOMAIN.md §4).

Every step records who, when, the units that went in and came out (through the chain core, so
pooling across donations is refused and used-up vessels cannot be used again), the counts, the
material lots consumed and the equipment used. Population doublings are computed from the
counts. A step whose cells would go beyond the product's max passage or max CPD is refused
unless it names a limit-excursion deviation that QA authorised with a signed justification
(``deviations.authorising_excursion``); the step records that deviation, and the lot it ends
in carries a flag for each limit exceeded, which blocks its release. DMSO outside its range
flags the lot too.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import SupportsFloat, SupportsInt, cast
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cellchain.chain import service as chain
from cellchain.chain.models import LineageOperation, Unit, UnitKind
from cellchain.core import audit, listing, numbering
from cellchain.core.display import scientific
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.core.types import canonical_json
from cellchain.donors import service as donors
from cellchain.donors.models import Donation, DonationStatus, Eligibility
from cellchain.errors import Conflict, InvalidInput, NotFound
from cellchain.extensions import DbSession
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import (
    CellRecord,
    Deviation,
    Equipment,
    EquipmentKind,
    Lot,
    LotStatus,
    MaterialLot,
    ProcessingStep,
    StepEquipment,
    StepKind,
    StepUnit,
)
from cellchain.manufacturing.processing import resources, step_equipment
from cellchain.manufacturing.processing.doublings import (
    DEFAULT_MIN_DOUBLING_TIME_HOURS,
    culture_time_problem,
    cumulative_after,
    population_doublings,
)
from cellchain.manufacturing.stock import service as stock
from cellchain.manufacturing.storage import storage

ISOLATION_METHODS = ("explant", "enzymatic")
#: a bank freeze makes vials of a master or a working cell bank
CELL_BANKS = ("master", "working")
MAX_VESSELS_PER_STEP = 100
MAX_BAGS_PER_LOT = 200
#: the zone of a step recorded with no site (the tests' direct calls)
_UTC = ZoneInfo("UTC")

#: the counts a step checks, named as a person reads them in a refusal
_FIELD_NAMES: dict[str, LazyText] = {
    "cells_harvested": lazy("Cells harvested"),
    "cells_seeded": lazy("Cells seeded"),
    "cells_per_vial": lazy("Cells per vial"),
    "volume_ml": lazy("Volume (mL)"),
    "total_cells_per_ml": lazy("Total cells per mL"),
    "vial_count": lazy("Number of vials"),
    "bag_count": lazy("Number of bags"),
    "vessels_out": lazy("Number of new vessels"),
}


@dataclass(frozen=True)
class Vessel:
    """A new culture vessel: its format (T175, CS2, …) and the cells seeded into it."""

    vessel_format: str
    #: None only for an explant isolation, where tissue pieces are not counted
    cells: float | None


@dataclass(frozen=True)
class StepContext:
    """What every step records besides its own figures."""

    performed_at: dt.datetime | None = None
    material_lot_ids: tuple[int, ...] = ()
    equipment_ids: tuple[int, ...] = ()
    #: where the new units are put; by default the incubator among the equipment
    location: str | None = None
    notes: str | None = None
    #: the limit-excursion deviation, authorised by QA, that allows this step to take the
    #: cells beyond the product's max passage or max CPD (needed only then)
    deviation_id: int | None = None
    #: the quantity of a material lot used, by lot id, where the technician enters it (else
    #: from the step's own figures, ``manufacturing.stock.service.default_use``)
    material_quantities: Mapping[int, float] = field(default_factory=dict)
    #: the site's time zone: a material lot's expiry and equipment's due date are days on its
    #: calendar
    zone: ZoneInfo = _UTC


@dataclass(frozen=True)
class Harvest:
    """The counts of a harvest of culture vessels."""

    cells: float
    viability_percent: float


@dataclass(frozen=True)
class Fill:
    """Formulation and fill of the lot's cryobags.

    ``total_cells_per_ml`` is the TOTAL (nucleated) count, dead and alive: the harvest's
    viability is recorded beside it and the dose applies the release viability to it once."""

    bag_count: int
    volume_ml: float
    total_cells_per_ml: float
    dmso_percent: float


@dataclass
class _Figures:
    """What a harvest computes: counts before, PD, CPD, days in culture, passage."""

    passage: int
    seeded_before: float | None = None
    doublings: float | None = None
    cumulative_pd: float = 0.0
    days_in_culture: float | None = None
    warnings: list[str] = field(default_factory=list)


# --- the steps ----------------------------------------------------------------------------------


def isolate(
    session: DbSession,
    donation: Donation,
    *,
    tissue: Sequence[Unit],
    method: str,
    vessels: Sequence[Vessel],
    context: StepContext,
    actor: User,
    now: dt.datetime,
) -> ProcessingStep:
    """Isolate MSC from the donation's tissue into P0 vessels; this starts processing.

    Refused for a donation rejected at receipt or determined ineligible, and past the
    birth-to-processing limit (the first isolation starts the clock's end).
    """
    if method not in ISOLATION_METHODS:
        raise InvalidInput(
            _("The isolation method is explant or enzymatic, not %(method)s.", method=repr(method)),
            errors={"method": [_("Explant or enzymatic.")]},
        )
    _require_processable(donation)
    for unit in tissue:
        if unit.donation_id != donation.id or unit.kind != UnitKind.DONATION_CONTAINER.value:
            raise InvalidInput(
                _(
                    "%(unit)s is not a tissue container of donation %(din)s.",
                    unit=unit.code,
                    din=donation.din,
                ),
                errors={"tissue": [_("Not this donation's tissue.")]},
            )
    if not tissue:
        raise InvalidInput(
            _("Scan the tissue container(s) isolated from."), errors={"tissue": [_("Required.")]}
        )
    _check_vessels(donation, vessels, counted=method == "enzymatic")
    done = _context(session, context, actor=actor, now=now, after=tissue, step=StepKind.ISOLATION)
    if DonationStatus(donation.status) == DonationStatus.RECEIVED:
        donors.start_processing(
            session, donation, actor=actor, now=now, started_at=done.performed_at
        )
    return _record(
        session,
        donation=donation,
        kind=StepKind.ISOLATION,
        inputs=tissue,
        operation=LineageOperation.ISOLATE,
        outputs=[(UnitKind.CULTURE_VESSEL, vessel) for vessel in vessels],
        figures=_Figures(passage=0),
        consume_inputs=True,
        method=method,
        done=done,
    )


def passage(
    session: DbSession,
    *,
    vessels_in: Sequence[Unit],
    harvest: Harvest,
    vessels_out: Sequence[Vessel],
    context: StepContext,
    actor: User,
    now: dt.datetime,
) -> ProcessingStep:
    """Harvest one or more vessels of one donation and seed new vessels at the next passage."""
    donation = _donation_of(vessels_in)
    _require_processable(donation, started=True)
    figures = _harvest(session, donation, vessels_in, harvest)
    figures.passage += 1
    _check_vessels(donation, vessels_out, counted=True)
    _check_seeding(sum(v.cells or 0 for v in vessels_out), harvest.cells)
    done = _context(session, context, actor=actor, now=now, after=vessels_in, step=StepKind.PASSAGE)
    figures.days_in_culture = _days_in_culture(session, vessels_in, done.performed_at, figures)
    return _record(
        session,
        donation=donation,
        kind=StepKind.PASSAGE,
        inputs=vessels_in,
        operation=LineageOperation.PASSAGE,
        outputs=[(UnitKind.CULTURE_VESSEL, vessel) for vessel in vessels_out],
        figures=figures,
        consume_inputs=True,
        harvest=harvest,
        done=done,
    )


def bank_freeze(
    session: DbSession,
    *,
    vessels_in: Sequence[Unit],
    harvest: Harvest,
    vial_count: int,
    cells_per_vial: float,
    volume_ml: float,
    context: StepContext,
    actor: User,
    now: dt.datetime,
    bank: str = "master",
) -> ProcessingStep:
    """Harvest vessels into vials of a master or working cell bank, for later thaw."""
    if bank not in CELL_BANKS:
        raise InvalidInput(
            _("A cell bank is master or working, not %(bank)s.", bank=repr(bank)),
            errors={"bank": [_("Master or working.")]},
        )
    donation = _donation_of(vessels_in)
    _require_processable(donation, started=True)
    figures = _harvest(session, donation, vessels_in, harvest)
    _check_count(vial_count, "vial_count", MAX_BAGS_PER_LOT)
    _positive(cells_per_vial, "cells_per_vial")
    _positive(volume_ml, "volume_ml")
    _check_seeding(vial_count * cells_per_vial, harvest.cells, frozen=True)
    done = _context(
        session,
        context,
        actor=actor,
        now=now,
        after=vessels_in,
        step=StepKind.BANK_FREEZE,
    )
    figures.days_in_culture = _days_in_culture(session, vessels_in, done.performed_at, figures)
    vial = _Filled(cells=cells_per_vial, volume_ml=volume_ml, viability=harvest.viability_percent)
    return _record(
        session,
        donation=donation,
        kind=StepKind.BANK_FREEZE,
        inputs=vessels_in,
        operation=LineageOperation.HARVEST,
        outputs=[(UnitKind.BANK_VIAL, vial)] * vial_count,
        figures=figures,
        consume_inputs=True,
        harvest=harvest,
        done=done,
        method=bank,
    )


def bank_thaw(
    session: DbSession,
    *,
    vial: Unit,
    viability_percent: float,
    vessels_out: Sequence[Vessel],
    context: StepContext,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
) -> ProcessingStep:
    """Thaw a cell-bank vial into new vessels at the next passage; its CPD carries on.
    ``zone``: the site's, in which a refusal names a time."""
    if vial.kind != UnitKind.BANK_VIAL.value:
        raise InvalidInput(
            _("%(unit)s is a %(kind)s, not a cell-bank vial.", unit=vial.code, kind=vial.kind_name),
            errors={"vial": [_("%(unit)s: not a cell-bank vial.", unit=vial.code)]},
        )
    donation = vial.donation
    _require_processable(donation, started=True)
    _check_viability(viability_percent)
    record = _cell_record(session, vial)
    _check_vessels(donation, vessels_out, counted=True)
    _check_seeding(sum(v.cells or 0 for v in vessels_out), record.cells or 0)
    done = _context(session, context, actor=actor, now=now, after=[vial], step=StepKind.BANK_THAW)
    if storage.position_of(session, vial) is not None:  # taken out of LN2 to be thawed
        storage.remove_unit(
            session,
            vial,
            location="thawed for culture",
            actor=actor,
            now=now,
            at=done.performed_at,
            zone=zone,
        )
    figures = _Figures(passage=record.passage + 1, cumulative_pd=record.cumulative_pd or 0.0)
    return _record(
        session,
        donation=donation,
        kind=StepKind.BANK_THAW,
        inputs=[vial],
        operation=LineageOperation.THAW,
        outputs=[(UnitKind.CULTURE_VESSEL, vessel) for vessel in vessels_out],
        figures=figures,
        consume_inputs=True,
        harvest=Harvest(cells=record.cells or 0, viability_percent=viability_percent),
        done=done,
    )


def fill_lot(
    session: DbSession,
    *,
    vessels_in: Sequence[Unit],
    harvest: Harvest,
    fill: Fill,
    context: StepContext,
    actor: User,
    now: dt.datetime,
) -> Lot:
    """Final harvest, formulation and fill into the cryobags of a new lot (in quarantine).

    Beyond the product's passage or CPD limit the fill is refused unless a QA-authorised
    deviation allows it; the lot is then flagged for each limit exceeded (DMSO outside its
    range too), and a flag blocks its release.
    """
    donation = _donation_of(vessels_in)
    _require_processable(donation, started=True)
    figures = _harvest(session, donation, vessels_in, harvest)
    _check_count(fill.bag_count, "bag_count", MAX_BAGS_PER_LOT)
    _positive(fill.volume_ml, "volume_ml")
    _positive(fill.total_cells_per_ml, "total_cells_per_ml")
    if not 0 <= fill.dmso_percent <= 100:
        raise InvalidInput(
            _("DMSO %(dmso)s %% is not a percentage.", dmso=format(fill.dmso_percent, "g")),
            errors={"dmso_percent": [_("Between 0 and 100.")]},
        )
    total_per_bag = fill.volume_ml * fill.total_cells_per_ml
    _check_fill_count(fill.bag_count * total_per_bag, harvest)
    done = _context(session, context, actor=actor, now=now, after=vessels_in, step=StepKind.FILL)
    figures.days_in_culture = _days_in_culture(session, vessels_in, done.performed_at, figures)
    _excursion(session, donation, figures, StepKind.FILL, done)  # refused before the lot is made
    product = donation.product_definition
    lot = Lot(
        lot_number=_next_lot_number(session, donation),
        donation_id=donation.id,
        product_definition_id=product.id,
        status=LotStatus.QUARANTINE.value,
        made_at=done.performed_at,
        made_by_id=actor.id,
        final_passage=figures.passage,
        final_cumulative_pd=figures.cumulative_pd,
        dmso_percent=fill.dmso_percent,
        expires_at=expiry_of(product.parameters, done.performed_at),
        limit_flags_json=canonical_json(
            limit_flags(
                product.parameters, figures.passage, figures.cumulative_pd, fill.dmso_percent
            )
        ),
    )
    session.add(lot)
    session.flush()
    bag = _Filled(
        cells=total_per_bag,
        volume_ml=fill.volume_ml,
        viability=harvest.viability_percent,
        total_cells_per_ml=fill.total_cells_per_ml,
        lot_id=lot.id,
    )
    _record(
        session,
        donation=donation,
        kind=StepKind.FILL,
        inputs=vessels_in,
        operation=LineageOperation.FILL,
        outputs=[(UnitKind.CRYOBAG, bag)] * fill.bag_count,
        figures=figures,
        consume_inputs=True,
        harvest=harvest,
        done=done,
        lot=lot,
    )
    audit.record(
        session,
        actor=actor,
        at=now,
        action="lot.made",
        entity_type="lot",
        entity_id=lot.id,
        changes={
            "lot_number": (None, lot.lot_number),
            "bags": (None, fill.bag_count),
            "final_passage": (None, lot.final_passage),
            "final_cumulative_pd": (None, round(figures.cumulative_pd, 3)),
            "limit_flags": (None, lot.limit_flags),
        },
    )
    return lot


class LotAction(enum.StrEnum):
    """What may be done with a lot on its batch record."""

    FREEZE = "freeze"  #: controlled-rate freezing of its bags, once


def lot_actions(session: DbSession, lot: Lot) -> frozenset[LotAction]:
    """The acts the lot's record allows: its bags are frozen once. The page offers these
    (permissions apart)."""
    frozen = session.execute(
        select(ProcessingStep.id).where(
            ProcessingStep.lot_id == lot.id, ProcessingStep.kind == StepKind.FREEZING.value
        )
    ).first()
    return frozenset() if frozen is not None else frozenset({LotAction.FREEZE})


def freeze_lot(
    session: DbSession, lot: Lot, *, context: StepContext, actor: User, now: dt.datetime
) -> ProcessingStep:
    """Controlled-rate freezing of the lot's bags; a controlled-rate freezer must be recorded."""
    if LotAction.FREEZE not in lot_actions(session, lot):
        raise Conflict(_("The bags of lot %(lot)s have already been frozen.", lot=lot.lot_number))
    bags = bags_of(session, lot)
    # the controlled-rate freezer is needed (``step_equipment.STEP_EQUIPMENT``)
    done = _context(session, context, actor=actor, now=now, after=bags, step=StepKind.FREEZING)
    return _record(
        session,
        donation=lot_donation(session, lot),
        kind=StepKind.FREEZING,
        inputs=bags,
        operation=None,
        outputs=[],
        figures=_Figures(passage=lot.final_passage, cumulative_pd=lot.final_cumulative_pd or 0),
        consume_inputs=False,
        done=done,
        lot=lot,
    )


def expiry_of(parameters: dict[str, object], made_at: dt.datetime) -> dt.datetime | None:
    """When a lot made at ``made_at`` expires: its fill plus the product's shelf life.

    ``None`` when the product version sets no shelf life; such a lot cannot be released.
    """
    days = parameters.get("shelf_life_days")
    if days is None:
        return None
    # a number from the product definition's JSON parameters
    return made_at + dt.timedelta(days=float(cast(SupportsFloat | str, days)))


def limit_flags(
    parameters: dict[str, object], passage: int, cumulative_pd: float, dmso_percent: float
) -> list[str]:
    """The product limits a lot exceeds, in words; an empty list when it is within them all."""
    flags = []
    # numbers from the product definition's JSON parameters
    max_passage = int(cast(SupportsInt | str, parameters["max_passage"]))
    max_cpd = float(cast(SupportsFloat | str, parameters["max_cumulative_population_doublings"]))
    dmso = parameters["dmso_percent"]
    if passage > max_passage:
        flags.append(f"passage P{passage} exceeds the maximum P{max_passage}")
    if cumulative_pd > max_cpd:
        flags.append(f"cumulative PD {cumulative_pd:.1f} exceeds the maximum {max_cpd:g}")
    if isinstance(dmso, dict) and not dmso["min"] <= dmso_percent <= dmso["max"]:
        flags.append(f"DMSO {dmso_percent:g} % is outside {dmso['min']}–{dmso['max']} %")
    return flags


# --- reading the batch record -------------------------------------------------------------------


def steps_of_donation(session: DbSession, donation_id: int) -> list[ProcessingStep]:
    return list(
        session.execute(
            select(ProcessingStep)
            .where(ProcessingStep.donation_id == donation_id)
            .order_by(ProcessingStep.performed_at, ProcessingStep.id)
        ).scalars()
    )


def bags_of(session: DbSession, lot: Lot) -> list[Unit]:
    return list(
        session.execute(
            select(Unit)
            .join(CellRecord, CellRecord.unit_id == Unit.id)
            .where(CellRecord.lot_id == lot.id)
            .order_by(Unit.id)
        ).scalars()
    )


def cell_records(session: DbSession, units: Sequence[Unit]) -> dict[int, CellRecord]:
    rows = session.execute(
        select(CellRecord).where(CellRecord.unit_id.in_([unit.id for unit in units]))
    ).scalars()
    return {row.unit_id: row for row in rows}


def lot_donation(session: DbSession, lot: Lot) -> Donation:
    return donors.get_donation(session, lot.donation_id)


def get_lot(session: DbSession, lot_id: int) -> Lot:
    return get_or_404(session, Lot, lot_id, "lot")


def find_lot(session: DbSession, lot_number: str) -> Lot:
    lot = session.execute(
        select(Lot).where(Lot.lot_number == lot_number.strip().upper())
    ).scalar_one_or_none()
    if lot is None:
        raise NotFound(_("There is no lot %(lot)s.", lot=lot_number))
    return lot


def list_lots(session: DbSession) -> list[Lot]:
    return list(session.execute(select(Lot).order_by(Lot.id.desc())).scalars())


def get_step(session: DbSession, step_id: int) -> ProcessingStep:
    return get_or_404(session, ProcessingStep, step_id, "processing step")


# --- internals ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Filled:
    """A vial or bag to make: what it holds."""

    cells: float  #: vials: viable cells; bags: total cells (volume × total_cells_per_ml)
    volume_ml: float
    viability: float
    total_cells_per_ml: float | None = None
    lot_id: int | None = None


def _require_processable(donation: Donation, *, started: bool = False) -> None:
    if donation.eligibility == Eligibility.INELIGIBLE.value:
        raise Conflict(
            _(
                "Donation %(din)s: the donor was determined ineligible; nothing may be processed.",
                din=donation.din,
            ),
            title=_("Donor ineligible"),
        )
    # By hand, not DONATION_TRANSITIONS: a step is recorded within received or processing
    # (changing no donation status), and each other status is refused in its own words.
    status = DonationStatus(donation.status)
    if status == DonationStatus.REJECTED:
        raise Conflict(
            _(
                "Donation %(din)s was rejected at receipt; it may not be processed.",
                din=donation.din,
            ),
            title=_("Donation rejected"),
        )
    if status == DonationStatus.REGISTERED:
        raise Conflict(
            _("Donation %(din)s has not been received at the lab yet.", din=donation.din),
            title=_("Not received"),
        )
    if started and status != DonationStatus.PROCESSING:
        raise Conflict(
            _("Processing of donation %(din)s has not started; isolate first.", din=donation.din),
            title=_("Processing not started"),
        )


def _donation_of(units: Sequence[Unit]) -> Donation:
    if not units:
        raise InvalidInput(
            _("Scan the vessels harvested."), errors={"vessels_in": [_("Required.")]}
        )
    donations = {unit.donation_id for unit in units}
    if len(donations) > 1:
        # codes and DINs only: the same words in every language, and in the audit's English
        codes = ", ".join(f"{u.code} ({u.donation.din})" for u in units)
        raise Conflict(
            _(
                "Material from different donations is never combined; these vessels come from "
                "%(count)s donations: %(codes)s.",
                count=len(donations),
                codes=codes,
            ),
            title=_("Pooling across donations refused"),
        )
    for unit in units:
        if unit.kind != UnitKind.CULTURE_VESSEL.value:
            raise InvalidInput(
                _(
                    "%(unit)s is a %(kind)s, not a culture vessel.",
                    unit=unit.code,
                    kind=unit.kind_name,
                ),
                errors={"vessels_in": [_("%(unit)s: not a culture vessel.", unit=unit.code)]},
            )
    # Said first, before the counts; checked again under a row lock when the units are used.
    chain.require_usable(units)
    return units[0].donation


def _harvest(
    session: DbSession, donation: Donation, vessels: Sequence[Unit], harvest: Harvest
) -> _Figures:
    """Check a harvest's counts against the vessels and compute PD and CPD."""
    _positive(harvest.cells, "cells_harvested")
    _check_viability(harvest.viability_percent)
    records = cell_records(session, vessels)
    missing = [vessel.code for vessel in vessels if vessel.id not in records]
    if missing:
        raise Conflict(_("No seeding is on record for %(units)s.", units=", ".join(missing)))
    area = sum(records[vessel.id].area_cm2 or 0 for vessel in vessels)
    per_cm2 = float(donation.product_definition.parameters["max_harvest_cells_per_cm2"])
    if harvest.cells > area * per_cm2:
        raise InvalidInput(
            _(
                "%(cells)s cells from %(count)s vessel(s) with %(area)s cm² is more than is "
                "physically plausible (at most %(per_cm2)s cells/cm², %(most)s in all). "
                "Check the count.",
                cells=scientific(harvest.cells),
                count=len(vessels),
                area=format(area, "g"),
                per_cm2=scientific(per_cm2),
                most=scientific(area * per_cm2),
            ),
            errors={"cells_harvested": [_("Implausibly high for these vessels.")]},
        )
    seeded = [records[vessel.id].cells for vessel in vessels]
    counted = all(cells is not None for cells in seeded)
    seeded_total = sum(cells or 0 for cells in seeded) if counted else None
    doublings = population_doublings(seeded_total, harvest.cells) if seeded_total else None
    return _Figures(
        passage=max(records[vessel.id].passage for vessel in vessels),
        seeded_before=seeded_total,
        doublings=doublings,
        cumulative_pd=cumulative_after(
            (records[vessel.id].cumulative_pd for vessel in vessels), doublings
        ),
    )


def _days_in_culture(
    session: DbSession, vessels: Sequence[Unit], performed_at: dt.datetime, figures: _Figures
) -> float:
    """Days from the seeding of the vessels to this harvest; refused when that cannot be true:
    a harvest at (or before) the moment of seeding, or counts that imply the cells doubled
    faster than the product's minimum doubling time (``min_doubling_time_hours``)."""
    records = cell_records(session, vessels)
    seeded_at = min(records[vessel.id].made_at for vessel in vessels)
    days = (performed_at - seeded_at).total_seconds() / 86400
    parameters = vessels[0].donation.product_definition.parameters
    problem = culture_time_problem(
        days,
        figures.doublings,
        float(parameters.get("min_doubling_time_hours", DEFAULT_MIN_DOUBLING_TIME_HOURS)),
    )
    if problem:
        raise InvalidInput(
            problem,
            errors={"performed_at": [problem]},
            title=_("Implausible culture time"),
        )
    return days


def _check_vessels(donation: Donation, vessels: Sequence[Vessel], *, counted: bool) -> None:
    formats = donation.product_definition.parameters["vessel_formats"]
    _check_count(len(vessels), "vessels_out", MAX_VESSELS_PER_STEP)
    for vessel in vessels:
        if vessel.vessel_format not in formats:
            raise InvalidInput(
                _(
                    "%(format)s is not a vessel format of this product (%(formats)s).",
                    format=repr(vessel.vessel_format),
                    formats=", ".join(formats),
                ),
                errors={"vessels_out": [_("Unknown vessel format.")]},
            )
        if vessel.cells is None:
            if counted:
                raise InvalidInput(
                    _("Give the cells seeded into every new vessel."),
                    errors={"vessels_out": [_("Cells seeded required.")]},
                )
        else:
            _positive(vessel.cells, "cells_seeded")


def _check_seeding(used: float, available: float, *, frozen: bool = False) -> None:
    """The cells seeded (or ``frozen`` into vials) cannot be more than those available."""
    if used <= available:
        return
    used_text, available_text = scientific(used), scientific(available)
    if frozen:
        detail = _(
            "%(used)s cells frozen is more than the %(available)s harvested.",
            used=used_text,
            available=available_text,
        )
        field_message = _("Fewer than the cells frozen.")
    else:
        detail = _(
            "%(used)s cells seeded is more than the %(available)s harvested.",
            used=used_text,
            available=available_text,
        )
        field_message = _("Fewer than the cells seeded.")
    raise InvalidInput(detail, errors={"cells_harvested": [field_message]})


def _check_fill_count(total_filled: float, harvest: Harvest) -> None:
    """The bags hold total cells; the harvest was counted as viable cells at a viability. The
    viable cells filled (total × viability, applied once) cannot exceed those harvested."""
    viable_filled = total_filled * harvest.viability_percent / 100
    if viable_filled > harvest.cells:
        raise InvalidInput(
            _(
                "%(total)s total cells filled at %(viability)s %% viable are %(viable)s viable "
                "cells, more than the %(harvested)s viable cells harvested.",
                total=scientific(total_filled),
                viability=format(harvest.viability_percent, "g"),
                viable=scientific(viable_filled),
                harvested=scientific(harvest.cells),
            ),
            errors={"cells_harvested": [_("Fewer than the viable cells filled.")]},
        )


def _check_viability(value: float) -> None:
    if not 0 <= value <= 100:
        raise InvalidInput(
            _(
                "Viability is a percentage between 0 and 100; %(value)s is not.",
                value=format(value, "g"),
            ),
            errors={"viability_percent": [_("Between 0 and 100.")]},
        )


def _positive(value: float, name: str) -> None:
    if not value > 0 or value != value or value == float("inf"):
        raise InvalidInput(
            _(
                "%(field)s must be more than zero; %(value)s is not.",
                field=_field_name(name),
                value=format(value, "g"),
            ),
            errors={name: [_("Must be more than zero.")]},
        )


def _check_count(count: int, name: str, maximum: int) -> None:
    if not 1 <= count <= maximum:
        raise InvalidInput(
            _(
                "%(field)s must be between 1 and %(maximum)s; got %(count)s.",
                field=_field_name(name),
                maximum=maximum,
                count=count,
            ),
            errors={name: [_("Between 1 and %(maximum)s.", maximum=maximum)]},
        )


def _field_name(name: str) -> str:
    """A checked count's name in the reader's language (a ``Translated``, so that the
    refusal's English names it in English)."""
    known = _FIELD_NAMES.get(name)
    return str(known) if known is not None else name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class _Done:
    """Who did a step, when, and with which materials and equipment (checked)."""

    context: StepContext
    performed_at: dt.datetime
    materials: list[MaterialLot]
    equipment: list[Equipment]
    actor: User
    now: dt.datetime


def _context(
    session: DbSession,
    context: StepContext,
    *,
    actor: User,
    now: dt.datetime,
    after: Sequence[Unit],
    step: StepKind,
) -> _Done:
    """The step's time, material lots and equipment, checked; ``step``: its kind, whose
    equipment it needs (``step_equipment.STEP_EQUIPMENT``)."""
    performed_at = context.performed_at or now
    if performed_at > now:
        raise InvalidInput(
            _("A step cannot be recorded in the future."),
            errors={"performed_at": [_("In the future.")]},
        )
    if after and performed_at < max(unit.created_at for unit in after):
        raise InvalidInput(
            _("A step cannot be earlier than the units it uses were made."),
            errors={"performed_at": [_("Before its input units existed.")]},
        )
    # the day of use on the site's calendar, as for its material lots and a storage tank
    equipment = resources.usable_equipment(
        session, context.equipment_ids, on=performed_at.astimezone(context.zone).date()
    )
    # a step naming no equipment, or not the kinds it needs, would escape the check above
    step_equipment.require_kinds(step, equipment)
    return _Done(
        context=context,
        performed_at=performed_at,
        materials=resources.usable_material_lots(
            session, context.material_lot_ids, at=performed_at, zone=context.zone
        ),
        equipment=equipment,
        actor=actor,
        now=now,
    )


def _location(context: StepContext, equipment: list[Equipment], kind: UnitKind) -> str:
    if context.location and context.location.strip():
        return context.location.strip()
    wanted = EquipmentKind.INCUBATOR if kind == UnitKind.CULTURE_VESSEL else None
    for item in equipment:
        if wanted is None or item.kind == wanted.value:
            return str(item.code)
    return "Manufacturing lab"


def _next_lot_number(session: DbSession, donation: Donation) -> str:
    number = numbering.next_in_sequence(session, f"LOT:{donation.din}", maximum=99)
    return f"{donation.din}-L{number:02d}"


def _cell_record(session: DbSession, unit: Unit) -> CellRecord:
    record = session.get(CellRecord, unit.id)
    if record is None:
        raise Conflict(_("No cell record is on file for %(unit)s.", unit=unit.code))
    return record


def _record(
    session: DbSession,
    *,
    donation: Donation,
    kind: StepKind,
    inputs: Sequence[Unit],
    operation: LineageOperation | None,
    outputs: Sequence[tuple[UnitKind, Vessel | _Filled]],
    figures: _Figures,
    consume_inputs: bool,
    done: _Done,
    harvest: Harvest | None = None,
    method: str | None = None,
    lot: Lot | None = None,
) -> ProcessingStep:
    """Write the step, its units (through the chain core), cell records, materials, equipment.

    Every step that makes cells passes here, so the product's passage and CPD limits are
    enforced here for all of them: beyond a limit, only with a QA-authorised deviation.
    """
    context, performed_at, actor, now = done.context, done.performed_at, done.actor, done.now
    materials, equipment = done.materials, done.equipment
    uses = stock.plan_uses(
        session,
        materials,
        _stock_figures(session, kind, inputs, outputs, lot),
        context.material_quantities,
    )
    excursion = _excursion(session, donation, figures, kind, done) if outputs else None
    made: list[Unit] = []
    if outputs and operation is not None:
        by_kind = outputs[0][0]
        made = chain.derive_units(
            session,
            parents=list(inputs),
            kind=by_kind,
            operation=operation,
            count=len(outputs),
            location=_location(context, equipment, by_kind),
            actor=actor,
            now=now,
            consume_parents=consume_inputs,
            at=performed_at,
        )
    step = ProcessingStep(
        donation_id=donation.id,
        kind=kind.value,
        performed_at=performed_at,
        recorded_at=now,
        performed_by_id=actor.id,
        method=method,
        passage=figures.passage,
        cells_harvested=harvest.cells if harvest else None,
        viability_percent=harvest.viability_percent if harvest else None,
        cells_seeded_before=figures.seeded_before,
        days_in_culture=figures.days_in_culture,
        population_doublings=figures.doublings,
        cumulative_pd=figures.cumulative_pd,
        lot_id=lot.id if lot else None,
        notes=(context.notes or "").strip() or None,
        deviation_id=excursion.id if excursion else None,
    )
    session.add(step)
    session.flush()
    session.add_all(StepUnit(step_id=step.id, unit_id=u.id, role="input") for u in inputs)
    session.add_all(StepUnit(step_id=step.id, unit_id=u.id, role="output") for u in made)
    stock.record_uses(session, step, uses)
    session.add_all(StepEquipment(step_id=step.id, equipment_id=e.id) for e in equipment)
    formats = donation.product_definition.parameters["vessel_formats"]
    for unit, (_kind, spec) in zip(made, outputs, strict=True):
        if isinstance(spec, Vessel):
            record = CellRecord(
                unit_id=unit.id,
                passage=figures.passage,
                cells=spec.cells,
                cumulative_pd=figures.cumulative_pd,
                made_at=performed_at,
                vessel_format=spec.vessel_format,
                area_cm2=float(formats[spec.vessel_format]),
            )
        else:
            record = CellRecord(
                unit_id=unit.id,
                passage=figures.passage,
                cells=spec.cells,
                cumulative_pd=figures.cumulative_pd,
                made_at=performed_at,
                volume_ml=spec.volume_ml,
                total_cells_per_ml=spec.total_cells_per_ml,
                viability_percent=spec.viability,
                lot_id=spec.lot_id,
            )
        session.add(record)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action=f"step.{kind.value}",
        entity_type="processing_step",
        entity_id=step.id,
        changes={
            "donation": (None, donation.din),
            "performed_at": (None, performed_at),
            "inputs": (None, [u.code for u in inputs]),
            "outputs": (None, [u.code for u in made]),
            "passage": (None, figures.passage),
            "cells_harvested": (None, step.cells_harvested),
            "viability_percent": (None, step.viability_percent),
            "population_doublings": (None, step.population_doublings),
            "cumulative_pd": (None, step.cumulative_pd),
            "materials": (None, [m.label for m in materials]),
            **({"material_uses": (None, stock.uses_audited(uses))} if uses else {}),
            "equipment": (None, [e.code for e in equipment]),
            **({"limit_excursion_deviation": (None, excursion.id)} if excursion else {}),
        },
    )
    return step


def _stock_figures(
    session: DbSession,
    kind: StepKind,
    inputs: Sequence[Unit],
    outputs: Sequence[tuple[UnitKind, Vessel | _Filled]],
    lot: Lot | None,
) -> stock.StepFigures:
    """What a material's use can be read from (issue 22): the containers the step made, the
    volume of the bags or vials it filled (or of the lot's bags it froze), the lot's DMSO."""
    volumes = [spec.volume_ml for _kind, spec in outputs if isinstance(spec, _Filled)]
    if kind == StepKind.FREEZING:
        volumes = [record.volume_ml or 0.0 for record in cell_records(session, inputs).values()]
    return stock.StepFigures(
        kind=kind,
        containers=len(outputs),
        volume_ml=sum(volumes) if volumes else None,
        dmso_percent=lot.dmso_percent if lot is not None else None,
    )


def _excursion(
    session: DbSession, donation: Donation, figures: _Figures, kind: StepKind, done: _Done
) -> Deviation | None:
    """The authorised deviation a step beyond the product's limits relies on (else refused)."""
    return deviations.authorising_excursion(
        session,
        done.context.deviation_id,
        donation=donation,
        passage=figures.passage,
        cumulative_pd=figures.cumulative_pd,
        step=kind.label,
    )


# --- the list (issue 21) ----------------------------------------------------------------------

#: The lots list: newest first; searched in the lot number and the donation's DIN.
LOT_LIST = listing.ListSpec(
    sorts={
        "made": Lot.id,
        "lot": Lot.lot_number,
        "status": Lot.status,
        "passage": Lot.final_passage,
        "cpd": Lot.final_cumulative_pd,
    },
    default_sort="made",
    tiebreaker=Lot.id,
    searched=(Lot.lot_number,),
)


def lots_page(
    session: DbSession, request: listing.PageRequest, *, status: LotStatus | None = None
) -> listing.Page[Lot]:
    """A page of the lots (two statements)."""
    query = select(Lot)
    if status is not None:
        query = query.where(Lot.status == status.value)
    return listing.fetch_page(session, query, LOT_LIST, request)
