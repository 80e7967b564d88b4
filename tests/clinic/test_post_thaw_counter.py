"""Issue 22: a post-thaw count names its cell counter in a field of its own.

Before, the counter was found only when its asset ID appeared in the free-text method: a count
"haemocytometer" or "NucleoCounter" (no ID) escaped the calibration check. Now the counter is
required, a registered, active cell counter, in date on the count's day on the site's
calendar; refused on the page (the form keeping what was typed) and the API, nothing saved.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from cellchain.clinic.models import PostThawCount
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.equipment import service as equipment
from cellchain.manufacturing.models import EquipmentKind
from tests.support.equipment import calibrate, register_in_date
from tests.support.ward import WARD_COUNTER, Ward

#: the method in words, naming no asset ID (it escaped the check before)
METHOD = "NucleoCounter NC-200, AO/DAPI (ward)"


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "total_cells_per_ml": 5.0e6,
        "viability_percent": 90,
        "place": "pharmacy",
        "method": METHOD,
        "counter": WARD_COUNTER,
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def _counts() -> int:
    return int(db.session.scalar(select(func.count()).select_from(PostThawCount)) or 0)


def _overdue(ward: Ward, code: str) -> Any:
    """A cell counter with a 365-day interval calibrated 400 days ago: due 35 days ago."""
    item = equipment.register_equipment(
        db.session,
        equipment.EquipmentInput(
            code=code,
            kind=EquipmentKind.CELL_COUNTER,
            name=f"{code} (test)",
            calibration_interval_days=365,
        ),
        actor=ward.lab.qa,
        now=utcnow(),
    )
    calibrate(db.session, item, actor=ward.lab.qa, now=utcnow(), days_ago=400)
    db.session.commit()
    return item


def _register(ward: Ward, code: str, kind: EquipmentKind) -> Any:
    item = register_in_date(
        db.session, code=code, kind=kind, name=f"{code} (test)", actor=ward.lab.qa, now=utcnow()
    )
    db.session.commit()
    return item


def _refused_on_both(ward: Ward, clients: Any, status: int, field: str, **changes: Any) -> str:
    """Post the count on the API and the page; both refuse with ``status`` on ``field``, the
    page keeps what was typed, nothing is saved. The API's detail."""
    _patient, order = ward.at_bedside()
    nurse = ward.clinic.clinician
    answer = clients.api(nurse).post(
        f"/api/v1/doses/{order.id}/post-thaw-counts", json=_body(**changes)
    )
    assert answer.status_code == status, answer.get_json()
    assert field in answer.get_json()["errors"], answer.get_json()
    page = clients.web(nurse).post(f"/doses/{order.id}/post-thaw-count", data=_body(**changes))
    text = page.get_data(as_text=True)
    assert page.status_code == status
    assert 'id="form-error"' in text and METHOD in text  # what was typed is kept
    assert _counts() == 0
    return str(answer.get_json()["detail"])


def test_a_count_without_its_counter_is_refused(ward: Ward, clients: Any) -> None:
    detail = _refused_on_both(ward, clients, 422, "counter", counter=None)
    assert "Choose the cell counter used" in detail


def test_a_count_on_an_overdue_counter_not_named_in_the_method_is_refused(
    ward: Ward, clients: Any
) -> None:
    _overdue(ward, "CNT-41")
    detail = _refused_on_both(ward, clients, 409, "counter", counter="cnt 41")
    assert "CNT-41" in detail


def test_a_count_on_an_unregistered_counter_is_refused(ward: Ward, clients: Any) -> None:
    detail = _refused_on_both(ward, clients, 422, "counter", counter="CNT-99")
    assert "CNT-99 is not registered equipment" in detail


def test_a_count_on_equipment_that_is_no_cell_counter_is_refused(ward: Ward, clients: Any) -> None:
    _register(ward, "CF-41", EquipmentKind.CENTRIFUGE)
    detail = _refused_on_both(ward, clients, 422, "counter", counter="CF-41")
    assert "CF-41 is a centrifuge, not a cell counter" in detail


def test_a_count_on_a_counter_out_of_service_is_refused(ward: Ward, clients: Any) -> None:
    item = _register(ward, "CNT-42", EquipmentKind.CELL_COUNTER)
    item.active = False
    db.session.commit()
    detail = _refused_on_both(ward, clients, 422, "counter", counter="CNT-42")
    assert "CNT-42 is out of service" in detail


def test_a_count_names_its_counter_in_the_record_the_api_and_the_audit_trail(
    ward: Ward, clients: Any
) -> None:
    _patient, order = ward.at_bedside()
    nurse = clients.api(ward.clinic.clinician)
    url = f"/api/v1/doses/{order.id}/post-thaw-counts"
    recorded = nurse.post(url, json=_body(counter="ｃｎｔ 20"))  # full-width, spaced
    assert recorded.status_code == 201, recorded.get_json()
    assert recorded.get_json()["counter"] == WARD_COUNTER
    assert recorded.get_json()["method"] == METHOD  # the words stay as typed
    count = db.session.scalars(select(PostThawCount)).one()
    assert count.counter is not None and count.counter.code == WARD_COUNTER
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "post_thaw.counted")
    ).scalar_one()
    assert json.loads(entry.changes)["equipment"] == [None, WARD_COUNTER]
    listed = nurse.get(url).get_json()["counts"]
    assert [c["counter"] for c in listed] == [WARD_COUNTER]


def test_the_page_offers_the_registered_cell_counters_in_service(ward: Ward, clients: Any) -> None:
    _patient, order = ward.at_bedside()
    _register(ward, "CF-43", EquipmentKind.CENTRIFUGE)
    late = _overdue(ward, "CNT-43")
    gone = _register(ward, "CNT-44", EquipmentKind.CELL_COUNTER)
    gone.active = False
    db.session.commit()
    page = clients.web(ward.clinic.clinician).get(f"/doses/{order.id}/post-thaw-count")
    text = page.get_data(as_text=True)
    assert '<select id="counter" name="counter" required>' in text
    assert f'<option value="{WARD_COUNTER}" translate="no">' in text
    # overdue: shown, not chosen
    assert f'<option value="{late.code}" translate="no" disabled>' in text
    assert "CF-43" not in text and "CNT-44" not in text
    recorded = clients.web(ward.clinic.clinician).post(
        f"/doses/{order.id}/post-thaw-count", data=_body()
    )
    assert recorded.status_code == 302
    assert _counts() == 1
