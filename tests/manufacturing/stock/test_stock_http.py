"""Material stock through the API and the pages (issue 22): receipt with its quantity, the
stock list, a lot's page, adjustments, reorder levels, a step's uses entered in the bench
form or the API; every path that records a use refuses a lot used before its release time,
after its expiry or once recalled, and more than remains, nothing saved."""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.models import MaterialCategory, ProcessingStep, StockUnit
from cellchain.manufacturing.stock import service as stock


def steps() -> int:
    return db.session.scalar(select(func.count()).select_from(ProcessingStep))


def left(lot: Any) -> float | None:
    return stock.remaining_of(db.session, [lot.id])[lot.id]


def isolation_body(stocked: Any, *keys: str, **extra: Any) -> dict[str, Any]:
    donation = stocked.bench.lab.eligible_donation()
    return {
        "tissue": [donation.units[0].code],
        "method": "enzymatic",
        "vessel_count": 2,
        "vessel_format": "T175",
        "cells_per_vessel": 1e6,
        "materials": [stocked.lots[key].id for key in keys],
        "equipment": [stocked.bench.equipment[c].id for c in ("BSC-01", "INC-01")],
        **extra,
    }


def test_the_api_receives_lists_adjusts_and_shows_a_lots_stock(stocked: Any, clients: Any) -> None:
    tech = clients.api(stocked.tech)
    body = {
        "material": "TrypLE",
        "category": "enzyme",
        "supplier": "S",
        "lot_number": "t-9",
        "expiry_date": (utcnow().date() + dt.timedelta(days=10)).isoformat(),
        "quantity": 250,
        "unit": "mL",
    }
    assert tech.post("/api/v1/materials", json={**body, "unit": "L"}).status_code == 422
    assert tech.post("/api/v1/materials", json={**body, "quantity": 0}).status_code == 422
    created = tech.post("/api/v1/materials", json=body)
    assert created.status_code == 201
    assert (created.get_json()["quantity_received"], created.get_json()["unit"]) == (250, "mL")
    lot_id = created.get_json()["id"]

    listed = tech.get("/api/v1/stock?sort=remaining&direction=desc&page_size=2")
    assert listed.status_code == 200
    assert json.loads(listed.headers["X-Pagination"])["total"] == 10  # the bench's 4 too
    assert [row["remaining"] for row in listed.get_json()] == [1000, 1000]
    expiring = tech.get("/api/v1/stock?state=expiring").get_json()
    assert [row["lot_number"] for row in expiring] == ["T-9"]
    assert tech.get("/api/v1/stock?state=soon").status_code == 422

    url = f"/api/v1/materials/{lot_id}/adjustments"
    spilt = tech.post(url, json={"kind": "spillage", "quantity": 20, "reason": "Dropped"})
    assert spilt.status_code == 201 and spilt.get_json()["quantity"] == -20
    too_much = tech.post(url, json={"kind": "write_off", "quantity": 231, "reason": "Expired"})
    assert too_much.status_code == 409
    assert tech.post(url, json={"kind": "write_off", "quantity": 5}).status_code == 422
    assert tech.post(url, json={"kind": "theft", "quantity": 5, "reason": "x"}).status_code == 422
    shown = tech.get(f"/api/v1/materials/{lot_id}/stock").get_json()
    assert (shown["remaining"], shown["used"], shown["adjusted"]) == (230, 0, -20)
    assert [a["reason"] for a in shown["adjustments"]] == ["Dropped"]
    assert sorted(shown["actions"]) == ["adjust", "release"]  # not released yet

    levels = tech.put(
        "/api/v1/reorder-levels", json={"material": "TrypLE", "unit": "mL", "level": 300}
    )
    assert levels.status_code == 200 and levels.get_json()["level"] == 300
    assert [row["lot_number"] for row in tech.get("/api/v1/stock?state=low").get_json()] == ["T-9"]
    assert tech.get("/api/v1/reorder-levels").get_json()[0]["material"] == "TrypLE"
    reader = clients.api(stocked.bench.lab.qc)
    assert (
        reader.post(url, json={"kind": "spillage", "quantity": 1, "reason": "x"}).status_code == 403
    )


def test_the_api_records_entered_and_default_uses_and_refuses_more_than_remains(
    stocked: Any, clients: Any
) -> None:
    tech = clients.api(stocked.tech)
    medium = stocked.lots["medium"]
    missing = tech.post("/api/v1/steps/isolation", json=isolation_body(stocked, "medium"))
    assert missing.status_code == 422 and "material_quantities" in missing.get_json()["errors"]
    before = steps()
    too_much = tech.post(
        "/api/v1/steps/isolation",
        json=isolation_body(stocked, "medium", material_quantities={str(medium.id): 1200}),
    )
    assert too_much.status_code == 409 and "remains" in too_much.get_json()["detail"]
    assert steps() == before and left(medium) == 1000
    done = tech.post(
        "/api/v1/steps/isolation",
        json=isolation_body(stocked, "medium", material_quantities={str(medium.id): 60}),
    )
    assert done.status_code == 201, done.get_json()
    (used,) = done.get_json()["materials"]
    assert (used["quantity_used"], used["quantity_source"]) == (60, "entered")
    assert left(medium) == 940
    shown = tech.get(f"/api/v1/materials/{medium.id}/stock").get_json()
    assert [(u["step_id"], u["quantity"]) for u in shown["uses"]] == [(done.get_json()["id"], 60)]


def test_the_bench_form_takes_quantities_and_shows_the_refusal(stocked: Any, clients: Any) -> None:
    web = clients.web(stocked.tech)
    medium = stocked.lots["medium"]
    form = {
        k: v
        for k, v in isolation_body(stocked, "medium").items()
        if k not in ("materials", "equipment", "tissue")
    }
    donation_code = isolation_body(stocked)["tissue"][0]
    data = {
        **{k: str(v) for k, v in form.items()},
        "tissue": donation_code,
        "materials": [str(medium.id)],
        "equipment": [str(stocked.bench.equipment[c].id) for c in ("BSC-01", "INC-01")],
    }
    page = web.get("/steps/isolation/new").get_data(as_text=True)
    assert f'name="quantity_{medium.id}"' in page
    refused = web.post("/steps/isolation", data={**data, f"quantity_{medium.id}": "1500"})
    assert refused.status_code == 409
    assert "remains" in refused.get_data(as_text=True)
    assert 'value="1500"' in refused.get_data(as_text=True)  # what was typed is kept
    done = web.post("/steps/isolation", data={**data, f"quantity_{medium.id}": "45.5"})
    assert done.status_code == 302
    assert left(medium) == 954.5


def test_the_stock_pages_show_remaining_uses_and_adjust(stocked: Any, clients: Any) -> None:
    web = clients.web(stocked.tech)
    medium = stocked.lots["medium"]
    step = stocked.isolate("medium", quantities={"medium": 60})
    listed = web.get("/materials?sort=remaining&direction=asc").get_data(as_text=True)
    assert f'id="material-lot-{medium.id}"' in listed and 'data-remaining="940.0"' in listed
    assert 'id="reorder-levels"' in listed and 'id="material-form"' in listed
    page = web.get(f"/materials/{medium.id}").get_data(as_text=True)
    assert f'href="/steps/{step.id}"' in page and "940 mL" in page
    refused = web.post(
        f"/materials/{medium.id}/adjustments",
        data={"kind": "write_off", "quantity": "2000", "reason": "Expired"},
    )
    assert refused.status_code == 409 and 'value="2000"' in refused.get_data(as_text=True)
    done = web.post(
        f"/materials/{medium.id}/adjustments",
        data={"kind": "spillage", "quantity": "40", "reason": "Tipped over"},
    )
    assert done.status_code == 302 and left(medium) == 900
    page = web.get(f"/materials/{medium.id}").get_data(as_text=True)
    assert "Tipped over" in page and "-40" in page
    set_level = web.post(
        "/materials/reorder-levels", data={"material": "α-MEM", "unit": "mL", "level": "950"}
    )
    assert set_level.status_code == 302
    low = web.get("/materials?state=low").get_data(as_text=True)
    assert f'id="material-lot-{medium.id}"' in low and "Below the reorder level" in low
    reader = clients.web(stocked.bench.lab.qc)
    assert "adjust-form" not in reader.get(f"/materials/{medium.id}").get_data(as_text=True)


@pytest.mark.parametrize("path", ["api", "page"])
def test_every_path_refuses_a_lot_released_after_the_steps_time(
    stocked: Any, clients: Any, path: str
) -> None:
    late = stocked.receive(
        "late",
        "α-MEM",
        MaterialCategory.MEDIUM,
        500,
        StockUnit.ML,
        released_at=utcnow() + dt.timedelta(hours=1),
    )
    body = isolation_body(stocked, "late", material_quantities={str(late.id): 10})
    before = steps()
    if path == "api":
        answer = clients.api(stocked.tech).post("/api/v1/steps/isolation", json=body)
        assert answer.status_code == 409 and "after this step's time" in answer.get_json()["detail"]
    else:
        data = {
            **{k: str(v) for k, v in body.items() if k not in ("materials", "equipment", "tissue")},
            "tissue": body["tissue"][0],
            "materials": [str(late.id)],
            "equipment": [str(e) for e in body["equipment"]],
            f"quantity_{late.id}": "10",
        }
        data.pop("material_quantities")
        answer = clients.web(stocked.tech).post("/steps/isolation", data=data)
        assert answer.status_code == 409
        assert "after this step's time" in html.unescape(answer.get_data(as_text=True))
    assert steps() == before and left(late) == 500


def test_the_freezing_api_refuses_an_expired_lot_and_defaults_the_dmso(
    stocked: Any, clients: Any
) -> None:
    lot = stocked.fill()
    tech = clients.api(stocked.tech)
    old = stocked.receive(
        "olddmso",
        "DMSO (Ph. Eur.)",
        MaterialCategory.CRYOPROTECTANT,
        100,
        StockUnit.ML,
        expiry=utcnow().date() + dt.timedelta(days=1),
    )
    old.expiry_date = utcnow().date() - dt.timedelta(days=2)  # expired since its release
    db.session.commit()
    crf = stocked.bench.equipment["CRF-01"].id
    before = steps()
    refused = tech.post(
        f"/api/v1/lots/{lot.id}/freezing", json={"equipment": [crf], "materials": [old.id]}
    )
    assert refused.status_code == 409 and "expired" in refused.get_json()["detail"]
    assert steps() == before
    frozen = tech.post(
        f"/api/v1/lots/{lot.id}/freezing",
        json={"equipment": [crf], "materials": [stocked.lots["dmso"].id]},
    )
    assert frozen.status_code == 201
    assert frozen.get_json()["materials"][0]["quantity_source"] == "step"
    assert left(stocked.lots["dmso"]) == 92


def test_the_step_page_shows_each_lots_quantity_linking_to_its_stock(
    stocked: Any, clients: Any
) -> None:
    step = stocked.isolate("medium", "hpl", quantities={"medium": 60, "hpl": 6})
    page = clients.web(stocked.tech).get(f"/steps/{step.id}").get_data(as_text=True)
    medium = stocked.lots["medium"]
    assert f'href="/materials/{medium.id}" class="material-used">60 mL</a>' in page
