"""Trace forward and back through the whole chain (21 CFR 1271.290, DOMAIN.md §1).

*Forward*: from a donation, a lot, a unit, a material lot or a piece of equipment to every unit
made from it, every dose order and infusion of those units and every patient. *Back*: from a
unit, a dose or an infusion to the donation and the donor's eligibility, with every processing
step (who, when, materials, equipment), release results and dispositions, custody events,
bedside checks and their signatures.

Both walk the lineage in the database with one recursive query (``WITH RECURSIVE``) and then
read each kind of record for the whole set at once, so the number of queries does not grow
with the size of the tree (``tests/traceability/test_trace.py`` counts them).
"""

from __future__ import annotations

import datetime as dt
import gc
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from itertools import chain as chain_rows
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    DateTime,
    FromClause,
    Integer,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    type_coerce,
    union,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.dialects.postgresql import array as pg_array
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import aliased, joinedload, selectinload

from cellchain.chain import service as chain
from cellchain.chain.models import (
    UNIT_KIND_NAMES,
    UNIT_STATUS_NAMES,
    LineageEdge,
    Unit,
    UnitEvent,
    UnitKind,
)
from cellchain.clinic.models import BedsideCheck, Infusion, Shipment, ShipmentItem, Thaw
from cellchain.core import signatures
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.core.signatures import SignatureManifest
from cellchain.donors.models import Donation, DonorTestResult, EligibilityDetermination
from cellchain.dosing.models import DoseBag, DoseOrder, Patient
from cellchain.errors import InvalidInput
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import (
    CellRecord,
    Equipment,
    Lot,
    MaterialLot,
    ProcessingStep,
    StepEquipment,
    StepMaterial,
    StepUnit,
)
from cellchain.quality.models import LotDisposition, QcResult
from cellchain.traceability import notices
from cellchain.traceability.models import Recall, RecallUnit


class TraceFrom:
    """The kinds of record a trace can start from (the ``kind`` in URLs and the API)."""

    DONATION = "donation"
    LOT = "lot"
    UNIT = "unit"
    MATERIAL_LOT = "material_lot"
    EQUIPMENT = "equipment"
    DOSE = "dose"
    INFUSION = "infusion"

    FORWARD = (DONATION, LOT, UNIT, MATERIAL_LOT, EQUIPMENT)
    BACK = (UNIT, DOSE, INFUSION)


@dataclass(frozen=True)
class Start:
    """Where a trace starts, as people name it (``label``, in English: a recall keeps it)."""

    kind: str
    id: int
    label: str

    @property
    def word(self) -> str:
        """What the start is (donation, lot, unit, dose order, infusion, material lot,
        equipment) in the reader's language; empty for a label of no known kind."""
        english = self._english_word()
        return str(_START_WORDS[english]) if english else ""

    @property
    def named(self) -> str:
        """The rest of the label: codes and stored names, as they are in every language."""
        english = self._english_word()
        return self.label[len(english) + 1 :] if english else self.label

    @property
    def shown(self) -> str:
        """The label in the reader's language: its first words translated, the codes and
        stored names as they are."""
        return f"{self.word} {self.named}" if self.word else self.named

    def _english_word(self) -> str:
        # the longest first: "material lot" before "lot"
        for english in sorted(_START_WORDS, key=len, reverse=True):
            if self.label.startswith(english + " "):
                return english
        return ""


_START_WORDS: dict[str, LazyText] = {
    "donation": lazy("donation"),
    "lot": lazy("lot"),
    "unit": lazy("unit"),
    "dose order": lazy("dose order"),
    "infusion": lazy("infusion"),
    "material lot": lazy("material lot"),
    "equipment": lazy("equipment"),
}


# --- forward ------------------------------------------------------------------------------------


class UnitRow(NamedTuple):
    """A unit as a forward trace lists it: a plain row, not an ORM ``Unit``.

    A forward trace from a reagent lot reaches tens of thousands of units; building a
    ``Unit`` object for each was most of its time (issue 20), and nothing changes them. The
    same names as ``Unit`` for what the pages and the API show, with the donation's DIN and
    the creator's username read in the same row. A named tuple: the cheapest to build, and
    the garbage collector stops tracking it (nothing in it refers back)."""

    id: int
    code: str
    kind: str
    status: str
    donation_id: int
    location: str
    created_at: dt.datetime
    created_by_id: int | None
    din: str
    #: the username of who made it (``Unit.created_by.username``), None when unknown
    created_by_username: str | None

    @property
    def kind_label(self) -> str:
        return UnitKind(self.kind).label

    @property
    def kind_name(self) -> str:
        return str(UNIT_KIND_NAMES.get(self.kind, self.kind_label))

    @property
    def status_name(self) -> str:
        return str(UNIT_STATUS_NAMES.get(self.status, self.status))


@dataclass(frozen=True)
class TracedUnit:
    """A unit found by a trace back: where it is and what state, and how far from the start."""

    unit: Unit
    distance: int
    lot_number: str | None
    #: the recalls that name this unit, oldest first (issue 16, item 9)
    recalls: list[Recall] = field(default_factory=list)


class ReachedUnit(NamedTuple):
    """A unit found by a trace forward, as a plain row (``UnitRow``): where it is and what
    state, and how far from the start."""

    unit: UnitRow
    distance: int
    lot_number: str | None
    #: the recalls that name this unit, oldest first (issue 16, item 9; ``with_recalls``)
    recalls: Sequence[Recall] = ()


@dataclass(frozen=True)
class ExposedPatient:
    """A patient who has a dose made from the traced units, and whether it was infused."""

    patient: Patient
    dose_orders: list[DoseOrder]
    infusions: list[Infusion]
    #: the recalls that name this patient or one of their doses, oldest first
    recalls: list[Recall] = field(default_factory=list)

    @property
    def infused(self) -> bool:
        return bool(self.infusions)


@dataclass(frozen=True)
class ForwardTrace:
    start: Start
    units: list[ReachedUnit]
    dose_orders: list[DoseOrder]
    infusions: list[Infusion]
    patients: list[ExposedPatient]
    #: every recall naming a unit, dose or patient of the trace, oldest first
    recalls: list[Recall] = field(default_factory=list)

    def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for traced in self.units:
            counts[traced.unit.status] = counts.get(traced.unit.status, 0) + 1
        return dict(sorted(counts.items()))


def forward_seeds(session: DbSession, kind: str, record_id: int) -> tuple[Start, Select[int]]:
    """The start of a forward trace and the query of the units it starts from.

    A donation starts from its units that have no parent (its containers; every other unit of
    it descends from them); a lot from its bags; a material lot or a piece of equipment from
    the units its steps made (or, for a step that made none, such as freezing, the units it
    worked on in place).
    """
    if kind == TraceFrom.DONATION:
        donation = get_or_404(session, Donation, record_id, "donation")
        # NOT EXISTS, not NOT IN: PostgreSQL runs NOT IN (subquery) as a scan of every edge
        # for every unit of the donation (benchmarks/README.md)
        has_parent = exists().where(LineageEdge.child_id == Unit.id)
        seeds = select(Unit.id).where(Unit.donation_id == donation.id, ~has_parent)
        return Start(kind, donation.id, f"donation {donation.din}"), seeds
    if kind == TraceFrom.LOT:
        lot = get_or_404(session, Lot, record_id, "lot")
        seeds = select(CellRecord.unit_id).where(CellRecord.lot_id == lot.id)
        return Start(kind, lot.id, f"lot {lot.lot_number}"), seeds
    if kind == TraceFrom.UNIT:
        unit = get_or_404(session, Unit, record_id, "unit")
        return Start(kind, unit.id, f"unit {unit.code}"), select(literal(unit.id))
    if kind == TraceFrom.MATERIAL_LOT:
        material = get_or_404(session, MaterialLot, record_id, "material lot")
        steps = select(StepMaterial.step_id).where(StepMaterial.material_lot_id == material.id)
        label = f"material lot {material.lot_number}: {material.material} ({material.supplier})"
        return Start(kind, material.id, label), _units_worked_by(steps)
    if kind == TraceFrom.EQUIPMENT:
        item = get_or_404(session, Equipment, record_id, "equipment")
        steps = select(StepEquipment.step_id).where(StepEquipment.equipment_id == item.id)
        return Start(kind, item.id, f"equipment {item.code} ({item.name})"), _units_worked_by(steps)
    raise InvalidInput(
        _(
            "A forward trace starts from one of: %(kinds)s; not %(kind)s.",
            kinds=", ".join(TraceFrom.FORWARD),
            kind=repr(kind),
        ),
        errors={"kind": [_("Unknown start.")]},
    )


def _units_worked_by(steps: Select[int]) -> Select[int]:
    """The outputs of ``steps``; for a step without outputs, its inputs (worked in place)."""
    return select(StepUnit.unit_id).where(StepUnit.step_id.in_(steps), _made_or_worked_in_place())


def _made_or_worked_in_place() -> ColumnElement[bool]:
    """A ``StepUnit`` row whose unit the step made, or worked on in place (a step that made
    nothing, such as freezing): the units a step's materials and equipment touched."""
    output = aliased(StepUnit)
    has_outputs = exists().where(output.step_id == StepUnit.step_id, output.role == "output")
    return or_(StepUnit.role == "output", ~has_outputs)


def trace_forward(session: DbSession, kind: str, record_id: int) -> ForwardTrace:
    """Every unit made from the start, every dose and infusion of them and every patient.

    A few queries whatever the size of the tree: the units (the walk, then their rows with
    their lot, as plain rows), the dose orders, the infusions, and two to load the orders'
    patients and bags. ``with_recalls`` adds the recalls that name them.
    """
    start, seeds = forward_seeds(session, kind, record_id)
    units, dosed = _reached(session, seeds)
    # the lineage walked once: the doses are found from the ids of the units in one
    orders, infusions = doses_of(session, dosed)
    return ForwardTrace(
        start=start,
        units=units,
        dose_orders=orders,
        infusions=infusions,
        patients=patients_of(orders, infusions),
    )


def _unit_columns() -> tuple[Any, ...]:
    """What a ``UnitRow`` holds, in its order. ``created_at`` as the driver reads it (an
    aware time), not through ``UTCDateTime``'s processor: ``_units_of`` makes it UTC."""
    creator = aliased(User)
    return (
        (
            Unit.id,
            Unit.code,
            Unit.kind,
            Unit.status,
            Unit.donation_id,
            Unit.location,
            type_coerce(Unit.created_at, DateTime(timezone=True)),
            Unit.created_by_id,
            Donation.din,
            creator.username,
        ),
        creator,
    )


def reached_units(session: DbSession, seeds: Select[int]) -> list[ReachedUnit]:
    """The units made from ``seeds`` (with them), nearest first, each with its lot, read as
    plain rows (``UnitRow``), no ORM object per unit (``_reached``)."""
    return _reached(session, seeds)[0]


def _reached(session: DbSession, seeds: Select[int]) -> tuple[list[ReachedUnit], list[int]]:
    """``reached_units``, and the ids of those of them that are a dose order's bag or dose.

    Each row says whether its unit is in a dose (against each table's units hashed once), so
    the dose query is sent only the few ids that are, not every unit of the trace.

    On PostgreSQL in two statements: the walk alone, then the units' rows for its ids. The
    walk answers one row, its ids and distances as the texts of two integer arrays
    (``walk_arrays``: ``chain.descendants_as_arrays``'s pairs, ids ascending), sent back as
    they are as the units' statement's two parameters: no Python int per unit. PostgreSQL
    cannot estimate a recursive walk (it guessed 200 units for 26 138), so in one statement
    it looked each unit's donation, cell record and lot up by index, one by one; given the
    ids it knows how many there are, and joins the small tables by hashing them (issue 20).
    SQLite in one statement."""
    connection = session.connection()
    with gc_paused():
        if connection.dialect.name == "postgresql":
            ids, distances = connection.execute(walk_arrays(seeds)).one()
            if ids is None:
                return [], []
            return _walked_units(connection, {"ids": ids, "distances": distances})
        else:
            nearest = chain.nearest_of(chain.lineage_walk(seeds, upwards=False))
            rows = list(connection.execute(_units_query(nearest)).all())
        dosed = [row[0] for row in rows if row[12]]
        return _units_of(rows), dosed


def walk_arrays(seeds: Select[int]) -> CompoundSelect[Any]:
    """PostgreSQL: the units reached from ``seeds`` (with them) and their fewest steps from a
    seed, as one row of two texts, the integer arrays of the ids, ascending, and of the
    distances in the same order (both NULL when nothing is reached): the pairs of
    ``chain.descendants_as_arrays``, walked the same way, a generation at a time, with a
    final step that costs less (issue 20, ``benchmarks/README.md``):

    - When the walk stops at the seeds (none has a child: a lot's bags, a reagent used at
      fill), every unit is a seed at distance 0: the seeds, made distinct as they are
      gathered, are the answer, with as many zeros; no unit is unnested and regrouped.
    - Otherwise each unit's fewest steps by one sort of the (unit, distance) pairs and
      ``DISTINCT ON``, not a hash aggregate by unit (whose order then made the units'
      statement sort the ids again).

    Either way the ids come in ascending order, so the units' statement's sort of the walk's
    ids finds them sorted. Each branch runs only when its condition holds (a one-time filter
    on the count of non-empty generations); as ``chain.descendants_as_arrays``, this assumes
    the lineage has no cycle (``tests/traceability/test_trace_forward_arrays.py``)."""
    edges = LineageEdge.__table__
    seed_rows = seeds.subquery()
    generations = select(
        func.array_agg(seed_rows.c[0].distinct()).label("ids"), literal(0).label("distance")
    ).cte("generations", recursive=True)
    children = (
        select(func.array_agg(edges.c.child_id.distinct()))
        .where(edges.c.parent_id == any_(generations.c.ids))
        .scalar_subquery()
    )
    generations = generations.union_all(
        select(children, generations.c.distance + 1).where(generations.c.ids.is_not(None))
    )
    walked = (
        select(func.count())
        .select_from(generations)
        .where(generations.c.ids.is_not(None))
        .scalar_subquery()
    )
    only_seeds = select(
        cast(generations.c.ids, Text),
        cast(func.array_fill(0, pg_array([func.cardinality(generations.c.ids)])), Text),
    ).where(generations.c.distance == 0, walked == 1)
    unit = func.unnest(generations.c.ids).table_valued("unit_id").render_derived(name="unit")
    nearest = (
        select(unit.c.unit_id, generations.c.distance)
        .select_from(generations)
        .join(unit, true())
        .ext(distinct_on(unit.c.unit_id))
        .order_by(unit.c.unit_id, generations.c.distance)
        .subquery("nearest")
    )
    grouped = select(
        cast(func.array_agg(nearest.c.unit_id), Text),
        cast(func.array_agg(nearest.c.distance), Text),
    ).having(walked != 1)
    return union_all(only_seeds, grouped)


#: the walk's units as ``_reached`` sends them on PostgreSQL: two integer arrays' texts
_WALKED = (
    func.unnest(
        cast(bindparam("ids", type_=Text()), ARRAY(Integer)),
        cast(bindparam("distances", type_=Text()), ARRAY(Integer)),
    )
    .table_valued("unit_id", "distance")
    .render_derived(name="walked")
)


@cache
def _walked_units_query() -> Select[Any]:
    """``_units_query`` of the PostgreSQL walk's arrays, made once per process."""
    return _units_query(_WALKED)


def _walked_units(
    connection: Connection, arrays: dict[str, str]
) -> tuple[list[ReachedUnit], list[int]]:
    """``_reached``'s units and dosed ids from the rows of ``_walked_units_query`` for the
    walk's ``arrays``.

    With psycopg, read on its cursor in its binary format as its plain tuples, through
    ``Connection._cursor_execute`` as ``core/driver`` does (the engine's events, statement
    counters and error translation kept): decoding 26 138 rows of 13 columns from text and
    wrapping them as SQLAlchemy rows took 16 of a trace's 70 ms of Python (issue 20).
    Nothing is lost: no column has a result processor (``created_at`` is read as the driver
    gives it, ``_unit_columns``) and the two parameters are texts. The rows are read
    ``STREAMED_ROWS`` at a time as they come (``_Streamed``) and each made into its
    ``ReachedUnit`` at once: Python decodes and builds while PostgreSQL is still sending the
    rest, on the other CPU, instead of waiting for the last row to start (a trace of 26 138
    units, 30 runs each way alternated in one process at load ~12: wall 391 -> 334 ms
    median, faster in 27 of 30 pairs; Python 56 -> 51 ms, the rows never all held)."""
    dialect = connection.dialect
    if dialect.driver != "psycopg":
        rows = list(connection.execute(_walked_units_query(), arrays).all())
        return _units_of(rows), [row[0] for row in rows if row[12]]
    sql = _WALKED_SQL.get(dialect)
    if sql is None:
        sql = _WALKED_SQL[dialect] = str(_walked_units_query().compile(dialect=dialect))
    cursor = connection.connection.dbapi_connection.cursor(binary=True)  # type: ignore[union-attr]
    streamed = _Streamed(cursor)
    try:
        connection._cursor_execute(streamed, sql, arrays)  # type: ignore[arg-type]
        first, rest = streamed.first, streamed.rows
        if first is None:
            return [], []
        units: list[ReachedUnit] = []
        dosed: list[int] = []
        try:
            if first[6].tzinfo is not dt.UTC:  # not as PostgreSQL sessions are set
                every = [first, *rest]
                return _units_of(every), [row[0] for row in every if row[12]]
            add = units.append
            for row in chain_rows((first,), rest):
                add(_new(ReachedUnit, (_new(UnitRow, row[:10]), row[10], row[11], ())))
                if row[12]:
                    dosed.append(row[0])
        except dialect.loaded_dbapi.Error as error:
            # a driver's error while the rest streams (a cancel, a statement timeout, the
            # connection lost) handled as one at the first row is, in ``_cursor_execute``:
            # translated, the engine's ``handle_error`` events, a lost connection
            # invalidated (review R1)
            connection._handle_dbapi_exception(error, sql, arrays, cursor, None)
    finally:
        streamed.close()
    # nearest first, then by id: two stable sorts on one key each (``_units_of``); a
    # ``UnitRow`` compares by its id first, which no two of them share
    units.sort(key=itemgetter(0))
    units.sort(key=itemgetter(1))
    return units, dosed


#: rows read at a time by ``_walked_units`` (psycopg's chunked rows, libpq 17 or later;
#: one at a time before)
STREAMED_ROWS = 2000


class _Streamed:
    """A psycopg cursor as ``Connection._cursor_execute`` runs it, whose ``execute``
    streams the answer: it sends the statement and reads its first row (so that an error
    is raised there, and translated as any other), the rest read as they are iterated."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.first: Any = None
        self.rows: Iterator[Any] = iter(())

    def execute(self, sql: str, params: Any) -> None:
        from psycopg import pq

        # chunks need libpq 17 or later; before, row by row
        size = STREAMED_ROWS if pq.version() >= 170000 else 1
        self.rows = self.cursor.stream(sql, params, size=size)
        self.first = next(self.rows, None)

    def close(self) -> None:
        """The stream ended, cancelled if it was left part way (psycopg's stream holds the
        connection's lock until then), and the cursor closed."""
        stop = getattr(self.rows, "close", None)
        if stop is not None:
            stop()
        self.cursor.close()


#: ``_walked_units_query``'s SQL text, by dialect (one per engine)
_WALKED_SQL: weakref.WeakKeyDictionary[Dialect, str] = weakref.WeakKeyDictionary()


def _units_query(reached: FromClause) -> Select[Any]:
    """The rows of ``_units_of`` for the units of ``reached`` (``unit_id``, ``distance``),
    and whether each is in a dose."""
    columns, creator = _unit_columns()
    in_a_dose = or_(
        Unit.id.in_(select(DoseBag.unit_id)),
        Unit.id.in_(select(DoseOrder.dose_unit_id).where(DoseOrder.dose_unit_id.is_not(None))),
    )
    return (
        select(*columns, reached.c.distance, Lot.lot_number, in_a_dose)
        .join(reached, reached.c.unit_id == Unit.id)
        .join(Donation, Donation.id == Unit.donation_id)
        .outerjoin(creator, creator.id == Unit.created_by_id)
        .outerjoin(CellRecord, CellRecord.unit_id == Unit.id)
        .outerjoin(Lot, Lot.id == CellRecord.lot_id)
    )


_new = tuple.__new__


def _units_of(rows: list[Any]) -> list[ReachedUnit]:
    """``ReachedUnit``s from rows of the ``UnitRow``'s columns, the distance and the lot
    number (what follows is left out), nearest first, then by id: sorted here, not by the
    database, which sorted the wide rows of a big trace on disk (``work_mem``) for longer
    than the walk took; by two stable sorts on one integer each, a third of the time of one
    sort on a pair. The times are aware UTC as read on PostgreSQL (its sessions are in UTC,
    ``config.engine_options``), else each is made so as ``UTCDateTime`` does; the named
    tuples are made by ``tuple.__new__``, without a Python call each."""
    rows.sort(key=itemgetter(0))
    rows.sort(key=itemgetter(10))
    if rows and rows[0][6].tzinfo is not dt.UTC:
        return [
            _new(
                ReachedUnit,
                (
                    _new(UnitRow, (*row[:6], _utc(row[6]), *row[7:10])),
                    row[10],
                    row[11],
                    (),
                ),
            )
            for row in rows
        ]
    return [_new(ReachedUnit, (_new(UnitRow, row[:10]), row[10], row[11], ())) for row in rows]


def _utc(at: dt.datetime) -> dt.datetime:
    """An aware UTC time, as ``UTCDateTime`` reads one (SQLite gives it naive)."""
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def _int_array(ids: Sequence[int]) -> ColumnElement[Any]:
    """PostgreSQL's integer array of ``ids``, sent as its text (``{1,2,3}``) in one
    parameter: psycopg dumps a list of ints element by element in Python, 40 ms for 26 138
    ids; the text is joined in 2 ms."""
    return cast(literal("{" + ",".join(map(str, ids)) + "}"), ARRAY(Integer))


@contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection while a big trace's rows are read and built (or dumped):
    they are tens of thousands of new objects, none in a reference cycle, and the
    collections their allocation set off (full ones included, over the whole worker) cost
    more than building them (issue 20: 150 of 260 ms of CPU of a trace of 26 138 units).
    Left as it was found: a nested or concurrent pause does not turn collection back on."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def doses_of(session: DbSession, unit_ids: Sequence[int]) -> tuple[list[DoseOrder], list[Infusion]]:
    """The dose orders that drew one of the units as a bag or whose prepared dose is one of
    them, with their patients and bags, and the infusions of those orders: four statements
    and a few objects (doses are few), whatever the number of units, whose ids go as one
    parameter (``notices.among``; on PostgreSQL one array for both). A UNION of two selects,
    not an OR: PostgreSQL ran the OR as a scan per dose order. A forward trace asks only
    about the units its rows say are in a dose (``reached_units``): PostgreSQL plans
    ``= ANY (array)`` by weighing each id, 68 ms for 26 138 of them."""
    if not unit_ids:
        return [], []
    if session.get_bind().dialect.name == "postgresql":
        ids = _int_array(unit_ids)
        bags, doses = DoseBag.unit_id == any_(ids), DoseOrder.dose_unit_id == any_(ids)
    else:
        bags = notices.among(session, DoseBag.unit_id, unit_ids)
        doses = notices.among(session, DoseOrder.dose_unit_id, unit_ids)
    order_ids = union(
        select(DoseBag.order_id).where(bags), select(DoseOrder.id).where(doses)
    ).subquery()
    orders = list(
        session.execute(
            select(DoseOrder)
            .where(DoseOrder.id.in_(select(order_ids.c[0])))
            .options(selectinload(DoseOrder.patient), selectinload(DoseOrder.bags))
            .order_by(DoseOrder.id)
        ).scalars()
    )
    infusions = (
        list(
            session.execute(
                select(Infusion)
                .where(Infusion.dose_order_id.in_([order.id for order in orders]))
                .order_by(Infusion.started_at, Infusion.id)
            ).scalars()
        )
        if orders
        else []
    )
    return orders, infusions


def recalls_of(session: DbSession, forward: ForwardTrace) -> notices.RecallNotices:
    """The recalls that name the trace's units, dose orders and patients, for the page and
    the API answer (the recall use cases trace only to find what to block, and skip this)."""
    return notices.recalls_naming(
        session,
        units=[traced.unit.id for traced in forward.units],
        doses=[order.id for order in forward.dose_orders],
        patients=[order.patient_id for order in forward.dose_orders],
    )


def with_recalls(forward: ForwardTrace, named: notices.RecallNotices) -> ForwardTrace:
    """The trace with each unit and patient, and the trace as a whole, carrying the recalls
    that name them (a patient: theirs and their doses'). A unit no recall names keeps its
    row as the trace made it (no recalls, ``()``): a trace of tens of thousands of units
    rebuilt each of them for nothing (17 ms for 26 138, issue 20)."""
    units = forward.units
    if named.units:
        units = [
            traced._replace(recalls=recalls) if (recalls := named.unit(traced.unit.id)) else traced
            for traced in forward.units
        ]
    return replace(
        forward,
        units=units,
        patients=[
            replace(
                exposed,
                recalls=_oldest_first(
                    named.patient(exposed.patient.id)
                    + named.of_doses(order.id for order in exposed.dose_orders)
                ),
            )
            for exposed in forward.patients
        ],
        recalls=named.all(),
    )


def _oldest_first(recalls: list[Recall]) -> list[Recall]:
    """Each recall once, oldest first."""
    return sorted({recall.id: recall for recall in recalls}.values(), key=lambda r: r.id)


def patients_of(orders: list[DoseOrder], infusions: list[Infusion]) -> list[ExposedPatient]:
    by_order = {infusion.dose_order_id: infusion for infusion in infusions}
    grouped: dict[int, tuple[Patient, list[DoseOrder], list[Infusion]]] = {}
    for order in orders:
        _patient, its_orders, its_infusions = grouped.setdefault(
            order.patient_id, (order.patient, [], [])
        )
        its_orders.append(order)
        if order.id in by_order:
            its_infusions.append(by_order[order.id])
    return [
        ExposedPatient(patient=patient, dose_orders=its_orders, infusions=its_infusions)
        for patient, its_orders, its_infusions in sorted(
            grouped.values(), key=lambda group: group[0].study_id
        )
    ]


# --- back ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    """A signed record and its signatures, each checked against the record as it is now."""

    record: object
    signatures: list[SignatureManifest]


@dataclass(frozen=True)
class LotRelease:
    """A lot on the path: its release results and QA's disposition with its signature."""

    lot: Lot
    results: list[QcResult]
    disposition: Signed | None


@dataclass(frozen=True)
class ClinicPath:
    """What happened to a dose after the lab: shipment, thaw, bedside checks, infusion."""

    order: Signed  #: the dose order with its second-check (and override) signatures
    shipment: Signed | None
    thaws: list[Thaw]
    bedside_checks: list[Signed]
    infusion: Infusion | None


@dataclass(frozen=True)
class BackTrace:
    start: Start
    units: list[TracedUnit]
    donation: Donation
    donor_tests: list[DonorTestResult]
    eligibility: Signed | None
    steps: list[ProcessingStep]
    lots: list[LotRelease]
    events: list[UnitEvent]
    clinic: list[ClinicPath] = field(default_factory=list)
    #: the recalls that name a unit of the path, oldest first
    recalls: list[Recall] = field(default_factory=list)
    #: everyone named on the path's records, loaded at once; held here so that the session
    #: (whose identity map keeps only referenced objects) still has them when the records'
    #: ``performed_by``, ``analyst``, … are read
    people: list[User] = field(default_factory=list)


class _BackStatements(NamedTuple):
    """The statements of a trace back, made once per process (``_back_statements``), their
    values bound at each run: making them, loader options and the recursive walk included,
    cost a third of a trace's CPU (1-2 ms each for the walk and the steps), and a statement
    run again keeps its cache key (issue 20)."""

    infusion: Select[Any]
    dose_order: Select[Any]
    unit_orders: Select[Any]
    units: Select[Any]
    steps: Select[Any]
    lots: Select[Any, Any, Any]
    events: Select[Any]
    clinic: Select[Any, Any, Any, Any, Any]
    recalls: Select[Any]
    people: Select[Any]


def _ids(name: str) -> BindParameter[Any]:
    """A list of ids bound at each run (``IN (…)`` of as many as it holds)."""
    return bindparam(name, expanding=True)


@cache
def _back_statements() -> _BackStatements:
    """The trace back's statements, made at first use, not at import: loader options
    configure the mappers, which needs every model imported first (2a75b2d)."""
    # the infusion or dose order with what a trace back reads of the order (its patient, bags
    # and weight, which its signed content names) in one statement instead of four
    of_infusion = joinedload(Infusion.dose_order)
    order_parts = (DoseOrder.patient, DoseOrder.bags, DoseOrder.weight)
    seeds = select(Unit.id).where(Unit.id.in_(_ids("start_ids")))
    nearest = chain.nearest_of(chain.lineage_walk(seeds, upwards=True))
    unit_ids = _ids("unit_ids")
    order_ids = _ids("order_ids")
    return _BackStatements(
        infusion=select(Infusion)
        .where(Infusion.id == bindparam("record_id"))
        .options(*(of_infusion.joinedload(part) for part in order_parts)),
        dose_order=select(DoseOrder)
        .where(DoseOrder.id == bindparam("record_id"))
        .options(*(joinedload(part) for part in order_parts)),
        unit_orders=select(DoseOrder)
        .where(
            or_(
                DoseOrder.dose_unit_id == bindparam("unit_id"),
                DoseOrder.id.in_(
                    select(DoseBag.order_id).where(DoseBag.unit_id == bindparam("unit_id"))
                ),
            )
        )
        .order_by(DoseOrder.id),
        # the path's units with their lot, donation and donor, and whether a recall names
        # each: the recalls are read only when one does (most paths are named by none)
        units=select(
            Unit,
            nearest.c.distance,
            Lot.lot_number,
            exists().where(RecallUnit.unit_id == Unit.id),
            Lot.id,
        )
        .join(nearest, nearest.c.unit_id == Unit.id)
        .outerjoin(CellRecord, CellRecord.unit_id == Unit.id)
        .outerjoin(Lot, Lot.id == CellRecord.lot_id)
        .options(joinedload(Unit.donation).joinedload(Donation.donor))
        .order_by(nearest.c.distance.desc(), Unit.id),
        # the steps that made a unit of the path or worked on it in place (a step that only
        # drew from it, a QC sample, made nothing on the path), with their units joined (a
        # step's own rows, one per unit: no product with its materials or equipment, which
        # are read by one more statement each)
        steps=select(ProcessingStep)
        .where(
            ProcessingStep.id.in_(
                select(StepUnit.step_id).where(
                    StepUnit.unit_id.in_(unit_ids), _made_or_worked_in_place()
                )
            )
        )
        .options(
            selectinload(ProcessingStep.materials).joinedload(StepMaterial.material_lot),
            selectinload(ProcessingStep.equipment).joinedload(StepEquipment.item),
            joinedload(ProcessingStep.units).joinedload(StepUnit.unit),
        )
        .order_by(ProcessingStep.performed_at, ProcessingStep.id),
        # each lot of the path's units (found by the walk: by their ids, not a scan of every
        # lot for those of the units' cell records) with its disposition (one per lot, ever)
        # and its results, one row each
        lots=select(Lot, LotDisposition, QcResult)
        .outerjoin(LotDisposition, LotDisposition.lot_id == Lot.id)
        .outerjoin(QcResult, QcResult.lot_id == Lot.id)
        .where(Lot.id.in_(_ids("lot_ids")))
        .order_by(Lot.id, QcResult.test_code, QcResult.id),
        # each event's unit is one of the path's, read from the session, not joined again
        events=select(UnitEvent)
        .where(UnitEvent.unit_id.in_(unit_ids))
        .order_by(UnitEvent.at, UnitEvent.id),
        clinic=_clinic_statement(order_ids),
        recalls=select(Recall)
        .where(Recall.id.in_(select(RecallUnit.recall_id).where(RecallUnit.unit_id.in_(unit_ids))))
        .order_by(Recall.id),
        people=select(User)
        .where(User.id.in_(_ids("user_ids")))
        .options(joinedload(User.role_rows)),
    )


def _clinic_statement(order_ids: BindParameter[Any]) -> Select[Any, Any, Any, Any, Any]:
    """The donation's latest eligibility determination and the orders' shipments, thaws,
    bedside checks and infusions in one statement, one row each (a few per order): a union
    of (kind, id) pairs, each row joined to the record of its kind, the others null. The
    determination is the one in force or the one a later result re-opened, with the
    donation's results in id order, which its signed content reads and the trace lists (the
    donation is the path's, already read: its results are filled in); a shipment with its
    item, a check with its patient."""
    records = union_all(
        select(literal(0).label("kind"), EligibilityDetermination.id.label("id")).where(
            EligibilityDetermination.id
            == select(func.max(EligibilityDetermination.id))
            .where(EligibilityDetermination.donation_id == bindparam("donation_id"))
            .scalar_subquery()
        ),
        select(literal(1), ShipmentItem.dose_order_id).where(
            ShipmentItem.dose_order_id.in_(order_ids)
        ),
        select(literal(2), Thaw.id).where(Thaw.dose_order_id.in_(order_ids)),
        select(literal(3), BedsideCheck.id).where(BedsideCheck.dose_order_id.in_(order_ids)),
        select(literal(4), Infusion.id).where(Infusion.dose_order_id.in_(order_ids)),
    ).subquery("records")
    kind, record_id = records.c.kind, records.c.id
    return (
        select(EligibilityDetermination, ShipmentItem, Thaw, BedsideCheck, Infusion)
        .select_from(records)
        .outerjoin(
            EligibilityDetermination,
            and_(kind == 0, EligibilityDetermination.id == record_id),
        )
        .outerjoin(ShipmentItem, and_(kind == 1, ShipmentItem.dose_order_id == record_id))
        .outerjoin(Thaw, and_(kind == 2, Thaw.id == record_id))
        .outerjoin(BedsideCheck, and_(kind == 3, BedsideCheck.id == record_id))
        .outerjoin(Infusion, and_(kind == 4, Infusion.id == record_id))
        .options(
            joinedload(EligibilityDetermination.donation).joinedload(Donation.results),
            joinedload(ShipmentItem.shipment),
            joinedload(BedsideCheck.patient),
        )
    )


def back_start(
    session: DbSession, kind: str, record_id: int
) -> tuple[Start, list[DoseOrder], list[int], Infusion | None]:
    """Where a trace back starts: the dose orders concerned, the units to walk up from, and
    the infusion when it starts from one."""
    statements = _back_statements()
    if kind == TraceFrom.INFUSION:
        infusion = _loaded(session, statements.infusion, record_id)
        if infusion is None:
            get_or_404(session, Infusion, record_id, "infusion")  # raises NotFound
        assert infusion is not None
        order = infusion.dose_order
        start = Start(
            kind, infusion.id, f"infusion {infusion.id} ({order.patient.study_id}, {order.visit})"
        )
        return start, [order], _dose_units(order), infusion
    if kind == TraceFrom.DOSE:
        found = _loaded(session, statements.dose_order, record_id)
        if found is None:
            get_or_404(session, DoseOrder, record_id, "dose order")  # raises NotFound
        assert found is not None
        order = found
        start = Start(
            kind, order.id, f"dose order {order.id} ({order.patient.study_id}, {order.visit})"
        )
        return start, [order], _dose_units(order), None
    if kind == TraceFrom.UNIT:
        unit = get_or_404(session, Unit, record_id, "unit")
        orders = list(session.execute(statements.unit_orders, {"unit_id": unit.id}).scalars())
        return Start(kind, unit.id, f"unit {unit.code}"), orders, [unit.id], None
    raise InvalidInput(
        _(
            "A trace back starts from one of: %(kinds)s; not %(kind)s.",
            kinds=", ".join(TraceFrom.BACK),
            kind=repr(kind),
        ),
        errors={"kind": [_("Unknown start.")]},
    )


def _loaded(session: DbSession, statement: Select[Any], record_id: int) -> Any:
    """The infusion or dose order of ``statement`` (``_back_statements``), None when there
    is none."""
    return session.execute(statement, {"record_id": record_id}).unique().scalar_one_or_none()


def _dose_units(order: DoseOrder) -> list[int]:
    ids = [bag.unit_id for bag in order.bags]
    return [order.dose_unit_id, *ids] if order.dose_unit_id else ids


def trace_back(session: DbSession, kind: str, record_id: int) -> BackTrace:
    """The whole path from the start back to the donor, with who, when and what signed.

    A fixed number of statements, made once per process (``_back_statements``): one
    recursive walk for the units (which also says whether a recall names one: the recalls
    are read only then), then one per kind of record (steps with their units, their
    materials, their equipment; lots with their dispositions and results; events; the
    eligibility determination with the donation's results; shipments, thaws, bedside
    checks), one for everyone named on them with their roles, and one for all the
    signatures with their signers' names: none per signature, per signer or per person
    (``tests/traceability/test_trace_statements.py`` counts them).
    """
    statements = _back_statements()
    # the infusion started from, held: the clinic's statement finds it in the session
    start, orders, start_ids, _infusion = back_start(session, kind, record_id)
    rows = session.execute(statements.units, {"start_ids": start_ids}).all()
    units = [TracedUnit(unit=row[0], distance=row[1], lot_number=row[2]) for row in rows]
    recalled = any(row[3] for row in rows)
    lot_ids = sorted({row[4] for row in rows if row[4] is not None})
    of_units = {"unit_ids": [traced.unit.id for traced in units]}
    donation = units[0].unit.donation

    steps = list(session.execute(statements.steps, of_units).unique().scalars())
    lots: list[Lot] = []
    dispositions: dict[int, LotDisposition] = {}
    results: list[QcResult] = []
    on_lots = session.execute(statements.lots, {"lot_ids": lot_ids}) if lot_ids else ()
    for lot, disposition, result in on_lots:
        if not lots or lots[-1] is not lot:
            lots.append(lot)
            if disposition is not None:
                dispositions[lot.id] = disposition
        if result is not None:
            results.append(result)
    events = list(session.execute(statements.events, of_units).scalars())
    determination: EligibilityDetermination | None = None
    shipments: dict[int, Shipment] = {}
    thaws: list[Thaw] = []
    checks: list[BedsideCheck] = []
    # an order is infused once, ever (unique ``dose_order_id``); from an infusion, the start
    # (the same object: the session's)
    infusions: dict[int, Infusion] = {}
    clinic = session.execute(
        statements.clinic,
        {"donation_id": donation.id, "order_ids": [order.id for order in orders]},
    )
    for found, item, thaw, check, infusion in clinic.unique():
        if found is not None:
            determination = found
        elif item is not None:
            shipments[item.dose_order_id] = item.shipment
        elif thaw is not None:
            thaws.append(thaw)
        elif check is not None:
            checks.append(check)
        elif infusion is not None:
            infusions[infusion.dose_order_id] = infusion
    thaws.sort(key=lambda thaw: (thaw.started_at, thaw.id))
    checks.sort(key=lambda check: (check.checked_at, check.id))
    # the donation's results in id order, read through the relation (filled in with the
    # determination), which the determination's signed content then reads again
    tests: list[DonorTestResult] = list(donation.results)

    recalls = list(session.execute(statements.recalls, of_units).scalars()) if recalled else []
    people = _load_people(
        session,
        [
            *(step.performed_by_id for step in steps),
            *(result.analyst_id for result in results),
            *(disposition.decided_by_id for disposition in dispositions.values()),
            *(event.actor_id for event in events),
            *([determination.determined_by_id] if determination else []),
            *(check.checked_by_id for check in checks),
            *(infusion.administered_by_id for infusion in infusions.values()),
        ],
    )
    signed = signatures.manifests(
        session,
        [
            *([determination] if determination else []),
            *dispositions.values(),
            *orders,
            *[s for s in shipments.values() if s.decided_at is not None],
            *checks,
        ],
    )

    def with_signatures(record: signatures.Signable) -> Signed:
        return Signed(record, signed.get(signatures.key_of(record), []))

    return BackTrace(
        start=start,
        units=units,
        donation=donation,
        donor_tests=tests,
        eligibility=with_signatures(determination) if determination else None,
        steps=steps,
        lots=[
            LotRelease(
                lot=lot,
                results=[r for r in results if r.lot_id == lot.id],
                disposition=with_signatures(dispositions[lot.id])
                if lot.id in dispositions
                else None,
            )
            for lot in lots
        ],
        events=events,
        recalls=recalls,
        people=people,
        clinic=[
            ClinicPath(
                order=with_signatures(order),
                shipment=with_signatures(shipments[order.id]) if order.id in shipments else None,
                thaws=[t for t in thaws if t.dose_order_id == order.id],
                bedside_checks=[with_signatures(c) for c in checks if c.dose_order_id == order.id],
                infusion=infusions.get(order.id),
            )
            for order in orders
        ],
    )


def _load_people(session: DbSession, ids: list[int | None]) -> list[User]:
    """Everyone named on the path (who performed a step, tested, decided, moved a unit,
    checked, infused), with their roles, in one query: each record's ``performed_by``,
    ``analyst``, … is then read from the session, not loaded person by person or once per
    kind of record (issue 20)."""
    wanted = sorted({user_id for user_id in ids if user_id is not None})
    if not wanted:
        return []
    return list(session.execute(_back_statements().people, {"user_ids": wanted}).unique().scalars())


def infused_patients(forward: ForwardTrace) -> list[ExposedPatient]:
    """The patients who already received affected product (the lookback list)."""
    return [exposed for exposed in forward.patients if exposed.infused]
