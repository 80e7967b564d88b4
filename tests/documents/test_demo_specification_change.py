"""Issue 22's "done when", through the pages on a copy of `cellchain demo`: QA drafts a new
release-specification version with a tighter viability limit, sees the difference, signs
it, and the next lot is judged against it while the earlier lots keep their version."""

from __future__ import annotations

import html
import re
import tomllib
from typing import Any

import pytest
from sqlalchemy import select

from cellchain.core.models import User
from cellchain.core.types import utcnow
from cellchain.documents import texts
from cellchain.extensions import db
from cellchain.manufacturing.models import Lot
from cellchain.manufacturing.processing import processing
from cellchain.quality import results
from cellchain.quality.models import QcResult
from cellchain.quality.service import SPECIFICATIONS


@pytest.fixture
def database_url(demo_database_url: str) -> str:
    """This test's database: a copy of the demo site as ``cellchain demo`` seeds it."""
    return demo_database_url


def _user(username: str) -> User:
    return db.session.execute(select(User).where(User.username == username)).scalar_one()


def _textarea(page: str) -> str:
    found = re.search(r'<textarea id="parameters"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, page[:2000]
    return html.unescape(found.group(1))


def test_qa_tightens_viability_and_only_the_next_lot_is_judged_by_it(clients: Any) -> None:
    qa = clients.web(_user("qa"), "qa-demo-pass")
    qc = clients.web(_user("qc"), "qc-demo-pass")
    v1 = SPECIFICATIONS.in_force(db.session, "UC-MSC", at=utcnow())
    tested = set(db.session.execute(select(QcResult.lot_id)).scalars())
    lots = db.session.execute(select(Lot).order_by(Lot.id)).scalars().all()
    earlier = [lot for lot in lots if lot.id in tested]
    (untested,) = [
        lot
        for lot in lots
        if lot.id not in tested
        and lot.status == "quarantine"
        and lot.product_definition.code == "UC-MSC"
    ]
    assert earlier

    # QA drafts the new version from the one in force (the form is prefilled from it)
    listing = qa.get("/specifications").get_data(as_text=True)
    assert f'href="/specifications/{v1.id}/draft"' in listing
    form = qa.get(f"/specifications/{v1.id}/draft?editor=toml").get_data(as_text=True)
    parameters = tomllib.loads(_textarea(form))
    assert parameters == v1.parameters
    for test in parameters["tests"]:
        if test["code"] == "VIABILITY":
            test["criterion"]["min"] = 85
    written = qa.post(
        f"/specifications/{v1.id}/draft",
        data={
            "title": v1.title,
            "reason": "Viability limit raised to 85 % after the stability study",
            "parameters": texts.to_toml(parameters),
        },
    )
    assert written.status_code == 302, written.get_data(as_text=True)

    # … sees the difference beside the version in force …
    compared = qa.get(written.headers["Location"])
    page = compared.get_data(as_text=True)
    row = re.search(
        r'<tr class="diff-changed" data-path="tests\[VIABILITY\]\.criterion\.min">'
        r"(.*?)</tr>",
        page,
        re.S,
    )
    assert row, page
    assert '<del translate="no">80</del>' in row.group(1)
    assert '<ins translate="no">85</ins>' in row.group(1)
    assert page.count('<tr class="diff-') == 1  # nothing else changed
    v2 = max(SPECIFICATIONS.versions(db.session), key=lambda d: d.version)
    assert (v2.version, v2.status) == (v1.version + 1, "draft")

    # … signs it into force …
    signed = qa.post(
        f"/specifications/{v2.id}/approve",
        data={"password": "qa-demo-pass", "effective_at": ""},
        follow_redirects=True,
    )
    text = signed.get_data(as_text=True)
    assert "is now in force" in text and 'data-standing="in_force"' in text
    assert "Viability limit raised to 85 %" in text

    # … and the next lot is judged against it: 82 % passed v1, fails v2
    bag = processing.bags_of(db.session, untested)[-1].code
    taken = qc.post(f"/lots/{untested.id}/samples", data={"bag": bag, "tubes": "1"})
    assert taken.status_code == 302, taken.get_data(as_text=True)
    db.session.expire_all()
    sample_code = results.samples_of(db.session, untested)[-1].unit.code
    assert sample_code in qc.get(f"/lots/{untested.id}/testing").get_data(as_text=True)
    today = utcnow().date().isoformat()
    recorded = qc.post(
        f"/lots/{untested.id}/results",
        data={
            "sample": sample_code,
            "value-VIABILITY": "82",
            "numeric-VIABILITY": "1",
            "unit-VIABILITY": "%",
            "instrument-VIABILITY": "FLOW-01",
            "tested_on-VIABILITY": today,
        },
        follow_redirects=True,
    )
    page = recorded.get_data(as_text=True)
    assert "OUT OF SPECIFICATION: Viability" in page, re.findall(
        r'class="(?:message|field-error)[^"]*"[^>]*>([^<]*)', page
    )
    assert f'href="/specifications/{v2.id}" class="record-version">v{v2.version}' in page
    db.session.expire_all()
    (result,) = db.session.execute(select(QcResult).where(QcResult.lot_id == untested.id)).scalars()
    assert result.specification_id == v2.id and not result.passes

    # the earlier lots keep the version they were tested under, on their pages too
    kept = 0
    for lot in earlier:
        spec_id = db.session.execute(
            select(QcResult.specification_id)
            .where(QcResult.lot_id == lot.id)
            .order_by(QcResult.id)
            .limit(1)
        ).scalar_one()
        kept += spec_id == v1.id
        review = qa.get(f"/lots/{lot.id}/review").get_data(as_text=True)
        assert f'href="/specifications/{spec_id}" class="record-version"' in review
        assert f'href="/specifications/{v2.id}"' not in review
        batch = qa.get(f"/lots/{lot.id}").get_data(as_text=True)
        assert 'class="record-version"' in batch  # the product definition's version
    assert kept >= 3  # the demo's released, out-of-specification and rejected UC-MSC lots
