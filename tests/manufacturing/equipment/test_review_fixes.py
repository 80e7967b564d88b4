"""Review 1 of issue 22, items 3, 4, 13 and 14: an overdue instrument is recognised however its
asset ID is typed (QC result, post-thaw count); a step judges equipment on the site's calendar
day, as storage and material lots do; intervals and exemptions are QA's alone."""

from __future__ import annotations

import datetime as dt
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from cellchain.clinic.models import PostThawCount
from cellchain.core.models import AuditEntry
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.errors import Conflict
from cellchain.extensions import db
from cellchain.manufacturing.equipment import service as equipment
from cellchain.manufacturing.models import Equipment, EquipmentEventKind, EquipmentKind, StepKind
from cellchain.manufacturing.processing import processing
from cellchain.quality.models import QcResult
from tests.support.equipment import calibrate, register_in_date
from tests.support.ward import WARD_COUNTER

#: the ways a Chinese IME or a hurried hand types ``CNT-09``
SPELLINGS = ("CNT 09", "CNT09", "CNT\u201109", "\uff23\uff2e\uff34-09", " cnt\u2010 09 ")


def _overdue(actor: Any, code: str, kind: EquipmentKind = EquipmentKind.CELL_COUNTER) -> Any:
    """Registered with a 365-day interval, calibrated 400 days ago: due 35 days ago."""
    item = equipment.register_equipment(
        db.session,
        equipment.EquipmentInput(
            code=code, kind=kind, name=f"{code} (test)", calibration_interval_days=365
        ),
        actor=actor,
        now=utcnow(),
    )
    calibrate(db.session, item, actor=actor, now=utcnow(), days_ago=400)
    db.session.commit()
    return item


# --- item 3: the asset ID however typed --------------------------------------------------------


def test_the_key_of_an_asset_id_ignores_case_spacing_hyphens_and_width() -> None:
    assert {equipment.code_key(text) for text in (*SPELLINGS, "cnt-09")} == {"CNT09"}
    assert equipment.code_key("CNT-090") != equipment.code_key("CNT-09")


@pytest.mark.parametrize("typed", SPELLINGS)
def test_a_qc_result_on_an_overdue_instrument_typed_another_way_is_refused(
    desk: Any, typed: str
) -> None:
    _overdue(desk.lab.qa, "CNT-09")
    with pytest.raises(Conflict, match="CNT-09") as refused:
        desk.record(desk.entry("VIABILITY", instrument=typed))
    db.session.rollback()
    assert "VIABILITY.instrument" in refused.value.errors
    assert db.session.execute(select(func.count()).select_from(QcResult)).scalar_one() == 0


def test_an_in_date_instrument_typed_another_way_is_linked(desk: Any) -> None:
    good = register_in_date(
        db.session,
        code="CNT-10",
        kind=EquipmentKind.CELL_COUNTER,
        name="Counter",
        actor=desk.lab.qa,
        now=utcnow(),
    )
    (result,) = desk.record(desk.entry("VIABILITY", instrument="\uff23\uff2e\uff34 10"))
    assert result.equipment_id == good.id


@pytest.mark.parametrize("second", ["CNT 09", "cnt09", "\uff23\uff2e\uff34-09"])
def test_a_second_code_with_the_same_key_is_refused(bench: Any, second: str) -> None:
    _overdue(bench.lab.qa, "CNT-09")
    with pytest.raises(Conflict, match="CNT-09") as refused:
        equipment.register_equipment(
            db.session,
            equipment.EquipmentInput(
                code=second,
                kind=EquipmentKind.CELL_COUNTER,
                name="Another counter",
                calibration_interval_days=365,
            ),
            actor=bench.lab.qa,
            now=utcnow(),
        )
    db.session.rollback()
    assert "code" in refused.value.errors
    codes = db.session.execute(select(Equipment.code)).scalars().all()
    assert [code for code in codes if equipment.code_key(code) == "CNT09"] == ["CNT-09"]


def test_equipment_named_in_words_is_found_as_whole_words(bench: Any) -> None:
    late = _overdue(bench.lab.qa, "CNT-09")
    assert equipment.named_in(db.session, "NucleoCounter NC-200 (\uff43\uff4e\uff54 09)") == [late]
    assert equipment.named_in(db.session, "计数仪CNT\u201109，AO/DAPI") == [late]
    assert equipment.named_in(db.session, "NucleoCounter CNT-090") == []
    assert equipment.named_in(db.session, "") == []


# --- item 4: the step's day on the site's calendar ----------------------------------------------


def _due_on_1_march_2026(bench: Any) -> Any:
    """Calibrated on 1 March 2025 with a 365-day interval: usable up to 1 March 2026."""
    registered = dt.datetime(2025, 2, 1, 9, 0, tzinfo=UTC)
    item = equipment.register_equipment(
        db.session,
        equipment.EquipmentInput(
            code="CF-77",
            # a freezing needs its controlled-rate freezer and nothing else (issue 22)
            kind=EquipmentKind.CONTROLLED_RATE_FREEZER,
            name="CF-77 (test)",
            calibration_interval_days=365,
        ),
        actor=bench.lab.qa,
        now=registered,
    )
    equipment.record_event(
        db.session,
        item,
        equipment.EventInput(
            kind=EquipmentEventKind.CALIBRATION,
            performed_on=dt.date(2025, 3, 1),
            performed_by="Calibration Services Ltd (test)",
            passed=True,
            certificate_ref="CERT-CF-77-2025",
        ),
        actor=bench.lab.tech,
        now=dt.datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        today=dt.date(2025, 3, 1),
    )
    db.session.commit()
    assert item.calibration_due_on == dt.date(2026, 3, 1)
    return item


def _step_at(bench: Any, item: Any, at: dt.datetime, zone: str) -> Any:
    return processing._context(
        db.session,
        processing.StepContext(performed_at=at, equipment_ids=(item.id,), zone=ZoneInfo(zone)),
        actor=bench.lab.tech,
        now=at,
        after=(),
        step=StepKind.FREEZING,
    )


def test_a_step_east_of_utc_judges_equipment_on_the_site_day(bench: Any) -> None:
    """20:30 UTC on 1 March is 04:30 on 2 March in Shanghai (+08:00): the day after the due
    date there, refused (it was accepted on its UTC date, 1 March)."""
    item = _due_on_1_march_2026(bench)
    at = dt.datetime(2026, 3, 1, 20, 30, tzinfo=UTC)
    with pytest.raises(Conflict, match="CF-77") as refused:
        _step_at(bench, item, at, "Asia/Shanghai")
    assert "2026-03-02" in refused.value.detail and "2026-03-01" in refused.value.detail
    assert _step_at(bench, item, at, "UTC").equipment == [item]


def test_a_step_west_of_utc_judges_equipment_on_the_site_day(bench: Any) -> None:
    """02:00 UTC on 2 March is 21:00 on 1 March in Bogotá (−05:00): the due day there,
    accepted (it was refused on its UTC date, 2 March)."""
    item = _due_on_1_march_2026(bench)
    at = dt.datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    assert _step_at(bench, item, at, "America/Bogota").equipment == [item]
    with pytest.raises(Conflict, match="CF-77"):
        _step_at(bench, item, at, "UTC")


# --- item 13: the post-thaw count's instrument --------------------------------------------------


def _count_body(method: str, counter: str = WARD_COUNTER) -> dict[str, Any]:
    return {
        "total_cells_per_ml": 5.0e6,
        "viability_percent": 90,
        "place": "pharmacy",
        "method": method,
        "counter": counter,
    }


def _counts() -> int:
    return int(db.session.scalar(select(func.count()).select_from(PostThawCount)) or 0)


def test_a_post_thaw_count_on_an_overdue_counter_is_refused(ward: Any, clients: Any) -> None:
    _patient, order = ward.at_bedside()
    qa = ward.lab.qa
    late = _overdue(qa, "CNT-31")
    nurse = clients.api(ward.clinic.clinician)
    url = f"/api/v1/doses/{order.id}/post-thaw-counts"
    refused = nurse.post(url, json=_count_body("NucleoCounter \uff23\uff2e\uff34 31, AO/DAPI"))
    assert refused.status_code == 409, refused.get_json()
    assert "CNT-31" in refused.get_json()["detail"]
    assert "method" in refused.get_json()["errors"]
    assert _counts() == 0
    good = register_in_date(
        db.session,
        code="CNT-32",
        kind=EquipmentKind.CELL_COUNTER,
        name="Counter",
        actor=qa,
        now=utcnow(),
    )
    db.session.commit()
    recorded = nurse.post(url, json=_count_body("NucleoCounter cnt32, AO/DAPI", "cnt 32"))
    assert recorded.status_code == 201, recorded.get_json()
    assert _counts() == 1
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "post_thaw.counted")
    ).scalar_one()
    assert good.code in entry.changes and late.code not in entry.changes


# --- item 14: intervals and exemptions are QA's ------------------------------------------------


def test_only_qa_registers_equipment_and_changes_its_intervals(
    bench: Any, clients: Any, make_user: Any
) -> None:
    admin = clients.api(make_user("equip-admin", Role.ADMIN))
    qa = clients.api(bench.lab.qa)
    body = {"code": "CF-88", "kind": "centrifuge", "name": "CF", "calibration_interval_days": 365}
    assert admin.post("/api/v1/equipment", json=body).status_code == 403
    made = qa.post("/api/v1/equipment", json=body)
    assert made.status_code == 201, made.get_json()
    longer = {
        "calibration_interval_days": 3650,
        "calibration_exempt_reason": None,
        "maintenance_interval_days": None,
        "reason": "longer",
    }
    url = f"/api/v1/equipment/{made.get_json()['id']}/intervals"
    assert admin.put(url, json=longer).status_code == 403
    assert qa.put(url, json=longer).status_code == 200


# --- item 3, better: the results form offers the registered instruments -------------------------


def test_the_results_form_offers_the_registered_cell_counters(desk: Any, clients: Any) -> None:
    register_in_date(
        db.session,
        code="CNT-10",
        kind=EquipmentKind.CELL_COUNTER,
        name="Counter",
        actor=desk.lab.qa,
        now=utcnow(),
    )
    register_in_date(
        db.session,
        code="CF-10",
        kind=EquipmentKind.CENTRIFUGE,
        name="Centrifuge",
        actor=desk.lab.qa,
        now=utcnow(),
    )
    db.session.commit()
    desk.sample()
    page = clients.web(desk.lab.qc).get(f"/lots/{desk.lot.id}/testing").get_data(as_text=True)
    offered = page.split('<datalist id="instruments">', 1)[1].split("</datalist>", 1)[0]
    assert '<option value="CNT-10">' in offered and "CF-10" not in offered
    assert 'name="instrument-VIABILITY" list="instruments"' in page
