"""A deviation's page offers closing and authorising exactly where the service accepts them;
a lot's batch record offers the controlled-rate freezing once."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from cellchain.core.models import User
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.deviations.deviations import (
    DEVIATION_TRANSITIONS,
    DeviationAction,
    DeviationStatus,
)
from cellchain.manufacturing.models import Deviation, DeviationCategory, ExcursionAuthorisation
from cellchain.manufacturing.processing import processing
from cellchain.manufacturing.processing.processing import LotAction

NOW = utcnow()
QA = SimpleNamespace(id=1, roles=frozenset({Role.QA}))


def deviation(status: DeviationStatus, category: DeviationCategory, authorised: bool) -> Deviation:
    return Deviation(
        id=1,
        status=status.value,
        category=category.value,
        closed_at=NOW if status == DeviationStatus.CLOSED else None,
        authorisation=ExcursionAuthorisation(
            justification="why", max_passage=9, authorised_by=User(full_name="Alex QA")
        )
        if authorised
        else None,
    )


@pytest.mark.parametrize("authorised", [False, True])
@pytest.mark.parametrize("category", list(DeviationCategory))
@pytest.mark.parametrize("status", list(DeviationStatus))
def test_a_deviation_act_is_offered_exactly_where_the_service_accepts_it(
    status: DeviationStatus, category: DeviationCategory, authorised: bool
) -> None:
    offered = deviations.deviation_actions(deviation(status, category, authorised))
    # what the page asked before
    is_open = status == DeviationStatus.OPEN
    assert (DeviationAction.CLOSE in offered) == is_open
    assert (DeviationAction.AUTHORISE in offered) == (
        is_open and category == DeviationCategory.LIMIT_EXCURSION and not authorised
    )
    assert (DeviationAction.CLOSE in offered) == (
        DeviationStatus.CLOSED in DEVIATION_TRANSITIONS[status]
    )
    # authorising: past the state checks, the service refuses the empty justification
    try:
        deviations.authorise_excursion(
            None,
            deviation(status, category, authorised),
            max_passage=None,
            max_cumulative_pd=None,
            justification=" ",
            user=QA,
            password="-",
            now=NOW,
        )
    except InvalidInput:
        assert DeviationAction.AUTHORISE in offered
    except Conflict:
        assert DeviationAction.AUTHORISE not in offered
    # closing a closed deviation is refused (an open one is closed: tests/manufacturing)
    if DeviationAction.CLOSE not in offered:
        with pytest.raises(Conflict, match="already closed"):
            deviations.close_deviation(
                None,
                deviation(status, category, authorised),
                resolution="done",
                user=QA,
                password="-",
                now=NOW,
            )


def test_a_lot_is_offered_its_freezing_until_it_is_frozen(desk: Any) -> None:
    lot, bench = desk.lot, desk.bench
    assert processing.lot_actions(db.session, lot) == {LotAction.FREEZE}
    freeze = {
        "context": bench.context(equipment_ids=(bench.equipment["CRF-01"].id,)),
        "actor": bench.lab.tech,
    }
    processing.freeze_lot(db.session, lot, now=utcnow(), **freeze)
    db.session.commit()
    assert processing.lot_actions(db.session, lot) == frozenset()
    with pytest.raises(Conflict, match="already been frozen"):
        processing.freeze_lot(db.session, lot, now=utcnow() + dt.timedelta(minutes=1), **freeze)
