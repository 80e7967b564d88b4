"""Donor lookback (issue 16, item 2): a donor result that contradicts the eligible
determination re-opens it, blocks every unit of the donation at once, withdraws the doses not
yet infused and opens a lookback recall listing the patients already infused, whatever the
order of events, whatever the path (service, API, page)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cellchain.chain import service as chain
from cellchain.chain.models import UnitStatus
from cellchain.clinic.models import Verdict
from cellchain.core import signatures
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.donors import service as donors
from cellchain.donors.models import DonorTestResult, Eligibility, InfectiousResult
from cellchain.dosing import orders
from cellchain.dosing.models import DoseStatus
from cellchain.errors import Conflict
from cellchain.extensions import db
from cellchain.manufacturing.processing import processing
from cellchain.quality import disposition
from cellchain.traceability.models import Recall, RecallTarget
from cellchain.traceability.recalls import lookback, recalls
from tests.conftest import TEST_PASSWORD
from tests.support.clinic import UTC
from tests.support.recalls import infuse, open_recall

LATE = "HBsAg reactive on the confirmatory test of the retained maternal sample."


def result_of(donation: Any, code: str = "HBSAG") -> DonorTestResult:
    return next(r for r in donation.current_results if r.test_code == code)


def correct(
    lab: Any, donation: Any, result: InfectiousResult, code: str = "HBSAG", **changes: Any
) -> lookback.ResultOutcome:
    original = result_of(donation, code)
    entry = donors.ResultEntry(
        test_code=code,
        specimen_date=changes.pop("specimen_date", original.specimen_date),
        result=result,
    )
    outcome = lookback.correct_result(
        db.session, original, entry, reason=LATE, site_zone=UTC, actor=lab.qc, now=utcnow()
    )
    db.session.commit()
    return outcome


def recalls_of(donation: Any) -> list[Recall]:
    return list(
        db.session.scalars(
            select(Recall).where(
                Recall.target_type == RecallTarget.DONATION.value,
                Recall.target_id == donation.id,
            )
        )
    )


def usable(donation: Any) -> list[Any]:
    return [
        unit
        for unit in chain.units_of_donation(db.session, donation.id)
        if not UnitStatus(unit.status).final
    ]


def test_a_late_positive_after_infusion_reopens_blocks_withdraws_and_opens_a_lookback(
    ward, released
):
    infusion = infuse(ward)  # AS-001 infused
    waiting = ward.prepared()  # AS-002: prepared and labelled, still in the lab
    donation = processing.lot_donation(db.session, released)
    determination = donation.determination
    assert usable(donation)

    outcome = correct(ward.lab, donation, InfectiousResult.REACTIVE)

    # the determination is re-opened, not erased: still there, signed, marked
    assert outcome.reopened is determination
    assert determination.reopened_at is not None
    assert determination.reopened_by_result_id == outcome.result.id
    assert "HBSAG corrected as reactive" in determination.reopened_reason
    assert [d.id for d in donation.determinations] == [determination.id]
    assert donation.determination is None
    assert donation.eligibility == Eligibility.PENDING.value
    [manifest] = signatures.manifest(db.session, determination)
    assert not manifest.valid  # what QA signed has changed
    # every unit derived from the donation is blocked at once, none left usable
    assert usable(donation) == []
    assert waiting.dose_unit.status == UnitStatus.BLOCKED.value
    # the dose not yet infused is withdrawn
    assert waiting.status == DoseStatus.CANCELLED.value
    # a lookback recall for QA, opened by the system on the analyst's action
    [recall] = recalls_of(donation)
    assert outcome.lookback.recall is recall
    assert recall.automatic and recall.cause_result_id == outcome.result.id
    assert recall.is_open and recall.opened_by_id == ward.lab.qc.id
    assert "Lookback" in recall.reason and donation.din in recall.reason
    assert [row.patient_id for row in recall.notifications] == [infusion.patient_id]
    assert [row.dose_order_id for row in recall.doses] == [waiting.id]
    assert signatures.manifest(db.session, recall) == []  # nobody signed it open
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"donation.eligibility_reopened", "recall.opened", "dose.cancelled"} <= actions
    assert "lookback recall" in outcome.summary() and recall.number in outcome.summary()


def test_after_the_late_positive_nothing_of_the_donation_can_be_given(ward, released):
    patient, order = ward.at_bedside()  # shipped, received and thawed: ready to infuse
    donation = processing.lot_donation(db.session, released)

    correct(ward.lab, donation, InfectiousResult.REACTIVE)

    check = ward.verify(patient, order)
    assert check.verdict == Verdict.STOP.value
    [failed] = [c for c in check.failed if c["code"] == "not_recalled"]
    assert "recall RC-" in failed["detail"]
    assert orders.available_bags(db.session, now=utcnow()) == []
    with pytest.raises(orders.DoseRefused):
        orders.order_dose(
            db.session, ward.patient(), "D0", actor=ward.lab.tech, now=utcnow(), zone=UTC
        )


def test_a_late_positive_before_release_blocks_the_lot_for_good(desk):
    donation = processing.lot_donation(db.session, desk.lot)  # determined eligible, in testing
    assert donation.eligibility == Eligibility.ELIGIBLE.value
    desk.full_panel()  # every release test passes

    correct(desk.lab, donation, InfectiousResult.INDETERMINATE, code="HIV1-NAT")

    assert usable(donation) == []
    [recall] = recalls_of(donation)
    assert recall.notifications == [] and recall.doses == []
    with pytest.raises(Conflict):
        disposition.release_lot(
            db.session, desk.lot, user=desk.lab.qa, password=TEST_PASSWORD, now=utcnow()
        )


@pytest.mark.parametrize("stage", ["released", "allocated", "dispatched", "received"])
def test_every_order_of_events_blocks_everything(ward, released, stage):
    donation = processing.lot_donation(db.session, released)
    order = None
    if stage != "released":
        order = ward.prepared()
    if stage in ("dispatched", "received"):
        shipment = ward.ship(order)
        if stage == "received":
            ward.receive(shipment)

    correct(ward.lab, donation, InfectiousResult.INDETERMINATE, code="HIV1-NAT")

    assert usable(donation) == []
    [recall] = recalls_of(donation)
    assert recall.notifications == []  # nobody infused yet
    if order is not None:
        assert order.status == DoseStatus.CANCELLED.value
        assert [row.dose_order_id for row in recall.doses] == [order.id]


def test_a_second_correction_back_to_non_reactive_unblocks_nothing(ward, released):
    infuse(ward)
    donation = processing.lot_donation(db.session, released)
    correct(ward.lab, donation, InfectiousResult.REACTIVE)
    blocked = {u.id for u in chain.units_of_donation(db.session, donation.id)}

    second = correct(ward.lab, donation, InfectiousResult.NON_REACTIVE)

    assert second.lookback is None and second.reopened is None
    assert donation.eligibility == Eligibility.PENDING.value
    assert usable(donation) == []
    assert len(recalls_of(donation)) == 1
    # QA may determine again; even "eligible" unblocks nothing (blocking is for good)
    donors.determine_eligibility(
        db.session,
        donation,
        eligible=True,
        reason=None,
        user=ward.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    assert len(donation.determinations) == 2 and donation.determination.outcome == "eligible"
    assert usable(donation) == []
    assert {u.id for u in chain.units_of_donation(db.session, donation.id)} == blocked
    assert orders.available_bags(db.session, now=utcnow()) == []


def test_a_second_late_positive_while_reopened_opens_nothing_more(ward, released):
    donation = processing.lot_donation(db.session, released)
    correct(ward.lab, donation, InfectiousResult.REACTIVE)

    again = correct(ward.lab, donation, InfectiousResult.REACTIVE, code="HCV-AB")

    assert again.lookback is None
    assert len(recalls_of(donation)) == 1 and usable(donation) == []


def test_an_ineligible_donor_corrected_to_non_reactive_stays_ineligible_and_blocked(lab):
    donation = lab.register()
    lab.full_panel(donation, results={"HBSAG": InfectiousResult.REACTIVE})
    lab.determine(donation, eligible=False, reason="HBsAg reactive.")
    assert usable(donation) == []

    outcome = correct(lab, donation, InfectiousResult.NON_REACTIVE)

    assert outcome.reopened is None and outcome.lookback is None
    assert donation.eligibility == Eligibility.INELIGIBLE.value
    assert donation.determination.outcome == "ineligible"
    assert usable(donation) == [] and recalls_of(donation) == []


def test_a_correction_that_keeps_the_donor_eligible_reopens_nothing(ward, released):
    donation = processing.lot_donation(db.session, released)
    original = result_of(donation)

    outcome = correct(
        ward.lab, donation, InfectiousResult.NON_REACTIVE, specimen_date=original.specimen_date
    )

    assert outcome.reopened is None and outcome.lookback is None
    assert donation.eligibility == Eligibility.ELIGIBLE.value
    assert recalls_of(donation) == [] and usable(donation)


def test_a_donation_already_under_open_recall_joins_it(ward, released):
    infuse(ward)
    donation = processing.lot_donation(db.session, released)
    earlier = open_recall(ward, RecallTarget.DONATION, donation.id).recall

    outcome = correct(ward.lab, donation, InfectiousResult.REACTIVE)

    assert outcome.lookback.recall is earlier
    assert donation.eligibility == Eligibility.PENDING.value
    assert recalls_of(donation) == [earlier] and usable(donation) == []


def test_a_closed_recall_does_not_stop_a_new_lookback(ward, released):
    donation = processing.lot_donation(db.session, released)
    earlier = open_recall(ward, RecallTarget.DONATION, donation.id).recall
    recalls.close_recall(
        db.session,
        earlier,
        note="Consent question settled; blocked bags kept for investigation.",
        user=ward.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()

    outcome = correct(ward.lab, donation, InfectiousResult.REACTIVE)

    assert outcome.lookback.recall is not earlier and outcome.lookback.recall.automatic
    assert len(recalls_of(donation)) == 2


def test_qa_closes_the_lookback_with_a_signature_once_patients_are_notified(ward, released):
    infusion = infuse(ward)
    donation = processing.lot_donation(db.session, released)
    recall = correct(ward.lab, donation, InfectiousResult.REACTIVE).lookback.recall
    row = recalls.get_notification(db.session, recall, infusion.patient_id)
    recalls.record_notification(
        db.session,
        row,
        notified_at=utcnow(),
        method="phone",
        note=None,
        actor=ward.clinic.investigator,
        now=utcnow(),
    )
    recalls.close_recall(
        db.session,
        recall,
        note="Patient notified and followed up; blocked bags destroyed.",
        user=ward.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    assert not recall.is_open


# --- through the API and the donation page ------------------------------------------------------


def test_api_late_positive_answers_with_the_lookback_and_the_donation_names_it(
    ward, released, clients
):
    infusion = infuse(ward)
    donation = processing.lot_donation(db.session, released)
    original = result_of(donation)
    api = clients.api(ward.lab.qc)

    answer = api.post(
        f"/api/v1/donations/{donation.id}/results/{original.id}/correction",
        json={
            "specimen_date": original.specimen_date.isoformat(),
            "result": "reactive",
            "reason": LATE,
        },
    )

    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["eligibility"] == "pending"
    assert body["reopened_determination_id"] is not None
    lookback_recall = body["lookback"]
    assert lookback_recall["number"].startswith("RC-") and lookback_recall["automatic"] is True
    assert lookback_recall["url"] == f"/recalls/{lookback_recall['id']}"
    assert usable(donation) == []
    detail = api.get(f"/api/v1/donations/{donation.id}").get_json()
    assert detail["determination"] is None
    [reopened] = detail["reopened_determinations"]
    assert reopened["reopened_at"] and reopened["signatures"][0]["valid"] is False
    assert [r["number"] for r in detail["recalls"]] == [lookback_recall["number"]]
    recall = api.get(f"/api/v1/recalls/{lookback_recall['id']}").get_json()
    assert [n["study_id"] for n in recall["recall"]["notifications"]] == [infusion.patient.study_id]


def test_page_late_positive_says_what_it_did_and_the_donation_page_shows_it(
    ward, released, clients
):
    donation = processing.lot_donation(db.session, released)
    original = result_of(donation)
    web = clients.web(ward.lab.qc)

    posted = web.post(
        f"/donations/{donation.id}/results/{original.id}/correction",
        data={
            "specimen_date": original.specimen_date.isoformat(),
            "result": "reactive",
            "reason": LATE,
        },
        follow_redirects=True,
    )

    assert posted.status_code == 200
    page = posted.get_data(as_text=True)
    [recall] = recalls_of(donation)
    assert "lookback recall " + recall.number in page  # the flash
    assert 'id="recall-notice"' in page and f'href="/recalls/{recall.id}"' in page
    assert "RE-OPENED" in page
    assert usable(donation) == []
