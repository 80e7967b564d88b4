"""Release specification versions: loaded as drafts, in force only when QA signs."""

from __future__ import annotations

import pytest

from cellchain.core import signatures
from cellchain.core.types import utcnow
from cellchain.errors import Conflict, InvalidInput
from cellchain.quality import service
from cellchain.quality.defaults import UC_MSC_SPECIFICATION
from tests.conftest import TEST_PASSWORD
from tests.support.tamper import outside_the_trail


def test_the_default_loads_once_and_takes_effect_when_qa_signs(session, make_user):
    qa = make_user("alex", "qa")
    first = service.SPECIFICATIONS.load_default(session, actor=qa, now=utcnow())
    assert service.SPECIFICATIONS.load_default(session, actor=qa, now=utcnow()).id == first.id
    with pytest.raises(Conflict, match="QA must approve"):
        service.SPECIFICATIONS.in_force(session, "UC-MSC", at=utcnow())
    service.SPECIFICATIONS.approve(session, first, user=qa, password=TEST_PASSWORD, now=utcnow())
    session.commit()
    assert service.SPECIFICATIONS.in_force(session, "uc-msc", at=utcnow()).id == first.id
    codes = [t["code"] for t in first.parameters["tests"]]
    assert codes[:5] == ["STERILITY", "MYCOPLASMA", "ENDOTOXIN", "VIABILITY", "VIABLE-CELLS"]
    assert len(codes) == 15


def test_a_new_version_supersedes_and_the_old_signature_still_holds(session, make_user):
    qa = make_user("alex", "qa")
    v1 = service.SPECIFICATIONS.load_default(session, actor=qa, now=utcnow())
    service.SPECIFICATIONS.approve(session, v1, user=qa, password=TEST_PASSWORD, now=utcnow())
    tests = [dict(t) for t in UC_MSC_SPECIFICATION["tests"]]
    tests[3] = {**tests[3], "criterion": {"min": 85}}
    v2 = service.SPECIFICATIONS.draft(
        session, actor=qa, now=utcnow(), code="UC-MSC", title=v1.title, parameters={"tests": tests}
    )
    service.SPECIFICATIONS.approve(session, v2, user=qa, password=TEST_PASSWORD, now=utcnow())
    session.commit()
    assert (v1.status, v2.status) == ("superseded", "effective")
    assert signatures.manifest(session, v1)[0].valid


def test_a_signature_is_shown_invalid_after_the_signed_content_is_altered(session, make_user):
    qa = make_user("alex", "qa")
    spec = service.SPECIFICATIONS.load_default(session, actor=qa, now=utcnow())
    service.SPECIFICATIONS.approve(session, spec, user=qa, password=TEST_PASSWORD, now=utcnow())
    session.commit()
    # someone edits the stored specification behind the application's back
    session.execute(
        outside_the_trail(
            type(spec)
            .__table__.update()
            .where(type(spec).__table__.c.id == spec.id)
            .values(parameters_json=spec.parameters_json.replace('"min":80', '"min":70'))
        )
    )
    session.commit()
    session.expire_all()
    [manifest] = signatures.manifest(session, service.SPECIFICATIONS.get(session, spec.id))
    assert not manifest.valid


def test_a_draft_that_cannot_be_judged_is_refused(session, make_user):
    with pytest.raises(InvalidInput):
        service.SPECIFICATIONS.draft(
            session, actor=None, now=utcnow(), code="UC-MSC", title="t", parameters={"tests": []}
        )


def test_pages_and_api(session, make_user, clients):
    qa = make_user("alex", "qa")
    spec = service.SPECIFICATIONS.load_default(session, actor=qa, now=utcnow())
    session.commit()
    web = clients.web(qa)
    page = web.get(f"/specifications/{spec.id}").get_data(as_text=True)
    assert "&lt; 0.5 EU/mL" in page and "Sign and approve" in page
    signed = web.post(f"/specifications/{spec.id}/approve", data={"password": TEST_PASSWORD})
    assert signed.status_code == 302
    body = clients.api(qa).get(f"/api/v1/specifications/{spec.id}").get_json()
    assert body["status"] == "effective" and body["signatures"][0]["valid"]
    tech = clients.api(make_user("tina", "technician"))
    assert (
        tech.post(
            f"/api/v1/specifications/{spec.id}/approve", json={"password": TEST_PASSWORD}
        ).status_code
        == 403
    )
