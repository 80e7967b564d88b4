"""Two technicians passaging the same vessel at once on PostgreSQL: one consumption."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cellchain.chain import service as chain
from cellchain.core.types import utcnow
from cellchain.errors import Conflict
from cellchain.extensions import db
from cellchain.manufacturing.models import ProcessingStep
from cellchain.manufacturing.processing import processing
from tests.conftest import at_once


@pytest.mark.postgres_only
def test_one_vessel_two_technicians_one_passage(app, bench, make_user):
    lab = bench.lab
    [vessel] = bench.outputs(bench.isolate(lab.eligible_donation(), vessels=1))
    vessel_id, context = vessel.id, bench.context()

    def passage_by(user_id: int):
        def job() -> str:
            try:
                processing.passage(
                    db.session,
                    vessels_in=[chain.get_unit(db.session, vessel_id)],
                    harvest=processing.Harvest(4.0e6, 95.0),
                    vessels_out=[processing.Vessel("T175", 1.0e6)] * 2,
                    context=context,
                    actor=db.session.get(type(lab.tech), user_id),
                    now=utcnow(),
                )
                db.session.commit()
                return "passaged"
            except Conflict:
                db.session.rollback()
                return "refused"

        return job

    technicians = [lab.tech.id, make_user("tess", "technician").id]
    assert at_once(app, [passage_by(user_id) for user_id in technicians]) == [
        "passaged",
        "refused",
    ]
    db.session.expire_all()
    passages = db.session.scalar(
        select(func.count()).select_from(ProcessingStep).where(ProcessingStep.kind == "passage")
    )
    assert passages == 1
    assert chain.get_unit(db.session, vessel_id).status == "consumed"
