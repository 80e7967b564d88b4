"""A deviation opened on a patient's dose (a post-thaw count outside tolerance infused on the
investigator's decision) names the patient: it and its audit entries are that patient's site's
(``scope._hidden_deviations``), never read by another site's investigator; QA reads them."""

from __future__ import annotations

from typing import Any

from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.sites import service as sites
from tests.clinic.test_post_thaw_count import count_body
from tests.conftest import TEST_PASSWORD
from tests.sites.test_site_scope import second_site
from tests.support.ward import Ward


def test_a_deviation_on_site_as_dose_is_not_read_by_site_b(
    ward: Ward, clients: Any, make_user: Any
) -> None:
    patient, order = ward.at_bedside()
    nurse = clients.api(ward.clinic.clinician)
    count = nurse.post(f"/api/v1/doses/{order.id}/post-thaw-counts", json=count_body(4.1e6, 82))
    assert count.status_code == 201, count.get_json()
    signed = clients.api(ward.clinic.investigator).post(
        f"/api/v1/doses/{order.id}/post-thaw-decision",
        json={
            "decision": "proceed",
            "reason": "Benefit outweighs",
            "password": TEST_PASSWORD,
            "count_id": count.get_json()["id"],
        },
    )
    assert signed.status_code == 200, signed.get_json()
    dev_id = signed.get_json()["deviation_id"]
    vera = make_user("vera", Role.INVESTIGATOR)
    sites.set_memberships(db.session, vera, [second_site().id], actor=None, now=utcnow())
    db.session.commit()
    api = clients.api(vera)
    audit = api.get("/api/v1/audit", query_string={"entity_type": "deviation", "entity_id": dev_id})
    leaks = []
    if patient.study_id in audit.get_data(as_text=True):
        leaks.append("GET /api/v1/audit?entity_type=deviation")
    csv = api.get("/api/v1/audit/export.csv").get_data(as_text=True)
    if patient.study_id in csv:
        leaks.append("GET /api/v1/audit/export.csv")
    for url in (f"/api/v1/deviations/{dev_id}", "/api/v1/deviations"):
        r = api.get(url)
        if patient.study_id in r.get_data(as_text=True):
            leaks.append(url)
    web = clients.web(vera)
    for url in (f"/deviations/{dev_id}", "/deviations", "/audit"):
        r = web.get(url)
        if patient.study_id in r.get_data(as_text=True):
            leaks.append(url)
    assert leaks == [], f"site A study ID {patient.study_id} read by site B in: {leaks}"
    # QA (facility-wide) reads the deviation and its patient
    qa = clients.api(ward.lab.qa).get(f"/api/v1/deviations/{dev_id}")
    assert qa.status_code == 200 and patient.study_id in qa.get_data(as_text=True)
