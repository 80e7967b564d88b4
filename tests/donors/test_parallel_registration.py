"""Twenty donations registered at the same moment get twenty DINs numbered 1..20, with no gap
and no duplicate, and forty distinct container codes (DESIGN.md rule 6: proven on PostgreSQL
with parallel transactions; SQLite serialises writers, so there it proves nothing and skips).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from cellchain.core import audit
from cellchain.core.identifiers import parse_identifier
from cellchain.core.models import IssuedIdentifier, User
from cellchain.core.types import utcnow
from cellchain.donors import service
from cellchain.donors.models import Donation, Donor
from cellchain.extensions import db
from tests.support.lab import UTC, registration

WORKERS = 20
DEADLINE = 60  # seconds a worker may wait at the barrier or take to finish


@dataclass(frozen=True)
class Registered:
    din: str
    donor_code: str
    unit_codes: tuple[str, ...]


def run_in_parallel(work: Callable[[int], Registered]) -> list[Registered]:
    """Run ``work(i)`` in WORKERS threads released together; every result, or the failures."""
    barrier = threading.Barrier(WORKERS)
    results: list[Registered] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=DEADLINE)
            done = work(index)
            with lock:
                results.append(done)
        except BaseException as error:  # reported below, with the others
            with lock:
                failures.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE)
    assert not any(thread.is_alive() for thread in threads), "a worker did not finish"
    assert failures == []
    return results


def assert_twenty_distinct_donations(app: Flask, results: list[Registered]) -> None:
    facility = app.config["FACILITY_CODE"]
    dins = [r.din for r in results]
    assert len(dins) == len(set(dins)) == WORKERS
    parsed = [parse_identifier(din) for din in dins]
    assert {(p.kind, p.facility_code) for p in parsed} == {("DIN", facility)}
    assert len({p.year for p in parsed}) == 1
    assert sorted(p.sequence for p in parsed) == list(range(1, WORKERS + 1))

    unit_codes = [code for r in results for code in r.unit_codes]
    assert len(unit_codes) == len(set(unit_codes)) == 2 * WORKERS
    for r in results:
        assert {parse_identifier(code).din for code in r.unit_codes} == {r.din[:-1]}

    donor_codes = [r.donor_code for r in results]
    assert len(set(donor_codes)) == WORKERS
    assert sorted(int(code.rsplit("-", 1)[1]) for code in donor_codes) == list(
        range(1, WORKERS + 1)
    )

    db.session.rollback()  # see what the workers committed
    stored = db.session.execute(select(Donation.din)).scalars().all()
    assert sorted(stored) == sorted(dins)
    assert db.session.execute(select(func.count(Donor.id))).scalar_one() == WORKERS
    issued_dins = db.session.execute(
        select(IssuedIdentifier.code, IssuedIdentifier.entity_type).where(
            IssuedIdentifier.kind == "DIN"
        )
    ).all()
    assert sorted(issued_dins) == sorted((din, "donation") for din in dins)
    report = audit.verify_chain(db.session)
    assert report.intact, report.problem


@pytest.mark.postgres_only
def test_twenty_parallel_registrations_through_the_service(lab):
    app, tech_id = lab.app, lab.tech.id

    def register(index: int) -> Registered:
        with app.app_context():
            try:
                actor = db.session.get(User, tech_id)
                assert actor is not None
                donation = service.register_donation(
                    db.session,
                    registration(collector=f"Midwife {index}"),
                    facility_code=app.config["FACILITY_CODE"],
                    site_zone=UTC,
                    actor=actor,
                    now=utcnow(),
                )
                db.session.commit()
                return Registered(
                    din=donation.din,
                    donor_code=donation.donor.code,
                    unit_codes=tuple(unit.code for unit in donation.units),
                )
            finally:
                db.session.remove()

    assert_twenty_distinct_donations(app, run_in_parallel(register))


@pytest.mark.postgres_only
def test_twenty_parallel_registrations_through_the_api(lab, clients):
    apis = [clients.api(lab.tech) for _ in range(WORKERS)]  # one token and client each
    now = utcnow().replace(microsecond=0)
    today = now.date()
    body: dict[str, Any] = {
        "consent_date": today.isoformat(),
        "consent_form_version": "ICF v3.1",
        "screening_outcome": "acceptable",
        "screening_date": today.isoformat(),
        "umbilical_cord": True,
        "placenta": True,
        "delivery_at": now.isoformat(),
        "collected_at": now.isoformat(),
        "collection_site": "Maternity ward, City Hospital",
        "collector": "Midwife R. Okafor",
        "transport_conditions": "2–8 °C validated shipper",
    }

    def register(index: int) -> Registered:
        response = apis[index].post("/api/v1/donations", json=body)
        assert response.status_code == 201, response.get_data(as_text=True)
        created = response.get_json()
        return Registered(
            din=created["din"],
            donor_code=created["donor"]["code"],
            unit_codes=tuple(unit["code"] for unit in created["units"]),
        )

    assert_twenty_distinct_donations(lab.app, run_in_parallel(register))
