"""Deviations: opened by anyone, closed by QA with a resolution and an e-signature."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cellchain.core import signatures
from cellchain.core.accounts import CredentialsRejected
from cellchain.core.models import AuditEntry, Signature
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import Deviation, DeviationCategory
from tests.conftest import TEST_PASSWORD, at_once
from tests.support.storage import make_lot


def open_one(bench: Any, lot: Any = None, **changes: Any) -> Deviation:
    values: dict[str, Any] = {
        "lot": lot,
        "category": DeviationCategory.PROCESS,
        "description": "Incubator door left open for 10 min during passage.",
        "actor": bench.lab.tech,
        "now": utcnow(),
    }
    values.update(changes)
    deviation = deviations.open_deviation(db.session, **values)
    db.session.commit()
    return deviation


def close(bench: Any, deviation: Deviation, password: str = TEST_PASSWORD, **changes: Any):
    values: dict[str, Any] = {
        "resolution": "Impact assessed: none; operator retrained.",
        "user": bench.lab.qa,
        "password": password,
        "now": utcnow(),
    }
    values.update(changes)
    signature = deviations.close_deviation(db.session, deviation, **values)
    db.session.commit()
    return signature


def test_an_open_deviation_on_a_lot_blocks_it_until_qa_closes_it(bench):
    lot, _bags = make_lot(bench, bags=1)
    other, _ = make_lot(bench, bags=1)
    deviation = open_one(bench, lot)
    assert deviation.status == "open" and deviation.lot_id == lot.id
    assert deviation.donation_id == lot.donation_id and deviation.opened_by_id == bench.lab.tech.id
    assert deviations.has_open_deviation(db.session, lot)
    assert not deviations.has_open_deviation(db.session, other)
    assert deviations.open_deviations_of(db.session, lot) == [deviation]

    signature = close(bench, deviation)
    assert signature.meaning == deviations.CLOSE_MEANING == "approval: deviation closed"
    assert signature.signer_id == bench.lab.qa.id
    db.session.expire_all()
    closed = deviations.get_deviation(db.session, deviation.id)
    assert closed.status == "closed" and closed.closed_by_id == bench.lab.qa.id
    assert closed.resolution == "Impact assessed: none; operator retrained." and closed.closed_at
    assert not deviations.has_open_deviation(db.session, lot)
    [manifest] = signatures.manifest(db.session, closed)
    assert manifest.valid and manifest.printed_name == bench.lab.qa.full_name
    actions = db.session.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.entity_type == "deviation")
        .order_by(AuditEntry.seq)
    ).all()
    assert actions == ["deviation.opened", "signature.signed", "deviation.closed"]


def test_the_signature_covers_the_resolution(bench):
    deviation = open_one(bench)
    close(bench, deviation)
    deviation.resolution = "Changed afterwards"  # what an edit behind the service's back does
    db.session.flush()
    [manifest] = signatures.manifest(db.session, deviation)
    assert not manifest.valid
    db.session.rollback()


def test_a_deviation_without_a_lot_and_the_lists(bench):
    lot, _ = make_lot(bench, bags=1)
    loose = open_one(bench, category="documentation", description="Logbook page missing.")
    on_lot = open_one(bench, lot, category=DeviationCategory.MATERIAL)
    assert loose.lot_id is None and loose.donation_id is None
    assert loose.category == "documentation"
    close(bench, loose)
    assert deviations.list_deviations(db.session) == [on_lot, loose]
    assert deviations.list_deviations(db.session, "open") == [on_lot]
    assert deviations.list_deviations(db.session, deviations.DeviationStatus.CLOSED) == [loose]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"description": "   "}, "description"),
        ({"description": "x" * (deviations.MAX_TEXT + 1)}, "description"),
        ({"category": "weather"}, "category"),
    ],
)
def test_a_deviation_needs_a_known_category_and_a_description(bench, changes, field):
    with pytest.raises(InvalidInput) as refused:
        open_one(bench, **changes)
    assert field in refused.value.errors
    db.session.rollback()
    assert deviations.list_deviations(db.session) == []


def test_closing_needs_a_resolution(bench):
    deviation = open_one(bench)
    with pytest.raises(InvalidInput) as refused:
        close(bench, deviation, resolution=" ")
    assert "resolution" in refused.value.errors
    db.session.rollback()
    assert deviations.get_deviation(db.session, deviation.id).status == "open"


def test_a_wrong_password_closes_nothing_and_signs_nothing(bench):
    deviation = open_one(bench)
    with pytest.raises(CredentialsRejected):
        close(bench, deviation, password="not the password")
    db.session.rollback()
    db.session.expire_all()
    again = deviations.get_deviation(db.session, deviation.id)
    assert again.status == "open" and again.resolution is None and again.closed_by_id is None
    assert signatures.manifest(db.session, again) == []
    assert (
        db.session.scalars(select(Signature).where(Signature.entity_type == "deviation")).all()
        == []
    )


def test_a_closed_deviation_cannot_be_closed_again(bench):
    deviation = open_one(bench)
    close(bench, deviation)
    with pytest.raises(Conflict, match="already closed by"):
        close(bench, deviation, resolution="Second opinion")
    db.session.rollback()
    assert len(signatures.manifest(db.session, deviation)) == 1
    assert deviations.get_deviation(db.session, deviation.id).resolution.startswith("Impact")


@pytest.mark.postgres_only
def test_two_qa_closing_at_once_end_with_one_closure(app, bench, make_user):
    deviation_id = open_one(bench).id
    signers = [bench.lab.qa.id, make_user("blair", "qa").id, make_user("casey", "qa").id]

    def close_as(user_id: int):
        def job() -> str:
            user = db.session.get(type(bench.lab.qa), user_id)
            try:
                deviations.close_deviation(
                    db.session,
                    deviations.get_deviation(db.session, deviation_id),
                    resolution=f"Closed by {user.username}",
                    user=user,
                    password=TEST_PASSWORD,
                    now=utcnow(),
                )
                db.session.commit()
                return "closed"
            except Conflict:
                db.session.rollback()
                return "refused"

        return job

    outcomes = at_once(app, [close_as(user_id) for user_id in signers])
    assert outcomes == ["closed", "refused", "refused"]
    db.session.expire_all()
    closed = deviations.get_deviation(db.session, deviation_id)
    [manifest] = signatures.manifest(db.session, closed)
    assert manifest.valid and closed.resolution == f"Closed by {manifest.username}"
