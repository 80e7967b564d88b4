"""A bag once allocated to a dose of site B's patient, the dose cancelled and the bag back in
the lab, then given to site A's patient: its codes are site A's (the thaw, the bedside check
and its custody events), not 'never issued' (``doses.issued_site_columns`` and
``scope._hidden_units`` skip a cancelled dose's bags)."""

from __future__ import annotations

from typing import Any

from cellchain.core.types import utcnow
from cellchain.dosing import exceptions
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.sites.test_site_scope import site_b_clinician
from tests.support.ward import Ward, payload


def test_site_a_thaws_its_own_reallocated_bag(ward: Ward, clients: Any, make_user: Any) -> None:
    from datetime import UTC

    from cellchain.dosing import orders

    # a patient of site B whose dose is ordered (bags allocated) then cancelled
    pb = ward.patient()
    first = orders.order_dose(db.session, pb, "D0", actor=ward.lab.tech, now=utcnow(), zone=UTC)
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
    # site A's patient: the same bags are allocated again
    order = ward.prepared()
    shared = first_bags & {bag.unit_id for bag in order.bags}
    assert shared, "the second dose did not draw on the same bags (proof needs them)"
    ward.receive(ward.ship(order))
    bea = site_b_clinician(make_user)  # makes site BER
    berlin = bea_sites(bea)[0]
    pb.site_id = berlin.id  # site B's patient (enrolled at site A by the fixture, moved)
    db.session.commit()
    nurse = clients.api(ward.clinic.clinician)
    bag = next(b.unit for b in order.bags if b.unit_id in shared)
    answer = nurse.post("/api/v1/thaw", json={"scan": payload(bag.code)})
    assert answer.status_code == 200, answer.get_json()


def bea_sites(bea: Any) -> list[Any]:
    from cellchain.sites import service as sites

    return [s for s in sites.sites_of(db.session, bea) if s.clinical]


def test_site_a_bedside_check_of_own_reallocated_bag(
    ward: Ward, clients: Any, make_user: Any
) -> None:
    from datetime import UTC

    from cellchain.dosing import orders

    pb = ward.patient()
    first = orders.order_dose(db.session, pb, "D0", actor=ward.lab.tech, now=utcnow(), zone=UTC)
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
    patient = order.patient
    shared = first_bags & {bag.unit_id for bag in order.bags}
    assert shared
    ward.receive(ward.ship(order))
    ward.thaw(order)  # outside a request: no site filter
    bea = site_b_clinician(make_user)
    pb.site_id = bea_sites(bea)[0].id
    db.session.commit()
    bag = next(b.unit for b in order.bags if b.unit_id in shared)
    nurse = clients.api(ward.clinic.clinician)
    answer = nurse.post(
        "/api/v1/bedside/checks",
        json={"wristband": payload(patient.coi), "label": payload(bag.code)},
    )
    assert (
        answer.status_code == 201
        and "never issued" not in str(answer.get_json())
        and "has not issued" not in str(answer.get_json())
    ), answer.get_json()


def test_site_a_loses_custody_events_of_its_own_reallocated_bag(
    ward: Ward, clients: Any, make_user: Any
) -> None:
    from datetime import UTC

    from sqlalchemy import func, select

    from cellchain.chain.models import UnitEvent
    from cellchain.dosing import orders
    from cellchain.sites import scope

    pb = ward.patient()
    first = orders.order_dose(db.session, pb, "D0", actor=ward.lab.tech, now=utcnow(), zone=UTC)
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
    shared = first_bags & {bag.unit_id for bag in order.bags}
    assert shared
    site_a = order.patient.site_id
    bea = site_b_clinician(make_user)
    pb.site_id = bea_sites(bea)[0].id
    db.session.commit()
    unit_id = next(iter(shared))
    q = select(func.count()).select_from(UnitEvent).where(UnitEvent.unit_id == unit_id)
    everyone = db.session.scalar(q)
    db.session.expire_all()
    with scope.restricted_to(frozenset({site_a})):
        own_site = db.session.scalar(q)
    assert own_site == everyone, (everyone, own_site)
