"""Manufacturing through the API and the bench pages: materials, equipment, steps, lots."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cellchain.chain import service as chain
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.processing import processing


def ids(bench: Any, *keys: str) -> list[int]:
    return [bench.materials[key].id for key in keys]


def kit(bench: Any, *codes: str) -> list[int]:
    return [bench.equipment[code].id for code in codes]


@pytest.fixture
def tech_api(bench, clients):
    return clients.api(bench.lab.tech)


def test_materials_are_received_then_released_by_qa(bench, clients):
    tech, qa = clients.api(bench.lab.tech), clients.api(bench.lab.qa)
    body = {
        "material": "TrypLE",
        "category": "enzyme",
        "supplier": "S",
        "lot_number": "t-77",
        "expiry_date": (utcnow().date() + dt.timedelta(days=90)).isoformat(),
        "quantity": 500,
        "unit": "mL",
    }
    created = tech.post("/api/v1/materials", json=body)
    assert created.status_code == 201 and created.get_json()["lot_number"] == "T-77"
    assert created.get_json()["released"] is False
    assert tech.post("/api/v1/materials", json=body).status_code == 409
    lot_id = created.get_json()["id"]
    assert tech.post(f"/api/v1/materials/{lot_id}/release").status_code == 403
    released = qa.post(f"/api/v1/materials/{lot_id}/release")
    assert released.status_code == 200 and released.get_json()["released_by"] == "alex"
    assert qa.post(f"/api/v1/materials/{lot_id}/release").status_code == 409


def test_an_expansion_through_the_api(bench, tech_api):
    donation = bench.lab.eligible_donation()
    common = {"materials": ids(bench, "medium", "hpl"), "equipment": kit(bench, "BSC-01", "INC-01")}
    iso = tech_api.post(
        "/api/v1/steps/isolation",
        json={
            "tissue": [donation.units[0].code],
            "method": "enzymatic",
            "vessel_count": 2,
            "vessel_format": "T175",
            "cells_per_vessel": 1e6,
            **common,
        },
    )
    assert iso.status_code == 201, iso.get_json()
    p0 = iso.get_json()["outputs"]
    assert len(p0) == 2 and iso.get_json()["passage"] == 0
    body = {
        "vessels_in": "\n".join(p0),
        "cells_harvested": 8e6,
        "viability_percent": 95,
        "vessel_count": 4,
        "vessel_format": "T175",
        "cells_per_vessel": 1e6,
        **common,
    }
    at_once = tech_api.post("/api/v1/steps/passage", json=body)  # harvested as it was seeded
    assert at_once.status_code == 422 and at_once.mimetype == "application/problem+json"
    assert "double no faster than every 12 h" in at_once.get_json()["errors"]["performed_at"][0]
    bench.age([chain.resolve_unit(db.session, code) for code in p0], days=1.5)  # 36 h: 2 PD
    p1 = tech_api.post("/api/v1/steps/passage", json=body)
    assert p1.status_code == 201 and p1.get_json()["population_doublings"] == pytest.approx(2.0)
    assert [m["lot_number"] for m in p1.get_json()["materials"]] == ["MEDIUM-001", "HPL-001"]
    again = tech_api.post(
        "/api/v1/steps/passage",
        json={
            "vessels_in": p0,
            "cells_harvested": 8e6,
            "viability_percent": 95,
            "vessel_count": 1,
            "vessel_format": "T175",
            "cells_per_vessel": 1e6,
            **common,
        },
    )
    assert again.status_code == 409 and "consumed" in again.get_json()["detail"]
    bench.age([chain.resolve_unit(db.session, code) for code in p1.get_json()["outputs"]])
    fill = tech_api.post(
        "/api/v1/steps/fill",
        json={
            "vessels_in": p1.get_json()["outputs"],
            "cells_harvested": 6e7,
            "viability_percent": 93,
            "bag_count": 3,
            "volume_ml": 20,
            "total_cells_per_ml": 1e6,
            "dmso_percent": 10,
            **common,
        },
    )
    assert fill.status_code == 201, fill.get_json()
    lot = fill.get_json()
    assert lot["bag_count"] == 3 and lot["status"] == "quarantine" and lot["limit_flags"] == []
    assert [s["kind"] for s in lot["steps"]] == ["isolation", "passage", "fill"]
    frozen = tech_api.post(
        f"/api/v1/lots/{lot['id']}/freezing", json={"equipment": kit(bench, "CRF-01")}
    )
    assert frozen.status_code == 201
    assert (
        tech_api.post(
            f"/api/v1/lots/{lot['id']}/freezing", json={"equipment": kit(bench, "CRF-01")}
        ).status_code
        == 409
    )
    record = tech_api.get(f"/api/v1/lots/{lot['id']}").get_json()
    assert record["steps"][-1]["kind"] == "freezing"
    assert [row["lot_number"] for row in tech_api.get("/api/v1/lots").get_json()] == [
        lot["lot_number"]
    ]


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"viability_percent": 120}, 422, "viability_percent"),
        ({"cells_per_vessel": 0}, 422, "cells_seeded"),
        ({"cells_per_vessel": -1}, 422, "cells_seeded"),
        ({"cells_harvested": 1e12}, 422, "cells_harvested"),
        ({"vessel_format": "T999"}, 422, "vessels_out"),
        ({"vessels_in": []}, 422, "vessels_in"),
        ({"vessels_in": ["X999926000001"]}, 422, None),  # a DIN, not a vessel
    ],
)
def test_bad_passages_are_refused_with_the_field_named(bench, tech_api, changes, status, field):
    donation = bench.lab.eligible_donation()
    p0 = bench.outputs(bench.isolate(donation, vessels=1))
    body = {
        "vessels_in": [p0[0].code],
        "cells_harvested": 4e6,
        "viability_percent": 95,
        "vessel_count": 1,
        "vessel_format": "T175",
        "cells_per_vessel": 1e6,
    }
    body.update(changes)
    response = tech_api.post("/api/v1/steps/passage", json=body)
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    if field:
        assert field in response.get_json()["errors"]
    assert len(processing.steps_of_donation(db.session, donation.id)) == 1


def test_a_passage_across_donations_is_a_conflict(bench, tech_api):
    one = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1))
    two = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1))
    response = tech_api.post(
        "/api/v1/steps/passage",
        json={
            "vessels_in": [one[0].code, two[0].code],
            "cells_harvested": 4e6,
            "viability_percent": 95,
            "vessel_count": 1,
            "vessel_format": "T175",
            "cells_per_vessel": 1e6,
        },
    )
    assert response.status_code == 409 and "never combined" in response.get_json()["detail"]


def test_the_bench_pages_record_a_passage_from_a_scanned_vessel(bench, clients):
    web = clients.web(bench.lab.tech)
    donation = bench.lab.eligible_donation()
    p0 = bench.outputs(bench.isolate(donation, vessels=1))
    unit_page = web.get(f"/units/{p0[0].id}").get_data(as_text=True)
    assert "/steps/passage/new?units=" in unit_page
    form = web.get(f"/steps/passage/new?units={p0[0].code}").get_data(as_text=True)
    assert p0[0].code in form and "Record passage" in form
    data = {
        "vessels_in": p0[0].code + "\n",
        "cells_harvested": "4e6",
        "viability_percent": "95",
        "vessel_count": "2",
        "vessel_format": "T175",
        "cells_per_vessel": "1e6",
        "materials": [str(bench.materials["medium"].id)],
        "equipment": [str(bench.equipment[code].id) for code in ("BSC-01", "INC-01")],
    }
    refused = web.post("/steps/passage", data={**data, "viability_percent": "101"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "between 0 and 100" in page and "4e6" in page
    done = web.post("/steps/passage", data=data)
    assert done.status_code == 302 and "/steps/" in done.headers["Location"]
    step_page = web.get(done.headers["Location"]).get_data(as_text=True)
    assert "Population doublings" in step_page and "2.00" in step_page and "INC-01" in step_page


def test_the_lot_page_shows_the_tree_bags_and_flags(bench, clients):
    donation = bench.lab.eligible_donation()
    deviation = bench.authorised_excursion(donation, max_passage=6)
    vessels = bench.outputs(
        bench.passage(bench.p5(donation), harvested=4e5, seed=[1e5], deviation_id=deviation.id)
    )
    lot = bench.fill(vessels, harvested=4e5, bags=2, volume_ml=0.01, deviation_id=deviation.id)
    page = clients.web(bench.lab.qc).get(f"/lots/{lot.id}").get_data(as_text=True)
    assert lot.lot_number in page and "QUARANTINE" in page
    assert "passage P6 exceeds the maximum P5" in page
    assert page.count('data-step="passage"') == 6 and 'data-step="fill"' in page
    for bag in processing.bags_of(db.session, lot):
        assert bag.code[:-1] in page
    assert "Record freezing" not in page  # QC does not record processing


def test_materials_and_equipment_pages(bench, clients):
    web = clients.web(bench.lab.tech)
    page = web.get("/materials").get_data(as_text=True)
    assert "MEDIUM-001" in page and "released" in page
    refused = web.post(
        "/materials/receive",
        data={
            "material": "X",
            "category": "medium",
            "supplier": "",
            "lot_number": "L1",
            "expiry_date": "2030-01-01",
        },
    )
    assert refused.status_code == 422 and 'value="L1"' in refused.get_data(as_text=True)
    # registering equipment is QA's (tests/manufacturing/equipment); the technician sees it
    assert "INC-01" in web.get("/equipment").get_data(as_text=True)


def test_the_batch_record_pdf_is_served_to_anyone_who_reads_records(bench, clients):
    import io

    from pypdf import PdfReader

    vessels = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1))
    lot = bench.fill(vessels, harvested=4e6, bags=2, volume_ml=1, total_cells_per_ml=1e6)
    response = clients.web(bench.lab.qc).get(f"/lots/{lot.id}/batch-record.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert lot.lot_number in response.headers["Content-Disposition"]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    assert lot.lot_number in text and "Fill" in text and "Quinn Tester" in text


def test_a_working_cell_bank_is_frozen_and_thawed_through_the_api(bench, tech_api):
    p0 = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1))
    body = {
        "vessels_in": [p0[0].code],
        "cells_harvested": 4e6,
        "viability_percent": 96,
        "vial_count": 3,
        "cells_per_vial": 1e6,
        "volume_ml": 1.0,
        "equipment": kit(bench, "BSC-01"),
    }
    missing = tech_api.post("/api/v1/steps/bank-freeze", json=body)
    assert missing.status_code == 422 and "bank" in missing.get_json()["errors"]
    frozen = tech_api.post("/api/v1/steps/bank-freeze", json={**body, "bank": "working"})
    assert frozen.status_code == 201 and frozen.get_json()["method"] == "working"
    vial = frozen.get_json()["outputs"][0]
    thawed = tech_api.post(
        "/api/v1/steps/bank-thaw",
        json={
            "vial": vial,
            "viability_percent": 91,
            "vessel_count": 1,
            "vessel_format": "T175",
            "cells_per_vessel": 8e5,
            "equipment": kit(bench, "BSC-01", "INC-01"),
        },
    )
    assert thawed.status_code == 201 and thawed.get_json()["passage"] == 1
    assert thawed.get_json()["inputs"] == [vial]
