"""Every path that records a material's use refuses a lot used before its release time, after
its expiry (on the site's calendar) or once recalled, with its message, nothing saved (issue
22): the API's steps, the bench form, the API's freezing of a lot, and the demo (which calls
the same services). No CLI command records a use. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.core.types import utcnow
from cellchain.errors import Conflict
from cellchain.extensions import db
from cellchain.manufacturing.models import MaterialCategory, ProcessingStep, StockUnit
from cellchain.manufacturing.stock import service as stock
from cellchain.traceability.models import RecallTarget
from cellchain.traceability.recalls import recalls
from tests.conftest import TEST_PASSWORD

#: what each problem's refusal says
SAYS = {
    "released_later": "after this step's time",
    "expired": "expired on",
    "recalled": "has been recalled",
}


def steps() -> int:
    return db.session.scalar(select(func.count()).select_from(ProcessingStep))


def problem_lot(stocked: Any, problem: str) -> Any:
    """A DMSO lot of 100 mL with ``problem``."""
    now = utcnow()
    lot = stocked.receive(
        "bad",
        "DMSO (Ph. Eur.)",
        MaterialCategory.CRYOPROTECTANT,
        100,
        StockUnit.ML,
        released_at=now + dt.timedelta(hours=1) if problem == "released_later" else None,
    )
    if problem == "expired":  # released in date, expired since
        lot.expiry_date = now.date() - dt.timedelta(days=1)
        db.session.commit()
    if problem == "recalled":
        recalls.open_recall(
            db.session,
            target=RecallTarget.MATERIAL_LOT,
            target_id=lot.id,
            reason="Supplier notice: particulates in the lot",
            user=stocked.bench.lab.qa,
            password=TEST_PASSWORD,
            now=now,
        )
        db.session.commit()
    return lot


def step_body(stocked: Any, lot: Any) -> dict[str, Any]:
    donation = stocked.bench.lab.eligible_donation()
    return {
        "tissue": donation.units[0].code,
        "method": "enzymatic",
        "vessel_count": 2,
        "vessel_format": "T175",
        "cells_per_vessel": 1e6,
        "materials": [lot.id],
        "equipment": [stocked.bench.equipment[c].id for c in ("BSC-01", "INC-01")],
    }


@pytest.mark.parametrize("problem", list(SAYS))
@pytest.mark.parametrize("path", ["api_step", "bench_form", "api_freezing"])
def test_the_path_refuses_the_lot_nothing_saved(
    stocked: Any, clients: Any, path: str, problem: str
) -> None:
    frozen_lot = stocked.fill() if path == "api_freezing" else None
    lot = problem_lot(stocked, problem)
    before = steps()
    if path == "api_step":
        body = {**step_body(stocked, lot), "material_quantities": {str(lot.id): 5}}
        answer = clients.api(stocked.tech).post("/api/v1/steps/isolation", json=body)
        detail = answer.get_json()["detail"]
    elif path == "bench_form":
        body = step_body(stocked, lot)
        data = {
            **{k: str(v) for k, v in body.items() if k not in ("materials", "equipment")},
            "materials": [str(lot.id)],
            "equipment": [str(e) for e in body["equipment"]],
            f"quantity_{lot.id}": "5",
        }
        answer = clients.web(stocked.tech).post("/steps/isolation", data=data)
        detail = html.unescape(answer.get_data(as_text=True))
    else:
        assert frozen_lot is not None
        crf = stocked.bench.equipment["CRF-01"].id
        answer = clients.api(stocked.tech).post(
            f"/api/v1/lots/{frozen_lot.id}/freezing",
            json={"equipment": [crf], "materials": [lot.id]},
        )
        detail = answer.get_json()["detail"]
    assert answer.status_code == 409, detail
    assert SAYS[problem] in detail
    db.session.expire_all()
    assert steps() == before
    assert stock.remaining_of(db.session, [lot.id])[lot.id] == 100


def test_the_demos_expansion_refuses_materials_released_after_its_steps(stocked: Any) -> None:
    """The demo records its steps through the same services: its lab's materials must be
    released before the oldest expansion's first step (``_MATERIALS_RECEIVED_DAYS_AGO``)."""
    from cellchain import demo

    late = problem_lot(stocked, "released_later")
    late.released_at = utcnow() + dt.timedelta(days=30)  # after the isolation (day 0.8)
    db.session.commit()
    kit = demo._LabKit(
        materials={"enzyme": late.id, "medium": late.id, "hpl": late.id},
        equipment={code: item.id for code, item in stocked.bench.equipment.items()}
        | {"CNT-01": stocked.bench.equipment["INC-01"].id},
    )
    donation = stocked.bench.lab.eligible_donation()
    with pytest.raises(Conflict, match="after this step's time"):
        demo._seed_expansion(
            db.session,
            donation,
            kit,
            box=9,
            now=utcnow() + dt.timedelta(days=40),
            tech=stocked.tech,
            site_zone=stocked.context().zone,
        )
    assert demo._MATERIALS_RECEIVED_DAYS_AGO > 75 + 1  # the oldest expansion: 75 days back


@pytest.mark.parametrize("problem", list(SAYS))
def test_the_lots_freezing_form_refuses_the_lot_nothing_saved(
    stocked: Any, clients: Any, problem: str
) -> None:
    frozen_lot = stocked.fill()
    lot = problem_lot(stocked, problem)
    web = clients.web(stocked.tech)
    before = steps()
    crf = stocked.bench.equipment["CRF-01"].id
    data = {"equipment": [str(crf)], "materials": [str(lot.id)]}
    answer = web.post(f"/lots/{frozen_lot.id}/freezing", data=data, follow_redirects=True)
    assert SAYS[problem] in html.unescape(answer.get_data(as_text=True))
    db.session.expire_all()
    assert steps() == before
    assert stock.remaining_of(db.session, [lot.id])[lot.id] == 100


def test_the_lots_freezing_form_records_the_dmso_from_the_bags(stocked: Any, clients: Any) -> None:
    frozen_lot = stocked.fill()
    web = clients.web(stocked.tech)
    dmso = stocked.lots["dmso"]
    page = web.get(f"/lots/{frozen_lot.id}").get_data(as_text=True)
    assert f'name="quantity_{dmso.id}"' in page
    crf = stocked.bench.equipment["CRF-01"].id
    data = {"equipment": [str(crf)], "materials": [str(dmso.id)]}
    assert web.post(f"/lots/{frozen_lot.id}/freezing", data=data).status_code == 302
    assert stock.remaining_of(db.session, [dmso.id])[dmso.id] == 92  # 4 × 20 mL × 10 %
