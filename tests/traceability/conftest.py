"""Fixtures for traceability: the clinic's ward (a released lot, patients, the bedside) and a
helper that takes a dose all the way to an infusion."""

from __future__ import annotations

from typing import Any

import pytest

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.traceability import recalls
from cellchain.traceability.models import RecallTarget
from tests.clinic.conftest import Ward, ward  # noqa: F401  (fixture)
from tests.conftest import TEST_PASSWORD
from tests.dosing.conftest import clinic, released  # noqa: F401  (fixtures)
from tests.manufacturing.conftest import bench  # noqa: F401  (fixture)
from tests.quality.conftest import desk, spec  # noqa: F401  (fixtures)


def infuse(ward: Ward, patient: Any = None) -> Any:  # noqa: F811
    """A dose taken through shipment, thaw, bedside check and sign-off to a started infusion."""
    patient, order = ward.at_bedside(patient)
    started = ward.start(ward.sign(ward.verify(patient, order)))
    assert started.infusion is not None, started
    return started.infusion


def open_recall(ward: Ward, target: RecallTarget, target_id: int, **changes: Any) -> Any:  # noqa: F811
    values: dict[str, Any] = {
        "reason": "Late donor test: HBV NAT reactive on the retained sample.",
        "user": ward.lab.qa,
        "password": TEST_PASSWORD,
        "now": utcnow(),
    }
    values.update(changes)
    opened = recalls.open_recall(db.session, target=target, target_id=target_id, **values)
    db.session.commit()
    return opened


@pytest.fixture
def infused(ward: Ward) -> Any:  # noqa: F811
    """One patient infused from the released lot, and one with a dose prepared but not shipped."""
    infusion = infuse(ward)
    waiting = ward.prepared()
    return infusion, waiting
