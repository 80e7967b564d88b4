"""A scan over the API costs a fixed, small number of SQL statements (issue 20).

Scanning is what people at the bench and the bedside wait on, so ``GET /api/v1/scan`` of a
unit's code, with a bearer token, sends at most three statements: the token with its user and
roles, the issued identifier, and the unit with what the answer shows of it (its donation's DIN,
who created it). The count is the same whatever the unit's history or number of children, so
a change that adds a query per request, or per event or child, fails here. Counts, not times.
"""

from __future__ import annotations

from sqlalchemy import update

from cellchain.chain.models import LineageOperation, UnitKind
from cellchain.core.identifiers import parse_identifier
from cellchain.core.models import ApiToken
from cellchain.extensions import db
from tests.support.chain import build_tree, container_of, derive
from tests.support.statements import counting_statements
from tests.support.tamper import outside_the_trail

#: the token with its user and roles; the issued identifier; the unit with its donation and
#: creator
SCAN_STATEMENTS = 3


def scan_statements(client, code: str) -> list[str]:
    """The statements one scan of ``code`` sends, as the request of a worker that has just
    started would (nothing already loaded in the session)."""
    db.session.remove()
    with counting_statements() as statements:
        response = client.get("/api/v1/scan", query_string={"code": code})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["unit"]["code"] == parse_identifier(code).canonical
    assert body["unit"]["din"] and body["unit"]["created_by"] == "tina"
    return statements


def test_a_scan_of_a_unit_is_at_most_three_statements(lab, clients):
    tree = build_tree(lab)
    code = parse_identifier(tree.b1.code).display
    # another user than the units' creator, so no user is already at hand for the answer
    api = clients.api(lab.qc)
    api.get("/api/v1/scan", query_string={"code": code})  # records the token's first use

    statements = scan_statements(api, code)

    assert len(statements) <= SCAN_STATEMENTS, "\n\n".join(statements)


def test_the_statements_of_a_scan_do_not_grow_with_the_units_history_or_children(lab, clients):
    leaf = container_of(lab)
    busy = container_of(lab)
    derive(lab, [busy], operation=LineageOperation.ISOLATE, count=6)
    derive(lab, [busy], kind=UnitKind.SAMPLE_TUBE, operation=LineageOperation.SAMPLE, count=4)
    leaf_code, busy_code = leaf.code, busy.code
    api, tech_api = clients.api(lab.qc), clients.api(lab.tech)
    for location in ("INC-1", "INC-2", "BSC-1"):
        moved = tech_api.post(
            f"/api/v1/units/{busy.id}/events", json={"event_type": "moved", "location": location}
        )
        assert moved.status_code == 201, moved.get_data(as_text=True)
    api.get("/api/v1/scan", query_string={"code": leaf_code})  # records the token's first use

    small = scan_statements(api, leaf_code)
    big = scan_statements(api, busy_code)

    assert len(small) == len(big) <= SCAN_STATEMENTS, "\n\n".join(big)


def test_a_scan_that_records_the_tokens_use_adds_only_that_write(lab, clients):
    """The token's last use is written at most once a minute; when it is, the scan costs that
    write (and its commit) and nothing more."""
    tree = build_tree(lab)
    code = tree.b1.code
    api = clients.api(lab.qc)
    api.get("/api/v1/scan", query_string={"code": code})
    quiet = scan_statements(api, code)
    db.session.execute(outside_the_trail(update(ApiToken).values(last_used_at=None)))
    db.session.commit()

    writing = scan_statements(api, code)

    updates = [s for s in writing if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1 and "api_tokens" in updates[0]
    assert len(writing) == len(quiet) + 1
