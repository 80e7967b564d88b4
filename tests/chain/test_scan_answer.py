"""The scan's answer, written from one Core row (``chain/scanning.py``, issue 20), is exactly
what ``ScanOut`` dumps from the ORM records, for every kind of code the site issues, and for
records with a relation missing (no issuer, no creator). The bytes sent are compared too,
so a key, a type or a time format that drifts from the schema fails here."""

from __future__ import annotations

import json
from typing import Any

from flask import jsonify
from sqlalchemy import select, update

from cellchain.chain.api import scan_result
from cellchain.chain.models import Unit
from cellchain.chain.schemas import ScanOut
from cellchain.core import numbering
from cellchain.core.models import IssuedIdentifier
from cellchain.extensions import db
from tests.conftest import issue_din
from tests.support.chain import build_tree
from tests.support.statements import counting_statements
from tests.support.tamper import outside_the_trail


def schema_answer(app: Any, code: str) -> bytes:
    """What the scan answered before the Core read: the ORM records dumped by ``ScanOut``."""
    with app.test_request_context():
        db.session.remove()
        issued = numbering.lookup(db.session, code, options=numbering.with_issuer())
        body = jsonify(ScanOut().dump(scan_result(issued))).get_data()
        db.session.remove()
        return body


def scanned(api: Any, code: str) -> bytes:
    response = api.get("/api/v1/scan", query_string={"code": code})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_data()


def every_code() -> list[str]:
    return list(
        db.session.execute(select(IssuedIdentifier.code).order_by(IssuedIdentifier.id)).scalars()
    )


def test_the_answer_of_every_issued_code_is_the_schemas(app, lab, clients):
    build_tree(lab)
    issue_din(app)  # reserved for label stock: no record yet
    api = clients.api(lab.qc)
    codes = every_code()
    kinds = set(db.session.execute(select(IssuedIdentifier.kind)).scalars())
    assert {"UNIT", "DIN"} <= kinds

    for code in codes:
        assert scanned(api, code) == schema_answer(app, code), code


def test_the_answer_without_an_issuer_or_a_creator_is_the_schemas(app, lab, clients):
    tree = build_tree(lab)
    api = clients.api(lab.qc)
    db.session.execute(
        outside_the_trail(
            update(IssuedIdentifier)
            .where(IssuedIdentifier.code == tree.b1.code)
            .values(issued_by_id=None)
        )
    )
    db.session.execute(
        outside_the_trail(update(Unit).where(Unit.id == tree.b1.id).values(created_by_id=None))
    )
    db.session.commit()

    body = scanned(api, tree.b1.code)

    assert body == schema_answer(app, tree.b1.code)
    answer = json.loads(body)
    assert "issued_by" not in answer and "created_by" not in answer["unit"]


def test_a_unit_code_that_names_no_unit_is_refused_as_before(app, lab, clients):
    tree = build_tree(lab)
    api = clients.api(lab.qc)
    db.session.execute(
        outside_the_trail(
            update(IssuedIdentifier)
            .where(IssuedIdentifier.code == tree.b2.code)
            .values(entity_type="donation")
        )
    )
    db.session.commit()

    response = api.get("/api/v1/scan", query_string={"code": tree.b2.code})

    assert response.status_code == 422, response.get_data(as_text=True)
    assert "not a unit" in response.get_json()["detail"]


def test_a_scan_of_a_unit_is_one_statement(lab, clients):
    """The token with its user's state and roles, and the identifier with its unit, in one
    Core statement on a connection in autocommit (``scanning.scan_as_bearer``): the ORM path
    read them in two, inside BEGIN and ROLLBACK (``test_scan_statements`` holds the issue's
    bound of three; this holds what was gained)."""
    tree = build_tree(lab)
    api = clients.api(lab.qc)
    api.get("/api/v1/scan", query_string={"code": tree.b1.code})  # records the token's use
    db.session.remove()

    with counting_statements() as statements:
        scanned(api, tree.b1.code)

    assert len(statements) == 1, "\n\n".join(statements)
    assert "api_tokens" in statements[0] and "issued_identifiers" in statements[0]
