"""Which recalls name a record: the one query behind every recall notice (issue 16, item 9).

A recalled unit, lot, donation, dose or patient must say so wherever it is shown (pages, API
answers, the chain-of-identity report), naming the recall and linking to it. Every view and
API asks here, for all the records it shows at once, and gets the recalls per record in a
fixed number of queries (one per kind of record asked for, and one for the recalls), however
many records and recalls there are.

What "names" means, per kind:

| record | named by a recall that … |
|---|---|
| unit | affected it (blocked it, found it out of use or infused: ``recall_units``) |
| lot | targets the lot, or affected one of its bags |
| donation | targets the donation, or affected one of its units (a lot or material recall) |
| dose order | withdrew it, or affected its prepared dose or one of its bags |
| patient | lists them to be notified, or withdrew one of their doses |

This module is the one part of ``traceability`` that other packages' views and APIs read: it
reads only tables, never their services, so no import cycle can form.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    any_,
    cast,
    func,
    literal,
    select,
    union,
)
from sqlalchemy.orm import InstrumentedAttribute, selectinload

from cellchain.chain.models import Unit
from cellchain.dosing.models import DoseBag, DoseOrder
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import CellRecord
from cellchain.traceability.models import (
    Recall,
    RecallDose,
    RecallNotification,
    RecallTarget,
    RecallUnit,
)


@dataclass(frozen=True)
class RecallNotices:
    """The recalls naming each record asked about, oldest first; empty lists for the rest."""

    units: dict[int, list[Recall]] = field(default_factory=dict)
    lots: dict[int, list[Recall]] = field(default_factory=dict)
    donations: dict[int, list[Recall]] = field(default_factory=dict)
    doses: dict[int, list[Recall]] = field(default_factory=dict)
    patients: dict[int, list[Recall]] = field(default_factory=dict)

    def unit(self, unit_id: int) -> list[Recall]:
        return self.units.get(unit_id, [])

    def lot(self, lot_id: int) -> list[Recall]:
        return self.lots.get(lot_id, [])

    def donation(self, donation_id: int) -> list[Recall]:
        return self.donations.get(donation_id, [])

    def dose(self, dose_order_id: int) -> list[Recall]:
        return self.doses.get(dose_order_id, [])

    def patient(self, patient_id: int) -> list[Recall]:
        return self.patients.get(patient_id, [])

    def of_doses(self, dose_order_ids: Iterable[int]) -> list[Recall]:
        """The recalls naming any of these dose orders (a shipment's), once, oldest first."""
        found = {recall.id: recall for key in dose_order_ids for recall in self.dose(key)}
        return [found[key] for key in sorted(found)]

    def all(self) -> list[Recall]:
        """Every recall found, once, oldest first."""
        found = {
            recall.id: recall
            for index in (self.units, self.lots, self.donations, self.doses, self.patients)
            for recalls in index.values()
            for recall in recalls
        }
        return [found[key] for key in sorted(found)]


def recalls_naming(
    session: DbSession,
    *,
    units: Iterable[int] = (),
    lots: Iterable[int] = (),
    donations: Iterable[int] = (),
    doses: Iterable[int] = (),
    patients: Iterable[int] = (),
) -> RecallNotices:
    """The recalls that name these units, lots, donations, dose orders and patients."""
    asked = {
        "units": sorted(set(units)),
        "lots": sorted(set(lots)),
        "donations": sorted(set(donations)),
        "doses": sorted(set(doses)),
        "patients": sorted(set(patients)),
    }
    pairs: dict[str, list[tuple[int, int]]] = {}
    for kind, ids in asked.items():
        if kind == "units" and ids:  # a forward trace's tens of thousands: one parameter
            query: Select[int, int] | CompoundSelect[int, int] = select(
                RecallUnit.unit_id, RecallUnit.recall_id
            ).where(among(session, RecallUnit.unit_id, ids))
            pairs[kind] = [(row[0], row[1]) for row in session.execute(query)]
        elif ids:
            pairs[kind] = [(row[0], row[1]) for row in session.execute(_QUERIES[kind](ids))]
    recall_ids = {recall_id for found in pairs.values() for _, recall_id in found}
    if not recall_ids:
        return RecallNotices()
    recalls = {
        recall.id: recall
        for recall in session.execute(
            select(Recall).where(Recall.id.in_(recall_ids)).options(selectinload(Recall.opened_by))
        ).scalars()
    }
    indexes: dict[str, dict[int, list[Recall]]] = {}
    for kind, found in pairs.items():
        index: dict[int, list[Recall]] = {}
        for key, recall_id in sorted(set(found), key=lambda pair: (pair[0], pair[1])):
            index.setdefault(key, []).append(recalls[recall_id])
        indexes[kind] = index
    return RecallNotices(**indexes)


def among(
    session: DbSession, column: InstrumentedAttribute[Any], ids: Sequence[int]
) -> ColumnElement[bool]:
    """``column IN ids`` for a list of any length, sent as one parameter: an integer array on
    PostgreSQL (``= ANY``, which it hashes), a JSON array read by ``json_each`` on SQLite. A
    forward trace's tens of thousands of unit ids as as many placeholders cost more to render
    and plan than the query itself (issue 20), and SQLite refuses more than 32 766.

    The array goes as its text (``{1,2,3}``, cast to ``integer[]``), one string: SQLAlchemy's
    statement cache keeps the values of the first statement it compiled, and a list kept
    there kept the ints of the rows it was made from, and with them most of Python's memory
    arenas of the first big trace, in every worker, for good (issue 20, the memory row)."""
    if session.get_bind().dialect.name == "postgresql":
        text = "{" + ",".join(map(str, ids)) + "}"
        return column == any_(cast(literal(text), ARRAY(Integer)))
    values = func.json_each(json.dumps(list(ids))).table_valued("value")
    return column.in_(select(values.c.value))


def _units(ids: list[int]) -> Select[int, int]:
    return select(RecallUnit.unit_id, RecallUnit.recall_id).where(RecallUnit.unit_id.in_(ids))


def _lots(ids: list[int]) -> CompoundSelect[int, int]:
    return union(
        select(CellRecord.lot_id, RecallUnit.recall_id)
        .join(RecallUnit, RecallUnit.unit_id == CellRecord.unit_id)
        .where(CellRecord.lot_id.in_(ids)),
        _targets(RecallTarget.LOT, ids),
    )


def _donations(ids: list[int]) -> CompoundSelect[int, int]:
    return union(
        select(Unit.donation_id, RecallUnit.recall_id)
        .join(RecallUnit, RecallUnit.unit_id == Unit.id)
        .where(Unit.donation_id.in_(ids)),
        _targets(RecallTarget.DONATION, ids),
    )


def _doses(ids: list[int]) -> CompoundSelect[int, int]:
    return union(
        select(RecallDose.dose_order_id, RecallDose.recall_id).where(
            RecallDose.dose_order_id.in_(ids)
        ),
        select(DoseOrder.id, RecallUnit.recall_id)
        .join(RecallUnit, RecallUnit.unit_id == DoseOrder.dose_unit_id)
        .where(DoseOrder.id.in_(ids)),
        select(DoseBag.order_id, RecallUnit.recall_id)
        .join(RecallUnit, RecallUnit.unit_id == DoseBag.unit_id)
        .where(DoseBag.order_id.in_(ids)),
    )


def _patients(ids: list[int]) -> CompoundSelect[int, int]:
    return union(
        select(RecallNotification.patient_id, RecallNotification.recall_id).where(
            RecallNotification.patient_id.in_(ids)
        ),
        select(DoseOrder.patient_id, RecallDose.recall_id)
        .join(RecallDose, RecallDose.dose_order_id == DoseOrder.id)
        .where(DoseOrder.patient_id.in_(ids)),
    )


def _targets(target: RecallTarget, ids: list[int]) -> Select[int, int]:
    return select(Recall.target_id, Recall.id).where(
        Recall.target_type == target.value, Recall.target_id.in_(ids)
    )


#: for each kind of record, the (record id, recall id) pairs naming the given ids
_QUERIES: dict[str, Callable[[list[int]], Select[int, int] | CompoundSelect[int, int]]] = {
    "units": _units,
    "lots": _lots,
    "donations": _donations,
    "doses": _doses,
    "patients": _patients,
}


class WithRecalls:
    """A record as an API answer dumps it, with the recalls that name it (``recalls``); every
    other attribute reads through to the record."""

    def __init__(self, record: object, recalls: list[Recall]) -> None:
        self._record = record
        self.recalls = recalls

    def __getattr__(self, name: str) -> object:
        return getattr(self._record, name)
