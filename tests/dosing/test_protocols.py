"""Protocol versions take effect only when QA signs them; the NCT01420432 defaults load."""

from __future__ import annotations

import pytest

from cellchain.core import signatures
from cellchain.core.types import utcnow
from cellchain.dosing import service
from cellchain.dosing.defaults import NCT01420432_PARAMETERS
from cellchain.errors import StateConflict
from tests.conftest import TEST_PASSWORD


def test_defaults_load_once_as_a_draft(session):
    first = service.PROTOCOLS.load_default(session, actor=None, now=utcnow())
    again = service.PROTOCOLS.load_default(session, actor=None, now=utcnow())
    assert first.id == again.id and first.status == "draft" and first.version == 1
    params = first.parameters
    assert params["dose_viable_cells_per_kg"] == 1.0e6
    assert params["age_years"] == {"min": 18, "max": 60}
    assert [a["receives_cells"] for a in params["arms"]] == [True, False]
    assert [(i["day"], i["window_days"]) for i in params["infusions"]] == [(0, 0), (91, 14)]


def test_qa_signature_makes_a_version_effective_and_supersedes_the_last(session, make_user):
    qa = make_user("alex", "qa")
    v1 = service.PROTOCOLS.load_default(session, actor=qa, now=utcnow())
    service.PROTOCOLS.approve(session, v1, user=qa, password=TEST_PASSWORD, now=utcnow())
    changed = dict(NCT01420432_PARAMETERS, dose_tolerance_percent=5)
    v2 = service.PROTOCOLS.draft(
        session, actor=qa, now=utcnow(), code=v1.code, title=v1.title, parameters=changed
    )
    assert v2.version == 2 and v2.status == "draft"
    service.PROTOCOLS.approve(session, v2, user=qa, password=TEST_PASSWORD, now=utcnow())
    session.commit()
    assert (v1.status, v2.status) == ("superseded", "effective")
    assert signatures.manifest(session, v1)[0].valid  # v1's content never changed


def test_an_effective_version_cannot_be_approved_again(session, make_user):
    qa = make_user("alex", "qa")
    v1 = service.PROTOCOLS.load_default(session, actor=qa, now=utcnow())
    service.PROTOCOLS.approve(session, v1, user=qa, password=TEST_PASSWORD, now=utcnow())
    with pytest.raises(StateConflict, match="effective"):
        service.PROTOCOLS.approve(session, v1, user=qa, password=TEST_PASSWORD, now=utcnow())


def test_protocol_page_shows_the_signature_manifest(clients, make_user, session):
    qa = make_user("alex", "qa", full_name="Alex Quality")
    protocol = service.PROTOCOLS.load_default(session, actor=qa, now=utcnow())
    session.commit()
    web = clients.web(qa)
    response = web.post(f"/protocols/{protocol.id}/approve", data={"password": TEST_PASSWORD})
    assert response.status_code == 302
    page = web.get(f"/protocols/{protocol.id}").get_data(as_text=True)
    assert "Alex Quality" in page and "approval: protocol version in force" in page
    assert "NOT VALID" not in page
    api = clients.api(qa).get(f"/api/v1/protocols/{protocol.id}").get_json()
    assert api["status"] == "effective"
    assert api["signatures"][0]["valid"] is True
    assert api["signatures"][0]["printed_name"] == "Alex Quality"
