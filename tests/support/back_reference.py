"""The trace back as it read before issue 20's fourth pass (commit b0ee1d4): one statement
built per kind of record at each call, the steps' units, materials and equipment by three
more, lots and their results apart, the recalls read every time. Tests compare what the
trace back answers now (its API answer and its page, byte for byte) with what this answers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload, selectinload

from cellchain.chain import service as chain
from cellchain.chain.models import Unit, UnitEvent
from cellchain.clinic.models import BedsideCheck, Infusion, ShipmentItem, Thaw
from cellchain.core import signatures
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.donors.models import Donation, DonorTestResult, EligibilityDetermination
from cellchain.dosing.models import DoseBag, DoseOrder
from cellchain.errors import InvalidInput
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import (
    CellRecord,
    Lot,
    ProcessingStep,
    StepEquipment,
    StepMaterial,
    StepUnit,
)
from cellchain.quality.models import LotDisposition, QcResult
from cellchain.traceability.models import Recall, RecallUnit
from cellchain.traceability.trace.trace import (
    BackTrace,
    ClinicPath,
    LotRelease,
    Signed,
    Start,
    TracedUnit,
    TraceFrom,
    _made_or_worked_in_place,
)


def back_start(
    session: DbSession, kind: str, record_id: int
) -> tuple[Start, list[DoseOrder], list[int], Infusion | None]:
    """Where a trace back starts: the dose orders concerned, the units to walk up from, and
    the infusion when it starts from one."""
    if kind == TraceFrom.INFUSION:
        infusion = _loaded(session, Infusion, record_id)
        if infusion is None:
            get_or_404(session, Infusion, record_id, "infusion")  # raises NotFound
        assert infusion is not None
        order = infusion.dose_order
        start = Start(
            kind, infusion.id, f"infusion {infusion.id} ({order.patient.study_id}, {order.visit})"
        )
        return start, [order], _dose_units(order), infusion
    if kind == TraceFrom.DOSE:
        found = _loaded(session, DoseOrder, record_id)
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
        orders = list(
            session.execute(
                select(DoseOrder)
                .where(
                    or_(
                        DoseOrder.dose_unit_id == unit.id,
                        DoseOrder.id.in_(
                            select(DoseBag.order_id).where(DoseBag.unit_id == unit.id)
                        ),
                    )
                )
                .order_by(DoseOrder.id)
            ).scalars()
        )
        return Start(kind, unit.id, f"unit {unit.code}"), orders, [unit.id], None
    raise InvalidInput(
        f"A trace back starts from one of: {', '.join(TraceFrom.BACK)}; not {kind!r}.",
        errors={"kind": ["Unknown start."]},
    )


def _loaded(session: DbSession, model: type[Infusion] | type[DoseOrder], record_id: int) -> Any:
    """The infusion or dose order with what a trace back reads of the order (its patient,
    bags and weight, which its signed content names) in one statement instead of four (a
    lazy load each); None when there is none."""
    of_order = joinedload(Infusion.dose_order) if model is Infusion else None
    options = [
        of_order.joinedload(related) if of_order is not None else joinedload(related)
        for related in (DoseOrder.patient, DoseOrder.bags, DoseOrder.weight)
    ]
    return (
        session.execute(select(model).where(model.id == record_id).options(*options))
        .unique()
        .scalar_one_or_none()
    )


def _dose_units(order: DoseOrder) -> list[int]:
    ids = [bag.unit_id for bag in order.bags]
    return [order.dose_unit_id, *ids] if order.dose_unit_id else ids


def trace_back(session: DbSession, kind: str, record_id: int) -> BackTrace:
    """The whole path from the start back to the donor, with who, when and what signed.

    A fixed number of queries: one recursive walk for the units, then one query per kind of
    record (steps, materials, equipment, lots, results, dispositions, events, clinic records),
    one for everyone named on them (and one for their roles), and one for all their signatures
    with their signers' names: none per signature, per signer or per person
    (``tests/traceability/test_trace_statements.py`` counts them).
    """
    start, orders, start_ids, infused = back_start(session, kind, record_id)
    seeds = select(Unit.id).where(Unit.id.in_(start_ids))
    nearest = chain.nearest_of(chain.lineage_walk(seeds, upwards=True))
    rows = session.execute(
        select(Unit, nearest.c.distance, Lot.lot_number)
        .join(nearest, nearest.c.unit_id == Unit.id)
        .outerjoin(CellRecord, CellRecord.unit_id == Unit.id)
        .outerjoin(Lot, Lot.id == CellRecord.lot_id)
        .options(joinedload(Unit.donation).joinedload(Donation.donor))
        .order_by(nearest.c.distance.desc(), Unit.id)
    ).all()
    units = [TracedUnit(unit=row[0], distance=row[1], lot_number=row[2]) for row in rows]
    unit_ids = [traced.unit.id for traced in units]
    donation = units[0].unit.donation

    steps = list(
        session.execute(
            select(ProcessingStep)
            .where(
                # the steps that made a unit of the path or worked on it in place; a step that
                # only drew from it (a QC sample) made nothing on the path
                ProcessingStep.id.in_(
                    select(StepUnit.step_id).where(
                        StepUnit.unit_id.in_(unit_ids), _made_or_worked_in_place()
                    )
                )
            )
            .options(
                selectinload(ProcessingStep.materials).joinedload(StepMaterial.material_lot),
                selectinload(ProcessingStep.equipment).joinedload(StepEquipment.item),
                selectinload(ProcessingStep.units).joinedload(StepUnit.unit),
            )
            .order_by(ProcessingStep.performed_at, ProcessingStep.id)
        ).scalars()
    )
    # each lot with its disposition (one per lot, ever) in one statement
    lot_rows = session.execute(
        select(Lot, LotDisposition)
        .outerjoin(LotDisposition, LotDisposition.lot_id == Lot.id)
        .where(Lot.id.in_(select(CellRecord.lot_id).where(CellRecord.unit_id.in_(unit_ids))))
        .order_by(Lot.id)
    ).all()
    lots = [lot for lot, _ in lot_rows]
    dispositions = {lot.id: disposition for lot, disposition in lot_rows if disposition}
    lot_ids = [lot.id for lot in lots]
    results = list(
        session.execute(
            select(QcResult)
            .where(QcResult.lot_id.in_(lot_ids))
            .order_by(QcResult.lot_id, QcResult.test_code, QcResult.id)
        ).scalars()
    )
    events = list(
        session.execute(
            # each event's unit is one of ``units``, read from the session, not joined again
            select(UnitEvent)
            .where(UnitEvent.unit_id.in_(unit_ids))
            .order_by(UnitEvent.at, UnitEvent.id)
        ).scalars()
    )
    # the latest determination: the one in force, or the one a later result re-opened
    determination = session.execute(
        select(EligibilityDetermination)
        .where(EligibilityDetermination.donation_id == donation.id)
        .order_by(EligibilityDetermination.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    # the donation's results in id order, read through the relation, which the
    # determination's signed content then reads again without a query
    tests: list[DonorTestResult] = list(donation.results)
    order_ids = [order.id for order in orders]
    shipments = {
        item.dose_order_id: item.shipment
        for item in session.execute(
            select(ShipmentItem)
            .where(ShipmentItem.dose_order_id.in_(order_ids))
            .options(joinedload(ShipmentItem.shipment))
        ).scalars()
    }
    thaws = list(
        session.execute(
            select(Thaw).where(Thaw.dose_order_id.in_(order_ids)).order_by(Thaw.started_at, Thaw.id)
        ).scalars()
    )
    checks = list(
        session.execute(
            select(BedsideCheck)
            .where(BedsideCheck.dose_order_id.in_(order_ids))
            .options(joinedload(BedsideCheck.patient))
            .order_by(BedsideCheck.checked_at, BedsideCheck.id)
        ).scalars()
    )
    infusions = (
        # the start, already read: an order is infused once, ever (unique ``dose_order_id``)
        {infused.dose_order_id: infused}
        if infused is not None
        else {
            infusion.dose_order_id: infusion
            for infusion in session.execute(
                select(Infusion).where(Infusion.dose_order_id.in_(order_ids))
            ).scalars()
        }
    )

    recalls = list(
        session.execute(
            select(Recall)
            .where(
                Recall.id.in_(select(RecallUnit.recall_id).where(RecallUnit.unit_id.in_(unit_ids)))
            )
            .order_by(Recall.id)
        ).scalars()
    )
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
    wanted = {user_id for user_id in ids if user_id is not None}
    if not wanted:
        return []
    return list(
        session.execute(select(User).where(User.id.in_(wanted)).options(joinedload(User.role_rows)))
        .unique()
        .scalars()
    )
