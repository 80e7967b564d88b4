"""Technicians consuming the same vessel at the same moment: exactly one derivation wins."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cellchain.chain import service as chain
from cellchain.chain.models import LineageEdge, LineageOperation, UnitKind
from cellchain.core.types import utcnow
from cellchain.errors import Conflict
from cellchain.extensions import db
from tests.conftest import at_once


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
    vessel_id, tech_id = vessel.id, lab.tech.id

    def passage() -> str:
        try:
            chain.derive_units(
                db.session,
                parents=[chain.get_unit(db.session, vessel_id)],
                kind=UnitKind.CULTURE_VESSEL,
                operation=LineageOperation.PASSAGE,
                count=2,
                location="INC-2",
                actor=db.session.get(type(lab.tech), tech_id),
                now=utcnow(),
                consume_parents=True,
            )
            db.session.commit()
            return "derived"
        except Conflict:
            db.session.rollback()
            return "refused"

    assert at_once(app, [passage] * 4) == ["derived", "refused", "refused", "refused"]
    db.session.expire_all()
    children = db.session.scalar(
        select(func.count()).select_from(LineageEdge).where(LineageEdge.parent_id == vessel_id)
    )
    assert children == 2
    assert chain.get_unit(db.session, vessel_id).status == "consumed"
