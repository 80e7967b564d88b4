"""Two technicians passaging the same vessel at once on PostgreSQL: one consumption."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from cellchain.chain import service as chain
from cellchain.core.types import utcnow
from cellchain.errors import Conflict
from cellchain.extensions import db
from cellchain.manufacturing import processing
from cellchain.manufacturing.models import ProcessingStep


@pytest.mark.postgres_only
def test_one_vessel_two_technicians_one_passage(app, bench, make_user):
    lab = bench.lab
    [vessel] = bench.outputs(bench.isolate(lab.eligible_donation(), vessels=1))
    technicians = [lab.tech.id, make_user("tess", "technician").id]
    vessel_id = vessel.id
    barrier = threading.Barrier(len(technicians))
    outcomes: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def passage(user_id: int) -> None:
        try:
            with app.app_context():
                session = db.session
                parent = chain.get_unit(session, vessel_id)
                actor = session.get(type(lab.tech), user_id)
                barrier.wait(timeout=30)
                try:
                    processing.passage(
                        session,
                        vessels_in=[parent],
                        harvest=processing.Harvest(4.0e6, 95.0),
                        vessels_out=[processing.Vessel("T175", 1.0e6)] * 2,
                        context=bench.context(),
                        actor=actor,
                        now=utcnow(),
                    )
                    session.commit()
                    result = "passaged"
                except Conflict:
                    session.rollback()
                    result = "refused"
                with lock:
                    outcomes.append(result)
                db.session.remove()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=passage, args=(user_id,)) for user_id in technicians]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert sorted(outcomes) == ["passaged", "refused"]
    db.session.expire_all()
    passages = db.session.scalar(
        select(func.count()).select_from(ProcessingStep).where(ProcessingStep.kind == "passage")
    )
    assert passages == 1
    assert chain.get_unit(db.session, vessel_id).status == "consumed"
