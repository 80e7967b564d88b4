"""Release testing and disposition over the API and the pages: the refusals of the issue
(wrong kind, wrong unit, unknown test, missing precondition, non-QA, the lot's own analyst,
wrong password) with their reasons and nothing saved, the failed signature audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.models import Lot
from cellchain.manufacturing.processing import processing
from cellchain.quality import results
from cellchain.quality.models import LotDisposition, QcResult
from tests.conftest import TEST_PASSWORD
from tests.support.desk import PASSING


def panel(**overrides: Any) -> list[dict[str, Any]]:
    lines = []
    for code, value in {**PASSING, **overrides}.items():
        if value is None:
            continue
        lines.append({"test": code, "value": value, "instrument": "FLOW-01", "tested_on": _today()})
    return lines


def _today() -> str:
    return utcnow().date().isoformat()


@pytest.fixture
def api(clients: Any, desk: Any) -> dict[str, Any]:
    return {
        "qc": clients.api(desk.lab.qc),
        "qa": clients.api(desk.lab.qa),
        "tech": clients.api(desk.lab.tech),
    }


def draw(api: dict[str, Any], desk: Any) -> str:
    bags = api["tech"].get(f"/api/v1/lots/{desk.lot.id}").get_json()["bags"]
    response = api["qc"].post(
        f"/api/v1/lots/{desk.lot.id}/samples", json={"bag": bags[-1]["unit"]["code"]}
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()[0]["unit"]["code"]


def count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_the_api_records_a_panel_and_qa_releases(api: dict[str, Any], desk: Any) -> None:
    tube = draw(api, desk)
    recorded = api["qc"].post(
        f"/api/v1/lots/{desk.lot.id}/results", json={"sample": tube, "results": panel()}
    )
    assert recorded.status_code == 201, recorded.get_json()
    assert len(recorded.get_json()) == 15
    review = api["qa"].get(f"/api/v1/lots/{desk.lot.id}/review").get_json()
    assert review["ready"] and review["barred"] == []
    assert all(check["ok"] for check in review["checks"])
    released = api["qa"].post(
        f"/api/v1/lots/{desk.lot.id}/release", json={"password": TEST_PASSWORD}
    )
    assert released.status_code == 200, released.get_json()
    body = released.get_json()
    assert body["status"] == "released" and body["disposition"]["decision"] == "released"
    assert body["signatures"][0]["meaning"] == "approval: release for clinical use"
    pdf = api["qa"].get(f"/api/v1/lots/{desk.lot.id}/certificate.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")


@pytest.mark.parametrize(
    ("line", "message", "field"),
    [
        ({"test": "MYCOPLASMA", "value": 0.0}, "one of: negative, positive", "MYCOPLASMA.value"),
        (
            {"test": "ENDOTOXIN", "value": 0.1, "unit": "EU/kg"},
            "reported in EU/mL",
            "ENDOTOXIN.unit",
        ),
        ({"test": "CD200", "value": 50.0}, "not a test of specification", "CD200.test"),
    ],
)
def test_bad_results_are_refused_with_the_reason_and_nothing_saved(
    api: dict[str, Any], desk: Any, line: dict[str, Any], message: str, field: str
) -> None:
    tube = draw(api, desk)
    good = [line for line in panel() if line["test"] in ("CD73", "CD90")]
    bad = {"instrument": "LAL-01", "tested_on": _today(), **line}
    response = api["qc"].post(
        f"/api/v1/lots/{desk.lot.id}/results", json={"sample": tube, "results": [*good, bad]}
    )
    assert response.status_code == 422, response.get_json()
    problem = response.get_json()
    assert message in problem["detail"]
    assert field in problem["errors"]
    assert count(QcResult) == 0


def test_release_with_a_precondition_missing_is_refused(api: dict[str, Any], desk: Any) -> None:
    tube = draw(api, desk)
    api["qc"].post(
        f"/api/v1/lots/{desk.lot.id}/results",
        json={"sample": tube, "results": panel(KARYOTYPE=None)},
    )
    response = api["qa"].post(
        f"/api/v1/lots/{desk.lot.id}/release", json={"password": TEST_PASSWORD}
    )
    assert response.status_code == 409
    assert "missing: Karyotype" in response.get_json()["detail"]
    assert count(LotDisposition) == 0


def test_release_by_a_non_qa_user_is_forbidden(api: dict[str, Any], desk: Any) -> None:
    response = api["qc"].post(
        f"/api/v1/lots/{desk.lot.id}/release", json={"password": TEST_PASSWORD}
    )
    assert response.status_code == 403
    assert db.session.get(Lot, desk.lot.id).status == "quarantine"


def test_release_by_the_lots_analyst_is_refused_and_the_page_says_why(
    clients: Any, desk: Any, make_user: Any
) -> None:
    both = make_user("morgan", "qa", "qc_analyst")
    desk.full_panel(KARYOTYPE=None)
    desk.record(desk.entry("KARYOTYPE"), actor=both)
    response = clients.api(both).post(
        f"/api/v1/lots/{desk.lot.id}/release", json={"password": TEST_PASSWORD}
    )
    assert response.status_code == 409
    assert "Segregation" in response.get_json()["title"]
    page = clients.web(both).get(f"/lots/{desk.lot.id}/review").get_data(as_text=True)
    assert 'id="release-barred"' in page
    assert "you recorded 1 of this lot&#39;s QC results" in page
    assert 'id="release-form"' not in page


def test_a_wrong_password_releases_nothing_and_the_attempt_is_audited(
    api: dict[str, Any], desk: Any
) -> None:
    desk.full_panel()
    response = api["qa"].post(f"/api/v1/lots/{desk.lot.id}/release", json={"password": "not mine"})
    assert response.status_code == 401, response.get_json()
    db.session.expire_all()
    assert db.session.get(Lot, desk.lot.id).status == "quarantine"
    assert count(LotDisposition) == 0
    last = db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert last.action == "signature.failed" and last.actor_id == desk.lab.qa.id


def test_the_web_forms_record_invalidate_release_and_reject(clients: Any, desk: Any) -> None:
    qc, qa = clients.web(desk.lab.qc), clients.web(desk.lab.qa)
    lot = desk.lot.id
    code = processing.bags_of(db.session, desk.lot)[-1].code
    assert qc.post(f"/lots/{lot}/samples", data={"bag": code, "tubes": "1"}).status_code == 302
    page = qc.get(f"/lots/{lot}/testing").get_data(as_text=True)
    assert 'id="row-VIABILITY"' in page

    form = {"sample": results.samples_of(db.session, desk.lot)[-1].unit.code}
    form |= {"value-VIABILITY": "70", "numeric-VIABILITY": "1", "unit-VIABILITY": "%"}
    form |= {"instrument-VIABILITY": "FLOW-01", "tested_on-VIABILITY": _today()}
    recorded = qc.post(f"/lots/{lot}/results", data=form, follow_redirects=True)
    text = recorded.get_data(as_text=True)
    assert "OUT OF SPECIFICATION: Viability" in text
    result = db.session.scalars(select(QcResult)).one()

    # A non-number for a numeric test: refused, the row keeps what was typed.
    form |= {"value-CD73": "ninety", "numeric-CD73": "1", "instrument-CD73": "FLOW-01"}
    form |= {"tested_on-CD73": _today()}
    form.pop("value-VIABILITY")
    refused = qc.post(f"/lots/{lot}/results", data=form)
    assert refused.status_code == 422
    assert 'value="ninety"' in refused.get_data(as_text=True)

    wrong = qa.post(
        f"/results/{result.id}/invalidate", data={"reason": "pipetting", "password": "x"}
    )
    assert wrong.status_code == 401
    invalidated = qa.post(
        f"/results/{result.id}/invalidate",
        data={"reason": "Pipetting error proven", "password": TEST_PASSWORD},
        follow_redirects=True,
    )
    assert "invalidated; a retest may now be recorded" in invalidated.get_data(as_text=True)
    rejected = qa.post(
        f"/lots/{lot}/reject",
        data={"reason": "Process failure", "password": TEST_PASSWORD},
        follow_redirects=True,
    )
    assert "Lot rejected" in rejected.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Lot, lot).status == "rejected"


def test_the_qa_queues_over_the_api(api: dict[str, Any], desk: Any) -> None:
    desk.record(desk.entry("VIABILITY", 70.0))
    (waiting,) = api["qa"].get("/api/v1/qa/awaiting-review").get_json()
    assert waiting["lot_number"] == desk.lot.lot_number
    assert not waiting["ready"] and waiting["out_of_specification"]
    (oos,) = api["qa"].get("/api/v1/qa/out-of-specification").get_json()
    assert [r["test_code"] for r in oos["results"]] == ["VIABILITY"]
    (deviation,) = api["qa"].get("/api/v1/qa/open-deviations").get_json()
    assert deviation["category"] == "out_of_specification"
    assert deviation["lot_number"] == desk.lot.lot_number


def test_one_result_and_its_invalidation_over_the_api(api: dict[str, Any], desk: Any) -> None:
    """GET /results/{id} and POST /results/{id}/invalidate answer the result, not a 500."""
    desk.record(desk.entry("VIABILITY", 70.0))
    result = db.session.scalars(select(QcResult)).one()
    got = api["tech"].get(f"/api/v1/results/{result.id}")
    assert got.status_code == 200, got.get_data(as_text=True)
    body = got.get_json()
    assert body["id"] == result.id and body["test_code"] == "VIABILITY"
    assert body["sample"] == result.sample.unit.code
    assert body["specification"].startswith(f"{result.specification.code} v")
    assert body["analyst"] == desk.lab.qc.username
    assert body["out_of_specification"] is True and body["signatures"] == []
    assert body["invalidated_by"] is None
    invalidated = api["qa"].post(
        f"/api/v1/results/{result.id}/invalidate",
        json={"reason": "Pipetting error proven", "password": TEST_PASSWORD},
    )
    assert invalidated.status_code == 200, invalidated.get_data(as_text=True)
    body = invalidated.get_json()
    assert body["status"] == "invalidated" and body["invalidated_by"] == desk.lab.qa.username
    assert [s["meaning"] for s in body["signatures"]] == [results.INVALIDATION_MEANING]
    assert api["qc"].get("/api/v1/results/999999").status_code == 404
