"""Rules for what steps use: material lots (received, released for use, expiring) and
equipment (by site ID)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cellchain.core import audit
from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.core.transactions import write_lock_before_reading
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession
from cellchain.manufacturing.equipment import service as equipment_service
from cellchain.manufacturing.models import (
    Equipment,
    EquipmentKind,
    MaterialCategory,
    MaterialLot,
    StockUnit,
)
from cellchain.manufacturing.stock import service as stock

#: the zone of a caller with no site (the tests' direct calls)
_UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class MaterialLotInput:
    material: str
    category: MaterialCategory
    supplier: str
    lot_number: str
    expiry_date: dt.date
    #: the quantity received and its unit (issue 22); the pages and the API require both,
    #: neither makes a lot not counted (``manufacturing.stock.service``)
    quantity: float | None = None
    unit: StockUnit | None = None


def receive_material_lot(
    session: DbSession, entry: MaterialLotInput, *, actor: User, now: dt.datetime
) -> MaterialLot:
    """Record a lot as received. It may not be used until it is released for use."""
    fields = {
        "material": entry.material.strip(),
        "supplier": entry.supplier.strip(),
        "lot_number": entry.lot_number.strip().upper(),
    }
    missing = {name: [_("Required.")] for name, value in fields.items() if not value}
    if missing:
        raise InvalidInput(_("Material, supplier and lot number are required."), errors=missing)
    duplicate = session.execute(
        select(MaterialLot).where(
            MaterialLot.material == fields["material"],
            MaterialLot.supplier == fields["supplier"],
            MaterialLot.lot_number == fields["lot_number"],
        )
    ).scalar_one_or_none()
    if duplicate is not None:
        raise Conflict(
            _("%(lot)s is already on file.", lot=duplicate.label),
            errors={"lot_number": [_("Already on file.")]},
        )
    stock.check_received(entry.quantity, entry.unit)
    lot = MaterialLot(
        **fields,
        category=entry.category.value,
        expiry_date=entry.expiry_date,
        received_at=now,
        created_by_id=actor.id,
        quantity_received=entry.quantity,
        unit=entry.unit.value if entry.unit else None,
    )
    session.add(lot)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="material_lot.received",
        entity_type="material_lot",
        entity_id=lot.id,
        changes={
            **{name: (None, value) for name, value in fields.items()},
            "category": (None, lot.category),
            "expiry_date": (None, lot.expiry_date),
            "quantity_received": (None, stock.amount(lot.quantity_received, lot.unit) or None),
        },
    )
    return lot


def release_material_lot(
    session: DbSession,
    lot: MaterialLot,
    *,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo = _UTC,
) -> None:
    """Release a received lot for use (incoming inspection passed). Once; never if expired on
    the site's calendar (``zone``) at ``now``, the day a step's use is read on too."""
    if lot.released:
        raise Conflict(_("%(lot)s was already released.", lot=lot.label))
    if lot.expiry_date < now.astimezone(zone).date():
        raise Conflict(
            _(
                "%(lot)s expired on %(date)s; it cannot be released.",
                lot=lot.label,
                date=lot.expiry_date.isoformat(),
            )
        )
    lot.released_at = now
    lot.released_by_id = actor.id
    audit.record(
        session,
        actor=actor,
        at=now,
        action="material_lot.released",
        entity_type="material_lot",
        entity_id=lot.id,
        changes={"released": (False, True)},
    )


def usable_material_lots(
    session: DbSession, lot_ids: Sequence[int], *, at: dt.datetime, zone: ZoneInfo = _UTC
) -> list[MaterialLot]:
    """The lots a step performed ``at`` consumes, each refused if unknown, recalled, released
    after ``at`` (or not at all), or expired on ``at``'s day in the site's calendar (``zone``).
    """
    lots = []
    # a lock on each lot's row (PostgreSQL), in the order of their ids so that two steps never
    # wait for each other: a recall of a lot being opened now finishes first and is seen here,
    # or waits until this step is recorded and then traces it; a step or an adjustment using
    # the same lot waits, then counts this step's use in what remains (issue 22); on SQLite,
    # where FOR UPDATE does nothing, the database's write lock is taken first instead
    write_lock_before_reading(session)
    wanted = list(dict.fromkeys(lot_ids))
    locking = select(MaterialLot.id).where(MaterialLot.id.in_(wanted)).order_by(MaterialLot.id)
    session.execute(locking.with_for_update())
    for lot_id in wanted:
        lot = get_material_lot(session, lot_id)
        session.refresh(lot, ["recalled_at", "released_at"])
        refusal = stock.lot_refusal(lot, at=at, zone=zone)
        if refusal is not None:
            raise Conflict(
                refusal.message, errors={"materials": [refusal.note]}, title=refusal.title
            )
        lots.append(lot)
    return lots


def get_material_lot(session: DbSession, lot_id: int) -> MaterialLot:
    return get_or_404(session, MaterialLot, lot_id, "material lot")


def list_material_lots(session: DbSession) -> list[MaterialLot]:
    return list(
        session.execute(
            select(MaterialLot).order_by(MaterialLot.material, MaterialLot.expiry_date)
        ).scalars()
    )


def usable_equipment(session: DbSession, ids: Sequence[int], *, on: dt.date) -> list[Equipment]:
    """The equipment a step used, each refused if unknown, out of service, or not in date
    (calibration or maintenance) on day ``on`` (``equipment.service.require_in_date``)."""
    items = [get_equipment(session, equipment_id) for equipment_id in dict.fromkeys(ids)]
    equipment_service.require_in_date(session, items, on=on)
    return items


@dataclass(frozen=True)
class Offer:
    """A piece of equipment or a material lot as a step form offers it: ``why`` it may not be
    used by a step performed now (the service would refuse it), or None: usable."""

    item: Equipment | MaterialLot
    why: str | None = None

    @property
    def usable(self) -> bool:
        return self.why is None


def offered_equipment(session: DbSession, *, on: dt.date) -> list[Offer]:
    """Every piece in service, each with why a step on day ``on`` may not use it (the rule
    ``usable_equipment`` applies: ``equipment.service.standings``), in two statements."""
    items = [item for item in list_equipment(session) if item.active]
    found = equipment_service.standings(session, items, on)
    return [Offer(item, found[item.id].why) for item in items]


def offered_material_lots(session: DbSession, *, at: dt.datetime, zone: ZoneInfo) -> list[Offer]:
    """Every material lot, the usable ones first, each with why a step performed ``at`` may
    not use it (``stock.lot_refusal``, the rule ``usable_material_lots`` applies, and
    ``stock.nothing_left``), in two statements."""
    lots = list_material_lots(session)
    left = stock.remaining_of(session, [lot.id for lot in lots])
    offers = []
    for lot in lots:
        refusal = stock.lot_refusal(lot, at=at, zone=zone)
        if refusal is not None:
            offers.append(Offer(lot, refusal.why))
        elif stock.nothing_left(left.get(lot.id)):
            offers.append(Offer(lot, _("nothing left")))
        else:
            offers.append(Offer(lot))
    return sorted(offers, key=lambda offer: not offer.usable)


def get_equipment(session: DbSession, equipment_id: int) -> Equipment:
    return get_or_404(session, Equipment, equipment_id, "equipment")


def list_equipment(session: DbSession, kind: EquipmentKind | None = None) -> list[Equipment]:
    query = select(Equipment).order_by(Equipment.code)
    if kind is not None:
        query = query.where(Equipment.kind == kind.value)
    return list(session.execute(query).scalars())
