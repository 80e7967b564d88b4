"""Issue 21: release testing and QA disposition refuse in the reader's language.

Each refusal is read in Chinese by a QC analyst or QA person who asks for it (the API's
``Accept-Language: zh-CN``, a page's browser language, or ``using_language`` for the rules
themselves), and is on record in English (``<act>_refused`` audit entries, written by
``http.unit_of_work`` from ``english_of(detail)``), including a refusal listing several
problems at once. What a result stores (its criterion, the OOS investigation) stays English
whoever recorded it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.core.i18n import english_of, using_language
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing.models import Deviation
from cellchain.quality.defaults import UC_MSC_TESTS
from cellchain.quality.evaluation import check_specification, read_value
from cellchain.quality.models import LotDisposition, QcResult
from cellchain.quality.service import SPECIFICATIONS
from tests.conftest import TEST_PASSWORD
from tests.support.desk import PASSING

TESTS = {test["code"]: test for test in UC_MSC_TESTS}
CHINESE = "zh-CN"


def chinese(client: Any) -> Any:
    """``client`` asking for Simplified Chinese with every request."""
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = CHINESE
    return client


def refusals(action: str) -> list[str]:
    """The refused reasons on record for ``action``, oldest first."""
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
    ).all()
    return [json.loads(entry.changes)["refused"][1] for entry in entries]


def has_chinese(text: str) -> bool:
    return any("\u4e00" <= char <= "\u9fff" for char in text)


def line(code: str, value: Any = None, **changes: Any) -> dict[str, Any]:
    return {
        "test": code,
        "value": PASSING[code] if value is None else value,
        "instrument": "FLOW-01",
        "tested_on": utcnow().date().isoformat(),
        **changes,
    }


@pytest.fixture
def qc(clients: Any, desk: Any) -> Any:
    return chinese(clients.api(desk.lab.qc))


@pytest.fixture
def qa(clients: Any, desk: Any) -> Any:
    return chinese(clients.api(desk.lab.qa))


def test_results_refused_for_several_reasons_read_in_chinese_and_are_on_record_in_english(
    qc: Any, desk: Any
) -> None:
    tube = desk.sample()[0].unit.code
    bad = [
        line("MYCOPLASMA", 0.0),
        line("ENDOTOXIN", 0.1, unit="EU/kg"),
        line("CD73", instrument=" "),
    ]
    response = qc.post(f"/api/v1/lots/{desk.lot.id}/results", json={"sample": tube, "results": bad})
    assert response.status_code == 422, response.get_json()
    problem = response.get_json()
    assert problem["title"] == "输入无效"
    assert "Mycoplasma 的结果须为以下之一：negative, positive；0.0 不在其中。" in problem["detail"]
    assert "以 EU/mL 为单位报告，而不是 'EU/kg'。" in problem["detail"]
    assert problem["errors"]["MYCOPLASMA.value"] == ["须为以下之一：negative, positive。"]
    assert problem["errors"]["ENDOTOXIN.unit"] == ["必须为 EU/mL。"]
    assert problem["errors"]["CD73.instrument"] == ["请填写所用仪器。"]
    assert "reported" not in problem["detail"]

    (on_record,) = refusals("qc.results_refused")
    assert on_record == (
        "Mycoplasma is reported as one of: negative, positive; 0.0 is not one of them. "
        "Bacterial endotoxin is reported in EU/mL, not 'EU/kg'."
    )
    assert db.session.scalar(select(func.count()).select_from(QcResult)) == 0


def test_an_unknown_test_and_a_test_date_before_the_sample_read_in_chinese(
    qc: Any, desk: Any
) -> None:
    tube = desk.sample()[0].unit.code
    unknown = qc.post(
        f"/api/v1/lots/{desk.lot.id}/results",
        json={"sample": tube, "results": [line("CD200", 50.0)]},
    )
    assert unknown.status_code == 422
    assert "'CD200' 不是质量标准 UC-MSC v1 的检验；其检验为：" in unknown.get_json()["detail"]
    assert unknown.get_json()["errors"]["CD200.test"] == ["不在现行质量标准中。"]

    too_early = qc.post(
        f"/api/v1/lots/{desk.lot.id}/results",
        json={"sample": tube, "results": [line("CD73", tested_on="2000-01-01")]},
    )
    assert too_early.status_code == 422
    body = too_early.get_json()
    assert body["detail"] == "部分检验结果无法按所填内容记录。"
    assert body["errors"]["CD73.tested_on"][0].startswith("早于样品抽取日期（")

    unknown_english, early_english = refusals("qc.results_refused")
    assert unknown_english.startswith("'CD200' is not a test of specification UC-MSC v1;")
    assert early_english == "Some results cannot be recorded as entered."


def test_a_retest_without_an_invalidation_reads_in_chinese(qc: Any, desk: Any) -> None:
    first = desk.record(desk.entry("CD73"))[0]
    tube = desk.sample()[0].unit.code
    response = qc.post(
        f"/api/v1/lots/{desk.lot.id}/results",
        json={"sample": tube, "results": [line("CD73", 98.0)]},
    )
    assert response.status_code == 409
    problem = response.get_json()
    assert problem["title"] == "复检须先作废原结果"
    assert (
        f"批次 {desk.lot.lot_number} 已有一项有效的 CD73 positive 检验结果（#{first.id}："
        in (problem["detail"])
    )
    assert problem["errors"]["CD73.value"] == ["已有一项有效的检验结果。"]
    (on_record,) = refusals("qc.results_refused")
    assert on_record.startswith(
        f"A valid CD73 positive result is on file for lot {desk.lot.lot_number}"
    )
    assert "A result is never overwritten" in on_record


def test_too_many_tubes_read_in_chinese(qc: Any, desk: Any) -> None:
    bags = qc.get(f"/api/v1/lots/{desk.lot.id}").get_json()["bags"]
    response = qc.post(
        f"/api/v1/lots/{desk.lot.id}/samples",
        json={"bag": bags[-1]["unit"]["code"], "tubes": 50},
    )
    assert response.status_code == 422
    assert response.get_json()["detail"] == "每次抽取 1 至 20 支样品管；本次要求 50 支。"
    assert response.get_json()["errors"]["tubes"] == ["须在 1 至 20 之间。"]
    assert refusals("qc.samples_refused") == ["Draw 1 to 20 tubes at a time; 50 were asked for."]


def test_a_release_not_ready_and_by_the_lots_analyst_read_in_chinese(
    clients: Any, desk: Any, make_user: Any, qa: Any
) -> None:
    desk.full_panel(KARYOTYPE=None)
    not_ready = qa.post(f"/api/v1/lots/{desk.lot.id}/release", json={"password": TEST_PASSWORD})
    assert not_ready.status_code == 409
    assert not_ready.get_json()["title"] == "拒绝放行"
    assert not_ready.get_json()["detail"] == (
        f"批次 {desk.lot.lot_number} 不能放行。所有必需检测齐全、有效且通过：缺少：Karyotype。"
    )

    both = make_user("morgan", "qa", "qc_analyst")
    desk.record(desk.entry("KARYOTYPE"), actor=both)
    barred = chinese(clients.api(both)).post(
        f"/api/v1/lots/{desk.lot.id}/release", json={"password": TEST_PASSWORD}
    )
    assert barred.status_code == 409
    assert barred.get_json()["title"] == "职责分离"
    assert "您记录了此批次的 1 项质量控制(QC)结果" in barred.get_json()["detail"]

    # on record in English, the failed precondition and its reason included
    assert refusals("lot.release_refused") == [
        f"Lot {desk.lot.lot_number} cannot be released. Every required test present, valid "
        "and passing: missing: Karyotype.",
        f"{both.full_name} may not release lot {desk.lot.lot_number}: you recorded 1 of this "
        "lot's QC results. Release is by a QA person who recorded none of the lot's results "
        "or steps.",
    ]
    assert db.session.scalar(select(func.count()).select_from(LotDisposition)) == 0


def test_a_blank_rejection_reason_and_testing_after_rejection_read_in_chinese(
    qa: Any, qc: Any, desk: Any
) -> None:
    blank = qa.post(
        f"/api/v1/lots/{desk.lot.id}/reject", json={"password": TEST_PASSWORD, "reason": "  "}
    )
    assert blank.status_code == 422
    assert blank.get_json()["detail"] == "请说明拒绝放行此批次的原因。"
    assert refusals("lot.reject_refused") == ["Say why the lot is rejected."]

    rejected = qa.post(
        f"/api/v1/lots/{desk.lot.id}/reject",
        json={"password": TEST_PASSWORD, "reason": "Process failure"},
    )
    assert rejected.status_code == 200, rejected.get_json()
    bags = qc.get(f"/api/v1/lots/{desk.lot.id}").get_json()["bags"]
    closed = qc.post(f"/api/v1/lots/{desk.lot.id}/samples", json={"bag": bags[0]["unit"]["code"]})
    assert closed.status_code == 409
    assert closed.get_json()["title"] == "批次已拒绝"
    assert closed.get_json()["detail"] == (f"批次 {desk.lot.lot_number} 已拒绝，其放行检验已关闭。")
    assert refusals("qc.samples_refused") == [
        f"Lot {desk.lot.lot_number} has been rejected; its release testing is closed."
    ]


def test_invalidating_twice_reads_in_chinese(qa: Any, desk: Any) -> None:
    result = desk.record(desk.entry("VIABILITY", 70.0))[0]
    first = qa.post(
        f"/api/v1/results/{result.id}/invalidate",
        json={"password": TEST_PASSWORD, "reason": "Pipetting error proven"},
    )
    assert first.status_code == 200, first.get_json()
    again = qa.post(
        f"/api/v1/results/{result.id}/invalidate",
        json={"password": TEST_PASSWORD, "reason": "Again"},
    )
    assert again.status_code == 409
    assert again.get_json()["detail"] == f"检验结果 #{result.id} 已被作废。"
    assert refusals("qc_result.invalidation_refused") == [
        f"Result #{result.id} was already invalidated."
    ]


def test_the_testing_page_refuses_a_date_in_chinese_and_keeps_english_on_record(
    clients: Any, desk: Any
) -> None:
    page = chinese(clients.web(desk.lab.qc))
    tube = desk.sample()[0].unit.code
    form = {"sample": tube, "value-CD73": "99", "numeric-CD73": "1", "unit-CD73": "%"}
    form |= {"instrument-CD73": "FLOW-01", "tested_on-CD73": "yesterday"}
    refused = page.post(f"/lots/{desk.lot.id}/results", data=form)
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "CD73：检验日期 &#39;yesterday&#39; 不是日期（YYYY-MM-DD）。" in text
    assert "需要填写日期。" in text
    assert refusals("qc.results_refused") == [
        "CD73: the test date 'yesterday' is not a date (YYYY-MM-DD)."
    ]


def test_the_rules_speak_the_language_of_the_moment_and_keep_their_english(lab: Any) -> None:
    with using_language("zh_Hans"):
        with pytest.raises(InvalidInput) as numeric:
            read_value(TESTS["VIABILITY"], "ninety")
        with pytest.raises(InvalidInput) as line_twice:
            check_specification({"tests": [TESTS["CD73"], TESTS["CD73"]]})
        with pytest.raises(Conflict) as none_in_force:
            SPECIFICATIONS.in_force(db.session, "NO-SUCH-PRODUCT", at=utcnow())
    assert (
        numeric.value.detail == "Viability 是数值检验：请填写以 % 为单位的数字，而不是 'ninety'。"
    )
    assert english_of(numeric.value.detail) == (
        "Viability is a numeric test: give a number in %, not 'ninety'."
    )
    assert numeric.value.errors == {"value": ["需要填写数字。"]}
    assert line_twice.value.detail == "每项检验在质量标准中只能出现一次。"
    assert none_in_force.value.detail == (
        "NO-SUCH-PRODUCT 没有现行的放行质量标准；须先由质量保证(QA)批准一个版本。"
    )
    assert english_of(none_in_force.value.detail) == (
        "No release specification for NO-SUCH-PRODUCT is in force; QA must approve one first."
    )
    with pytest.raises(Conflict) as in_english:
        SPECIFICATIONS.in_force(db.session, "NO-SUCH-PRODUCT", at=utcnow())
    assert in_english.value.detail == english_of(none_in_force.value.detail)


def test_an_oos_finding_recorded_by_a_chinese_reader_is_stored_in_english(
    qc: Any, desk: Any
) -> None:
    tube = desk.sample()[0].unit.code
    response = qc.post(
        f"/api/v1/lots/{desk.lot.id}/results",
        json={"sample": tube, "results": [line("VIABILITY", 70.0, unit="%")]},
    )
    assert response.status_code == 201, response.get_json()
    db.session.expire_all()
    result = db.session.scalars(select(QcResult)).one()
    assert not result.passes and result.criterion == "≥ 80 %"
    investigation = db.session.scalars(
        select(Deviation).where(Deviation.category == "out_of_specification")
    ).one()
    assert investigation.description.startswith(
        f"Out-of-specification result #{result.id}: Viability 70 %, criterion ≥ 80 %"
    )
    assert not has_chinese(investigation.description)
    recorded = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "qc_result.recorded")
    ).one()
    assert json.loads(recorded.changes)["criterion"] == [None, "≥ 80 %"]

    # the review reads in Chinese around the stored English criterion
    review = qc.get(f"/api/v1/lots/{desk.lot.id}/review").get_json()
    results_check = next(check for check in review["checks"] if check["key"] == "results")
    assert "Viability 70 %" in results_check["detail"] and "≥ 80 %" in results_check["detail"]
    assert "out of specification" not in results_check["detail"]
