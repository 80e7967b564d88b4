"""The pages that draft, change, compare and sign controlled documents read in Chinese, a
refused draft's field errors included (issue 21's rule for every new page)."""

from __future__ import annotations

import copy
from typing import Any

from cellchain.core.types import utcnow
from cellchain.documents import texts
from cellchain.dosing.service import PROTOCOLS
from cellchain.quality.service import SPECIFICATIONS
from tests.conftest import TEST_PASSWORD
from tests.support.untranslated import assert_translated

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9"}


def test_drafting_comparing_and_signing_read_in_chinese(
    session: Any, make_user: Any, clients: Any
) -> None:
    qa = make_user("alex", "qa", full_name="Alex Quality")
    spec = SPECIFICATIONS.load_default(session, actor=qa, now=utcnow())
    SPECIFICATIONS.approve(session, spec, user=qa, password=TEST_PASSWORD, now=utcnow())
    protocol = PROTOCOLS.load_default(session, actor=qa, now=utcnow())
    PROTOCOLS.approve(session, protocol, user=qa, password=TEST_PASSWORD, now=utcnow())
    parameters = copy.deepcopy(spec.parameters)
    parameters["tests"][3]["criterion"] = {"min": 85}
    # a row added (every row of the default is a test DOMAIN.md requires: none is removed)
    parameters["tests"].append({**parameters["tests"][5], "code": "CD44", "name": "CD44 positive"})
    draft = SPECIFICATIONS.draft_change(
        session,
        actor=qa,
        now=utcnow(),
        code=spec.code,
        title="A new title",
        parameters=parameters,
        reason="Tighter viability",
    )
    session.commit()
    web = clients.web(qa)
    pages = {
        url: web.get(url, headers=CHINESE).get_data(as_text=True)
        for url in (
            "/specifications",
            f"/specifications/{spec.id}",
            f"/specifications/{draft.id}",
            f"/specifications/{spec.id}/draft",
            f"/specifications/{draft.id}/edit",
            f"/specifications/{draft.id}/differences",
        )
    }
    bad = {**protocol.parameters, "dose_viable_cells_per_kg": -1}
    bad["follow_up"] = [{**bad["follow_up"][0], "day": 95}, *bad["follow_up"][1:]]
    refused = web.post(
        f"/protocols/{protocol.id}/draft",
        data={"title": "t", "reason": "r", "parameters": texts.to_toml(bad)},
        headers=CHINESE,
    )
    assert refused.status_code == 422
    pages["refused draft"] = refused.get_data(as_text=True)
    assert "剂量应为每 kg 活细胞数的正数" in pages["refused draft"]
    assert "窗口期重叠" in pages["refused draft"]
    # what the page's own <main> says (the shell around it is the layout's, tested elsewhere)
    pages = {url: page[page.index("<main") : page.index("</main>")] for url, page in pages.items()}
    data = ["Alex Quality", "alex", spec.code, protocol.code, "A new title", "Tighter viability"]
    data += [test["name"] for test in parameters["tests"]]
    assert_translated(pages, data=data)
