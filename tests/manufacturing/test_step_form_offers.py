"""The step forms offer what a step performed now may use (follow-up of issue 22): every
in-service piece of equipment and every material lot is listed, those the service would
refuse disabled with why (calibration due, expired, not released, recalled, nothing left),
read from the service's own rules in a fixed number of statements; the service still refuses
them when a step names them anyway."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.equipment import service as equipment
from cellchain.manufacturing.models import (
    EquipmentKind,
    MaterialCategory,
    ProcessingStep,
    StockAdjustmentKind,
    StockUnit,
)
from cellchain.manufacturing.processing import resources
from cellchain.manufacturing.stock import service as stock
from cellchain.traceability.models import RecallTarget
from cellchain.traceability.recalls import recalls
from tests.conftest import TEST_PASSWORD
from tests.support.equipment import calibrate
from tests.support.statements import counting_statements
from tests.support.storage import make_lot

CHINESE = "zh-CN,zh;q=0.9"


def overdue(bench: Any, code: str) -> Any:
    """Calibrated 400 days ago on a 365-day interval: due 35 days ago."""
    item = equipment.register_equipment(
        db.session,
        equipment.EquipmentInput(
            code=code,
            kind=EquipmentKind.CENTRIFUGE,
            name=f"{code} (test)",
            calibration_interval_days=365,
        ),
        actor=bench.lab.qa,
        now=utcnow(),
    )
    calibrate(db.session, item, actor=bench.lab.tech, now=utcnow(), days_ago=400)
    db.session.commit()
    return item


def material(bench: Any, number: str, *, release: bool = True, quantity: float | None = None):
    now = utcnow()
    lot = resources.receive_material_lot(
        db.session,
        resources.MaterialLotInput(
            "α-MEM",
            MaterialCategory.MEDIUM,
            "Supplier AG",
            number,
            now.date() + dt.timedelta(days=100),
            quantity,
            StockUnit.ML if quantity is not None else None,
        ),
        actor=bench.lab.tech,
        now=now,
    )
    if release:
        resources.release_material_lot(db.session, lot, actor=bench.lab.qa, now=now)
    db.session.commit()
    return lot


def problem_lots(bench: Any, n: int = 1) -> dict[str, Any]:
    """One material lot for each reason a step now may not use it (lot numbers ending ``n``)."""
    expired = material(bench, f"EXP-{n}")
    expired.expiry_date = utcnow().date() - dt.timedelta(days=1)
    recalled = material(bench, f"REC-{n}")
    recalls.open_recall(
        db.session,
        target=RecallTarget.MATERIAL_LOT,
        target_id=recalled.id,
        reason="Supplier notice: particulates in the lot",
        user=bench.lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    empty = material(bench, f"EMP-{n}", quantity=10)
    stock.adjust_stock(
        db.session,
        empty,
        stock.AdjustmentInput(StockAdjustmentKind.WRITE_OFF, 10, "Bottle broken"),
        actor=bench.lab.tech,
        now=utcnow(),
    )
    db.session.commit()
    return {
        "expired": expired,
        "recalled": recalled,
        "unreleased": material(bench, f"UNR-{n}", release=False),
        "empty": empty,
    }


def checkbox(page: str, element_id: str) -> str:
    tag = re.search(rf'<input type="checkbox" id="{element_id}"[^>]*>', page)
    assert tag, f"no checkbox #{element_id}"
    return tag.group(0)


def why(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">— ([^<]*)</span>', page)
    assert found, f"no reason #{element_id}"
    return found.group(1)


def test_the_step_form_marks_what_a_step_now_may_not_use(bench, clients):
    late = overdue(bench, "CEN-09")
    lots = problem_lots(bench)
    due = (utcnow().date() - dt.timedelta(days=35)).isoformat()

    page = clients.web(bench.lab.tech).get("/steps/isolation/new").get_data(as_text=True)

    # usable: offered as before
    for item in bench.equipment.values():
        assert "disabled" not in checkbox(page, f"equipment-{item.id}")
    medium = checkbox(page, f"material-{bench.materials['medium'].id}")
    assert "disabled" not in medium and 'name="materials"' in medium
    # not usable now: shown, disabled, never sent, with why
    late_box = checkbox(page, f"equipment-{late.id}")
    assert "disabled" in late_box
    assert why(page, f"why-equipment-{late.id}") == f"calibration due {due}"
    expected = {
        "expired": f"expired {lots['expired'].expiry_date.isoformat()}",
        "recalled": "recalled",
        "unreleased": "not released",
        "empty": "nothing left",
    }
    for key, reason in expected.items():
        box = checkbox(page, f"material-{lots[key].id}")
        assert "disabled" in box and 'name="materials"' not in box, key
        assert why(page, f"why-material-{lots[key].id}") == reason, key
    assert 'id="materials-not-usable"' in page


def test_the_freezing_form_marks_them_too(bench, clients):
    lot, _bags = make_lot(bench)
    late = overdue(bench, "CEN-09")
    lots = problem_lots(bench)

    page = clients.web(bench.lab.tech).get(f"/lots/{lot.id}").get_data(as_text=True)

    assert "disabled" in checkbox(page, f"freeze-eq-{late.id}")
    assert why(page, f"freeze-why-eq-{late.id}").startswith("calibration due ")
    assert "disabled" not in checkbox(page, f"freeze-eq-{bench.equipment['CRF-01'].id}")
    assert "disabled" in checkbox(page, f"freeze-material-{lots['recalled'].id}")
    assert why(page, f"freeze-why-material-{lots['recalled'].id}") == "recalled"
    assert "disabled" not in checkbox(page, f"freeze-material-{bench.materials['dmso'].id}")


def test_the_offer_reads_the_service_rules(bench):
    """The offer and the service's check agree, piece by piece, for a step now."""
    late = overdue(bench, "CEN-09")
    problem_lots(bench)
    now = utcnow()

    offers = resources.offered_equipment(db.session, on=now.date())

    for offer in offers:
        assert offer.why == equipment.standing(db.session, offer.item, now.date()).why
    assert [offer.item.id for offer in offers if not offer.usable] == [late.id]


def test_the_form_reads_in_a_fixed_number_of_statements(bench, clients):
    web = clients.web(bench.lab.tech)
    web.get("/steps/isolation/new")  # the session and the user loaded once

    def statements() -> int:
        with counting_statements() as sent:
            assert web.get("/steps/isolation/new").status_code == 200
        return len(sent)

    before = statements()
    for number in range(3):
        overdue(bench, f"CEN-1{number}")
        problem_lots(bench, number + 2)
        material(bench, f"OK-{number}", quantity=50)

    assert statements() == before


@pytest.mark.parametrize("problem", ["equipment", "material"])
def test_the_service_still_refuses_what_the_form_marks(bench, clients, problem):
    late = overdue(bench, "CEN-09")
    recalled = problem_lots(bench)["recalled"]
    donation = bench.lab.eligible_donation()
    steps = db.session.scalar(select(func.count()).select_from(ProcessingStep))
    form = {
        "tissue": donation.units[0].code,
        "method": "enzymatic",
        "vessel_count": "2",
        "vessel_format": "T175",
        "cells_per_vessel": "1e6",
        "materials": [str(bench.materials["medium"].id)],
        "equipment": [str(bench.equipment[code].id) for code in ("BSC-01", "INC-01")],
    }
    if problem == "equipment":
        form["equipment"].append(str(late.id))
    else:
        form["materials"].append(str(recalled.id))

    response = clients.web(bench.lab.tech).post("/steps/isolation", data=form)

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    said = "was due for calibration" if problem == "equipment" else "has been recalled"
    assert said in page
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(ProcessingStep)) == steps


def test_the_reasons_read_in_chinese(bench, clients):
    late = overdue(bench, "CEN-09")
    lots = problem_lots(bench)
    web = clients.web(bench.lab.tech)
    web.environ_base["HTTP_ACCEPT_LANGUAGE"] = CHINESE

    page = web.get("/steps/isolation/new").get_data(as_text=True)

    assert why(page, f"why-equipment-{late.id}").startswith("校准到期 ")
    assert why(page, f"why-material-{lots['recalled'].id}") == "已召回"
    assert why(page, f"why-material-{lots['empty'].id}") == "已无剩余"
    assert why(page, f"why-material-{lots['unreleased'].id}") == "未放行"
    assert why(page, f"why-material-{lots['expired'].id}").endswith(" 过期")
