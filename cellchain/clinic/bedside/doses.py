"""Finding a dose from what is scanned at the clinic: its dose label or one of its bags.

A prepared dose is a unit made, at the second check, from the bags allocated to its order;
both its label and the bags' labels name the dose. A scan is resolved whole and exactly
(``chain.resolve_unit``); a unit that belongs to no live dose is refused with what it is.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar

from sqlalchemy import (
    Date,
    Integer,
    Select,
    String,
    Subquery,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.exc import MultipleResultsFound
from sqlalchemy.orm import aliased, joinedload, selectinload
from sqlalchemy.types import NullType

from cellchain.chain import service as chain
from cellchain.chain.models import EventType, Unit, UnitEvent, UnitKind
from cellchain.clinic.models import (
    Infusion,
    MissedVisit,
    PostThawCount,
    Shipment,
    ShipmentItem,
    Thaw,
    VisitReschedule,
)
from cellchain.core import numbering, signatures
from cellchain.core.driver import DriverStatement
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.identifiers import InvalidIdentifier
from cellchain.core.models import IssuedIdentifier, Signature, User
from cellchain.core.payload import read_scan
from cellchain.core.types import UTCDateTime
from cellchain.dosing.models import (
    DoseBag,
    DoseOrder,
    DoseStatus,
    Patient,
    Weight,
    dose_signed_content,
    needs_confirmation,
)
from cellchain.dosing.models import Protocol as TrialProtocol
from cellchain.errors import DomainError, InvalidInput, NotFound
from cellchain.extensions import DbSession
from cellchain.labels.models import LabelPrint
from cellchain.labels.service import PrintRead
from cellchain.manufacturing.models import CellRecord, Lot, ProductDefinition
from cellchain.quality.models import QcSample
from cellchain.sites.scope import VISIBLE_SITES


@cache
def _dose_loaded() -> tuple[Any, ...]:
    """What is read of a scanned dose wherever it is checked (the bedside, the thaw): its
    patient, prepared dose unit, weight used and bags with their units, loaded with the
    order, so that the number of queries does not grow with the bags. Made at the first use,
    not at import: loader options configure the mappers, which needs every model imported
    (at import ``cellchain demo`` failed before the app existed: 'Donation' not found)."""
    return (
        joinedload(DoseOrder.patient),
        joinedload(DoseOrder.dose_unit),
        joinedload(DoseOrder.weight),
        selectinload(DoseOrder.bags).joinedload(DoseBag.unit),
    )


class NotADose(InvalidInput):
    """A scanned unit that is not a prepared dose or one of its bags."""

    title: str | LazyText = lazy("Not a dose")
    type_slug = "not-a-dose"


@dataclass(frozen=True)
class ScannedDose:
    """What a scanned label named: the unit itself and the dose order it belongs to."""

    unit: Unit
    order: DoseOrder


def dose_of_unit(session: DbSession, unit: Unit) -> DoseOrder | None:
    """The live (not cancelled) dose order ``unit`` is the prepared dose or a bag of."""
    if unit.kind == UnitKind.PREPARED_DOSE.value:
        return session.execute(
            select(DoseOrder).options(*_dose_loaded()).where(DoseOrder.dose_unit_id == unit.id)
        ).scalar_one_or_none()
    return session.execute(
        select(DoseOrder)
        .options(*_dose_loaded())
        .join(DoseBag, DoseBag.order_id == DoseOrder.id)
        .where(DoseBag.unit_id == unit.id, DoseOrder.status != DoseStatus.CANCELLED.value)
    ).scalar_one_or_none()


class ShipmentRead(NamedTuple):
    """What the bedside judges of a dose's shipment, read as two columns, not the whole row."""

    status: str
    hold_reason: str | None


@dataclass(frozen=True)
class DoseRead:
    """A dose order a unit may belong to, read with what the bedside judges of it in the
    same statement: whether it was infused, its shipment, its patient's latest weight, its
    latest post-thaw count, and of its thaws how many are complete and when the first
    started (``thaw.thaw_state``)."""

    order: DoseOrder
    infused: bool
    shipment: ShipmentRead | None
    #: the latest weight of the order's patient (``patients.latest_weight``)
    latest_weight: Weight | None
    #: the dose's latest post-thaw count (``post_thaw.latest_count``)
    latest_count: PostThawCount | None
    thaws_completed: int
    first_thaw_at: dt.datetime | None


def doses_read(session: DbSession, unit_id: int) -> list[DoseRead]:
    """The dose orders unit ``unit_id`` may belong to (the one it is the prepared dose of,
    the live ones it is a bag of), loaded as ``_dose_loaded()`` with the patient's protocol,
    and their facts of ``DoseRead``, in one statement (a row per bag)."""
    rows = session.execute(_doses_read_statement(), {"unit_id": unit_id}).unique()
    return [
        DoseRead(
            order,
            bool(was),
            ShipmentRead(status, hold) if status is not None else None,
            weight,
            counted,
            completed or 0,
            first,
        )
        for order, was, status, hold, weight, counted, completed, first in rows
    ]


def _order_facts() -> tuple[Any, Any, Any, Any, Any]:
    """What both dose reads (``doses_read``, ``dose_reads``) say of a dose order beside its
    rows, each rule once: the id of the patient's latest weight and of the order's latest
    post-thaw count (latest by time, then id), whether an infusion started, how many thaws
    completed, and when the first thaw started."""
    latest_id = (
        select(Weight.id)
        .where(Weight.patient_id == DoseOrder.patient_id)
        .order_by(Weight.measured_at.desc(), Weight.id.desc())
        .limit(1)
        .correlate_except(Weight)
        .scalar_subquery()
    )
    count_id = (
        select(PostThawCount.id)
        .where(PostThawCount.dose_order_id == DoseOrder.id)
        .order_by(PostThawCount.counted_at.desc(), PostThawCount.id.desc())
        .limit(1)
        .correlate_except(PostThawCount)
        .scalar_subquery()
    )
    infused = exists().where(Infusion.dose_order_id == DoseOrder.id)
    thawed = (
        select(func.count(Thaw.id))
        .where(Thaw.dose_order_id == DoseOrder.id, Thaw.completed_at.is_not(None))
        .correlate_except(Thaw)
        .scalar_subquery()
    )
    first_thaw = (
        select(func.min(Thaw.started_at))
        .where(Thaw.dose_order_id == DoseOrder.id)
        .correlate_except(Thaw)
        .scalar_subquery()
    )
    return latest_id, count_id, infused, thawed, first_thaw


@cache
def _doses_read_statement() -> Select[Any]:
    """The statement of ``doses_read``, built once: its aliases and subqueries cost more to
    build than the statement costs to run."""
    unit_id = bindparam("unit_id", type_=Integer())
    latest = aliased(Weight)
    count = aliased(PostThawCount)
    latest_id, count_id, infused, thawed, first_thaw = _order_facts()
    return (
        select(
            DoseOrder,
            infused.label("infused"),
            Shipment.status,
            Shipment.hold_reason,
            latest,
            count,
            thawed,
            first_thaw,
        )
        .outerjoin(ShipmentItem, ShipmentItem.dose_order_id == DoseOrder.id)
        .outerjoin(Shipment, Shipment.id == ShipmentItem.shipment_id)
        .outerjoin(latest, latest.id == latest_id)
        .outerjoin(count, count.id == count_id)
        .options(
            joinedload(DoseOrder.patient).joinedload(Patient.protocol),
            joinedload(DoseOrder.dose_unit),
            joinedload(DoseOrder.weight),
            joinedload(DoseOrder.bags).joinedload(DoseBag.unit),  # in the same statement
        )
        .where(
            or_(
                DoseOrder.dose_unit_id == unit_id,
                and_(
                    DoseOrder.status != DoseStatus.CANCELLED.value,
                    DoseOrder.id.in_(select(DoseBag.order_id).where(DoseBag.unit_id == unit_id)),
                ),
            )
        )
    )


class _Bag(Protocol):
    @property
    def unit_id(self) -> int: ...


class _Dose(Protocol):
    """What ``_dose_among`` reads of a dose order: the ORM row or a ``DoseRow``."""

    @property
    def dose_unit_id(self) -> int | None: ...
    @property
    def status(self) -> str: ...
    @property
    def bags(self) -> Sequence[_Bag]: ...


_DoseT = TypeVar("_DoseT", bound=_Dose)


def _dose_among(unit: Unit | UnitRead, orders: Sequence[_DoseT]) -> _DoseT | None:
    """``dose_of_unit`` from the orders ``doses_read`` (or ``dose_reads``) found for the
    unit."""
    if unit.kind == UnitKind.PREPARED_DOSE.value:
        found = [order for order in orders if order.dose_unit_id == unit.id]
    else:
        found = [
            order
            for order in orders
            if order.status != DoseStatus.CANCELLED.value
            and any(bag.unit_id == unit.id for bag in order.bags)
        ]
    if len(found) > 1:
        raise MultipleResultsFound("Multiple rows were found when one or none was required")
    return found[0] if found else None


def scan_dose(
    session: DbSession,
    code: str,
    *,
    issued: chain.IssuedCode | None = None,
    read: Sequence[DoseRead] | None = None,
) -> ScannedDose:
    """The dose a scanned dose label or bag label names, or a clear error saying why not.

    ``issued``: the scan's identifier when already looked up; ``read``: the ``doses_read``
    of the unit it names, so that nothing is read again."""
    if issued is None:
        unit = chain.resolve_unit(session, code)
    else:
        unit = chain.unit_of_issued(session, issued, text=code)
    if read is None:
        order = dose_of_unit(session, unit)
    else:
        order = _dose_among(unit, [each.order for each in read])
    if order is not None and order.dose_unit_id is None:
        raise NotADose(
            _(
                "%(unit)s is allocated to the %(visit)s dose of %(patient)s (dose order "
                "%(order)s), which is not second-checked yet: only a prepared dose leaves the "
                "lab.",
                unit=unit.code,
                visit=order.visit,
                patient=order.patient.study_id,
                order=order.id,
            ),
            errors={"scan": [_("Dose not prepared yet.")]},
        )
    if order is None:
        what = (
            _("a bag of no prepared dose")
            if unit.kind == UnitKind.CRYOBAG.value
            else _(
                "a %(kind)s, not a dose or a dose's bag",
                kind=getattr(unit, "kind_name", unit.kind_label),
            )
        )
        raise NotADose(
            _(
                "%(unit)s is %(what)s; scan the dose label or a bag of the dose.",
                unit=unit.code,
                what=what,
            ),
            errors={"scan": [_("%(unit)s belongs to no prepared dose.", unit=unit.code)]},
        )
    return ScannedDose(unit=unit, order=order)


def units_of_dose(order: DoseOrder) -> list[Unit]:
    """The prepared dose and its bags: what travels, is received and is infused together."""
    units = [bag.unit for bag in order.bags]
    if order.dose_unit is not None:
        units.insert(0, order.dose_unit)
    return units


def lots_of_dose(session: DbSession, order: DoseOrder) -> list[Lot]:
    """The lots of the dose's bags (one donation, usually one lot), first seen first.

    As ``quality.results.lot_of_unit`` for each bag (the lot it is a QC sample of, else the
    lot its cell record names), in one query whatever the number of bags."""
    unit_ids = [bag.unit_id for bag in order.bags]
    if not unit_ids:
        return []
    rows = session.execute(_lots_statement(), {"unit_ids": unit_ids}).all()
    return _in_bag_order(unit_ids, [(unit, source, lot.id, lot) for unit, source, lot in rows])


_LotT = TypeVar("_LotT")


def _in_bag_order(
    unit_ids: Sequence[int], rows: Sequence[tuple[int, int, int, _LotT]]
) -> list[_LotT]:
    """The lots of (unit id, source, lot id, lot) rows (``_lot_links``), each bag's lot the
    one it is a QC sample of when there is one (source 0 wins, as in ``lot_of_unit``), in the
    order of the bags that first name them."""
    lot_of: dict[int, int] = {}
    found: dict[int, _LotT] = {}
    for unit_id, _source, lot_id, lot in sorted(rows, key=lambda row: row[1], reverse=True):
        lot_of[unit_id] = lot_id
        found[lot_id] = lot
    ordered = dict.fromkeys(lot_of[unit] for unit in unit_ids if unit in lot_of)
    return [found[lot_id] for lot_id in ordered]


@cache
def _lots_statement() -> Select[Any]:
    """The statement of ``lots_of_dose`` (the units' lot links, then their lots), built once."""
    linked = _lot_links(bindparam("unit_ids", expanding=True, type_=Integer()))
    return (
        select(linked.c[0], linked.c[2], Lot)
        .join(Lot, Lot.id == linked.c[1])
        .options(joinedload(Lot.product_definition))
    )


def _lot_links(unit_ids: Any) -> Subquery:
    """The lots of the units ``unit_ids`` (an expanding parameter or a subquery of ids):
    (unit id, lot id, source), source 0 for the lot a unit is a QC sample of, 1 for the lot
    its cell record names (as ``quality.results.lot_of_unit``)."""
    sampled = select(
        QcSample.unit_id, QcSample.lot_id, literal_column("0", Integer()).label("source")
    ).where(QcSample.unit_id.in_(unit_ids))
    filled = select(
        CellRecord.unit_id, CellRecord.lot_id, literal_column("1", Integer()).label("source")
    ).where(CellRecord.unit_id.in_(unit_ids), CellRecord.lot_id.is_not(None))
    return sampled.union_all(filled).subquery()


class LotRead(NamedTuple):
    """A lot of a dose's bags as the bedside judges it, read as plain columns: its number,
    status and expiry, and its product definition's parameters (the thaw window's limit)."""

    id: int
    lot_number: str
    status: str
    expires_at: dt.datetime | None
    product_parameters: dict[str, Any]
    #: the code of the lot's product definition (the patient's protocol allows some)
    product_code: str = ""

    @classmethod
    def of(cls, lot: Lot) -> LotRead:
        """The read of a lot already loaded."""
        product = lot.product_definition
        return cls(
            lot.id, lot.lot_number, lot.status, lot.expires_at, product.parameters, product.code
        )


@dataclass(frozen=True)
class UnitsRead:
    """What the bedside judges of a dose's units besides the dose itself, read by one
    statement (``units_read``): the bags' lots, the dose's signatures of one meaning, each
    unit's print log and each unit's status changes."""

    #: the lots of the dose's bags (``lots_of_dose``: the same lots in the same order)
    lots: list[LotRead]
    #: the dose's signatures of the meaning asked for, in the order they were signed
    signatures: list[signatures.SignatureRead]
    #: each unit's label prints, oldest first, by unit id (``labels.label_states``)
    prints: dict[int, list[PrintRead]]
    #: (unit id, note) of each unit's status changes, oldest first per unit
    #: (``chain.status_reasons``)
    status_changes: list[tuple[int, str | None]]
    #: the schedule rows of the patients asked for (``patients.schedule_facts_of``)
    schedule_rows: list[ScheduleRow]


class ScheduleRow(NamedTuple):
    """A row of ``patients.schedule_facts``: an infusion's start (kind 0), a visit's move (1)
    or a missed visit (2) of a patient."""

    kind: int
    id: int
    patient_id: int
    happened_at: dt.datetime
    visit: str | None
    planned_on: dt.date | None
    earliest: dt.date | None
    latest: dt.date | None
    outside_protocol: bool | None
    signed: bool | None


def units_read(
    session: DbSession, order: DoseOrder | DoseRow, meaning: str, patient_ids: Sequence[int]
) -> UnitsRead:
    """The ``UnitsRead`` of ``order``'s units (its prepared dose and bags, as the database has
    them in this transaction), its signatures of ``meaning`` and the schedule rows of (at
    most two) ``patient_ids``, in one statement sent on the driver's cursor: a ``UNION ALL``
    of plain rows, one kind per branch, no ORM object."""
    entity_type, entity_id = signatures.key_of(order)
    if len(patient_ids) > 2:
        raise ValueError("units_read reads the schedules of two patients at most")
    first, second = [*patient_ids, None, None][:2]
    rows = _units_read_statement().all(
        session.connection(),
        {
            "order_id": order.id,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "meaning": meaning,
            "patient_a": first,
            "patient_b": second,
        },
    )
    schedule: list[ScheduleRow] = []
    lot_rows: list[tuple[int, int, int, LotRead]] = []
    signed: list[signatures.SignatureRead] = []
    prints: dict[int, list[PrintRead]] = {}
    changes: list[tuple[Any, ...]] = []
    for row in rows:
        if row.kind == _LOT:
            lot = LotRead(row.n2, row.t1, row.t2, row.at, dict(json.loads(row.t3)), row.t4)
            lot_rows.append((row.unit_id, row.n1, row.n2, lot))
        elif row.kind == _SIGNATURE:
            signed.append(
                signatures.SignatureRead(
                    row.n1, entity_type, entity_id, row.t1, row.t2, row.t3, row.at, meaning, row.t4
                )
            )
        elif row.kind == _PRINT:
            prints.setdefault(row.unit_id, []).append(
                PrintRead(row.n1, row.t1, row.t2, row.n2, row.n3, row.n4)
            )
        elif row.kind == _STATUS_CHANGE:
            changes.append((row.unit_id, row.at, row.n1, row.t1))
        else:
            schedule.append(
                ScheduleRow(
                    row.kind - _SCHEDULE,
                    row.n1,
                    row.n2,
                    row.at,
                    row.t1,
                    row.d1,
                    row.d2,
                    row.d3,
                    None if row.n3 is None else bool(row.n3),
                    None if row.n4 is None else bool(row.n4),
                )
            )
    signed.sort(key=lambda sig: (sig.signed_at, sig.id))
    for unit_prints in prints.values():
        unit_prints.sort(key=lambda each: each.id)
    changes.sort(key=lambda change: change[:3])
    bag_ids = [bag.unit_id for bag in order.bags]
    return UnitsRead(
        lots=_in_bag_order(bag_ids, lot_rows),
        signatures=signed,
        prints=prints,
        status_changes=[(unit_id, note) for unit_id, _at, _id, note in changes],
        # as ``patients._schedule_rows`` orders them: by time, kind and id
        schedule_rows=sorted(schedule, key=lambda each: (each.happened_at, each.kind, each.id)),
    )


_LOT, _SIGNATURE, _PRINT, _STATUS_CHANGE = 0, 1, 2, 3
#: the schedule's kinds (``ScheduleRow.kind``) follow from this one
_SCHEDULE = 4


@cache
def _units_read_statement() -> DriverStatement:
    """The statement of ``units_read``, built and compiled once: every branch has the same
    fourteen columns (kind, unit id, four integers, four texts, one time, three dates), null
    where its kind has nothing; the units are found from ``:order_id`` in the statement, so
    every parameter is one value."""
    order_id = bindparam("order_id", type_=Integer())
    bags = select(DoseBag.unit_id).where(DoseBag.order_id == order_id)
    units = bags.union_all(
        select(DoseOrder.dose_unit_id).where(
            DoseOrder.id == order_id, DoseOrder.dose_unit_id.is_not(None)
        )
    )

    def row(
        kind: int,
        unit_id: Any = None,
        ints: Sequence[Any] = (),
        texts: Sequence[Any] = (),
        at: Any = None,
        dates: Sequence[Any] = (),
    ) -> Select[Any]:
        columns = [
            literal_column(str(kind), Integer()).label("kind"),
            (unit_id if unit_id is not None else cast(null(), Integer())).label("unit_id"),
        ]
        for index in range(4):
            value = ints[index] if index < len(ints) else cast(null(), Integer())
            columns.append(value.label(f"n{index + 1}"))
        for index in range(4):
            value = texts[index] if index < len(texts) else cast(null(), Text())
            columns.append(value.label(f"t{index + 1}"))
        columns.append((at if at is not None else cast(null(), UTCDateTime())).label("at"))
        for index in range(3):
            value = dates[index] if index < len(dates) else cast(null(), Date())
            columns.append(value.label(f"d{index + 1}"))
        return select(*columns)

    linked = _lot_links(bags)
    lots = (
        row(
            _LOT,
            linked.c.unit_id,
            ints=[linked.c.source, Lot.id],
            texts=[
                Lot.lot_number,
                Lot.status,
                ProductDefinition.parameters_json,
                ProductDefinition.code,
            ],
            at=Lot.expires_at,
        )
        .select_from(linked)
        .join(Lot, Lot.id == linked.c.lot_id)
        .join(ProductDefinition, ProductDefinition.id == Lot.product_definition_id)
    )
    signed = (
        row(
            _SIGNATURE,
            ints=[Signature.id],
            texts=[
                Signature.content,
                Signature.content_hash,
                Signature.printed_name,
                User.username,
            ],
            at=Signature.signed_at,
        )
        .select_from(Signature)
        .join(User, User.id == Signature.signer_id)
        .where(
            Signature.entity_type == bindparam("entity_type", type_=String()),
            Signature.entity_id == bindparam("entity_id", type_=String()),
            Signature.meaning == bindparam("meaning", type_=String()),
        )
    )
    printed = row(
        _PRINT,
        LabelPrint.unit_id,
        ints=[LabelPrint.id, LabelPrint.copies, LabelPrint.applied, LabelPrint.destroyed],
        texts=[LabelPrint.marking, LabelPrint.unit_status],
    ).where(LabelPrint.unit_id.in_(units))
    changed = row(
        _STATUS_CHANGE,
        UnitEvent.unit_id,
        ints=[UnitEvent.id],
        texts=[UnitEvent.note],
        at=UnitEvent.at,
    ).where(UnitEvent.unit_id.in_(units), UnitEvent.event_type == EventType.STATUS_CHANGED.value)
    # the schedule's rows as ``patients._schedule_rows`` reads them (kind 0, 1, 2 there)
    patient_ids = (
        bindparam("patient_a", type_=Integer()),
        bindparam("patient_b", type_=Integer()),
    )
    infusions = row(
        _SCHEDULE, ints=[Infusion.id, Infusion.patient_id], at=Infusion.started_at
    ).where(Infusion.patient_id.in_(patient_ids))
    moves = row(
        _SCHEDULE + 1,
        ints=[
            VisitReschedule.id,
            VisitReschedule.patient_id,
            cast(VisitReschedule.outside_protocol, Integer()),
            cast(VisitReschedule.deviation_signed_at.is_not(None), Integer()),
        ],
        texts=[VisitReschedule.visit],
        at=VisitReschedule.recorded_at,
        dates=[
            VisitReschedule.planned_on,
            VisitReschedule.protocol_earliest,
            VisitReschedule.protocol_latest,
        ],
    ).where(VisitReschedule.patient_id.in_(patient_ids))
    misses = row(
        _SCHEDULE + 2,
        ints=[MissedVisit.id, MissedVisit.patient_id],
        texts=[MissedVisit.visit],
        at=MissedVisit.recorded_at,
    ).where(MissedVisit.patient_id.in_(patient_ids))
    return DriverStatement(union_all(lots, signed, printed, changed, infusions, moves, misses))


# --- the dose as plain rows ---------------------------------------------------------------------


class UnitRead(NamedTuple):
    """A unit of a dose as the bedside judges it, read as plain columns: what the checks
    and ``labels.label_problems_of`` read of a unit that is not blocked."""

    id: int
    code: str
    status: str
    kind: str

    @property
    def kind_label(self) -> str:
        return UnitKind(self.kind).label


class BagRead(NamedTuple):
    """A bag of a dose (``DoseBag``) with its unit, in the order's bag order."""

    unit_id: int
    volume_ml: float
    unit: UnitRead


class PatientRead(NamedTuple):
    """A dose's patient as the bedside judges them, with their protocol version's code,
    status and parameters: plain columns (``dose_reads``)."""

    id: int
    study_id: str
    coi: str
    arm: str
    day0: dt.date
    status: str
    protocol_id: int
    protocol_code: str
    protocol_status: str
    parameters: dict[str, Any]

    @classmethod
    def of(cls, patient: Patient) -> PatientRead:
        """The read of a patient already loaded, with their protocol version."""
        protocol = patient.protocol
        return cls(
            patient.id,
            patient.study_id,
            patient.coi,
            patient.arm,
            patient.day0,
            patient.status,
            patient.protocol_id,
            protocol.code,
            protocol.status,
            protocol.parameters,
        )


class WeightRead(NamedTuple):
    """A weight as the bedside judges the latest one: plain columns."""

    id: int
    weight_kg: float
    measured_at: dt.datetime
    change_percent: float | None
    change_reference: str | None
    confirmation: str | None

    @property
    def needs_confirmation(self) -> bool:
        return needs_confirmation(self.change_percent, self.confirmation)


class CountRead(NamedTuple):
    """A post-thaw count as the bedside judges it (``post_thaw.count_facts``): plain
    columns, with who counted and who decided by their full names."""

    id: int
    counted_at: dt.datetime
    counted_by: str
    place: str
    total_cells_per_ml: float
    viability_percent: float
    delivered_cells: float
    decision: str | None
    decided_by: str | None
    decided_at: dt.datetime | None
    deviation_id: int | None

    @classmethod
    def of(cls, count: PostThawCount) -> CountRead:
        """The read of a count already loaded."""
        return cls(
            count.id,
            count.counted_at,
            count.counted_by.full_name,
            count.place,
            count.total_cells_per_ml,
            count.viability_percent,
            count.delivered_cells,
            count.decision,
            count.decided_by.full_name if count.decided_by else None,
            count.decided_at,
            count.deviation_id,
        )


@dataclass(frozen=True)
class DoseRow:
    """A dose order as the bedside judges it, read as plain rows with its patient and
    protocol, prepared dose unit, weight used, bags and their units, and the facts of
    ``DoseRead`` (``dose_reads``): no ORM object. It names itself for signatures as the
    order does, and its signed content is the order's (``dose_signed_content``)."""

    signature_entity_type: ClassVar[str] = DoseOrder.signature_entity_type

    id: int
    patient_id: int
    visit: str
    status: str
    checked_by_id: int | None
    dose_unit_id: int | None
    target_cells: float
    volume_ml: float
    delivered_cells: float
    deviation_percent: float
    dmso_g_per_kg: float
    endotoxin_eu_per_kg: float | None
    override_reason: str | None
    patient: PatientRead
    #: the parameters of the protocol version the dose was ordered under
    protocol_parameters: dict[str, Any]
    dose_unit: UnitRead | None
    weight_kg: float
    weight_measured_at: dt.datetime
    bags: tuple[BagRead, ...]
    infused: bool
    shipment: ShipmentRead | None
    latest_weight: WeightRead | None
    latest_count: CountRead | None
    thaws_completed: int
    first_thaw_at: dt.datetime | None

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        return dose_signed_content(
            self,
            study_id=self.patient.study_id,
            coi=self.patient.coi,
            weight_kg=self.weight_kg,
            weight_measured_at=self.weight_measured_at,
            bags=[(bag.unit.code, bag.volume_ml) for bag in self.bags],
        )

    def units(self) -> list[UnitRead]:
        """``units_of_dose``: the prepared dose and its bags."""
        units = [bag.unit for bag in self.bags]
        if self.dose_unit is not None:
            units.insert(0, self.dose_unit)
        return units


def dose_reads(session: DbSession, unit_id: int) -> list[DoseRow] | None:
    """``doses_read`` as plain rows (``DoseRow``), in one statement on the driver's cursor
    (a row per bag); None when an order is in several shipments, which only ``doses_read``
    reads as it always did."""
    rows = _dose_reads_statement().all(session.connection(), {"unit_id": unit_id})
    found: dict[int, DoseRow] = {}
    bags: dict[int, dict[int, tuple[int, BagRead]]] = {}
    params: dict[str, dict[str, Any]] = {}

    def parsed(text: str) -> dict[str, Any]:
        if text not in params:
            params[text] = dict(json.loads(text))
        return params[text]

    for row in rows:
        shipment = ShipmentRead(row.ship_status, row.ship_hold) if row.ship_status else None
        dose = found.get(row.id)
        if dose is None:
            patient_parameters = parsed(row.p_parameters)
            dose = found[row.id] = DoseRow(
                id=row.id,
                patient_id=row.patient_id,
                visit=row.visit,
                status=row.status,
                checked_by_id=row.checked_by_id,
                dose_unit_id=row.dose_unit_id,
                target_cells=row.target_cells,
                volume_ml=row.volume_ml,
                delivered_cells=row.delivered_cells,
                deviation_percent=row.deviation_percent,
                dmso_g_per_kg=row.dmso_g_per_kg,
                endotoxin_eu_per_kg=row.endotoxin_eu_per_kg,
                override_reason=row.override_reason,
                patient=PatientRead(
                    row.patient_id,
                    row.p_study_id,
                    row.p_coi,
                    row.p_arm,
                    row.p_day0,
                    row.p_status,
                    row.p_protocol_id,
                    row.p_code,
                    row.p_protocol_status,
                    patient_parameters,
                ),
                protocol_parameters=(
                    patient_parameters if row.o_parameters is None else parsed(row.o_parameters)
                ),
                dose_unit=(
                    UnitRead(row.dose_unit_id, row.du_code, row.du_status, row.du_kind)
                    if row.dose_unit_id is not None
                    else None
                ),
                weight_kg=row.w_kg,
                weight_measured_at=row.w_at,
                bags=(),
                infused=bool(row.infused),
                shipment=shipment,
                latest_weight=(
                    WeightRead(
                        row.lw_id,
                        row.lw_kg,
                        row.lw_at,
                        row.lw_change,
                        row.lw_reference,
                        row.lw_confirmation,
                    )
                    if row.lw_id is not None
                    else None
                ),
                latest_count=(
                    CountRead(
                        row.c_id,
                        row.c_at,
                        row.c_by,
                        row.c_place,
                        row.c_total,
                        row.c_viability,
                        row.c_delivered,
                        row.c_decision,
                        row.c_decided_by,
                        row.c_decided_at,
                        row.c_deviation,
                    )
                    if row.c_id is not None
                    else None
                ),
                thaws_completed=row.thawed or 0,
                first_thaw_at=row.first_thaw,
            )
            bags[row.id] = {}
        elif dose.shipment != shipment:
            return None  # several shipments of one order: ``doses_read`` reads it
        if row.b_unit_id is not None:
            bags[row.id][row.b_unit_id] = (
                row.b_position,
                BagRead(
                    row.b_unit_id,
                    row.b_volume,
                    UnitRead(row.b_unit_id, row.bu_code, row.bu_status, row.bu_kind),
                ),
            )
    return [
        replace(
            dose,
            bags=tuple(
                bag for _position, bag in sorted(bags[dose.id].values(), key=lambda b: b[0])
            ),
        )
        for dose in found.values()
    ]


def dose_read_among(
    unit_id: int, reads: Sequence[DoseRow]
) -> tuple[UnitRead, DoseRow | None] | None:
    """The scanned unit ``unit_id`` among the doses ``dose_reads`` found for it (their
    prepared dose units and bags) and its dose (``_dose_among``: the rule of
    ``scan_dose``); None when the unit is none of them (``scan_dose`` says what it is)."""
    unit = next(
        (each for dose in reads for each in dose.units() if each.id == unit_id),
        None,
    )
    if unit is None:
        return None
    return unit, _dose_among(unit, reads)


def _float(column: Any, name: str) -> Any:
    """A float column as the driver gives it (a ``float`` on both databases): without the
    ``Float`` type's result processor, which on psycopg asks for the cursor's column type,
    which a ``DriverStatement`` does not read."""
    return type_coerce(column, NullType()).label(name)


@cache
def _dose_reads_statement() -> DriverStatement:
    """The statement of ``dose_reads``, built and compiled once: ``_doses_read_statement``'s
    rows and facts as plain columns, only those the bedside judges."""
    unit_id = bindparam("unit_id", type_=Integer())
    latest = aliased(Weight)
    count = aliased(PostThawCount)
    latest_id, count_id, infused, thawed, first_thaw = _order_facts()
    own = aliased(TrialProtocol)  # the patient's version
    ordered = aliased(TrialProtocol)  # the order's, when it is another
    used = aliased(Weight)
    dose_unit = aliased(Unit)
    bag_unit = aliased(Unit)
    counter = aliased(User)
    decider = aliased(User)
    bag = aliased(DoseBag)  # not DoseBag: the subquery of the bag scanned is not correlated
    return DriverStatement(
        select(
            DoseOrder.id,
            DoseOrder.patient_id,
            DoseOrder.visit,
            DoseOrder.status,
            DoseOrder.checked_by_id,
            DoseOrder.dose_unit_id,
            _float(DoseOrder.target_cells, "target_cells"),
            _float(DoseOrder.volume_ml, "volume_ml"),
            _float(DoseOrder.delivered_cells, "delivered_cells"),
            _float(DoseOrder.deviation_percent, "deviation_percent"),
            _float(DoseOrder.dmso_g_per_kg, "dmso_g_per_kg"),
            _float(DoseOrder.endotoxin_eu_per_kg, "endotoxin_eu_per_kg"),
            DoseOrder.override_reason,
            Patient.study_id.label("p_study_id"),
            Patient.coi.label("p_coi"),
            Patient.arm.label("p_arm"),
            Patient.day0.label("p_day0"),
            Patient.status.label("p_status"),
            Patient.protocol_id.label("p_protocol_id"),
            own.code.label("p_code"),
            own.status.label("p_protocol_status"),
            own.parameters_json.label("p_parameters"),
            ordered.parameters_json.label("o_parameters"),
            dose_unit.code.label("du_code"),
            dose_unit.status.label("du_status"),
            dose_unit.kind.label("du_kind"),
            _float(used.weight_kg, "w_kg"),
            used.measured_at.label("w_at"),
            bag.unit_id.label("b_unit_id"),
            _float(bag.volume_ml, "b_volume"),
            bag.position.label("b_position"),
            bag_unit.code.label("bu_code"),
            bag_unit.status.label("bu_status"),
            bag_unit.kind.label("bu_kind"),
            infused.label("infused"),
            Shipment.status.label("ship_status"),
            Shipment.hold_reason.label("ship_hold"),
            latest.id.label("lw_id"),
            _float(latest.weight_kg, "lw_kg"),
            latest.measured_at.label("lw_at"),
            _float(latest.change_percent, "lw_change"),
            latest.change_reference.label("lw_reference"),
            latest.confirmation.label("lw_confirmation"),
            count.id.label("c_id"),
            count.counted_at.label("c_at"),
            counter.full_name.label("c_by"),
            count.place.label("c_place"),
            _float(count.total_cells_per_ml, "c_total"),
            _float(count.viability_percent, "c_viability"),
            _float(count.delivered_cells, "c_delivered"),
            count.decision.label("c_decision"),
            decider.full_name.label("c_decided_by"),
            count.decided_at.label("c_decided_at"),
            count.deviation_id.label("c_deviation"),
            thawed.label("thawed"),
            first_thaw.label("first_thaw"),
        )
        .join(Patient, Patient.id == DoseOrder.patient_id)
        .join(own, own.id == Patient.protocol_id)
        .outerjoin(
            ordered,
            and_(ordered.id == DoseOrder.protocol_id, DoseOrder.protocol_id != Patient.protocol_id),
        )
        .join(used, used.id == DoseOrder.weight_id)
        .outerjoin(dose_unit, dose_unit.id == DoseOrder.dose_unit_id)
        .outerjoin(bag, bag.order_id == DoseOrder.id)
        .outerjoin(bag_unit, bag_unit.id == bag.unit_id)
        .outerjoin(ShipmentItem, ShipmentItem.dose_order_id == DoseOrder.id)
        .outerjoin(Shipment, Shipment.id == ShipmentItem.shipment_id)
        .outerjoin(latest, latest.id == latest_id)
        .outerjoin(count, count.id == count_id)
        .outerjoin(counter, counter.id == count.counted_by_id)
        .outerjoin(decider, decider.id == count.decided_by_id)
        .where(
            or_(
                DoseOrder.dose_unit_id == unit_id,
                and_(
                    DoseOrder.status != DoseStatus.CANCELLED.value,
                    DoseOrder.id.in_(select(DoseBag.order_id).where(DoseBag.unit_id == unit_id)),
                ),
            )
        )
    )


# --- the site invariant on the driver's reads (review 2 items 8, 13) ----------------------------


def issued_site_columns() -> tuple[Any, Any]:
    """Two columns beside an ``IssuedIdentifier`` row: the lowest and the highest clinical site
    of the patients the code names — the patient of a wristband (COI), the patients of the
    doses a unit is the prepared dose or a bag of (not a cancelled dose's bag: it went back to
    the lab and may have been given to another since) — None for a code naming no patient. Read
    from the tables, so that they hold whoever reads (``sites/scope.py`` filters ORM reads
    only, and the bedside reads on the driver's cursor)."""
    issued = IssuedIdentifier.__table__
    patients_t, orders_t, bags_t = Patient.__table__, DoseOrder.__table__, DoseBag.__table__
    of_unit = or_(
        cast(orders_t.c.dose_unit_id, String()) == issued.c.entity_id,
        and_(
            # a bag of a cancelled dose went back to the lab and may be another's now
            orders_t.c.status != DoseStatus.CANCELLED.value,
            orders_t.c.id.in_(
                select(bags_t.c.order_id)
                .where(cast(bags_t.c.unit_id, String()) == issued.c.entity_id)
                .correlate(issued)  # two levels down: not correlated by itself
            ),
        ),
    )

    def site_of(pick: Any) -> Any:
        return case(
            (
                issued.c.entity_type == "patient",
                select(patients_t.c.site_id)
                .where(cast(patients_t.c.id, String()) == issued.c.entity_id)
                .scalar_subquery(),
            ),
            (
                issued.c.entity_type == "unit",
                select(pick(patients_t.c.site_id))
                .join(orders_t, orders_t.c.patient_id == patients_t.c.id)
                .where(of_unit)
                .scalar_subquery(),
            ),
            else_=None,
        )

    return site_of(func.min).label("site_low"), site_of(func.max).label("site_high")


@cache
def _sites_of_code_statement() -> Any:
    issued = IssuedIdentifier.__table__
    return select(*issued_site_columns()).where(issued.c.code == bindparam("code"))


def seen_by_actor(site_low: int | None, site_high: int | None) -> bool:
    """Whether the patients of a code (``issued_site_columns``) are among the acting user's
    sites (``scope.VISIBLE_SITES``, set per request for a clinician or investigator of
    their sites only; unset, every site is seen, as every ORM read sees it)."""
    visible = VISIBLE_SITES.get()
    if visible is None:
        return True
    return all(site is None or site in visible for site in (site_low, site_high))


def not_issued(scan: str) -> NotFound:
    """The refusal of a code this site never issued (``numbering.lookup``'s words): what a
    code of another site's patient is to a user who does not see that site."""
    return NotFound(numbering.never_issued(read_scan(scan)))


def refuse_unseen(session: DbSession, scan: str) -> None:
    """Refuse, as a code never issued, a scan naming another site's patient or their dose
    when the acting user does not see that site; nothing is read for a user who sees every
    site. An unreadable scan is left to the caller's own reading, which says what is
    wrong."""
    if VISIBLE_SITES.get() is None:
        return
    try:
        code = read_scan(scan).canonical
    except (InvalidIdentifier, DomainError, ValueError):
        return
    row = session.connection().execute(_sites_of_code_statement(), {"code": code}).one_or_none()
    if row is not None and not seen_by_actor(row.site_low, row.site_high):
        raise not_issued(scan)
