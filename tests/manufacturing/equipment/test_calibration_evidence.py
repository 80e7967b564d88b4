"""Issue 22, calibration evidence: a passing calibration is refused without its evidence (the
certificate file or the external certificate's reference number); a failed calibration puts
the equipment out of date from its day on every path of use until a calibration passes; and
the refusals beside them (an event dated after today, a due date before the performed day, a
calibration of equipment out of service). Each on the page and the API, nothing saved."""

from __future__ import annotations

import datetime as dt
import io
from datetime import UTC
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.clinic.models import PostThawCount
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing.equipment import service as equipment
from cellchain.manufacturing.models import (
    EquipmentEvent,
    EquipmentEventKind,
    EquipmentKind,
    ProcessingStep,
    StoragePosition,
)
from cellchain.manufacturing.storage import storage
from cellchain.quality.models import QcResult
from tests.support.equipment import calibrate
from tests.support.ward import WARD_COUNTER

PDF = b"%PDF-1.4\n% certificate\n%%EOF\n"


def _register(actor: Any, code: str, kind: EquipmentKind = EquipmentKind.CENTRIFUGE) -> Any:
    item = equipment.register_equipment(
        db.session,
        equipment.EquipmentInput(
            code=code, kind=kind, name=f"{code} (test)", calibration_interval_days=365
        ),
        actor=actor,
        now=utcnow(),
    )
    db.session.commit()
    return item


def _events(item: Any) -> int:
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(EquipmentEvent)
            .where(EquipmentEvent.equipment_id == item.id)
        )
        or 0
    )


def _event_form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "kind": "calibration",
        "performed_on": utcnow().date().isoformat(),
        "performed_by": "Cal Ltd (typed)",
        "result": "pass",
        "notes": "annual, typed notes",
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def _post_page(client: Any, item: Any, **changes: Any) -> Any:
    return client.post(
        f"/equipment/{item.id}/events",
        data=_event_form(**changes),
        content_type="multipart/form-data",
    )


def _post_api(client: Any, item: Any, **changes: Any) -> Any:
    return client.post(
        f"/api/v1/equipment/{item.id}/events",
        data=_event_form(**changes),
        content_type="multipart/form-data",
    )


# --- 1. a passing calibration needs its evidence ------------------------------------------------


@pytest.mark.parametrize("reference", [None, "", "   ", "-", "N/A", "n.a.", "TBD", "无"])
def test_a_passing_calibration_without_evidence_is_refused(bench: Any, reference: Any) -> None:
    item = _register(bench.lab.qa, "CF-E1")
    with pytest.raises(InvalidInput) as refused:
        equipment.record_event(
            db.session,
            item,
            equipment.EventInput(
                kind=EquipmentEventKind.CALIBRATION,
                performed_on=utcnow().date(),
                performed_by="Cal Ltd",
                passed=True,
                certificate_ref=reference,
            ),
            actor=bench.lab.tech,
            now=utcnow(),
            today=utcnow().date(),
        )
    db.session.rollback()
    assert "evidence" in refused.value.detail
    assert set(refused.value.errors) == {"certificate", "certificate_ref"}
    assert _events(item) == 0
    assert item.calibration_due_on is None


def test_either_the_file_or_the_reference_is_evidence_enough(bench: Any) -> None:
    by_file = _register(bench.lab.qa, "CF-E2")
    by_reference = _register(bench.lab.qa, "CF-E3")
    for item, reference, upload in (
        (by_file, None, equipment.CertificateFile("cal.pdf", PDF)),
        (by_reference, "MC-2026-0412", None),
    ):
        equipment.record_event(
            db.session,
            item,
            equipment.EventInput(
                kind=EquipmentEventKind.CALIBRATION,
                performed_on=utcnow().date(),
                performed_by="Cal Ltd",
                passed=True,
                certificate_ref=reference,
                certificate=upload,
            ),
            actor=bench.lab.tech,
            now=utcnow(),
            today=utcnow().date(),
        )
    db.session.commit()
    assert by_file.calibration_due_on == by_reference.calibration_due_on is not None


def test_a_failure_and_a_maintenance_need_no_certificate(bench: Any) -> None:
    """A failure only takes equipment out of use: it is never refused for want of a paper
    (that would leave failed equipment in date); a maintenance proves no calibration."""
    item = _register(bench.lab.qa, "CF-E4")
    calibrate(db.session, item, actor=bench.lab.tech, now=utcnow(), days_ago=10)
    for kind, passed in (
        (EquipmentEventKind.CALIBRATION, False),
        (EquipmentEventKind.MAINTENANCE, True),
    ):
        equipment.record_event(
            db.session,
            item,
            equipment.EventInput(
                kind=kind, performed_on=utcnow().date(), performed_by="Cal Ltd", passed=passed
            ),
            actor=bench.lab.tech,
            now=utcnow(),
            today=utcnow().date(),
        )
    db.session.commit()
    assert _events(item) == 3 and item.calibration_due_on is None


def test_the_page_refuses_a_calibration_without_evidence_and_keeps_what_was_typed(
    bench: Any, clients: Any
) -> None:
    item = _register(bench.lab.qa, "CF-E5")
    page = _post_page(clients.web(bench.lab.tech), item, certificate_ref="n/a")
    html = page.get_data(as_text=True)
    assert page.status_code == 422, html
    assert 'id="form-error"' in html and "certificate file" in html and "reference" in html
    assert 'value="Cal Ltd (typed)"' in html and 'value="annual, typed notes"' in html
    assert 'value="n/a"' in html
    assert _events(item) == 0
    accepted = _post_page(clients.web(bench.lab.tech), item, certificate_ref="MC-77")
    assert accepted.status_code == 302 and _events(item) == 1


def test_the_page_says_to_choose_the_file_again_after_another_refusal(
    bench: Any, clients: Any
) -> None:
    item = _register(bench.lab.qa, "CF-E6")
    later = (utcnow().date() + dt.timedelta(days=2)).isoformat()
    page = _post_page(
        clients.web(bench.lab.tech),
        item,
        performed_on=later,
        certificate=(io.BytesIO(PDF), "cal.pdf"),
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 422 and 'id="certificate-again"' in html
    assert _events(item) == 0


def test_the_api_refuses_a_calibration_without_evidence(bench: Any, clients: Any) -> None:
    item = _register(bench.lab.qa, "CF-E7")
    api = clients.api(bench.lab.tech)
    answer = _post_api(api, item)
    assert answer.status_code == 422, answer.get_json()
    body = answer.get_json()
    assert "evidence" in body["detail"]
    assert set(body["errors"]) >= {"certificate", "certificate_ref"}
    assert _events(item) == 0
    assert _post_api(api, item, certificate_ref=" - ").status_code == 422
    assert _events(item) == 0
    with_file = _post_api(api, item, certificate=(io.BytesIO(PDF), "cal.pdf"))
    assert with_file.status_code == 201, with_file.get_json()
    assert with_file.get_json()["certificate"]["media_type"] == "application/pdf"


def test_the_refusal_reads_in_chinese(bench: Any, clients: Any) -> None:
    item = _register(bench.lab.qa, "CF-E8")
    answer = clients.api(bench.lab.tech).post(
        f"/api/v1/equipment/{item.id}/events",
        data=_event_form(),
        content_type="multipart/form-data",
        headers={"Accept-Language": "zh-CN"},
    )
    assert answer.status_code == 422
    assert "证书" in answer.get_json()["detail"], answer.get_json()


# --- 2. a failed calibration: out of date from its day, on every path --------------------------


def _failed(actor: Any, code: str, kind: EquipmentKind = EquipmentKind.CENTRIFUGE) -> Any:
    """In date (calibrated 30 days ago), then a calibration failed today."""
    item = _register(actor, code, kind)
    calibrate(db.session, item, actor=actor, now=utcnow(), days_ago=30)
    calibrate(db.session, item, actor=actor, now=utcnow(), passed=False)
    db.session.commit()
    return item


def _failed_words() -> str:
    return f"failed its last calibration on {utcnow().date().isoformat()}"


def test_a_failed_calibration_is_out_of_date_at_once_until_one_passes(bench: Any) -> None:
    item = _failed(bench.lab.tech, "CF-F1")
    today = utcnow().date()
    assert equipment.due_state(item, today) == equipment.DueState.NOT_CALIBRATED
    with pytest.raises(Conflict, match=_failed_words()):
        equipment.require_in_date(db.session, [item], on=today)
    # the day before the failure it was in date: what was done then stands
    equipment.require_in_date(db.session, [item], on=today - dt.timedelta(days=1))
    # a pass dated before the failure does not undo it
    calibrate(db.session, item, actor=bench.lab.tech, now=utcnow(), days_ago=3)
    with pytest.raises(Conflict, match=_failed_words()):
        equipment.require_in_date(db.session, [item], on=today)
    assert item.calibration_due_on is None
    # a pass after it (the same day, recorded later) brings it back
    calibrate(db.session, item, actor=bench.lab.tech, now=utcnow())
    equipment.require_in_date(db.session, [item], on=today)
    assert item.calibration_due_on == today + dt.timedelta(days=365)


def _steps(donation: Any) -> int:
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(ProcessingStep)
            .where(ProcessingStep.donation_id == donation.id)
        )
        or 0
    )


def test_a_step_on_failed_equipment_is_refused_on_the_page_and_the_api(
    bench: Any, clients: Any
) -> None:
    failed = _failed(bench.lab.tech, "CF-F2")
    donation = bench.lab.eligible_donation()
    body = bench.isolation_body(donation, equipment=[failed.id])
    answer = clients.api(bench.lab.tech).post("/api/v1/steps/isolation", json=body)
    assert answer.status_code == 409, answer.get_json()
    assert "CF-F2" in answer.get_json()["detail"]
    assert _failed_words() in answer.get_json()["detail"]
    page = clients.web(bench.lab.tech).post(
        "/steps/isolation",
        data={
            **{k: v for k, v in body.items() if k not in ("tissue", "materials", "equipment")},
            "tissue": donation.units[0].code,
            "materials": bench.materials["medium"].id,
            "equipment": failed.id,
        },
    )
    assert page.status_code == 409 and _failed_words() in page.get_data(as_text=True)
    assert _steps(donation) == 0
    form = clients.web(bench.lab.tech).get("/steps/isolation/new").get_data(as_text=True)
    assert f"calibration failed on {utcnow().date().isoformat()}" in form


def test_a_qc_result_on_a_failed_instrument_is_refused_on_the_page_and_the_api(
    desk: Any, clients: Any
) -> None:
    _failed(desk.lab.qa, "CNT-F3", EquipmentKind.CELL_COUNTER)
    (sample,) = desk.sample()
    today = utcnow().date().isoformat()
    line = {"test": "VIABILITY", "value": 95.0, "instrument": "cnt f3", "tested_on": today}
    answer = clients.api(desk.lab.qc).post(
        f"/api/v1/lots/{desk.lot.id}/results",
        json={"sample": sample.unit.code, "results": [line]},
    )
    assert answer.status_code == 409, answer.get_json()
    assert "CNT-F3" in answer.get_json()["detail"]
    assert _failed_words() in answer.get_json()["detail"]
    page = clients.web(desk.lab.qc).post(
        f"/lots/{desk.lot.id}/results",
        data={
            "sample": sample.unit.code,
            "value-VIABILITY": "95",
            "numeric-VIABILITY": "1",
            "instrument-VIABILITY": "CNT-F3",
            "tested_on-VIABILITY": today,
        },
    )
    assert page.status_code == 409 and _failed_words() in page.get_data(as_text=True)
    assert db.session.execute(select(func.count()).select_from(QcResult)).scalar_one() == 0


def _placed() -> int:
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(StoragePosition)
            .where(StoragePosition.unit_id.is_not(None))
        )
        or 0
    )


def test_a_placement_in_a_failed_tank_is_refused_on_the_page_and_the_api(
    bench: Any, clients: Any
) -> None:
    from tests.support.storage import make_lot

    tank = _failed(bench.lab.tech, "LN2-F4", EquipmentKind.LN2_TANK)
    _lot, bags = make_lot(bench, bags=1)
    before = _placed()
    answer = clients.api(bench.lab.tech).post(
        f"/api/v1/storage/units/{bags[0].id}",
        json={"tank_id": tank.id, "rack": "1", "box": "1", "slot": "1"},
    )
    assert answer.status_code == 409, answer.get_json()
    assert _failed_words() in answer.get_json()["detail"]
    page = clients.web(bench.lab.tech).post(
        f"/storage/tanks/{tank.id}/store",
        data={"code": bags[0].code, "rack": "1", "box": "1", "slot": "1"},
        follow_redirects=True,
    )
    assert _failed_words() in page.get_data(as_text=True)
    assert _placed() == before
    with pytest.raises(Conflict, match=_failed_words()):
        storage.store_unit(
            db.session,
            bags[0],
            tank=tank,
            rack="1",
            box="1",
            slot="2",
            actor=bench.lab.tech,
            now=utcnow(),
            zone=UTC,
        )
    db.session.rollback()


def _count_body(method: str, counter: str) -> dict[str, Any]:
    return {
        "total_cells_per_ml": 5.0e6,
        "viability_percent": 90,
        "place": "pharmacy",
        "method": method,
        "counter": counter,
    }


def _counts() -> int:
    return int(db.session.scalar(select(func.count()).select_from(PostThawCount)) or 0)


@pytest.mark.parametrize(
    ("field", "method", "counter"),
    [
        # the count's own cell counter failed its calibration
        ("counter", "NucleoCounter NC-200, AO/DAPI", "cnt f5"),
        # the counter is in date, but the method names a registered one that failed
        ("method", "NucleoCounter CNT-F5, AO/DAPI", WARD_COUNTER),
    ],
)
def test_a_post_thaw_count_on_a_failed_counter_is_refused_on_the_page_and_the_api(
    ward: Any, clients: Any, field: str, method: str, counter: str
) -> None:
    _patient, order = ward.at_bedside()
    _failed(ward.lab.qa, "CNT-F5", EquipmentKind.CELL_COUNTER)
    body = _count_body(method, counter)
    answer = clients.api(ward.clinic.clinician).post(
        f"/api/v1/doses/{order.id}/post-thaw-counts", json=body
    )
    assert answer.status_code == 409, answer.get_json()
    assert _failed_words() in answer.get_json()["detail"]
    assert field in answer.get_json()["errors"]
    page = clients.web(ward.clinic.clinician).post(f"/doses/{order.id}/post-thaw-count", data=body)
    assert page.status_code == 409 and _failed_words() in page.get_data(as_text=True)
    assert _counts() == 0


# --- 3. beside them -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["calibration", "maintenance"])
def test_an_event_dated_after_today_is_refused_on_the_page_and_the_api(
    bench: Any, clients: Any, kind: str
) -> None:
    item = _register(bench.lab.qa, f"CF-T{kind[0].upper()}")
    later = (utcnow().date() + dt.timedelta(days=2)).isoformat()
    fields = {"kind": kind, "performed_on": later, "certificate_ref": "MC-1"}
    page = _post_page(clients.web(bench.lab.tech), item, **fields)
    assert page.status_code == 422 and "Not in the future." in page.get_data(as_text=True)
    answer = _post_api(clients.api(bench.lab.tech), item, **fields)
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["errors"]["performed_on"] == ["Not in the future."]
    assert _events(item) == 0


def test_a_due_date_is_never_typed_nor_before_the_performed_day(bench: Any, clients: Any) -> None:
    """The next due date is computed (performed on + the interval, 1 day at least); one sent
    with the record is refused, not stored."""
    item = _register(bench.lab.qa, "CF-N1")
    day = utcnow().date()
    earlier = (day - dt.timedelta(days=30)).isoformat()
    answer = _post_api(
        clients.api(bench.lab.tech), item, certificate_ref="MC-2", next_due_on=earlier
    )
    assert answer.status_code == 422, answer.get_json()
    assert "next_due_on" in answer.get_json()["errors"]
    page = _post_page(
        clients.web(bench.lab.tech), item, certificate_ref="MC-2", next_due_on=earlier
    )
    assert page.status_code == 422
    assert _events(item) == 0
    event = calibrate(db.session, item, actor=bench.lab.tech, now=utcnow(), days_ago=5)
    assert event.next_due_on == event.performed_on + dt.timedelta(days=365)
    with pytest.raises(InvalidInput):
        equipment.change_intervals(
            db.session,
            item,
            equipment.Intervals(0, None, None),
            reason="none",
            actor=bench.lab.qa,
            now=utcnow(),
        )


def test_a_calibration_of_equipment_out_of_service_is_refused(bench: Any, clients: Any) -> None:
    item = _register(bench.lab.qa, "CF-O1")
    calibrate(db.session, item, actor=bench.lab.tech, now=utcnow(), days_ago=30)
    item.active = False
    db.session.commit()
    before = _events(item)
    assert equipment.EquipmentAction.RECORD_CALIBRATION not in equipment.equipment_actions(item)
    shown = clients.web(bench.lab.tech).get(f"/equipment/{item.id}").get_data(as_text=True)
    assert 'option value="calibration"' not in shown and 'option value="maintenance"' in shown
    page = _post_page(clients.web(bench.lab.tech), item, certificate_ref="MC-3")
    assert page.status_code == 409 and "out of service" in page.get_data(as_text=True)
    answer = _post_api(clients.api(bench.lab.tech), item, certificate_ref="MC-3")
    assert answer.status_code == 409, answer.get_json()
    assert (
        "CF-O1" in answer.get_json()["detail"] and "out of service" in answer.get_json()["detail"]
    )
    assert _events(item) == before
    # a maintenance (a repair) of equipment out of service is recorded
    maintained = _post_api(clients.api(bench.lab.tech), item, kind="maintenance")
    assert maintained.status_code == 201, maintained.get_json()
