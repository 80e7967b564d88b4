"""Two technicians taking the last of a lot at once (issue 22), on PostgreSQL and SQLite
(review 2 item 6): the lot's row is locked (PostgreSQL) or the database's write lock is taken
before what remains is read (SQLite), so the second sees the first one's use and is refused;
what remains never goes below zero."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from cellchain.core.types import utcnow
from cellchain.errors import Conflict
from cellchain.extensions import db
from cellchain.manufacturing.models import MaterialLot, StepMaterial, StockAdjustmentKind
from cellchain.manufacturing.processing import processing
from cellchain.manufacturing.stock import service as stock
from tests.conftest import at_once


def test_two_uses_of_the_last_millilitres_one_refused(app: Any, stocked: Any, make_user: Any):
    medium = stocked.lots["medium"]
    stocked.isolate("medium", quantities={"medium": 900})  # 100 mL left
    donations = [stocked.bench.lab.eligible_donation() for _ in range(2)]
    tissue = {d.id: d.units[0].id for d in donations}
    context = stocked.context("medium", material_quantities={medium.id: 70})
    second = make_user("tess", "technician")
    users = [stocked.tech.id, second.id]

    def isolate(donation_id: int, user_id: int):
        def job() -> str:
            from cellchain.chain import service as chain
            from cellchain.donors import service as donors

            try:
                processing.isolate(
                    db.session,
                    donors.get_donation(db.session, donation_id),
                    tissue=[chain.get_unit(db.session, tissue[donation_id])],
                    method="enzymatic",
                    vessels=[processing.Vessel("T175", 1.0e6)] * 2,
                    context=context,
                    actor=db.session.get(type(stocked.tech), user_id),
                    now=utcnow(),
                )
                db.session.commit()
                return "used"
            except Conflict:
                db.session.rollback()
                return "refused"

        return job

    jobs = [isolate(d.id, u) for d, u in zip(donations, users, strict=True)]
    assert sorted(at_once(app, jobs)) == ["refused", "used"]
    db.session.expire_all()
    assert stock.remaining_of(db.session, [medium.id])[medium.id] == 30
    uses = db.session.scalar(
        select(func.count())
        .select_from(StepMaterial)
        .where(StepMaterial.material_lot_id == medium.id)
    )
    assert uses == 2  # the first isolation and one of the two


def test_a_write_off_racing_a_use_cannot_take_more_than_remains(app: Any, stocked: Any) -> None:
    medium = stocked.lots["medium"]
    donation = stocked.bench.lab.eligible_donation()
    tissue_id, tech_id = donation.units[0].id, stocked.tech.id
    context = stocked.context("medium", material_quantities={medium.id: 600})

    def use() -> str:
        from cellchain.chain import service as chain
        from cellchain.donors import service as donors

        try:
            processing.isolate(
                db.session,
                donors.get_donation(db.session, donation.id),
                tissue=[chain.get_unit(db.session, tissue_id)],
                method="enzymatic",
                vessels=[processing.Vessel("T175", 1.0e6)] * 2,
                context=context,
                actor=db.session.get(type(stocked.tech), tech_id),
                now=utcnow(),
            )
            db.session.commit()
            return "used"
        except Conflict:
            db.session.rollback()
            return "refused"

    def write_off() -> str:
        try:
            stock.adjust_stock(
                db.session,
                db.session.get(MaterialLot, medium.id),
                stock.AdjustmentInput(StockAdjustmentKind.WRITE_OFF, 600, "Damaged carton"),
                actor=db.session.get(type(stocked.tech), tech_id),
                now=utcnow(),
            )
            db.session.commit()
            return "written off"
        except Conflict:
            db.session.rollback()
            return "refused"

    outcomes = sorted(at_once(app, [use, write_off]))
    assert outcomes in (["refused", "used"], ["refused", "written off"])
    db.session.expire_all()
    assert stock.remaining_of(db.session, [medium.id])[medium.id] == 400
