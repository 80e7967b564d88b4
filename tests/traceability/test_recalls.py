"""Recalls: opening blocks every affected unit not yet infused (including at the bedside) and
lists exactly the exposed patients; notifications, closing, and every refusal."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.chain import service as chain
from cellchain.chain.models import UnitStatus
from cellchain.clinic.models import Verdict
from cellchain.core import signatures
from cellchain.core.accounts import CredentialsRejected
from cellchain.core.models import AuditEntry, User
from cellchain.core.types import utcnow
from cellchain.dosing import orders
from cellchain.dosing.models import DoseStatus
from cellchain.errors import Conflict, InvalidInput, NotFound
from cellchain.extensions import db
from cellchain.manufacturing.processing import processing, resources
from cellchain.quality import disposition
from cellchain.traceability.models import Recall, RecallStatus, RecallTarget, RecallUnit
from cellchain.traceability.recalls import recalls
from cellchain.traceability.trace import trace
from tests.conftest import TEST_PASSWORD, at_once
from tests.support.chain import grow
from tests.support.clinic import UTC
from tests.support.recalls import infuse, open_recall
from tests.support.statements import counting_statements


def notify(ward: Any, recall: Recall, patient: Any, **changes: Any) -> Any:
    row = recalls.get_notification(db.session, recall, patient.id)
    values: dict[str, Any] = {
        "notified_at": utcnow(),
        "method": "phone",
        "note": "Investigator called the patient.",
        "actor": ward.clinic.investigator,
        "now": utcnow(),
    }
    values.update(changes)
    done = recalls.record_notification(db.session, row, **values)
    db.session.commit()
    return done


def close(ward: Any, recall: Recall, **changes: Any) -> Recall:
    values: dict[str, Any] = {
        "note": "All patients notified; blocked bags destroyed under deviation DV-9.",
        "user": ward.lab.qa,
        "password": TEST_PASSWORD,
        "now": utcnow(),
    }
    values.update(changes)
    closed = recalls.close_recall(db.session, recall, **values)
    db.session.commit()
    return closed


def test_a_donation_recall_blocks_every_unit_left_and_lists_exactly_the_infused_patients(
    ward, released
):
    infusion = infuse(ward)
    waiting = ward.prepared()  # allocated bags and a prepared dose, still in the lab
    donation = infusion.dose_order.dose_unit.donation
    before = {u.id: u.status for u in chain.units_of_donation(db.session, donation.id)}

    opened = open_recall(ward, RecallTarget.DONATION, donation.id)

    recall = opened.recall
    assert recall.number.startswith(f"RC-{utcnow().year}-")
    after = {u.id: u.status for u in chain.units_of_donation(db.session, donation.id)}
    for unit_id, status in before.items():
        if status == UnitStatus.INFUSED.value or UnitStatus(status).final:
            assert after[unit_id] == status  # what is gone or final stays as it was
        else:
            assert after[unit_id] == UnitStatus.BLOCKED.value
    assert opened.blocked == sum(
        1 for s in before.values() if s != UnitStatus.INFUSED.value and not UnitStatus(s).final
    )
    assert waiting.dose_unit.status == UnitStatus.BLOCKED.value
    # the dose not yet infused is withdrawn, so that patient can be given another one
    assert waiting.status == DoseStatus.CANCELLED.value
    assert [row.dose_order_id for row in recall.doses] == [waiting.id]
    assert opened.withdrawn == 1
    # the recall shows on the trace back of the infusion it reached
    back = trace.trace_back(db.session, "infusion", infusion.id)
    assert [r.number for r in back.recalls] == [recall.number]
    assert [row.patient_id for row in recall.notifications] == [infusion.patient_id]
    assert opened.exposed_patients == 1
    rows = db.session.scalars(select(RecallUnit).where(RecallUnit.recall_id == recall.id)).all()
    assert {row.unit_id for row in rows} == set(before)
    [signature] = signatures.manifest(db.session, recall)
    assert signature.valid and signature.meaning == recalls.OPEN_MEANING
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "recall.opened")).one()
    assert entry.reason == recall.reason


def test_a_recalled_dose_at_the_bedside_is_a_red_stop_naming_the_block(ward, released):
    patient, order = ward.at_bedside()  # shipped, received and thawed: ready to infuse
    open_recall(ward, RecallTarget.LOT, released.id)

    check = ward.verify(patient, order)

    assert check.verdict == Verdict.STOP.value
    [failed] = [c for c in check.failed if c["code"] == "not_recalled"]
    assert "blocked" in failed["detail"]
    assert "recall RC-" in failed["detail"]  # the stop names the recall


def test_a_recalled_lot_cannot_be_allocated_again(ward, released):
    open_recall(ward, RecallTarget.LOT, released.id)
    assert orders.available_bags(db.session, now=utcnow()) == []
    patient = ward.patient()
    with pytest.raises(orders.DoseRefused, match="0 bag"):
        orders.order_dose(db.session, patient, "D0", actor=ward.lab.tech, now=utcnow(), zone=UTC)


def test_a_lot_under_recall_before_release_cannot_be_released(desk):
    desk.full_panel()
    donation = processing.lot_donation(db.session, desk.lot)
    recalls.open_recall(
        db.session,
        target=RecallTarget.DONATION,
        target_id=donation.id,
        reason="Consent withdrawn by the donor for any clinical use.",
        user=desk.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    with pytest.raises(Conflict, match="blocked"):
        disposition.release_lot(
            db.session, desk.lot, user=desk.lab.qa, password=TEST_PASSWORD, now=utcnow()
        )


def test_a_material_lot_recall_blocks_what_it_touched_and_the_material_itself(
    ward, released, bench
):
    infusion = infuse(ward)
    dmso = bench.materials["dmso"]
    opened = open_recall(ward, RecallTarget.MATERIAL_LOT, dmso.id, reason="Supplier recall 24-117.")
    assert [row.patient_id for row in opened.recall.notifications] == [infusion.patient_id]
    assert dmso.recalled_at is not None
    with pytest.raises(Conflict, match="recalled"):
        resources.usable_material_lots(db.session, [dmso.id], at=utcnow())
    # the vessels were made before the DMSO was used: not touched
    vessels = [
        u
        for u in chain.units_of_donation(db.session, released.donation_id)
        if u.kind == "culture_vessel"
    ]
    assert vessels and all(v.status != UnitStatus.BLOCKED.value for v in vessels)


def test_the_same_thing_recalled_twice_is_refused_open_or_closed(ward, released):
    first = open_recall(ward, RecallTarget.LOT, released.id).recall
    with pytest.raises(Conflict, match=first.number):
        open_recall(ward, RecallTarget.LOT, released.id)
    db.session.rollback()
    close(ward, first)
    with pytest.raises(Conflict, match=rf"{first.number} \(closed\)"):
        open_recall(ward, RecallTarget.LOT, released.id)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Recall)) == 1


def test_a_recall_that_would_add_nothing_to_earlier_recalls_is_refused(ward, released):
    infuse(ward)
    first = open_recall(ward, RecallTarget.DONATION, released.donation_id).recall
    with pytest.raises(Conflict, match=f"already under recall {first.number}"):
        open_recall(ward, RecallTarget.LOT, released.id)


def test_the_patient_of_a_withdrawn_dose_can_be_given_another(ward, released, desk):
    order = ward.prepared()
    open_recall(ward, RecallTarget.LOT, released.id)
    assert order.status == DoseStatus.CANCELLED.value
    # nothing is left to allocate from the recalled lot: a new order is refused for want of
    # bags, not because the visit already has a live dose
    with pytest.raises(orders.DoseRefused, match="0 bag"):
        orders.order_dose(
            db.session, order.patient, "D0", actor=ward.lab.tech, now=utcnow(), zone=UTC
        )


@pytest.mark.parametrize("target", list(RecallTarget))
def test_a_recall_of_something_that_does_not_exist_is_not_found(ward, target):
    with pytest.raises(NotFound):
        open_recall(ward, target, 999_999)
    assert db.session.scalar(select(func.count()).select_from(Recall)) == 0


@pytest.mark.parametrize("reason", ["", "   ", "bad"])
def test_a_recall_needs_a_reason(ward, released, reason):
    with pytest.raises(InvalidInput) as refused:
        open_recall(ward, RecallTarget.LOT, released.id, reason=reason)
    assert "reason" in refused.value.errors


def test_a_wrong_password_opens_nothing_and_blocks_nothing(ward, released):
    bags = processing.bags_of(db.session, released)
    with pytest.raises(CredentialsRejected):
        open_recall(ward, RecallTarget.LOT, released.id, password="wrong")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Recall)) == 0
    assert all(bag.status != UnitStatus.BLOCKED.value for bag in bags)


def test_closing_needs_every_exposed_patient_notified_then_a_signature(ward, released):
    infusion = infuse(ward)
    recall = open_recall(ward, RecallTarget.LOT, released.id).recall

    with pytest.raises(Conflict, match=infusion.patient.study_id):
        close(ward, recall)
    db.session.rollback()
    assert recall.status == RecallStatus.OPEN.value

    notify(ward, recall, infusion.patient)
    closed = close(ward, recall)

    assert closed.status == RecallStatus.CLOSED.value
    view = recalls.recall_view(db.session, closed)
    assert [s.meaning for s in view.closing_signatures] == [recalls.CLOSE_MEANING]
    assert all(s.valid for s in view.opening_signatures + view.closing_signatures)
    assert view.pending == []
    # closing does not unblock anything
    assert {row.unit.status for row in view.blocked} == {UnitStatus.BLOCKED.value}
    with pytest.raises(Conflict, match="closed"):
        close(ward, closed)


def test_a_recall_with_nobody_exposed_closes_at_once(ward, released):
    recall = open_recall(ward, RecallTarget.LOT, released.id).recall
    assert recall.notifications == []
    assert close(ward, recall).status == RecallStatus.CLOSED.value


def test_a_notification_in_another_zone_leaves_the_closing_signature_valid(ward, released):
    infusion = infuse(ward)
    recall = open_recall(ward, RecallTarget.LOT, released.id).recall
    zurich = dt.timezone(dt.timedelta(hours=1))
    notify(ward, recall, infusion.patient, notified_at=utcnow().astimezone(zurich))
    closed = close(ward, recall)
    db.session.expire_all()
    view = recalls.recall_view(db.session, recalls.get_recall(db.session, closed.id))
    assert [s.valid for s in view.opening_signatures + view.closing_signatures] == [True, True]


def test_the_opening_signature_covers_the_patients_to_notify(ward, released):
    infusion = infuse(ward)
    recall = open_recall(ward, RecallTarget.LOT, released.id).recall
    db.session.delete(recalls.get_notification(db.session, recall, infusion.patient_id))
    db.session.commit()
    db.session.expire_all()
    view = recalls.recall_view(db.session, recalls.get_recall(db.session, recall.id))
    assert [s.valid for s in view.opening_signatures] == [False]


def test_a_notification_is_recorded_once_and_never_in_the_future_or_before_the_recall(
    ward, released
):
    infusion = infuse(ward)
    recall = open_recall(ward, RecallTarget.LOT, released.id).recall
    with pytest.raises(InvalidInput):
        notify(ward, recall, infusion.patient, notified_at=utcnow() + dt.timedelta(hours=1))
    db.session.rollback()
    with pytest.raises(InvalidInput):
        notify(ward, recall, infusion.patient, notified_at=recall.opened_at - dt.timedelta(days=1))
    db.session.rollback()
    with pytest.raises(InvalidInput):
        notify(ward, recall, infusion.patient, method=" ")
    db.session.rollback()
    notify(ward, recall, infusion.patient)
    with pytest.raises(Conflict, match="already recorded"):
        notify(ward, recall, infusion.patient)


def test_a_patient_who_received_nothing_recalled_has_nothing_to_be_notified_of(ward, released):
    recall = open_recall(ward, RecallTarget.LOT, released.id).recall
    other = ward.patient()
    with pytest.raises(NotFound):
        recalls.get_notification(db.session, recall, other.id)


@pytest.mark.postgres_only
def test_two_people_notifying_and_two_closing_at_once_record_each_once(app, ward, released):
    infusion = infuse(ward)
    recall = open_recall(ward, RecallTarget.LOT, released.id).recall
    recall_id, patient_id = recall.id, infusion.patient_id
    user_ids = (ward.clinic.investigator.id, ward.lab.qa.id)

    def notifier(user_id: int):
        def attempt() -> str:
            try:
                recalls.record_notification(
                    db.session,
                    recalls.get_notification(
                        db.session, recalls.get_recall(db.session, recall_id), patient_id
                    ),
                    notified_at=utcnow(),
                    method="phone",
                    note=None,
                    actor=db.session.get(User, user_id),
                    now=utcnow(),
                )
                db.session.commit()
                return "recorded"
            except Conflict:
                db.session.rollback()
                return "refused"

        return attempt

    assert sorted(at_once(app, [notifier(u) for u in user_ids])) == ["recorded", "refused"]

    def closer() -> str:
        try:
            recalls.close_recall(
                db.session,
                recalls.get_recall(db.session, recall_id),
                note="All notified; bags destroyed.",
                user=db.session.get(User, user_ids[1]),
                password=TEST_PASSWORD,
                now=utcnow(),
            )
            db.session.commit()
            return "closed"
        except Conflict:
            db.session.rollback()
            return "refused"

    assert sorted(at_once(app, [closer, closer])) == ["closed", "refused"]
    db.session.expire_all()
    view = recalls.recall_view(db.session, recalls.get_recall(db.session, recall_id))
    assert [s.valid for s in view.closing_signatures] == [True]


@pytest.mark.postgres_only
def test_two_qa_people_opening_the_same_recall_at_once_open_one(app, ward, released):
    lot_id = released.id
    qa_id = ward.lab.qa.id

    def attempt() -> str:
        try:
            recalls.open_recall(
                db.session,
                target=RecallTarget.LOT,
                target_id=lot_id,
                reason="Endotoxin retest out of specification.",
                user=db.session.get(User, qa_id),
                password=TEST_PASSWORD,
                now=utcnow(),
            )
            db.session.commit()
            return "opened"
        except Conflict:
            db.session.rollback()
            return "refused"

    outcomes = at_once(app, [attempt, attempt])
    assert sorted(outcomes) == ["opened", "refused"]
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Recall)) == 1


def test_opening_a_recall_takes_the_same_number_of_statements_however_many_units(lab):
    rng = random.Random(11)
    small, small_units = grow(lab, rng=rng, steps=2)
    large, large_units = grow(lab, rng=rng, steps=20)
    assert len(large_units) > 4 * len(small_units)

    def statements_to_recall(container) -> int:
        db.session.commit()
        db.session.expire_all()
        with counting_statements() as seen:
            opened = recalls.open_recall(
                db.session,
                target=RecallTarget.DONATION,
                target_id=container.donation_id,
                reason="Late donor test: HTLV-I reactive.",
                user=lab.qa,
                password=TEST_PASSWORD,
                now=utcnow(),
            )
        db.session.commit()
        assert opened.blocked == len(chain.units_of_donation(db.session, container.donation_id))
        return len(seen)

    assert statements_to_recall(small) == statements_to_recall(large)
