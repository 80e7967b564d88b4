"""The issue-19 review of the post-thaw count at the bedside: a stop never asks for an
investigator's decision that cannot be signed (the dose is outside tolerance only because the
patient's weight changed since the order), and two counts recorded at once never both skip
the reason a repeat count needs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cellchain.clinic.bedside import post_thaw
from cellchain.clinic.models import PostThawCount
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from tests.clinic.test_post_thaw_count import bedside_check, count_body, counts, dose_check
from tests.conftest import TEST_PASSWORD, at_once
from tests.support.clinic import UTC
from tests.support.ward import WARD_COUNTER, Ward


def test_a_dose_outside_tolerance_only_for_a_new_weight_asks_to_re_weigh_not_for_a_decision(
    ward: Ward, clients: Any
) -> None:
    """Ordered at 70 kg; re-weighed 73 kg (+4.3 %, below the 10 % flag); the post-thaw count
    gives -6 % of the order's target (within) but -10 % of the new weight's target."""
    patient, order = ward.at_bedside()
    ward.clinic.weigh(patient, 73.0, hours_ago=0.1)
    nurse = clients.api(ward.clinic.clinician)
    count = nurse.post(f"/api/v1/doses/{order.id}/post-thaw-counts", json=count_body(5.0e6, 85.0))
    assert count.status_code == 201, count.get_json()
    assert count.get_json()["within_tolerance"] is True  # judged for the order's 70 kg
    check = bedside_check(nurse, order)
    assert check["verdict"] == "stop"
    detail = dose_check(check)["detail"]
    assert not dose_check(check)["passed"]
    assert "investigator must sign a decision" not in detail, detail
    assert "prepared for 70 kg" in detail and "Re-weigh the patient" in detail, detail
    assert "a new one prepared for it" in detail, detail
    # and indeed there is no decision to sign on this count
    decided = clients.api(ward.clinic.investigator).post(
        f"/api/v1/doses/{order.id}/post-thaw-decision",
        json={
            "decision": "proceed",
            "reason": "r",
            "password": TEST_PASSWORD,
            "count_id": count.get_json()["id"],
        },
    )
    assert decided.status_code == 409
    page = clients.web(ward.clinic.clinician).get(f"/bedside/checks/{check['id']}")
    assert "Re-weigh the patient" in page.get_data(as_text=True)


def test_a_dose_outside_tolerance_at_its_count_still_asks_for_the_investigators_decision(
    ward: Ward, clients: Any
) -> None:
    _patient, order = ward.at_bedside()
    nurse = clients.api(ward.clinic.clinician)
    count = nurse.post(f"/api/v1/doses/{order.id}/post-thaw-counts", json=count_body(4.1e6, 82))
    assert count.status_code == 201 and count.get_json()["within_tolerance"] is False
    detail = dose_check(bedside_check(nurse, order))["detail"]
    assert "an investigator must sign a decision" in detail and "Re-weigh" not in detail


def test_a_count_that_saw_no_earlier_count_while_one_was_recorded_is_refused(
    ward: Ward, clients: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two counts at once: the second read the dose's counts before the first was committed
    (no earlier count, so no reason asked); it is refused, not recorded as a first count."""
    _patient, order = ward.at_bedside()
    nurse = clients.api(ward.clinic.clinician)
    url = f"/api/v1/doses/{order.id}/post-thaw-counts"
    assert nurse.post(url, json=count_body(5.0e6, 90)).status_code == 201
    monkeypatch.setattr(post_thaw, "latest_count", lambda session, order: None)
    second = nurse.post(url, json=count_body(4.9e6, 90))
    assert second.status_code == 409, second.get_json()
    assert "counted by someone else a moment ago" in second.get_json()["detail"]
    assert counts() == 1
    monkeypatch.undo()
    repeat = nurse.post(url, json=count_body(4.9e6, 90, reason="second opinion"))
    assert repeat.status_code == 201, repeat.get_json()
    numbers = db.session.scalars(select(PostThawCount.sequence).order_by(PostThawCount.id))
    assert list(numbers) == [1, 2]


@pytest.mark.postgres_only
def test_two_first_counts_recorded_at_once_give_one_count(app: Any, ward: Ward) -> None:
    _patient, order = ward.at_bedside()
    order_id, nurse_id = order.id, ward.clinic.clinician.id

    def counting(total: float):
        def job() -> str:
            from cellchain.core.models import User
            from cellchain.dosing.models import DoseOrder

            try:
                post_thaw.record_count(
                    db.session,
                    db.session.get(DoseOrder, order_id),  # type: ignore[arg-type]
                    post_thaw.CountInput(
                        total, 90.0, "bedside", "NucleoCounter NC-200", counter=WARD_COUNTER
                    ),
                    actor=db.session.get(User, nurse_id),  # type: ignore[arg-type]
                    now=utcnow(),
                    zone=UTC,
                )
                db.session.commit()
                return "recorded"
            except Conflict:
                db.session.rollback()
                return "conflict"
            except InvalidInput:  # it looked after the other committed: a repeat, no reason
                db.session.rollback()
                return "reason asked"

        return job

    outcomes = at_once(app, [counting(5.0e6), counting(4.9e6)])
    assert outcomes.count("recorded") == 1, outcomes
    db.session.expire_all()
    assert counts() == 1
