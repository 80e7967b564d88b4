"""The trace back's answers do not change with how it reads (issue 20): its API answer and its
page, byte for byte, and the chain-of-identity report built from it, are what the trace back
as it read before (``tests/support/back_reference.py``) makes of the same records: from an
infusion, a dose order and a bag, with and without a recall naming the path."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cellchain.extensions import db
from cellchain.traceability.coi import coi
from cellchain.traceability.models import RecallTarget
from cellchain.traceability.trace import trace
from tests.support import back_reference
from tests.support.recalls import open_recall
from tests.support.zones import ZURICH

#: the CSRF token of the page's forms, which changes with every page
CSRF = re.compile(rb'(name="csrf_token" value=")[^"]*"')


def served(clients: Any, user: Any, kind: str, record_id: int) -> tuple[bytes, bytes]:
    """The API's answer and the page of the trace back from ``kind`` ``record_id``."""
    answer = clients.api(user).get(f"/api/v1/trace/back/{kind}/{record_id}")
    assert answer.status_code == 200, answer.get_json()
    page = clients.web(user).get(f"/trace/back/{kind}/{record_id}")
    assert page.status_code == 200
    return answer.get_data(), CSRF.sub(rb'\1"', page.get_data())


def starts(infused: Any) -> list[tuple[str, int]]:
    infusion, waiting = infused
    # the donation's container: a path of one unit, in no lot, made by no step
    container = trace.trace_back(db.session, "infusion", infusion.id).units[0].unit
    return [
        ("unit", container.id),
        ("infusion", infusion.id),
        ("dose", infusion.dose_order_id),
        ("dose", waiting.id),
        ("unit", infusion.dose_order.bags[0].unit_id),
        ("unit", infusion.dose_order.dose_unit_id),
        ("unit", waiting.bags[0].unit_id),
    ]


def same_as_before(
    monkeypatch: pytest.MonkeyPatch, clients: Any, user: Any, kind: str, record_id: int
) -> bytes:
    """The answers now and as read before, compared; the API's answer."""
    now = served(clients, user, kind, record_id)
    with monkeypatch.context() as before:
        before.setattr(trace, "trace_back", back_reference.trace_back)
        then = served(clients, user, kind, record_id)
    assert now[0] == then[0], f"{kind} {record_id}: the API's answer changed"
    assert now[1] == then[1], f"{kind} {record_id}: the page changed"
    return now[0]


def test_the_trace_back_answers_as_before(
    ward: Any, infused: Any, released: Any, clients: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = ward.clinic.clinician
    for kind, record_id in starts(infused):
        answer = same_as_before(monkeypatch, clients, user, kind, record_id)
        assert b'"recalls":[]' in answer  # nothing names the path yet
    # a recall of the lot names the path's units (and withdraws the waiting dose)
    recall = open_recall(ward, RecallTarget.LOT, released.id).recall
    for number, (kind, record_id) in enumerate(starts(infused)):
        answer = same_as_before(monkeypatch, clients, user, kind, record_id)
        # every path but the container's (in no lot) has units of the lot
        assert (recall.number.encode() in answer) == (number > 0)


def test_the_chain_of_identity_report_is_as_before(
    ward: Any, infused: Any, released: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    infusion, _ = infused
    open_recall(ward, RecallTarget.LOT, released.id)
    db.session.expire_all()
    now = coi.patient_report(db.session, infusion.patient, zone=ZURICH)
    db.session.expire_all()
    monkeypatch.setattr(trace, "trace_back", back_reference.trace_back)
    before = coi.patient_report(db.session, infusion.patient, zone=ZURICH)
    assert now.infusions and now.recalls
    assert now == before
