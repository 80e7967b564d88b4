"""Equipment a QC result's instrument or a post-thaw count's method names, however typed,
is held to what a step's is: in service and in date on the day of use
(``equipment.service.require_in_date``); refused, nothing recorded."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.models import EquipmentKind
from cellchain.quality.models import QcResult
from tests.manufacturing.equipment.test_calibration_evidence import _count_body, _failed, _register
from tests.support.equipment import calibrate
from tests.support.ward import WARD_COUNTER


def _results() -> int:
    return int(db.session.execute(select(func.count()).select_from(QcResult)).scalar_one())


def test_qc_result_instrument_in_words_escapes_failed_calibration(desk: Any, clients: Any) -> None:
    _failed(desk.lab.qa, "CNT-F3", EquipmentKind.CELL_COUNTER)
    (sample,) = desk.sample()
    today = utcnow().date().isoformat()
    line = {
        "test": "VIABILITY",
        "value": 95.0,
        "instrument": "NucleoCounter CNT-F3",
        "tested_on": today,
    }
    answer = clients.api(desk.lab.qc).post(
        f"/api/v1/lots/{desk.lot.id}/results",
        json={"sample": sample.unit.code, "results": [line]},
    )
    assert answer.status_code == 409, "a failed counter named with words is accepted"


def test_qc_result_on_an_out_of_service_instrument(desk: Any, clients: Any) -> None:
    item = _register(desk.lab.qa, "CNT-O9", EquipmentKind.CELL_COUNTER)
    calibrate(db.session, item, actor=desk.lab.qa, now=utcnow(), days_ago=10)
    item.active = False
    db.session.commit()
    (sample,) = desk.sample()
    today = utcnow().date().isoformat()
    line = {"test": "VIABILITY", "value": 95.0, "instrument": "CNT-O9", "tested_on": today}
    answer = clients.api(desk.lab.qc).post(
        f"/api/v1/lots/{desk.lot.id}/results",
        json={"sample": sample.unit.code, "results": [line]},
    )
    assert answer.status_code in (409, 422), "an out-of-service instrument is accepted"


def test_post_thaw_method_names_out_of_service_equipment(ward: Any, clients: Any) -> None:
    _patient, order = ward.at_bedside()
    item = _register(ward.lab.qa, "CNT-O8", EquipmentKind.CELL_COUNTER)
    calibrate(db.session, item, actor=ward.lab.qa, now=utcnow(), days_ago=10)
    item.active = False
    db.session.commit()
    body = _count_body("NucleoCounter CNT-O8, AO/DAPI", WARD_COUNTER)
    answer = clients.api(ward.clinic.clinician).post(
        f"/api/v1/doses/{order.id}/post-thaw-counts", json=body
    )
    assert answer.status_code in (409, 422), "method names out-of-service equipment: accepted"
