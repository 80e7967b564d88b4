"""A unit's page offers the next processing step exactly where the chain would take the unit
as a step's input (``require_usable``)."""

from __future__ import annotations

import pytest

from cellchain.chain import service
from cellchain.chain.models import UNIT_TRANSITIONS, Unit, UnitStatus
from cellchain.chain.service import UnitAction
from cellchain.core import actions
from cellchain.errors import Conflict


@pytest.mark.parametrize("status", list(UnitStatus))
def test_processing_is_offered_exactly_where_the_chain_takes_the_unit(status: UnitStatus) -> None:
    unit = Unit(code="X9999260000011", status=status.value)
    offered = UnitAction.PROCESS in service.unit_actions(unit)
    try:
        service.require_usable([unit])
    except Conflict:
        taken = False
    else:
        taken = True
    assert offered == taken
    # what the page offered before: quarantine and available units
    assert offered == (status in {UnitStatus.QUARANTINE, UnitStatus.AVAILABLE})


def test_a_unit_is_processed_only_where_the_table_lets_a_step_use_it_up() -> None:
    assert service.UNIT_ACTIONS[UnitAction.PROCESS] == actions.leading_to(
        UNIT_TRANSITIONS, UnitStatus.CONSUMED
    )
