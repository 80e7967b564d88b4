"""A donation's page offers the receipt and the start of processing exactly in the statuses
(and eligibility) from which the service accepts them."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from cellchain.core.types import utcnow
from cellchain.donors import service
from cellchain.donors.models import (
    DONATION_TRANSITIONS,
    ContainerCondition,
    Donation,
    DonationStatus,
    Eligibility,
)
from cellchain.donors.service import DonationAction, Receipt
from cellchain.errors import Conflict

NOW = utcnow()
TECH = SimpleNamespace(id=1)


def donation(status: DonationStatus, eligibility: Eligibility) -> SimpleNamespace:
    return SimpleNamespace(
        id=1,
        din="X9999260000011",
        status=status.value,
        eligibility=eligibility.value,
        collected_at=NOW - dt.timedelta(hours=4),
        delivery_at=NOW - dt.timedelta(hours=4),
        received_at=NOW - dt.timedelta(hours=1),
        processing_started_at=None,
        product_definition=SimpleNamespace(parameters={"max_hours_birth_to_processing": 48}),
        units=[],
    )


@pytest.mark.parametrize("eligibility", list(Eligibility))
@pytest.mark.parametrize("status", list(DonationStatus))
def test_a_donation_act_is_offered_exactly_where_the_service_accepts_it(
    status: DonationStatus, eligibility: Eligibility
) -> None:
    offered = service.donation_actions(donation(status, eligibility))
    # what the page asked before
    assert (DonationAction.RECEIVE in offered) == (status == DonationStatus.REGISTERED)
    assert (DonationAction.START_PROCESSING in offered) == (
        status == DonationStatus.RECEIVED and eligibility != Eligibility.INELIGIBLE
    )
    # each offered act ends where the table allows
    if DonationAction.RECEIVE in offered:
        assert {DonationStatus.RECEIVED, DonationStatus.REJECTED} <= DONATION_TRANSITIONS[status]
    if DonationAction.START_PROCESSING in offered:
        assert DonationStatus.PROCESSING in DONATION_TRANSITIONS[status]
    # and the service refuses every act not offered
    if DonationAction.RECEIVE not in offered:
        receipt = Receipt(
            received_at=NOW - dt.timedelta(hours=1),
            temperature_c=20.0,
            condition=ContainerCondition.INTACT,
            accept=True,
        )
        with pytest.raises(Conflict):
            service.receive_donation(
                None,
                donation(status, eligibility),
                receipt,
                actor=TECH,
                now=NOW,
            )
    if DonationAction.START_PROCESSING not in offered:
        with pytest.raises(Conflict):
            service.start_processing(
                None,
                donation(status, eligibility),
                actor=TECH,
                now=NOW,
            )


def test_a_real_donation_gives_the_same_answer() -> None:
    registered = Donation(status=DonationStatus.REGISTERED.value, eligibility="pending")
    assert service.donation_actions(registered) == {DonationAction.RECEIVE}
