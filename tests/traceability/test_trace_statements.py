"""Statements of a trace back from an infusion (issue 20): the number of SQL statements does
not grow with the number of signatures on the path nor with the number of people who signed
(signers and their roles are loaded for all signatures at once). Counts, not times."""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import select

from cellchain.core import record_state, signatures
from cellchain.core.roles import Permission
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.traceability.models import RecallTarget, RecallUnit
from cellchain.traceability.recalls import recalls
from cellchain.traceability.trace import trace
from cellchain.traceability.trace.schemas import BackTraceOut
from tests.conftest import TEST_PASSWORD
from tests.support.chain import grow
from tests.support.recalls import infuse
from tests.support.statements import counting_statements


def back_from(api: Any, infusion: Any) -> tuple[list[str], dict[str, Any]]:
    """The statements of ``GET /api/v1/trace/back/infusion/<id>`` (from a cold session) and
    its answer. A first request before: the token's last use is written at most once a
    minute, so only the counted request's own statements are counted."""
    assert api.get(f"/api/v1/trace/back/infusion/{infusion.id}").status_code == 200
    db.session.commit()
    db.session.expire_all()
    with counting_statements() as seen:
        answer = api.get(f"/api/v1/trace/back/infusion/{infusion.id}")
    assert answer.status_code == 200, answer.get_json()
    return seen, answer.get_json()


def people_loads(statements: list[str]) -> int:
    return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT USERS."))


def check_signatures(body: dict[str, Any]) -> list[dict[str, Any]]:
    [clinic] = body["clinic"]
    return [s for check in clinic["bedside_checks"] for s in check["signatures"]]


def countersign(ward: Any, check: Any, make_user: Any, how_many: int, start: int) -> None:
    """``how_many`` more signatures on the bedside check, each by a different clinician."""
    for n in range(start, start + how_many):
        signatures.sign(
            db.session,
            record=check,
            meaning="Witnessed the bedside check",
            user=make_user(f"witness{n}", "clinician"),
            password=TEST_PASSWORD,
            now=utcnow(),
            permission=Permission.ADMINISTER_DOSES,
        )
    db.session.commit()


def test_trace_back_from_an_infusion_does_not_grow_with_its_signatures(
    ward, make_user, clients: Any
) -> None:
    infusion = infuse(ward)
    check = infusion.bedside_check
    api = clients.api(ward.clinic.clinician)

    countersign(ward, check, make_user, 2, start=0)
    few, body = back_from(api, infusion)
    assert len(check_signatures(body)) == 4  # the two of the sign-off and two witnesses

    countersign(ward, check, make_user, 6, start=2)
    many, body = back_from(api, infusion)
    signed = check_signatures(body)
    assert len(signed) == 10
    assert len({s["username"] for s in signed}) == 10
    assert all(s["valid"] for s in signed)
    assert len(many) == len(few)
    # everyone named on the path (who performed, tested, decided, checked, infused) in one
    # query, and each signer's name with the signatures: not once per kind of record or signer
    # (the other one, if any, is the caller's own account, loaded by authentication)
    assert people_loads(many) <= 2


def test_trace_back_reads_each_kind_of_record_once(ward: Any) -> None:
    """The trace back itself (in process, from a cold session): the infusion with its order,
    patient, bags and weight in one statement; the walk, which also finds the path's lots and
    says whether a recall names a unit (none here: the recalls are not read); the steps with
    their units, then their materials and their equipment; each lot with its disposition
    and its results; the events; the donation's eligibility determination with its results
    and the order's shipment, thaws, bedside checks (with their patients) and infusion in
    one; people with their roles; the signatures; and the disposition's results, which its
    signed content reads again (``LotDisposition.signed_content``): 11 statements, 34
    before issue 20's second pass, 20 before its third, 18 before its fourth."""
    infusion_id = infuse(ward).id
    db.session.commit()
    db.session.close()
    with counting_statements() as seen:
        back = trace.trace_back(db.session, trace.TraceFrom.INFUSION, infusion_id)
        answer = BackTraceOut().dump(back)
    assert answer["clinic"] and answer["units"]
    assert people_loads(seen) == 1
    assert len(seen) <= 11, "\n".join(s.split("\n")[0][:100] for s in seen)


# --- opening a recall ---------------------------------------------------------------------------


def recall_statements(lab: Any, container: Any) -> tuple[list[str], Any]:
    """The statements of opening a recall of ``container``'s donation (cold session)."""
    db.session.commit()
    db.session.expire_all()
    with counting_statements() as seen:
        opened = recalls.open_recall(
            db.session,
            target=RecallTarget.DONATION,
            target_id=container.donation_id,
            reason="Late donor test: HBV NAT reactive on the retained sample.",
            user=lab.qa,
            password=TEST_PASSWORD,
            now=utcnow(),
        )
        db.session.flush()
    db.session.commit()
    return seen, opened


def test_opening_a_recall_does_not_grow_with_its_units(lab) -> None:
    rng = random.Random(20)
    small, small_units = grow(lab, rng=rng, steps=3)
    large, large_units = grow(lab, rng=rng, steps=25)
    assert len(large_units) > 3 * len(small_units)

    few, opened_small = recall_statements(lab, small)
    many, opened_large = recall_statements(lab, large)
    assert opened_small.blocked == len(small_units)
    assert opened_large.blocked == len(large_units)
    assert len(many) == len(few)
    # the affected units are locked by one SELECT; the second walk under the locks is the
    # INSERT … SELECT of the recall's units (it locks only what it finds new: here nothing)
    assert unit_locks(many) == unit_locks(few) == 1
    # the affected units, written by one bulk INSERT, are on record like any row
    affected = db.session.execute(
        select(RecallUnit.unit_id).where(RecallUnit.recall_id == opened_large.recall.id)
    ).scalars()
    assert set(affected) == {unit.id for unit in large_units}
    report = record_state.verify_records(db.session)
    assert report.intact, [problem.describe() for problem in report.problems]


def unit_locks(statements: list[str]) -> int:
    """The SELECTs that lock units' rows (``FOR UPDATE`` on PostgreSQL; SQLite has no row
    locks and sends the same SELECT without it), after the lineage walk they may start with."""
    return sum(
        1
        for s in statements
        if " SELECT units.id" in " " + " ".join(s.split())
        and " ".join(s.split()).endswith(("ORDER BY units.id FOR UPDATE", "ORDER BY units.id"))
        and "WHERE units.id IN" in s
    )
