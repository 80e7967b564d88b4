"""Issue 22: every processing step names the kinds of equipment it needs.

A step that named no equipment escaped the calibration check; a step naming a piece of a kind
it never uses (an LN2 tank in a passage) passed for the cabinet it was not. Each is refused
on the page (422, the form keeping what was typed) and the API (422), nothing recorded
(``processing/step_equipment.py``).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.models import ProcessingStep, StepKind
from cellchain.manufacturing.processing import processing


def _steps() -> int:
    return int(db.session.scalar(select(func.count()).select_from(ProcessingStep)) or 0)


def _ids(bench: Any, *codes: str) -> list[int]:
    return [bench.equipment[code].id for code in codes]


def _vial(bench: Any) -> Any:
    """A working cell-bank vial (frozen with the cabinet, as the bank freeze needs)."""
    p0 = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1))
    step = processing.bank_freeze(
        db.session,
        vessels_in=p0,
        harvest=processing.Harvest(cells=4e6, viability_percent=95),
        vial_count=2,
        cells_per_vial=1e6,
        volume_ml=1.0,
        context=bench.context(equipment_ids=tuple(_ids(bench, "BSC-01"))),
        actor=bench.lab.tech,
        now=utcnow(),
        bank="working",
    )
    db.session.commit()
    return bench.outputs(step)[0]


def _step(bench: Any, kind: str) -> tuple[str, dict[str, Any], str]:
    """The API path, a body valid but for its equipment, and what the page's form keeps."""
    if kind == "isolation":
        donation = bench.lab.eligible_donation()
        body = {
            "tissue": [donation.units[0].code],
            "method": "enzymatic",
            "vessel_count": 1,
            "vessel_format": "T175",
            "cells_per_vessel": 1.25e6,
        }
        return "isolation", body, "1250000"
    if kind == "bank_thaw":
        body = {
            "vial": _vial(bench).code,
            "viability_percent": 91.5,
            "vessel_count": 1,
            "vessel_format": "T175",
            "cells_per_vessel": 8e5,
        }
        return "bank-thaw", body, "91.5"
    vessels = [v.code for v in bench.outputs(bench.isolate(bench.lab.eligible_donation(), 1))]
    harvest = {"vessels_in": vessels, "cells_harvested": 4.25e6, "viability_percent": 95}
    if kind == "passage":
        body = {**harvest, "vessel_count": 1, "vessel_format": "T175", "cells_per_vessel": 1e6}
        return "passage", body, "4250000"
    if kind == "bank_freeze":
        body = {**harvest, "vial_count": 2, "cells_per_vial": 1e6, "volume_ml": 1.0}
        return "bank-freeze", {**body, "bank": "master"}, "4250000"
    body = {
        **harvest,
        "bag_count": 2,
        "volume_ml": 1,
        "total_cells_per_ml": 1e6,
        "dmso_percent": 10,
    }
    return "fill", body, "4250000"


def _as_form(body: dict[str, Any], equipment: list[int]) -> dict[str, Any]:
    form: dict[str, Any] = {
        key: "\n".join(value) if isinstance(value, list) else str(value)
        for key, value in body.items()
    }
    form["equipment"] = [str(item) for item in equipment]
    return form


#: each step that makes units, with the equipment it is missing when only an incubator or
#: nothing is named
STEPS = ["isolation", "passage", "bank_freeze", "bank_thaw", "fill"]


def test_every_processing_step_names_what_it_needs() -> None:
    """Storing is its own act (it takes the tank); every other step has its row, and every
    open manipulation needs the cabinet, every culture the incubator."""
    from cellchain.manufacturing.processing import step_equipment  # issue 22's module

    assert set(step_equipment.STEP_EQUIPMENT) == set(StepKind) - {StepKind.STORAGE}
    for kind in STEPS:
        assert "biosafety_cabinet" in step_equipment.STEP_EQUIPMENT[StepKind(kind)].needed
    for kind in ("isolation", "passage", "bank_thaw"):
        assert "incubator" in step_equipment.STEP_EQUIPMENT[StepKind(kind)].needed
    assert step_equipment.STEP_EQUIPMENT[StepKind.FREEZING].needed == ("controlled_rate_freezer",)


@pytest.mark.parametrize("kind", STEPS)
def test_api_a_step_naming_no_equipment_is_refused(bench: Any, clients: Any, kind: str) -> None:
    path, body, _typed = _step(bench, kind)
    before = _steps()
    answer = clients.api(bench.lab.tech).post(f"/api/v1/steps/{path}", json=body)
    assert answer.status_code == 422, answer.get_json()
    problem = answer.get_json()
    assert "biosafety cabinet" in problem["detail"] and "missing" in problem["detail"]
    assert problem["errors"]["equipment"][0].startswith("Missing: biosafety cabinet")
    assert _steps() == before


@pytest.mark.parametrize("kind", STEPS)
def test_page_a_step_without_its_cabinet_is_refused_keeping_what_was_typed(
    bench: Any, clients: Any, kind: str
) -> None:
    path, body, typed = _step(bench, kind)
    before = _steps()
    incubator = _ids(bench, "INC-01")
    answer = clients.web(bench.lab.tech).post(f"/steps/{path}", data=_as_form(body, incubator))
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert "Missing: biosafety cabinet" in page and "this" in page
    assert typed in page  # what was typed is kept
    assert f'value="{incubator[0]}" checked' in page  # and what was ticked
    assert _steps() == before


@pytest.mark.parametrize("kind", ["isolation", "passage", "bank_thaw"])
def test_a_step_putting_vessels_into_culture_needs_an_incubator(
    bench: Any, clients: Any, kind: str
) -> None:
    path, body, _typed = _step(bench, kind)
    before = _steps()
    answer = clients.api(bench.lab.tech).post(
        f"/api/v1/steps/{path}", json={**body, "equipment": _ids(bench, "BSC-01")}
    )
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["errors"]["equipment"] == ["Missing: incubator."]
    assert _steps() == before
    done = clients.api(bench.lab.tech).post(
        f"/api/v1/steps/{path}", json={**body, "equipment": _ids(bench, "BSC-01", "INC-01")}
    )
    assert done.status_code == 201, done.get_json()


def test_a_step_naming_equipment_of_a_kind_it_never_uses_is_refused(
    bench: Any, clients: Any
) -> None:
    path, body, typed = _step(bench, "passage")
    before = _steps()
    wrong = _ids(bench, "BSC-01", "INC-01", "LN2-01")
    answer = clients.api(bench.lab.tech).post(
        f"/api/v1/steps/{path}", json={**body, "equipment": wrong}
    )
    assert answer.status_code == 422, answer.get_json()
    assert "LN2-01 is a LN2 tank, which a passage does not use" in answer.get_json()["detail"]
    assert answer.get_json()["errors"]["equipment"] == ["LN2-01: not used by a passage."]
    page = clients.web(bench.lab.tech).post(f"/steps/{path}", data=_as_form(body, wrong))
    assert page.status_code == 422 and typed in page.get_data(as_text=True)
    assert "LN2-01: not used by a passage." in page.get_data(as_text=True)
    assert _steps() == before


def test_freezing_needs_its_controlled_rate_freezer_on_the_api_and_the_page(
    bench: Any, clients: Any
) -> None:
    vessels = bench.outputs(bench.isolate(bench.lab.eligible_donation(), vessels=1))
    lot = bench.fill(vessels, harvested=4e6, bags=2, volume_ml=1, total_cells_per_ml=1e6)
    before = _steps()
    url = f"/api/v1/lots/{lot.id}/freezing"
    tech = clients.api(bench.lab.tech)
    for named in ([], _ids(bench, "BSC-01")):
        answer = tech.post(url, json={"equipment": named})
        assert answer.status_code == 422, answer.get_json()
        assert answer.get_json()["errors"]["equipment"] == ["Missing: controlled-rate freezer."]
    web = clients.web(bench.lab.tech)
    refused = web.post(f"/lots/{lot.id}/freezing", data={"equipment": _ids(bench, "BSC-01")})
    assert refused.status_code == 302
    assert "missing: controlled-rate freezer" in web.get(refused.headers["Location"]).get_data(
        as_text=True
    )
    assert _steps() == before
    done = tech.post(url, json={"equipment": _ids(bench, "CRF-01", "BSC-01")})
    assert done.status_code == 201, done.get_json()


def test_the_step_form_says_what_the_step_needs(bench: Any, clients: Any) -> None:
    page = clients.web(bench.lab.tech).get("/steps/passage/new").get_data(as_text=True)
    assert "Needed: biosafety cabinet, incubator (one of each at least)." in page
    fill = clients.web(bench.lab.tech).get("/steps/fill/new").get_data(as_text=True)
    assert "Needed: biosafety cabinet (one of each at least)." in fill


def test_the_refusal_reads_in_chinese(bench: Any, clients: Any) -> None:
    path, body, _typed = _step(bench, "passage")
    answer = clients.api(bench.lab.tech).post(
        f"/api/v1/steps/{path}", json=body, headers={"Accept-Language": "zh-CN"}
    )
    assert answer.status_code == 422
    assert "缺少：生物安全柜" in answer.get_json()["detail"], answer.get_json()
