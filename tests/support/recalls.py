"""Fixtures for traceability: the clinic's ward (a released lot, patients, the bedside) and a
helper that takes a dose all the way to an infusion."""

from __future__ import annotations

from typing import Any

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.traceability.models import RecallTarget
from cellchain.traceability.recalls import recalls
from tests.conftest import TEST_PASSWORD
from tests.support.ward import Ward


def infuse(ward: Ward, patient: Any = None) -> Any:
    """A dose taken through shipment, thaw, bedside check and sign-off to a started infusion."""
    patient, order = ward.at_bedside(patient)
    started = ward.start(ward.sign(ward.verify(patient, order)))
    assert started.infusion is not None, started
    return started.infusion


def open_recall(ward: Ward, target: RecallTarget, target_id: int, **changes: Any) -> Any:
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
