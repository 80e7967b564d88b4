"""A shipment's and an infusion's pages offer an act exactly in the statuses from which the
service accepts it; the acts that change the status end where the transition table allows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from cellchain.clinic.bedside import infusions
from cellchain.clinic.bedside.infusions import InfusionAction, InfusionEnd
from cellchain.clinic.models import (
    INFUSION_TRANSITIONS,
    SHIPMENT_TRANSITIONS,
    Infusion,
    InfusionStatus,
    Shipment,
    ShipmentStatus,
)
from cellchain.clinic.shipments import shipments
from cellchain.clinic.shipments.shipments import HandOff, Receipt, ShipmentAction
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.dosing.models import DoseOrder
from cellchain.errors import Conflict, InvalidInput

NOW = utcnow()
QA = SimpleNamespace(id=1, roles=frozenset({Role.QA}))

#: What the shipment page offered, status by status, before the service said it.
SHIPMENT_PAGE = {
    ShipmentStatus.IN_TRANSIT: {ShipmentAction.HAND_OFF, ShipmentAction.RECEIVE},
    ShipmentStatus.HELD: {ShipmentAction.DECIDE},
    ShipmentStatus.RECEIVED: set(),
    ShipmentStatus.REJECTED: set(),
}
#: The statuses each status-changing act may end in.
SHIPMENT_ENDS = {
    ShipmentAction.RECEIVE: {ShipmentStatus.RECEIVED, ShipmentStatus.HELD},
    ShipmentAction.DECIDE: {ShipmentStatus.RECEIVED, ShipmentStatus.REJECTED},
}


def shipment(status: ShipmentStatus) -> Shipment:
    return Shipment(
        id=1, status=status.value, shipper_id="DS-1", dispatched_at=NOW - dt.timedelta(hours=2)
    )


def accepted(act: Callable[[], object]) -> bool:
    """Whether the service got past its state check: it then refuses the empty input."""
    try:
        act()
    except InvalidInput:
        return True
    except Conflict:
        return False
    raise AssertionError("the service accepted an empty form")


@pytest.mark.parametrize("status", list(ShipmentStatus))
def test_a_shipment_act_is_offered_exactly_where_the_service_accepts_it(
    status: ShipmentStatus,
) -> None:
    offered = shipments.shipment_actions(shipment(status))
    assert offered == SHIPMENT_PAGE[status]
    for act, ends in SHIPMENT_ENDS.items():
        if act in offered:
            assert ends <= SHIPMENT_TRANSITIONS[status]
    accepts = {
        ShipmentAction.HAND_OFF: lambda: shipments.hand_off(
            None, shipment(status), HandOff(scan="", counterparty="courier"), actor=QA, now=NOW
        ),
        ShipmentAction.RECEIVE: lambda: shipments.receive(
            None,
            shipment(status),
            Receipt(scan="", temperature_c=None, condition="intact", logger_excursion=False),
            actor=QA,
            now=NOW,
        ),
        ShipmentAction.DECIDE: lambda: shipments.decide_hold(
            None, shipment(status), accept=True, reason=" ", user=QA, password="-", now=NOW
        ),
    }
    assert {act for act, call in accepts.items() if accepted(call)} == offered


def infusion(status: InfusionStatus) -> Infusion:
    return Infusion(
        id=1,
        status=status.value,
        started_at=NOW - dt.timedelta(hours=1),
        dose_order=DoseOrder(volume_ml=10.0),
    )


@pytest.mark.parametrize("status", list(InfusionStatus))
def test_an_infusion_is_ended_where_the_table_lets_it_end_and_followed_up_after(
    status: InfusionStatus,
) -> None:
    offered = infusions.infusion_actions(infusion(status))
    running = status == InfusionStatus.IN_PROGRESS  # what the page asked before
    assert (InfusionAction.END in offered) == running
    assert (InfusionAction.FOLLOW_UP in offered) == (not running)
    assert (InfusionAction.END in offered) == (
        {InfusionStatus.COMPLETED, InfusionStatus.STOPPED} <= INFUSION_TRANSITIONS[status]
    )
    for stopped_early in (False, True):
        form = InfusionEnd(volume_infused_ml=-1.0, rate_ml_per_h=0.0, stopped_early=stopped_early)
        assert accepted(
            lambda form=form: infusions.end(None, infusion(status), form, actor=QA, now=NOW)
        ) == (InfusionAction.END in offered)
