"""A bag once allocated to a dose of site B's patient, the dose cancelled and the bag back in
the lab, then given to site A's patient: its codes are site A's (the thaw, the bedside check
and its custody events), not 'never issued' (``doses.issued_site_columns`` and
``scope._hidden_units`` skip a cancelled dose's bags)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.chain.models import UnitEvent
from cellchain.core.types import utcnow
from cellchain.dosing import exceptions, orders
from cellchain.extensions import db
from cellchain.sites import scope
from tests.conftest import TEST_PASSWORD
from tests.sites.test_site_scope import second_site
from tests.support.ward import Ward, payload


@dataclass(frozen=True)
class Reallocated:
    order: Any  #: site A's patient's dose, drawing on a bag of site B's cancelled dose
    bag: Any  #: that bag's unit
    first_patient: Any  #: the cancelled dose's patient

    def move_first_patient(self) -> None:
        """The cancelled dose's patient to a second site, BER (after any shipment: with two
        clinical sites a shipment must name its destination)."""
        self.first_patient.site_id = second_site().id
        db.session.commit()
        assert self.order.patient.site_id != self.first_patient.site_id


@pytest.fixture
def reallocated(ward: Ward) -> Reallocated:
    """A patient's dose ordered, then cancelled (its bags back in the lab); site A's
    patient's dose drawn on the same bags. The first patient moves to site B when the test
    says (``move_first_patient``)."""
    at_b = ward.patient()
    first = orders.order_dose(db.session, at_b, "D0", actor=ward.lab.tech, now=utcnow(), zone=UTC)
    db.session.commit()
    first_bags = {bag.unit_id for bag in first.bags}
    exceptions.cancel_dose(
        db.session,
        first,
        actor=ward.lab.tech,
        password=TEST_PASSWORD,
        reason="patient withdrew",
        now=utcnow(),
    )
    db.session.commit()
    order = ward.prepared()
    shared = [bag.unit for bag in order.bags if bag.unit_id in first_bags]
    assert shared, "the second dose did not draw on the first's bags"
    return Reallocated(order, shared[0], at_b)


def test_site_a_thaws_its_own_reallocated_bag(
    ward: Ward, clients: Any, reallocated: Reallocated
) -> None:
    ward.receive(ward.ship(reallocated.order))
    reallocated.move_first_patient()
    answer = clients.api(ward.clinic.clinician).post(
        "/api/v1/thaw", json={"scan": payload(reallocated.bag.code)}
    )
    assert answer.status_code == 200, answer.get_json()


def test_site_a_bedside_check_of_own_reallocated_bag(
    ward: Ward, clients: Any, reallocated: Reallocated
) -> None:
    order = reallocated.order
    ward.receive(ward.ship(order))
    ward.thaw(order)  # outside a request: no site filter
    reallocated.move_first_patient()
    answer = clients.api(ward.clinic.clinician).post(
        "/api/v1/bedside/checks",
        json={"wristband": payload(order.patient.coi), "label": payload(reallocated.bag.code)},
    )
    assert answer.status_code == 201, answer.get_json()
    assert "has not issued" not in str(answer.get_json())


def test_site_a_sees_the_custody_events_of_its_own_reallocated_bag(
    reallocated: Reallocated,
) -> None:
    reallocated.move_first_patient()
    count = select(func.count()).select_from(UnitEvent)
    count = count.where(UnitEvent.unit_id == reallocated.bag.id)
    everyone = db.session.scalar(count)
    db.session.expire_all()
    with scope.restricted_to(frozenset({reallocated.order.patient.site_id})):
        own_site = db.session.scalar(count)
    assert everyone and own_site == everyone, (everyone, own_site)
