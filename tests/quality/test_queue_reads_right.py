"""Issue 16 item 11: wherever the preconditions of release are listed, each reads PASSED or
FAILED explicitly, and a lot that is not ready never reads as ready (QA queue page, review
page, API)."""

from __future__ import annotations

import re
from typing import Any

from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.quality import disposition

RESULTS_LABEL = "Every required test present, valid and passing"


def queue_row(page: str, lot_number: str) -> str:
    match = re.search(rf'<tr data-lot="{re.escape(lot_number)}".*?</tr>', page, re.S)
    assert match, page
    return match.group(0)


def test_a_lot_with_no_results_reads_not_ready_with_each_failure_named(clients: Any, desk: Any):
    assert not disposition.review(db.session, desk.lot, now=utcnow()).ready
    page = clients.web(desk.lab.qa).get("/qa").get_data(as_text=True)
    row = queue_row(page, desk.lot.lot_number)
    assert 'data-verdict="NOT READY"' in row and ">NOT READY<" in row
    assert "every precondition holds" not in row and ">READY<" not in row
    # the results precondition is there, by its positive name, marked FAILED (✘) with why
    failed = re.search(
        r'<li class="fail" data-check="results" data-state="FAILED">'
        r'<span class="mark" aria-hidden="true">✘</span> <strong>(\w+)</strong>: ([^—]+) —',
        row,
    )
    assert failed and failed.group(1) == "FAILED" and failed.group(2).strip() == RESULTS_LABEL
    assert "missing: Sterility" in row
    # every precondition is listed with a mark and its state, the passed ones too
    states = dict(re.findall(r'data-check="(\w+)" data-state="(\w+)"', row))
    assert len(states) == 8 and states["donor_eligible"] == "PASSED"
    assert re.search(r'class="pass" data-check="donor_eligible"[^>]*><span[^>]*>✔</span>', row)


def test_the_review_page_marks_each_precondition(clients: Any, desk: Any):
    page = clients.web(desk.lab.qa).get(f"/lots/{desk.lot.id}/review").get_data(as_text=True)
    verdict = re.search(r'<p id="verdict">(.*?)</p>', page, re.S)
    assert verdict and "NOT READY" in verdict.group(1) and "FAILED" in verdict.group(1)
    states = dict(re.findall(r'data-check="(\w+)" data-state="(\w+)"', page))
    assert states["results"] == "FAILED" and states["donor_eligible"] == "PASSED"
    assert len(states) == 8
    assert re.search(
        r'data-check="results" data-state="FAILED"><td>✘ <strong>FAILED</strong>', page
    )
    assert 'id="release-ready"' not in page


def test_the_api_lists_each_check_with_an_explicit_boolean_and_a_verdict(clients: Any, desk: Any):
    (waiting,) = clients.api(desk.lab.qa).get("/api/v1/qa/awaiting-review").get_json()
    assert waiting["ready"] is False and waiting["verdict"] == "NOT READY"
    assert waiting["summary"].endswith("preconditions of release FAILED")
    checks = {c["key"]: c for c in waiting["checks"]}
    assert checks["results"]["passed"] is False and checks["results"]["state"] == "FAILED"
    assert checks["results"]["label"] == RESULTS_LABEL
    assert checks["donor_eligible"]["passed"] is True
    assert checks["donor_eligible"]["state"] == "PASSED"
    assert all(isinstance(c["passed"], bool) for c in waiting["checks"])
    review = clients.api(desk.lab.qa).get(f"/api/v1/lots/{desk.lot.id}/review").get_json()
    assert review["verdict"] == "NOT READY"


def test_a_lot_whose_every_precondition_passed_reads_ready(clients: Any, desk: Any):
    desk.full_panel()
    page = clients.web(desk.lab.qa).get("/qa").get_data(as_text=True)
    row = queue_row(page, desk.lot.lot_number)
    assert 'data-verdict="READY"' in row and "all 8 preconditions of release passed" in row
    assert "FAILED" not in row
    (waiting,) = clients.api(desk.lab.qa).get("/api/v1/qa/awaiting-review").get_json()
    assert waiting["verdict"] == "READY" and all(c["passed"] for c in waiting["checks"])
