"""Rules for what steps use: material lots (received, released for use, expiring) and
equipment (by site ID)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from cellchain.core import audit
from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import (
    Equipment,
    EquipmentKind,
    MaterialCategory,
    MaterialLot,
)


@dataclass(frozen=True)
class MaterialLotInput:
    material: str
    category: MaterialCategory
    supplier: str
    lot_number: str
    expiry_date: dt.date


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
    lot = MaterialLot(
        **fields,
        category=entry.category.value,
        expiry_date=entry.expiry_date,
        received_at=now,
        created_by_id=actor.id,
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
        },
    )
    return lot


def release_material_lot(
    session: DbSession, lot: MaterialLot, *, actor: User, now: dt.datetime
) -> None:
    """Release a received lot for use (incoming inspection passed). Once; never if expired."""
    if lot.released:
        raise Conflict(_("%(lot)s was already released.", lot=lot.label))
    if lot.expiry_date < now.date():
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
    session: DbSession, lot_ids: Sequence[int], *, on: dt.date
) -> list[MaterialLot]:
    """The lots a step consumes, each refused if unknown, recalled, unreleased or expired on
    ``on``."""
    lots = []
    for lot_id in dict.fromkeys(lot_ids):
        lot = get_material_lot(session, lot_id)
        # a share lock (PostgreSQL): a recall of this lot being opened now finishes first and
        # is seen here, or waits until this step is recorded and then traces it
        session.execute(
            select(MaterialLot.id).where(MaterialLot.id == lot.id).with_for_update(read=True)
        )
        session.refresh(lot, ["recalled_at"])
        if lot.recalled_at is not None:
            raise Conflict(
                _("%(lot)s has been recalled; it may not be used.", lot=lot.label),
                errors={"materials": [_("%(lot)s: recalled.", lot=lot.label)]},
                title=_("Material recalled"),
            )
        if not lot.released:
            raise Conflict(
                _("%(lot)s has not been released for use.", lot=lot.label),
                errors={"materials": [_("%(lot)s: not released.", lot=lot.label)]},
                title=_("Material not released"),
            )
        if lot.expiry_date < on:
            raise Conflict(
                _("%(lot)s expired on %(date)s.", lot=lot.label, date=lot.expiry_date.isoformat()),
                errors={"materials": [_("%(lot)s: expired.", lot=lot.label)]},
                title=_("Material expired"),
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


def register_equipment(
    session: DbSession, *, code: str, kind: EquipmentKind, name: str, actor: User, now: dt.datetime
) -> Equipment:
    """Record a piece of equipment under its site asset ID (unique for good)."""
    code = code.strip().upper()
    if not code or not name.strip():
        raise InvalidInput(_("Equipment needs an ID and a name."))
    if session.execute(select(Equipment).where(Equipment.code == code)).scalar_one_or_none():
        raise Conflict(
            _("Equipment %(code)s is already on file.", code=code), errors={"code": [_("Taken.")]}
        )
    item = Equipment(code=code, kind=kind.value, name=name.strip(), active=True, created_at=now)
    session.add(item)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="equipment.registered",
        entity_type="equipment",
        entity_id=item.id,
        changes={"code": (None, code), "kind": (None, item.kind), "name": (None, item.name)},
    )
    return item


def usable_equipment(session: DbSession, ids: Sequence[int]) -> list[Equipment]:
    """The equipment a step used, each refused if unknown or out of service."""
    items = []
    for equipment_id in dict.fromkeys(ids):
        item = get_equipment(session, equipment_id)
        if not item.active:
            raise Conflict(
                _("Equipment %(code)s is out of service.", code=item.code),
                errors={"equipment": [_("%(code)s: out of service.", code=item.code)]},
            )
        items.append(item)
    return items


def get_equipment(session: DbSession, equipment_id: int) -> Equipment:
    return get_or_404(session, Equipment, equipment_id, "equipment")


def list_equipment(session: DbSession, kind: EquipmentKind | None = None) -> list[Equipment]:
    query = select(Equipment).order_by(Equipment.code)
    if kind is not None:
        query = query.where(Equipment.kind == kind.value)
    return list(session.execute(query).scalars())
