"""The site invariant on the reads that do not go through the ORM (review 2 items 1, 8, 10,
13): the bearer scan answered ahead of Flask (``chain/scanning.scan_as_bearer``), the bedside
check's scans read on the driver's cursor (``clinic/bedside/bedside._ISSUED``,
``doses.dose_reads``) and the thaw. A clinician of site B scanning site A's patient's codes is
answered as for a code never issued, and nothing is recorded; the monitor's scan is
pseudonymised. Each refusal is compared with what site A's own clinician gets for the same
request, so that the assertions can fail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from cellchain.clinic.models import BedsideCheck, Thaw
from cellchain.core.roles import Role
from cellchain.extensions import db
from tests.sites import test_site_scope
from tests.support.ward import Ward, payload

#: site A's patient infused, and site B's clinician ``bea`` (the site scope tests' fixture)
two_sites = test_site_scope.two_sites

NOT_ISSUED = "has not issued it"


def _count(model: Any) -> int:
    db.session.expire_all()
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_bearer_scan_of_another_sites_coi_is_not_found(
    clients: Any, two_sites: dict[str, Any], ward: Ward
) -> None:
    patient, bea = two_sites["patient"], two_sites["bea"]
    own = clients.api(ward.clinic.clinician).get("/api/v1/scan", query_string={"code": patient.coi})
    assert own.status_code == 200 and own.get_json()["entity_id"] == str(patient.id)
    for code in (patient.coi, payload(patient.coi)):
        answer = clients.api(bea).get("/api/v1/scan", query_string={"code": code})
        assert answer.status_code == 404, answer.get_data(as_text=True)
        text = answer.get_data(as_text=True)
        assert patient.study_id not in text and f"/patients/{patient.id}" not in text


def test_a_bearer_scan_of_site_as_bag_shows_site_b_no_patient(
    clients: Any, two_sites: dict[str, Any]
) -> None:
    """A bag of site A's dose scanned by site B's clinician: answered by the ordinary path,
    without an error and without the patient's study ID."""
    order, bea = two_sites["order"], two_sites["bea"]
    bag = order.bags[0].unit
    answer = clients.api(bea).get("/api/v1/scan", query_string={"code": bag.code})
    assert answer.status_code < 500
    assert two_sites["patient"].study_id not in answer.get_data(as_text=True)


def test_the_monitors_bearer_scan_names_no_user(
    clients: Any, two_sites: dict[str, Any], make_user: Any, ward: Ward
) -> None:
    monitor = make_user("mona", Role.MONITOR)
    order, patient = two_sites["order"], two_sites["patient"]
    issuers = {ward.clinic.clinician.username}
    lab = clients.api(ward.clinic.clinician).get(
        "/api/v1/scan", query_string={"code": order.dose_unit.code}
    )
    assert lab.status_code == 200
    issuers |= {lab.get_json().get("issued_by"), lab.get_json()["unit"].get("created_by")}
    issuers.discard(None)
    assert issuers  # the check below can fail: the plain answer names users
    api = clients.api(monitor)
    for code in (order.dose_unit.code, patient.coi):
        answer = api.get("/api/v1/scan", query_string={"code": code})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        named = {body.get("issued_by"), (body.get("unit") or {}).get("created_by")}
        assert not (named & issuers), body


def test_a_bedside_check_of_another_sites_patient_is_refused_over_the_api(
    clients: Any, two_sites: dict[str, Any], ward: Ward
) -> None:
    patient, order, bea = two_sites["patient"], two_sites["order"], two_sites["bea"]
    body = {"wristband": payload(patient.coi), "label": payload(order.dose_unit.code)}
    before = _count(BedsideCheck)
    answer = clients.api(bea).post("/api/v1/bedside/checks", json=body)
    assert answer.status_code == 404, answer.get_data(as_text=True)
    text = answer.get_data(as_text=True)
    assert NOT_ISSUED in text and patient.study_id not in text
    assert _count(BedsideCheck) == before
    # the label alone (with site B's clinician's own wristband unknown) is refused too
    answer = clients.api(bea).post(
        "/api/v1/bedside/checks",
        json={"wristband": "nothing", "label": payload(order.dose_unit.code)},
    )
    assert answer.status_code in (404, 422) and patient.study_id not in answer.get_data(
        as_text=True
    )
    assert _count(BedsideCheck) == before
    # site A's own clinician is answered (and a check recorded) for the same scans
    own = clients.api(ward.clinic.clinician).post("/api/v1/bedside/checks", json=body)
    assert own.status_code == 201, own.get_data(as_text=True)
    assert _count(BedsideCheck) == before + 1


def test_a_bedside_check_of_another_sites_patient_is_refused_on_the_page(
    clients: Any, two_sites: dict[str, Any]
) -> None:
    patient, order, bea = two_sites["patient"], two_sites["order"], two_sites["bea"]
    before = _count(BedsideCheck)
    web = clients.web(bea)
    answer = web.post(
        "/bedside/checks",
        data={"wristband": payload(patient.coi), "label": payload(order.dose_unit.code)},
        follow_redirects=True,
    )
    text = answer.get_data(as_text=True)
    assert NOT_ISSUED in text and patient.study_id not in text
    assert _count(BedsideCheck) == before


def test_a_thaw_of_another_sites_dose_is_not_found(
    clients: Any, ward: Ward, make_user: Any
) -> None:
    order = ward.prepared(None)
    ward.receive(ward.ship(order))
    bea = test_site_scope.site_b_clinician(make_user)
    before = _count(Thaw)
    for code in (order.dose_unit.code, order.bags[0].unit.code):
        answer = clients.api(bea).post("/api/v1/thaw", json={"scan": payload(code)})
        assert answer.status_code == 404, answer.get_data(as_text=True)
        assert NOT_ISSUED in answer.get_data(as_text=True)
        page = clients.web(bea).post("/thaw", data={"scan": payload(code)})
        assert page.status_code == 404, page.get_data(as_text=True)[:500]
        assert order.patient.study_id not in page.get_data(as_text=True)
    assert _count(Thaw) == before
    # site A's clinician thaws the same dose
    own = clients.api(ward.clinic.clinician).post(
        "/api/v1/thaw", json={"scan": payload(order.dose_unit.code)}
    )
    assert own.status_code in (200, 201), own.get_data(as_text=True)
    assert _count(Thaw) > before


def test_each_code_names_its_own_patients_site_when_another_sites_dose_exists(
    ward: Ward,
) -> None:
    """The sites of a unit code are those of its own dose's patient, not of every dose: two
    patients at two sites, each dose's label and bag read their own site (the reverted fix
    read every dose's bags, the subquery two levels down not correlated, and refused the
    bedside's own codes)."""
    from cellchain.clinic.bedside.doses import _sites_of_code_statement

    at_a = ward.prepared(None)
    second = test_site_scope.second_site()
    patient_b = ward.patient()
    patient_b.site_id = second.id  # enrolled at site B (its clinician's only site)
    db.session.flush()
    at_b = ward.prepared(patient_b)
    db.session.commit()
    assert at_a.patient.site_id != at_b.patient.site_id
    for order in (at_a, at_b):
        site = order.patient.site_id
        for code in (order.dose_unit.code, order.bags[0].unit.code, order.patient.coi):
            row = db.session.execute(_sites_of_code_statement(), {"code": code}).one()
            assert (row.site_low, row.site_high) == (site, site), (code, row)
