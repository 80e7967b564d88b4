"""From a loaded body to the service call, shared by the API and the bench pages.

Both load the same schema; this turns the loaded data (scanned codes, counts, ids) into the
service's arguments, with the acting user and the time of the request (the ``*_as_user``
functions), so the two interfaces cannot drift apart. No rules here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma

from cellchain.chain import service as chain
from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.donors import service as donors
from cellchain.errors import InvalidInput
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone
from cellchain.manufacturing.models import (
    Lot,
    MaterialLot,
    ProcessingStep,
    StepKind,
)
from cellchain.manufacturing.processing import processing, resources
from cellchain.manufacturing.processing.schemas import (
    BankFreezeIn,
    BankThawIn,
    FillIn,
    HarvestIn,
    IsolationIn,
    NewVesselsIn,
    PassageIn,
    StepIn,
)

#: The schema that loads each step kind a person records at the bench.
STEP_SCHEMAS: dict[StepKind, type[ma.Schema]] = {
    StepKind.ISOLATION: IsolationIn,
    StepKind.PASSAGE: PassageIn,
    StepKind.BANK_FREEZE: BankFreezeIn,
    StepKind.BANK_THAW: BankThawIn,
    StepKind.FILL: FillIn,
}


def step_kind(name: str) -> StepKind:
    """The bench step named in a URL (``passage``, ``bank-freeze``, …)."""
    try:
        kind = StepKind(name.replace("-", "_"))
    except ValueError:
        kind = None
    if kind not in STEP_SCHEMAS:
        raise InvalidInput(
            _(
                "%(name)s is not a step recorded at the bench; one of: %(kinds)s.",
                name=repr(name),
                kinds=", ".join(k.value.replace("_", "-") for k in STEP_SCHEMAS),
            )
        )
    return kind


def record_step(
    session: DbSession,
    kind: StepKind,
    data: dict[str, Any],
    *,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo | None = None,
) -> tuple[ProcessingStep | None, Lot | None]:
    """Run the service for ``kind`` with ``data`` loaded by ``STEP_SCHEMAS[kind]``;
    ``zone``: the site's (UTC when absent)."""
    context = StepIn().context(data, zone=zone)
    if kind == StepKind.ISOLATION:
        tissue = [chain.resolve_unit(session, code) for code in data["tissue"]]
        step = processing.isolate(
            session,
            donors.get_donation(session, tissue[0].donation_id),
            tissue=tissue,
            method=data["method"],
            vessels=NewVesselsIn.vessels(data),
            context=context,
            actor=actor,
            now=now,
        )
        return step, None
    if kind == StepKind.BANK_THAW:
        step = processing.bank_thaw(
            session,
            vial=chain.resolve_unit(session, data["vial"]),
            viability_percent=data["viability_percent"],
            vessels_out=NewVesselsIn.vessels(data),
            context=context,
            actor=actor,
            now=now,
            zone=site_zone(),
        )
        return step, None
    vessels_in = [chain.resolve_unit(session, code) for code in data["vessels_in"]]
    harvest = HarvestIn.harvest(data)
    if kind == StepKind.PASSAGE:
        step = processing.passage(
            session,
            vessels_in=vessels_in,
            harvest=harvest,
            vessels_out=NewVesselsIn.vessels(data),
            context=context,
            actor=actor,
            now=now,
        )
        return step, None
    if kind == StepKind.BANK_FREEZE:
        step = processing.bank_freeze(
            session,
            vessels_in=vessels_in,
            harvest=harvest,
            vial_count=data["vial_count"],
            cells_per_vial=data["cells_per_vial"],
            volume_ml=data["volume_ml"],
            bank=data["bank"],
            context=context,
            actor=actor,
            now=now,
        )
        return step, None
    lot = processing.fill_lot(
        session,
        vessels_in=vessels_in,
        harvest=harvest,
        fill=FillIn.fill(data),
        context=context,
        actor=actor,
        now=now,
    )
    return None, lot


def record_step_as_user(
    session: DbSession, kind: StepKind, data: dict[str, Any]
) -> tuple[ProcessingStep | None, Lot | None]:
    """``record_step`` as the acting user, now."""
    return record_step(session, kind, data, actor=acting_user(), now=now(), zone=site_zone())


def freeze_lot_as_user(session: DbSession, lot_id: int, data: dict[str, Any]) -> ProcessingStep:
    """Controlled-rate freezing of the lot's bags, from loaded ``StepIn`` data."""
    return processing.freeze_lot(
        session,
        processing.get_lot(session, lot_id),
        context=StepIn().context(data, zone=site_zone()),
        actor=acting_user(),
        now=now(),
    )


def receive_material_as_user(session: DbSession, entry: resources.MaterialLotInput) -> MaterialLot:
    """A received material lot, from loaded ``MaterialLotIn`` data."""
    return resources.receive_material_lot(session, entry, actor=acting_user(), now=now())


def release_material_as_user(session: DbSession, lot_id: int) -> MaterialLot:
    """Release a material lot for use."""
    lot = resources.get_material_lot(session, lot_id)
    resources.release_material_lot(session, lot, actor=acting_user(), now=now(), zone=site_zone())
    return lot

