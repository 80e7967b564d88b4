"""The dose page offers the second check exactly in the statuses from which the service
accepts it, which are those the transition table lets become prepared."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.dosing import orders
from cellchain.dosing.models import DOSE_TRANSITIONS, DoseOrder, DoseStatus
from cellchain.dosing.orders import DoseAction, DoseRefused
from cellchain.errors import Conflict

#: Not the preparer (``prepared_by_id=2``), and holding the permission to check doses.
CHECKER = SimpleNamespace(id=1, roles=frozenset({Role.QA}))


def order(status: DoseStatus) -> DoseOrder:
    return DoseOrder(id=1, status=status.value, volume_ml=10.0, prepared_by_id=2, bags=[])


def check_gets_past_the_status(status: DoseStatus) -> bool:
    """Whether the second check got past its state check: it then refuses the wrong volume."""
    try:
        orders.second_check(
            None,
            order(status),
            checker=CHECKER,
            password="-",
            volume_ml=11.0,
            bag_codes=[],
            now=utcnow(),
        )
    except DoseRefused:
        return True
    except Conflict:
        return False
    raise AssertionError("the second check accepted the wrong volume")


@pytest.mark.parametrize("status", list(DoseStatus))
def test_the_second_check_is_offered_exactly_where_the_service_accepts_it(
    status: DoseStatus,
) -> None:
    offered = orders.dose_actions(order(status))
    assert (DoseAction.SECOND_CHECK in offered) == (status == DoseStatus.ALLOCATED)
    assert (DoseAction.SECOND_CHECK in offered) == (DoseStatus.PREPARED in DOSE_TRANSITIONS[status])
    assert check_gets_past_the_status(status) == (DoseAction.SECOND_CHECK in offered)
