"""Labels gate the chain (issue 16, item 3; DOMAIN.md §7, §9): a dose leaves the lab only when
the dose label and each bag's released label are printed and applied, none superseded, on the
page and the API alike; the bedside check, and its re-check at the start of the infusion, stop
naming the missing or superseded label."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cellchain.clinic.bedside.doses import units_of_dose
from cellchain.clinic.shipments import shipments
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.errors import InvalidInput
from cellchain.extensions import db
from cellchain.labels import service as labels
from cellchain.labels.models import LabelPrint
from cellchain.manufacturing.processing.processing import bags_of
from tests.support.labels import label, print_units
from tests.support.ward import Ward, payload


def dispatch_form(order: Any) -> dict[str, str]:
    return {
        "shipper_id": "DS-9",
        "logger_id": "TL-9",
        "destination": "Clinic",
        "courier": "courier: J. Doe",
        "doses": payload(order.dose_unit.code) + "\n",
    }


def test_a_dose_whose_label_was_never_printed_does_not_leave_the_lab(ward: Ward) -> None:
    order = ward.prepared(labelled=False)
    with pytest.raises(InvalidInput, match="cannot be dispensed") as refused:
        ward.ship(order)
    detail = refused.value.detail
    assert f"{order.dose_unit.code} (prepared dose) has no label: its dose label" in detail
    for bag in order.bags:
        assert f"{bag.unit.code} (cryobag) has no label: its released label" in detail
    db.session.rollback()
    assert order.dose_unit.status == "allocated" and shipments.ready_to_ship(db.session) == [order]
    ward.label(order)
    assert ward.ship(order).status == "in_transit"


def test_a_printed_label_not_yet_applied_does_not_leave_the_lab(ward: Ward) -> None:
    order = ward.prepared(labelled=False)
    label([bag.unit for bag in order.bags], ward.lab.tech)
    print_units([order.dose_unit], ward.lab.tech)
    with pytest.raises(InvalidInput) as refused:
        ward.ship(order)
    assert refused.value.detail.count("printed but not applied") == 1
    assert order.dose_unit.code in refused.value.detail
    db.session.rollback()
    dose = order.dose_unit
    labels.record_applied(db.session, None, dose.code, actor=ward.lab.tech, now=utcnow(), unit=dose)
    db.session.commit()
    assert ward.ship(order).status == "in_transit"


@pytest.fixture
def quarantine_labels(desk: Any) -> list[Any]:
    """Every bag of the lot labelled at fill, in quarantine: its label says so."""
    bags = bags_of(db.session, desk.lot)
    label(bags, desk.lab.tech)
    return bags


def test_a_bag_still_carrying_its_quarantine_label_does_not_leave_the_lab(
    quarantine_labels: list[Any], ward: Ward
) -> None:
    order = ward.prepared(labelled=False)
    label([order.dose_unit], ward.lab.tech)
    bag = order.bags[0].unit
    state = labels.label_state(db.session, bag)
    assert state.on_unit is not None and state.on_unit.quarantine
    with pytest.raises(InvalidInput) as refused:
        ward.ship(order)
    detail = refused.value.detail
    assert f"{bag.code} (cryobag) is allocated and needs its released label" in detail
    assert "says “QUARANTINE — NOT FOR CLINICAL USE”" in detail and "superseded" in detail
    db.session.rollback()
    # the released label printed (a reprint of the bag, with its reason) but not yet on it:
    # the quarantine label on the bag is superseded, and the new one is not applied
    print_units([b.unit for b in order.bags], ward.lab.tech, reason=labels.RELEASE_REPRINT_REASON)
    with pytest.raises(InvalidInput) as refused:
        ward.ship(order)
    assert "printed but not applied; the label on it (print #" in refused.value.detail
    assert "is superseded by that reprint" in refused.value.detail
    db.session.rollback()
    for b in order.bags:
        labels.record_applied(db.session, None, b.unit.code, actor=ward.lab.tech, now=utcnow())
    db.session.commit()
    assert ward.ship(order).status == "in_transit"


def test_a_spoiled_reprint_destroyed_unused_leaves_the_applied_label_in_force(
    ward: Ward,
) -> None:
    order = ward.prepared()
    (spoiled,) = print_units([order.dose_unit], ward.lab.tech, reason="smudged").prints
    assert not labels.label_state(db.session, order.dose_unit).ok
    labels.destroy_labels(
        db.session, spoiled, 1, "smudged: destroyed", actor=ward.lab.tech, now=utcnow()
    )
    db.session.commit()
    assert labels.label_state(db.session, order.dose_unit).ok
    assert ward.ship(order).status == "in_transit"


def test_api_dispatch_is_refused_without_the_labels_and_allowed_once_printed_and_applied(
    ward: Ward, clients: Any
) -> None:
    order = ward.prepared(labelled=False)
    tech = clients.api(ward.lab.tech)
    body = {**dispatch_form(order), "doses": [payload(order.dose_unit.code)]}
    refused = tech.post("/api/v1/shipments", json=body)
    assert refused.status_code == 422
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    problem = refused.get_json()
    assert f"{order.dose_unit.code} (prepared dose) has no label" in problem["detail"]
    assert any("has no label" in text for text in problem["errors"]["doses"])
    refusal = select(AuditEntry).where(AuditEntry.action == "shipment.dispatch_refused")
    assert db.session.execute(refusal).first() is not None
    for unit in units_of_dose(order):
        printed = tech.post(f"/api/v1/units/{unit.id}/labels", json={"format": "zpl"})
        assert printed.status_code == 200, printed.get_json()
        wrong = tech.post(
            f"/api/v1/units/{unit.id}/labels/applied",
            json={"code": payload(_other(order, unit).code)},
        )
        assert wrong.status_code == 422 and "not" in wrong.get_json()["detail"]
        applied = tech.post(
            f"/api/v1/units/{unit.id}/labels/applied", json={"code": payload(unit.code)}
        )
        assert applied.status_code == 200 and applied.get_json()["applied"] == 1
    shipped = tech.post("/api/v1/shipments", json=body)
    assert shipped.status_code == 201, shipped.get_json()


def _other(order: Any, unit: Any) -> Any:
    """Another unit of the same dose: its label is not ``unit``'s."""
    return next(u for u in units_of_dose(order) if u.id != unit.id)


def test_the_dispatch_page_refuses_without_the_labels_and_keeps_what_was_typed(
    ward: Ward, clients: Any
) -> None:
    order = ward.prepared(labelled=False)
    tech = clients.web(ward.lab.tech)
    listing = tech.get("/shipments").get_data(as_text=True)
    assert "labels to print and apply" in listing
    assert f'href="/units/{order.dose_unit.id}/labels"' in listing
    refused = tech.post("/shipments", data=dispatch_form(order))
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "has no label: its dose label" in page and 'value="DS-9"' in page
    # the unit's label page says what is missing, prints it and records it applied
    unit_page = tech.get(f"/units/{order.dose_unit.id}/labels").get_data(as_text=True)
    assert 'id="label-state"' in unit_page and "never printed" in unit_page
    for unit in units_of_dose(order):
        printed = tech.post(f"/units/{unit.id}/labels", data={"format": "pdf", "copies": "1"})
        assert printed.status_code == 200
        wrong = tech.post(
            f"/units/{unit.id}/labels/applied", data={"code": payload(_other(order, unit).code)}
        )
        assert wrong.status_code == 422 and "Not this unit" in wrong.get_data(as_text=True)
        applied = tech.post(f"/units/{unit.id}/labels/applied", data={"code": payload(unit.code)})
        assert applied.status_code == 302
    unit_page = tech.get(f"/units/{order.dose_unit.id}/labels").get_data(as_text=True)
    assert "Carries its dose label" in unit_page
    listing = tech.get("/shipments").get_data(as_text=True)
    assert "labels to print and apply" not in listing and '<span class="tag ok">labelled' in listing
    assert tech.post("/shipments", data=dispatch_form(order)).status_code == 302


def test_the_bedside_stops_on_a_label_reprinted_after_dispatch_and_not_applied(
    ward: Ward,
) -> None:
    patient, order = ward.at_bedside()
    assert ward.verify(patient, order).verdict == "go"
    print_units([order.dose_unit], ward.lab.tech, reason="torn at the clinic")
    check = ward.verify(patient, order)
    assert check.verdict == "stop"
    (stopped,) = check.failed
    assert stopped["code"] == "labelled"
    assert order.dose_unit.code in stopped["detail"] and "not applied" in stopped["detail"]
    assert "superseded by that reprint" in stopped["detail"]
    labels.record_applied(
        db.session, None, order.dose_unit.code, actor=ward.clinic.clinician, now=utcnow()
    )
    db.session.commit()
    assert ward.verify(patient, order).verdict == "go"


def test_the_start_makes_the_label_check_again(ward: Ward) -> None:
    patient, order = ward.at_bedside()
    go = ward.sign(ward.verify(patient, order))
    bag = order.bags[0].unit
    print_units([bag], ward.lab.tech, reason="reprinted by mistake")
    started = ward.start(go)
    assert started.infusion is None and started.stop is not None
    assert [c["code"] for c in started.stop.failed] == ["labelled"]
    assert bag.code in started.stop.failed[0]["detail"]


def test_every_print_logs_the_marking_it_carried(ward: Ward) -> None:
    order = ward.prepared()
    prints = db.session.execute(
        select(LabelPrint).where(LabelPrint.unit_id.in_([u.id for u in units_of_dose(order)]))
    ).scalars()
    assert {(p.marking, p.quarantine) for p in prints} == {("", False)}
