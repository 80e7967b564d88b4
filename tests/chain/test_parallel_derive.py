"""Two technicians consuming the same vessel at the same moment: exactly one derivation wins."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from cellchain.chain import service as chain
from cellchain.chain.models import LineageEdge, LineageOperation, UnitKind
from cellchain.core.types import utcnow
from cellchain.errors import Conflict
from cellchain.extensions import db


@pytest.mark.postgres_only
def test_a_vessel_is_consumed_once_however_many_ask_at_once(app, lab):
    donation = lab.receive(lab.register(placenta=False))
    [vessel] = chain.derive_units(
        lab.session,
        parents=donation.units,
        kind=UnitKind.CULTURE_VESSEL,
        operation=LineageOperation.ISOLATE,
        count=1,
        location="INC-1",
        actor=lab.tech,
        now=utcnow(),
    )
    lab.session.commit()
    vessel_id, tech_id, workers = vessel.id, lab.tech.id, 4
    barrier = threading.Barrier(workers)
    outcomes: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def passage() -> None:
        try:
            with app.app_context():
                session = db.session
                parent = chain.get_unit(session, vessel_id)
                actor = session.get(type(lab.tech), tech_id)
                barrier.wait(timeout=30)
                try:
                    chain.derive_units(
                        session,
                        parents=[parent],
                        kind=UnitKind.CULTURE_VESSEL,
                        operation=LineageOperation.PASSAGE,
                        count=2,
                        location="INC-2",
                        actor=actor,
                        now=utcnow(),
                        consume_parents=True,
                    )
                    session.commit()
                    result = "derived"
                except Conflict:
                    session.rollback()
                    result = "refused"
                with lock:
                    outcomes.append(result)
                db.session.remove()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=passage) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert sorted(outcomes) == ["derived"] + ["refused"] * (workers - 1)
    db.session.expire_all()
    children = db.session.scalar(
        select(func.count()).select_from(LineageEdge).where(LineageEdge.parent_id == vessel_id)
    )
    assert children == 2
    assert chain.get_unit(db.session, vessel_id).status == "consumed"
