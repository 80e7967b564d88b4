"""Post-thaw counts (issue 19, DOMAIN.md §7 "post-thaw count when one was taken"): a count of
the thawed dose recomputes what it delivers, the bedside judges the dose by it, outside
tolerance needs the investigator's signed decision, and the working says which count was used.
Each rule through the API, and through the pages where there are some."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.clinic.bedside import bedside, post_thaw
from cellchain.clinic.models import PostThawCount
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.dosing import calculation, exceptions
from cellchain.extensions import db
from cellchain.manufacturing.models import Deviation
from tests.conftest import TEST_PASSWORD
from tests.support.clinic import UTC
from tests.support.ward import WARD_COUNTER, Ward, payload

#: The ward's lot: 5 × 10⁶ total cells/mL at a release viability of 93 %.
RELEASE_VIABILITY = 93.0


def count_body(total: float, viability: float, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "total_cells_per_ml": total,
        "viability_percent": viability,
        "place": "pharmacy",
        "method": "NucleoCounter NC-200, AO/DAPI",
        "counter": WARD_COUNTER,
    }
    body.update(changes)
    return body


def bedside_check(client: Any, order: Any) -> dict[str, Any]:
    checked = client.post(
        "/api/v1/bedside/checks",
        json={"wristband": payload(order.patient.coi), "label": payload(order.dose_unit.code)},
    )
    assert checked.status_code == 201, checked.get_json()
    return dict(checked.get_json())


def dose_check(check: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in check["checks"] if c["code"] == "weight")


def counts() -> int:
    return int(db.session.scalar(select(func.count()).select_from(PostThawCount)) or 0)


def audited(action: str) -> list[AuditEntry]:
    return list(db.session.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars())


# --- the arithmetic -----------------------------------------------------------------------------


def test_the_recount_applies_the_post_thaw_viability_once_to_the_post_thaw_total() -> None:
    result = calculation.recount(
        7.0e7,
        [("BAG-1", 15.1)],
        total_cells_per_ml=4.8e6,
        viability_percent=92.0,
        source="post-thaw count",
        tolerance_percent=10.0,
    )
    assert math.isclose(result.viable_per_ml, 4.8e6 * 0.92)
    assert math.isclose(result.delivered_cells, 15.1 * 4.8e6 * 0.92)
    assert math.isclose(result.deviation_percent, (15.1 * 4.8e6 * 0.92 - 7.0e7) / 7.0e7 * 100)
    assert result.within_tolerance
    assert result.working[0].startswith("viable concentration (post-thaw count) = 4.80 × 10⁶ total")


# --- within tolerance ---------------------------------------------------------------------------


def test_api_a_count_within_tolerance_recomputes_the_dose_and_the_bedside_goes_naming_it(
    ward: Ward, clients: Any
) -> None:
    _patient, order = ward.at_bedside()
    nurse = clients.api(ward.clinic.clinician)
    before = bedside_check(nurse, order)
    assert before["verdict"] == "go"
    assert "release count at fill" in dose_check(before)["detail"]
    assert nurse.get(f"/api/v1/doses/{order.id}/post-thaw-counts").get_json()["count_used"] == (
        "release count at fill"
    )

    recorded = nurse.post(f"/api/v1/doses/{order.id}/post-thaw-counts", json=count_body(5.0e6, 90))
    assert recorded.status_code == 201, recorded.get_json()
    count = recorded.get_json()
    delivered = order.volume_ml * 5.0e6 * 0.90
    assert math.isclose(count["delivered_cells"], delivered)
    assert math.isclose(
        count["deviation_percent"], (delivered - order.target_cells) / order.target_cells * 100
    )
    assert count["within_tolerance"] and count["viable_cells_per_ml"] == 4.5e6
    assert count["working"][0].startswith("viable concentration (post-thaw count ")
    assert f"by {ward.clinic.clinician.full_name} (pharmacy)" in count["working"][0]
    assert (
        "5.00 × 10⁶ total cells/mL × 90 % viable = 4.50 × 10⁶ viable cells/mL"
        in count["working"][0]
    )
    assert audited("post_thaw.counted")

    dose = nurse.get(f"/api/v1/doses/{order.id}/post-thaw-counts").get_json()
    assert dose["count_used"] == "post-thaw count" and dose["working"] == count["working"]
    after = bedside_check(nurse, order)
    assert after["verdict"] == "go", after["checks"]
    detail = dose_check(after)["detail"]
    assert "post-thaw count" in detail and ward.clinic.clinician.full_name in detail
    assert "5.00 × 10⁶ total cells/mL × 90 % = 4.50 × 10⁶ viable cells/mL" in detail
    assert f"{(delivered - order.target_cells) / order.target_cells * 100:+.1f} %" in detail


def test_viability_is_applied_once_never_the_release_viability_on_top(
    ward: Ward, clients: Any
) -> None:
    """4.8 × 10⁶ total/mL at 92 % is −4.7 %, within ± 10 %; with the release viability (93 %)
    applied on top it would be −11.4 %, a stop."""
    _patient, order = ward.at_bedside()
    nurse = clients.api(ward.clinic.clinician)
    recorded = nurse.post(f"/api/v1/doses/{order.id}/post-thaw-counts", json=count_body(4.8e6, 92))
    assert recorded.status_code == 201
    once = order.volume_ml * 4.8e6 * 0.92
    twice = once * RELEASE_VIABILITY / 100
    assert abs((twice - order.target_cells) / order.target_cells * 100) > 10  # the test can fail
    assert math.isclose(recorded.get_json()["delivered_cells"], once)
    check = bedside_check(nurse, order)
    assert check["verdict"] == "go", dose_check(check)
    assert (
        f"{(once - order.target_cells) / order.target_cells * 100:+.1f} %"
        in (dose_check(check)["detail"])
    )


# --- outside tolerance: the investigator's decision ---------------------------------------------


def test_api_outside_tolerance_stops_until_an_investigator_signs_proceed_with_a_deviation(
    ward: Ward, clients: Any
) -> None:
    _patient, order = ward.at_bedside()
    nurse = clients.api(ward.clinic.clinician)
    recorded = nurse.post(f"/api/v1/doses/{order.id}/post-thaw-counts", json=count_body(4.1e6, 82))
    assert recorded.status_code == 201
    count = recorded.get_json()
    assert not count["within_tolerance"] and count["deviation_percent"] < -10
    stopped = bedside_check(nurse, order)
    assert stopped["verdict"] == "stop"
    assert [c["code"] for c in stopped["checks"] if not c["passed"]] == ["weight"]
    assert "an investigator must sign a decision" in dose_check(stopped)["detail"]
    assert nurse.get(f"/api/v1/doses/{order.id}/post-thaw-counts").get_json()["decision_needed"]

    decision = {"decision": "proceed", "reason": "Benefit outweighs", "password": TEST_PASSWORD}
    decide = f"/api/v1/doses/{order.id}/post-thaw-decision"
    decision = {**decision, "count_id": count["id"]}
    refused = nurse.post(decide, json=decision)
    assert refused.status_code == 403 and "Only an investigator" in refused.get_json()["detail"]
    assert audited("post_thaw.decision_refused")
    db.session.expire_all()
    assert db.session.get(PostThawCount, count["id"]).decision is None
    assert bedside_check(nurse, order)["verdict"] == "stop"

    investigator = clients.api(ward.clinic.investigator)
    wrong = investigator.post(decide, json={**decision, "password": "no"})
    assert wrong.status_code == 401
    db.session.expire_all()
    assert db.session.get(PostThawCount, count["id"]).decision is None
    signed = investigator.post(decide, json=decision)
    assert signed.status_code == 200, signed.get_json()
    assert signed.get_json()["decision"] == "proceed"
    deviation = db.session.get(Deviation, signed.get_json()["deviation_id"])
    assert deviation is not None and "post-thaw count" in deviation.description
    assert audited("post_thaw.decided")
    dose = nurse.get(f"/api/v1/doses/{order.id}/post-thaw-counts").get_json()
    assert not dose["decision_needed"] and dose["signatures"][0]["valid"]

    go = bedside_check(nurse, order)
    assert go["verdict"] == "go", go["checks"]
    detail = dose_check(go)["detail"]
    assert f"{ward.clinic.investigator.full_name} signed the decision to proceed" in detail
    assert f"deviation #{deviation.id}" in detail
    twice = investigator.post(decide, json=decision)
    assert twice.status_code == 409


def test_do_not_infuse_stops_for_good_and_the_dose_is_destroyed_instead(
    ward: Ward, clients: Any
) -> None:
    _patient, order = ward.at_bedside()
    nurse = clients.api(ward.clinic.clinician)
    count = nurse.post(
        f"/api/v1/doses/{order.id}/post-thaw-counts", json=count_body(3.0e6, 70)
    ).get_json()
    investigator = clients.api(ward.clinic.investigator)
    decided = investigator.post(
        f"/api/v1/doses/{order.id}/post-thaw-decision",
        json={
            "count_id": count["id"],
            "decision": "do_not_infuse",
            "reason": "−50 %",
            "password": TEST_PASSWORD,
        },
    )
    assert decided.status_code == 200 and decided.get_json()["deviation_id"] is None
    stopped = bedside_check(nurse, order)
    assert stopped["verdict"] == "stop"
    assert "not to be infused" in dose_check(stopped)["detail"]
    again = nurse.post(
        f"/api/v1/doses/{order.id}/post-thaw-counts",
        json=count_body(5.0e6, 95, reason="recount"),
    )
    assert again.status_code == 409 and counts() == 1
    db.session.expire_all()
    assert exceptions.DoseException.DESTROY in exceptions.exception_actions(order)


def test_a_decision_within_tolerance_or_on_an_older_count_is_refused(
    ward: Ward, clients: Any
) -> None:
    _patient, order = ward.at_bedside()
    nurse = clients.api(ward.clinic.clinician)
    url = f"/api/v1/doses/{order.id}/post-thaw-counts"
    outside = nurse.post(url, json=count_body(4.1e6, 82)).get_json()
    no_reason = nurse.post(url, json=count_body(5.0e6, 90))
    assert no_reason.status_code == 422 and "reason" in no_reason.get_json()["errors"]
    within = nurse.post(url, json=count_body(5.0e6, 90, reason="Clumped sample, recounted"))
    assert within.status_code == 201 and counts() == 2
    investigator = clients.api(ward.clinic.investigator)
    decision = {"decision": "proceed", "reason": "x", "password": TEST_PASSWORD}
    decide = f"/api/v1/doses/{order.id}/post-thaw-decision"
    older = investigator.post(decide, json={**decision, "count_id": outside["id"]})
    assert older.status_code == 409 and "newer" in older.get_json()["detail"]
    nothing = investigator.post(decide, json={**decision, "count_id": within.get_json()["id"]})
    assert nothing.status_code == 409
    assert bedside_check(nurse, order)["verdict"] == "go"


# --- when and what may be counted ---------------------------------------------------------------


def test_a_count_of_an_unthawed_dose_is_refused_and_audited(ward: Ward, clients: Any) -> None:
    order = ward.prepared()
    ward.receive(ward.ship(order))
    nurse = clients.api(ward.clinic.clinician)
    refused = nurse.post(f"/api/v1/doses/{order.id}/post-thaw-counts", json=count_body(5e6, 90))
    assert refused.status_code == 409 and "not thawed" in refused.get_json()["detail"]
    assert counts() == 0 and audited("post_thaw.count_refused")


def test_a_count_of_an_infused_dose_is_refused(ward: Ward, clients: Any) -> None:
    patient, order = ward.at_bedside()
    started = ward.start(ward.sign(ward.verify(patient, order)))
    assert started.infusion is not None
    nurse = clients.api(ward.clinic.clinician)
    refused = nurse.post(f"/api/v1/doses/{order.id}/post-thaw-counts", json=count_body(5e6, 90))
    assert refused.status_code == 409 and counts() == 0


def test_a_count_of_a_destroyed_dose_is_refused(ward: Ward, clients: Any) -> None:
    _patient, order = ward.at_bedside()
    exceptions.destroy_dose(
        db.session,
        order,
        actor=ward.clinic.clinician,
        password=TEST_PASSWORD,
        witness=ward.nurse,
        witness_password=TEST_PASSWORD,
        reason="Dropped",
        now=utcnow(),
    )
    db.session.commit()
    nurse = clients.api(ward.clinic.clinician)
    refused = nurse.post(f"/api/v1/doses/{order.id}/post-thaw-counts", json=count_body(5e6, 90))
    assert refused.status_code == 409 and "cancelled" in refused.get_json()["detail"]
    assert counts() == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"viability_percent": 101}, "viability_percent"),
        ({"viability_percent": -1}, "viability_percent"),
        ({"total_cells_per_ml": 0}, "total_cells_per_ml"),
        ({"total_cells_per_ml": 1.1e7}, "total_cells_per_ml"),  # more than twice the fill
        ({"total_cells_per_ml": 4.1}, "total_cells_per_ml"),  # typed in millions
        ({"place": "ward"}, "place"),
        ({"method": ""}, "method"),
    ],
)
def test_a_count_out_of_range_is_refused_with_nothing_saved(
    ward: Ward, clients: Any, changes: dict[str, Any], field: str
) -> None:
    _patient, order = ward.at_bedside()
    nurse = clients.api(ward.clinic.clinician)
    body = {**count_body(5.0e6, 90), **changes}
    refused = nurse.post(f"/api/v1/doses/{order.id}/post-thaw-counts", json=body)
    assert refused.status_code == 422 and field in refused.get_json()["errors"]
    assert counts() == 0


def test_only_clinic_staff_record_a_count(ward: Ward, clients: Any) -> None:
    _patient, order = ward.at_bedside()
    tech = clients.api(ward.lab.tech)
    refused = tech.post(f"/api/v1/doses/{order.id}/post-thaw-counts", json=count_body(5e6, 90))
    assert refused.status_code == 403 and counts() == 0


# --- the pages ----------------------------------------------------------------------------------


def test_pages_record_a_count_outside_tolerance_stop_and_the_investigator_signs_proceed(
    ward: Ward, clients: Any
) -> None:
    _patient, order = ward.at_bedside()
    nurse = clients.web(ward.clinic.clinician)
    url = f"/doses/{order.id}/post-thaw-count"
    page = nurse.get(url).get_data(as_text=True)
    assert 'id="count-form"' in page and "release count at fill" in page
    bad = nurse.post(url, data=count_body(5.0e6, 120))
    assert bad.status_code == 422 and "0 to 100" in bad.get_data(as_text=True)
    assert "NucleoCounter" in bad.get_data(as_text=True)  # what was typed is kept
    recorded = nurse.post(url, data=count_body(4.1e6, 82, place="bedside"))
    assert recorded.status_code == 302
    page = nurse.get(url).get_data(as_text=True)
    assert 'id="post-thaw-working"' in page and "OUTSIDE TOLERANCE" in page
    assert "4.10 × 10⁶ total cells/mL × 82 % viable" in page
    assert 'id="decision-form"' not in page and 'id="decision-awaited"' in page
    dose_page = nurse.get(f"/doses/{order.id}").get_data(as_text=True)
    assert 'id="post-thaw-working"' in dose_page and "investigator's decision needed" in (dose_page)

    checked = nurse.post(
        "/bedside/checks",
        data={"wristband": payload(order.patient.coi), "label": payload(order.dose_unit.code)},
    )
    stop = nurse.get(checked.headers["Location"]).get_data(as_text=True)
    assert 'class="verdict stop"' in stop and "an investigator must sign a decision" in stop
    assert 'id="post-thaw-link"' in stop

    count = db.session.scalars(select(PostThawCount)).one()
    refused = nurse.post(
        f"/doses/{order.id}/post-thaw-count/decision",
        data={"count_id": count.id, "decision": "proceed", "reason": "x", "password": "x"},
    )
    assert refused.status_code == 403
    investigator = clients.web(ward.clinic.investigator)
    assert 'id="decision-form"' in investigator.get(url).get_data(as_text=True)
    signed = investigator.post(
        f"/doses/{order.id}/post-thaw-count/decision",
        data={
            "count_id": count.id,
            "decision": "proceed",
            "reason": "Benefit outweighs",
            "password": TEST_PASSWORD,
        },
    )
    assert signed.status_code == 302
    page = investigator.get(url).get_data(as_text=True)
    assert 'id="count-decision"' in page and "Benefit outweighs" in page
    checked = nurse.post(
        "/bedside/checks",
        data={"wristband": payload(order.patient.coi), "label": payload(order.dose_unit.code)},
    )
    go = nurse.get(checked.headers["Location"]).get_data(as_text=True)
    assert 'class="verdict go"' in go
    assert "signed the decision to proceed" in go and "post-thaw count" in go


def test_service_facts_name_the_latest_count(ward: Ward) -> None:
    _patient, order = ward.at_bedside()
    assert post_thaw.facts_of(db.session, order) is None
    post_thaw.record_count(
        db.session,
        order,
        post_thaw.CountInput(
            5.0e6, 90, "bedside", "haemocytometer, trypan blue", counter=WARD_COUNTER
        ),
        actor=ward.clinic.clinician,
        now=utcnow(),
        zone=UTC,
    )
    db.session.commit()
    facts = post_thaw.facts_of(db.session, order)
    assert facts is not None and facts.place == "bedside" and not facts.proceed_signed


# --- the rule, from the facts alone -------------------------------------------------------------


def _with_count(delivered: float, **changes: Any) -> Any:
    """The bedside's good facts (``test_bedside_rules.GOOD``) with a post-thaw count."""
    from tests.clinic.test_bedside_rules import GOOD, _dose

    count = post_thaw.PostThawFacts(
        count_id=1,
        counted_at=GOOD.now - dt.timedelta(minutes=5),
        counted_by="Cleo Clinician",
        place="pharmacy",
        total_cells_per_ml=4.1e6,
        viability_percent=82.0,
        delivered_cells=delivered,
    )
    return _dose(GOOD, post_thaw=dataclasses.replace(count, **changes))


def _weight_check(facts: Any) -> Any:
    return next(r for r in bedside.evaluate(facts) if r.code == bedside.Check.WEIGHT)


def test_the_count_replaces_the_fill_figure_and_an_ordering_override_does_not_carry() -> None:
    from tests.clinic.test_bedside_rules import _dose

    # the fill's figure was outside and overridden at ordering; the post-thaw figure is what counts
    outside = _dose(_with_count(5.0e7), override=True, delivered_cells=6.2e7)
    assert not _weight_check(outside).passed
    within = _dose(_with_count(6.8e7), override=False, delivered_cells=6.0e7)
    assert _weight_check(within).passed and "post-thaw count" in _weight_check(within).detail
    signed = dict(
        decision="proceed",
        decided_by="Ivan Investigator",
        decided_at=within.now,
        deviation_id=7,
    )
    assert _weight_check(_with_count(5.0e7, **signed, decision_valid=True)).passed
    # a signature that no longer matches the count accepts nothing
    assert not _weight_check(_with_count(5.0e7, **signed, decision_valid=False)).passed
    # do not infuse: never passes, even within tolerance
    refused = {**signed, "decision": "do_not_infuse", "deviation_id": None}
    assert not _weight_check(_with_count(6.9e7, **refused, decision_valid=True)).passed


def test_the_thaw_page_links_a_thawed_dose_to_its_post_thaw_count(ward: Ward, clients: Any) -> None:
    _patient, order = ward.at_bedside()
    page = clients.web(ward.clinic.clinician).get("/thaw").get_data(as_text=True)
    assert f'href="/doses/{order.id}/post-thaw-count"' in page
