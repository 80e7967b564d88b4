"""QA disposition: every precondition of release, segregation of duties, the e-signature, the
bags following the decision, one disposition per lot (DOMAIN.md §5, 1271.265(c))."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from cellchain.chain.models import UnitStatus
from cellchain.core import signatures
from cellchain.core.accounts import CredentialsRejected
from cellchain.core.display import local_time
from cellchain.core.types import utcnow
from cellchain.donors.models import Donation
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import DeviationCategory, Lot
from cellchain.manufacturing.processing import processing
from cellchain.quality import disposition, results
from cellchain.quality.models import LotDisposition, QcResult
from tests.conftest import TEST_PASSWORD, at_once
from tests.support.tamper import outside_the_trail


def release(desk: Any, user: Any = None, password: str = TEST_PASSWORD) -> Any:
    decided = disposition.release_lot(
        db.session, desk.lot, user=user or desk.lab.qa, password=password, now=utcnow()
    )
    db.session.commit()
    return decided


def checks(desk: Any) -> dict[str, disposition.Check]:
    found = disposition.review(db.session, desk.lot, now=utcnow())
    return {check.key: check for check in found.checks}


def test_a_lot_with_a_full_passing_panel_is_released_and_its_bags_become_available(
    desk: Any,
) -> None:
    desk.full_panel()
    assert all(check.ok for check in checks(desk).values())
    decided = release(desk)
    assert desk.lot.status == "released"
    assert decided.decision == "released"
    (manifest,) = signatures.manifest(db.session, decided)
    assert manifest.meaning == "approval: release for clinical use"
    assert manifest.printed_name == desk.lab.qa.full_name and manifest.valid
    statuses = {bag.status for bag in processing.bags_of(db.session, desk.lot)}
    assert statuses == {UnitStatus.AVAILABLE.value, UnitStatus.CONSUMED.value}


def test_each_missing_precondition_refuses_release_with_its_reason(desk: Any) -> None:
    desk.full_panel(POTENCY=None, CD90=90.0)
    found = checks(desk)
    assert not found["results"].ok
    assert "missing: Potency" in found["results"].detail
    assert "CD90 positive 90 %" in found["results"].detail
    assert not found["deviations"].ok  # the OOS investigation is open
    with pytest.raises(Conflict, match="cannot be released") as refused:
        release(desk)
    assert "missing: Potency" in refused.value.detail
    db.session.rollback()
    assert db.session.get(Lot, desk.lot.id).status == "quarantine"
    assert db.session.scalar(select(func.count()).select_from(LotDisposition)) == 0


def test_an_ineligible_or_pending_donor_blocks_release(desk: Any) -> None:
    desk.full_panel()
    db.session.execute(
        outside_the_trail(
            update(Donation)
            .where(Donation.id == desk.lot.donation_id)
            .values(eligibility="pending")
        )
    )
    db.session.commit()
    db.session.expire_all()
    assert not checks(desk)["donor_eligible"].ok
    with pytest.raises(Conflict, match="Donor eligible"):
        release(desk)


def test_limits_a_storage_excursion_and_expiry_each_block_release(desk: Any) -> None:
    desk.full_panel()
    lot = db.session.get(Lot, desk.lot.id)
    lot.limit_flags_json = '["passage P6 exceeds the maximum P5"]'
    lot.expires_at = utcnow() - dt.timedelta(minutes=1)
    deviations.open_deviation(
        db.session,
        lot=lot,
        category=DeviationCategory.STORAGE_EXCURSION,
        description="Tank LN2-01 read -120 °C",
        actor=desk.lab.tech,
        now=utcnow(),
    )
    db.session.commit()
    found = checks(desk)
    assert not found["limits"].ok and "P6" in found["limits"].detail
    assert not found["storage"].ok
    assert found["deviations"].ok  # the excursion is counted once, as an excursion
    assert not found["expiry"].ok and "expired" in found["expiry"].detail
    lot.expires_at = None
    db.session.commit()
    assert "no shelf life" in checks(desk)["expiry"].detail


def test_the_analyst_of_a_result_may_not_release_the_lot(desk: Any, make_user: Any) -> None:
    both = make_user("morgan", "qa", "qc_analyst")
    desk.full_panel(KARYOTYPE=None)
    desk.record(desk.entry("KARYOTYPE"), actor=both)
    with pytest.raises(Conflict, match="you recorded 1 of this lot's QC results"):
        release(desk, user=both)
    db.session.rollback()
    assert disposition.segregation_conflicts(db.session, desk.lot, desk.lab.qa) == []


def test_whoever_performed_a_manufacturing_step_may_not_release(desk: Any, make_user: Any) -> None:
    desk.full_panel()
    reasons = disposition.segregation_conflicts(db.session, desk.lot, desk.lab.tech)
    assert reasons and "manufacturing steps" in reasons[0] and "fill" in reasons[0]


def test_a_wrong_password_releases_nothing(desk: Any) -> None:
    desk.full_panel()
    with pytest.raises(CredentialsRejected):
        release(desk, password="not my password")
    db.session.rollback()
    assert db.session.get(Lot, desk.lot.id).status == "quarantine"
    assert {bag.status for bag in processing.bags_of(db.session, desk.lot)} <= {
        "quarantine",
        "consumed",
    }
    assert db.session.scalar(select(func.count()).select_from(LotDisposition)) == 0


def test_reject_needs_a_reason_then_the_bags_are_rejected_for_good(desk: Any) -> None:
    (sample,) = desk.sample(tubes=1)
    spare = desk.sample(tubes=1, used_up=False)[0]
    desk.record(desk.entry("MYCOPLASMA", "positive"), sample=sample)
    with pytest.raises(InvalidInput, match="why the lot is rejected"):
        disposition.reject_lot(
            db.session,
            desk.lot,
            reason="",
            user=desk.lab.qa,
            password=TEST_PASSWORD,
            now=utcnow(),
        )
    decided = disposition.reject_lot(
        db.session,
        desk.lot,
        reason="Mycoplasma positive, confirmed on retained sample.",
        user=desk.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    assert desk.lot.status == "rejected"
    assert signatures.manifest(db.session, decided)[0].meaning == "responsibility: lot rejected"
    bags = processing.bags_of(db.session, desk.lot)
    assert {bag.status for bag in bags} == {"rejected", "consumed"}
    assert all(UnitStatus(bag.status).final for bag in bags)
    with pytest.raises(Conflict, match="already rejected"):
        release(desk)
    db.session.rollback()
    with pytest.raises(Conflict, match="release testing is closed"):
        desk.record(desk.entry("CD73"), sample=spare)


def test_the_disposition_signature_is_invalid_after_a_result_is_altered(desk: Any) -> None:
    desk.full_panel()
    decided = release(desk)
    db.session.execute(
        outside_the_trail(
            update(QcResult)
            .where(QcResult.lot_id == desk.lot.id, QcResult.test_code == "VIABILITY")
            .values(value_number=60.0)
        )
    )
    db.session.commit()
    db.session.expire_all()
    again = db.session.get(LotDisposition, decided.id)
    assert [m.valid for m in signatures.manifest(db.session, again)] == [False]


def test_queues_list_lots_awaiting_review_and_with_oos(desk: Any) -> None:
    waiting = disposition.awaiting_review(db.session, now=utcnow())
    assert [r.lot.id for r in waiting] == [desk.lot.id] and not waiting[0].ready
    desk.record(desk.entry("VIABILITY", 71.0))
    ((lot, oos),) = disposition.lots_with_oos(db.session)
    assert lot.id == desk.lot.id and [r.test_code for r in oos] == ["VIABILITY"]
    assert [d.category for d in disposition.open_deviations(db.session)] == ["out_of_specification"]
    assert results.out_of_specification_lot_ids(db.session) == {desk.lot.id}


@pytest.mark.postgres_only
def test_two_qa_users_releasing_at_once_yield_one_disposition(
    app: Any, desk: Any, make_user: Any
) -> None:
    desk.full_panel()
    other = make_user("robin", "qa")
    lot_id, user_ids = desk.lot.id, [desk.lab.qa.id, other.id]

    def releaser(user_id: int):
        def job() -> str:
            from cellchain.core.models import User

            try:
                disposition.release_lot(
                    db.session,
                    db.session.get(Lot, lot_id),
                    user=db.session.get(User, user_id),
                    password=TEST_PASSWORD,
                    now=utcnow(),
                )
                db.session.commit()
                return "released"
            except Conflict:
                db.session.rollback()
                return "refused"

        return job

    assert at_once(app, [releaser(uid) for uid in user_ids]) == ["refused", "released"]
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(LotDisposition)) == 1
    lot = db.session.get(Lot, lot_id)
    assert lot.status == "released"
    signed = db.session.scalar(
        select(func.count())
        .select_from(signatures.Signature)
        .where(signatures.Signature.entity_type == "lot_disposition")
    )
    assert signed == 1


def test_the_review_and_a_second_decision_read_times_in_the_site_zone_with_its_offset(
    desk: Any,
) -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    expires = dt.datetime(2030, 1, 1, 20, 30, tzinfo=dt.UTC)  # 04:30 the next day in Shanghai
    desk.lot.expires_at = expires
    found = disposition.review(db.session, desk.lot, now=utcnow(), zone=shanghai)
    expiry = {check.key: check for check in found.checks}["expiry"]
    assert expiry.detail == "expires 2030-01-02 04:30 +08:00"
    (sample,) = desk.sample(tubes=1)
    desk.record(desk.entry("MYCOPLASMA", "positive"), sample=sample)
    decided = disposition.reject_lot(
        db.session,
        desk.lot,
        reason="Mycoplasma positive.",
        user=desk.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        disposition.reject_lot(
            db.session,
            desk.lot,
            reason="again",
            user=desk.lab.qa,
            password=TEST_PASSWORD,
            now=utcnow(),
            zone=shanghai,
        )
    when = local_time(decided.decided_at, shanghai)
    assert when.endswith("+08:00") and f"at {when};" in refused.value.detail
