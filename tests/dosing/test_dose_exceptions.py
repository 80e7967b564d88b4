"""Dose exceptions (issue 19) through the API: cancel a dose order whose bags never left the lab
(bags back to available), destroy a prepared, shipped or thawed dose (units discarded, reason,
witness), each signed and audited; refused on an infused dose with nothing saved; a replacement
dose for the visit follows, and is still refused while a live dose holds the visit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.core.models import AuditEntry, Signature
from cellchain.core.types import utcnow
from cellchain.dosing import exceptions, orders
from cellchain.dosing.models import DoseOrder, DoseStatus
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD


def _signatures(order_id: int) -> int:
    return int(
        db.session.execute(
            select(func.count())
            .select_from(Signature)
            .where(Signature.entity_type == "dose_order", Signature.entity_id == str(order_id))
        ).scalar_one()
    )


def _audited(order_id: int, action: str) -> int:
    return int(
        db.session.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                AuditEntry.entity_type == "dose_order",
                AuditEntry.entity_id == str(order_id),
                AuditEntry.action == action,
            )
        ).scalar_one()
    )


def _destroy(client: Any, order_id: int, **changes: Any) -> Any:
    body = {
        "reason": "thaw window missed",
        "password": TEST_PASSWORD,
        "witness": "nina",
        "witness_password": TEST_PASSWORD,
    }
    body.update(changes)
    return client.post(f"/api/v1/doses/{order_id}/destroy", json=body)


def _cancel(client: Any, order_id: int, **changes: Any) -> Any:
    body = {"reason": "patient unwell today", "password": TEST_PASSWORD}
    body.update(changes)
    return client.post(f"/api/v1/doses/{order_id}/cancel", json=body)


def _status(order_id: int) -> str:
    db.session.expire_all()
    return db.session.get(DoseOrder, order_id).status  # type: ignore[union-attr]


def test_cancelling_an_allocated_dose_returns_its_bags_and_frees_the_visit(
    ward: Any, clients: Any
) -> None:
    patient = ward.patient()
    tech = clients.api(ward.lab.tech)
    ordered = tech.post(f"/api/v1/patients/{patient.id}/doses", json={"visit": "D0"}).get_json()
    assert "cancel" in ordered["actions"] and "destroy" not in ordered["actions"]
    again = tech.post(f"/api/v1/patients/{patient.id}/doses", json={"visit": "D0"})
    assert again.status_code == 422 and "already has a dose order" in again.get_json()["detail"]
    no_reason = _cancel(tech, ordered["id"], reason="")
    assert no_reason.status_code == 422 and _status(ordered["id"]) == "allocated"
    cancelled = _cancel(tech, ordered["id"])
    assert cancelled.status_code == 200, cancelled.get_json()
    done = cancelled.get_json()
    assert done["status"] == "cancelled" and done["actions"] == []
    assert [b["unit"]["status"] for b in done["bags"]] == ["available"]
    assert [s["meaning"] for s in done["signatures"]] == [exceptions.CANCEL_MEANING]
    assert _audited(ordered["id"], "dose.cancelled") == 1
    replacement = tech.post(f"/api/v1/patients/{patient.id}/doses", json={"visit": "D0"})
    assert replacement.status_code == 201, replacement.get_json()
    assert replacement.get_json()["id"] != ordered["id"]


def test_a_prepared_dose_still_in_the_lab_is_cancelled_its_dose_unit_discarded(
    ward: Any, clients: Any
) -> None:
    order = ward.prepared()
    cancelled = _cancel(clients.api(ward.lab.tech), order.id)
    assert cancelled.status_code == 200, cancelled.get_json()
    assert cancelled.get_json()["bags"][0]["unit"]["status"] == "available"
    assert cancelled.get_json()["dose_unit"]["status"] == "discarded"


def test_a_shipped_dose_is_not_cancelled_back_to_stock_but_may_be_destroyed(
    ward: Any, clients: Any
) -> None:
    order = ward.prepared()
    ward.ship(order)
    tech = clients.api(ward.lab.tech)
    shown = tech.get(f"/api/v1/doses/{order.id}").get_json()
    assert "cancel" not in shown["actions"] and "destroy" in shown["actions"]
    refused = _cancel(tech, order.id)
    assert refused.status_code == 409 and "left the lab" in refused.get_json()["detail"]
    assert _status(order.id) == "prepared" and _signatures(order.id) == 1


def test_a_stopped_thawed_dose_is_destroyed_witnessed_and_replaced_the_same_day(
    ward: Any, clients: Any
) -> None:
    # checked at the bedside two hours after the thaw: stopped (thaw window exceeded)
    patient, order = ward.at_bedside()
    check = ward.verify(patient, order, now=utcnow() + dt.timedelta(hours=2))
    assert not check.go
    clinician = clients.api(ward.clinic.clinician)
    # the witness must be another person, with their own password
    same = _destroy(clinician, order.id, witness="cleo")
    assert same.status_code == 422 and "witness" in same.get_json()["errors"]
    wrong = _destroy(clinician, order.id, witness_password="not it")
    assert wrong.status_code in (401, 403, 422)
    no_reason = _destroy(clinician, order.id, reason=" ")
    assert no_reason.status_code == 422
    assert _status(order.id) == "prepared" and _signatures(order.id) == 1
    destroyed = _destroy(clinician, order.id)
    assert destroyed.status_code == 200, destroyed.get_json()
    done = destroyed.get_json()
    assert done["status"] == DoseStatus.CANCELLED.value
    assert [s["meaning"] for s in done["signatures"]][1:] == [
        exceptions.DESTROY_MEANING,
        exceptions.WITNESS_MEANING,
    ]
    assert done["dose_unit"]["status"] == "discarded"
    assert {b["unit"]["status"] for b in done["bags"]} == {"discarded"}
    assert _audited(order.id, "dose.destroyed") == 1
    again = _destroy(clinician, order.id)
    assert again.status_code == 409
    replacement = clients.api(ward.lab.tech).post(
        f"/api/v1/patients/{patient.id}/doses", json={"visit": "D0"}
    )
    assert replacement.status_code == 201, replacement.get_json()


def test_an_infused_dose_is_neither_cancelled_nor_destroyed_and_nothing_is_saved(
    ward: Any, clients: Any
) -> None:
    patient, order = ward.at_bedside()
    ward.start(ward.sign(ward.verify(patient, order)))
    assert _status(order.id) == "infused"
    signed = _signatures(order.id)
    shown = clients.api(ward.lab.tech).get(f"/api/v1/doses/{order.id}").get_json()
    assert shown["actions"] == []
    cancel = _cancel(clients.api(ward.lab.tech), order.id)
    destroy = _destroy(clients.api(ward.clinic.clinician), order.id)
    for refused in (cancel, destroy):
        assert refused.status_code == 409, refused.get_json()
        assert "infused" in refused.get_json()["detail"]
    assert _status(order.id) == "infused" and _signatures(order.id) == signed
    assert _audited(order.id, "dose.cancelled") + _audited(order.id, "dose.destroyed") == 0


@pytest.mark.parametrize("status", list(DoseStatus))
def test_each_act_is_offered_exactly_where_the_table_allows_it(status: DoseStatus) -> None:
    order = DoseOrder(id=1, status=status.value, bags=[])
    offered = exceptions.exception_actions(order)
    assert (exceptions.DoseException.CANCEL in offered) == (
        status in (DoseStatus.ALLOCATED, DoseStatus.PREPARED)
    )
    assert (exceptions.DoseException.DESTROY in offered) == (status == DoseStatus.PREPARED)
    assert orders.dose_actions(order).isdisjoint(offered)


def test_the_stopped_doses_pages_offer_the_next_steps_and_the_destroy_form_works(
    ward: Any, clients: Any
) -> None:
    patient, order = ward.at_bedside()
    check = ward.verify(patient, order, now=utcnow() + dt.timedelta(hours=2))
    web = clients.web(ward.clinic.clinician)
    stopped = web.get(f"/bedside/checks/{check.id}").get_data(as_text=True)
    assert 'id="dose-next-steps"' in stopped and f"/doses/{order.id}" in stopped
    page = web.get(f"/doses/{order.id}").get_data(as_text=True)
    assert 'id="destroy-form"' in page and 'id="cancel-form"' not in page
    lab_page = clients.web(ward.lab.tech).get(f"/doses/{order.id}").get_data(as_text=True)
    assert 'id="destroy-form"' not in lab_page and 'id="cancel-form"' not in lab_page
    form = {
        "reason": "thaw window missed",
        "password": TEST_PASSWORD,
        "witness": "nina",
        "witness_password": TEST_PASSWORD,
    }
    refused = web.post(f"/doses/{order.id}/destroy", data=dict(form, witness="cleo"))
    assert refused.status_code == 422 and _status(order.id) == "prepared"
    done = web.post(f"/doses/{order.id}/destroy", data=form)
    assert done.status_code == 302 and _status(order.id) == "cancelled"
    after = web.get(f"/doses/{order.id}").get_data(as_text=True)
    assert 'id="destroy-form"' not in after and exceptions.WITNESS_MEANING in after


def _lookback(order: DoseOrder, qa: Any) -> None:
    """The donor lookback: every unit of the dose's donation blocked (its dose not withdrawn)."""
    from cellchain.donors import service as donors

    donors.block_donation_units(db.session, order.bags[0].unit.donation, actor=qa, now=utcnow())
    db.session.commit()


def test_an_allocated_dose_whose_bag_was_blocked_can_still_be_taken_out_of_use(
    ward: Any, clients: Any
) -> None:
    patient = ward.patient()
    tech = clients.api(ward.lab.tech)
    ordered = tech.post(f"/api/v1/patients/{patient.id}/doses", json={"visit": "D0"}).get_json()
    _lookback(db.session.get(DoseOrder, ordered["id"]), ward.lab.qa)
    shown = tech.get(f"/api/v1/doses/{ordered['id']}").get_json()
    assert shown["status"] == "allocated" and "cancel" in shown["actions"], shown["actions"]
    page = clients.web(ward.lab.tech).get(f"/doses/{ordered['id']}").get_data(as_text=True)
    assert 'id="cancel-form"' in page
    cancelled = _cancel(tech, ordered["id"], reason="donor determined ineligible")
    assert cancelled.status_code == 200, cancelled.get_json()
    done = cancelled.get_json()
    assert done["status"] == "cancelled" and done["actions"] == []
    assert {b["unit"]["status"] for b in done["bags"]} == {"blocked"}  # never back to stock
    assert [s["meaning"] for s in done["signatures"]] == [exceptions.CANCEL_MEANING]
    assert _audited(ordered["id"], "dose.cancelled") == 1
    again = tech.post(f"/api/v1/patients/{patient.id}/doses", json={"visit": "D0"})
    assert "already has a dose order" not in again.get_json().get("detail", "")


def test_a_prepared_dose_blocked_in_the_lab_is_cancelled_and_its_units_stay_blocked(
    ward: Any, clients: Any
) -> None:
    order = ward.prepared()
    _lookback(order, ward.lab.qa)
    tech = clients.api(ward.lab.tech)
    assert "cancel" in tech.get(f"/api/v1/doses/{order.id}").get_json()["actions"]
    cancelled = _cancel(tech, order.id, reason="donor determined ineligible")
    assert cancelled.status_code == 200, cancelled.get_json()
    done = cancelled.get_json()
    assert done["status"] == "cancelled" and done["dose_unit"]["status"] == "blocked"
    assert {b["unit"]["status"] for b in done["bags"]} == {"blocked"}


def test_a_shipped_dose_blocked_afterwards_has_left_the_lab_and_is_destroyed_not_cancelled(
    ward: Any, clients: Any
) -> None:
    order = ward.prepared()
    ward.ship(order)
    _lookback(order, ward.lab.qa)
    tech = clients.api(ward.lab.tech)
    shown = tech.get(f"/api/v1/doses/{order.id}").get_json()
    assert "cancel" not in shown["actions"] and "destroy" in shown["actions"]
    refused = _cancel(tech, order.id)
    assert refused.status_code == 409 and "left the lab" in refused.get_json()["detail"]
    assert _status(order.id) == "prepared" and _audited(order.id, "dose.cancelled") == 0
    destroyed = _destroy(clients.api(ward.clinic.clinician), order.id, reason="donor ineligible")
    assert destroyed.status_code == 200, destroyed.get_json()
    assert destroyed.get_json()["dose_unit"]["status"] == "blocked"


def test_an_allocated_dose_with_a_bag_in_quarantine_is_cancelled_and_the_bag_stays_there(
    ward: Any, clients: Any
) -> None:
    from cellchain.chain import service as chain
    from cellchain.chain.models import UnitStatus

    patient = ward.patient()
    tech = clients.api(ward.lab.tech)
    ordered = tech.post(f"/api/v1/patients/{patient.id}/doses", json={"visit": "D0"}).get_json()
    order = db.session.get(DoseOrder, ordered["id"])
    chain.change_status_many(
        db.session,
        [bag.unit for bag in order.bags],
        UnitStatus.QUARANTINE,
        actor=ward.lab.qa,
        now=utcnow(),
        reason="label damaged",
    )
    db.session.commit()
    cancelled = _cancel(tech, ordered["id"])
    assert cancelled.status_code == 200, cancelled.get_json()
    assert {b["unit"]["status"] for b in cancelled.get_json()["bags"]} == {"quarantine"}
