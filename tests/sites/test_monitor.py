"""The read-only monitor (docs/sites.md): refused every write route of the app (403) but its
own session's; reads every site's records with people's names replaced by their role and a
pseudonym; never given a PDF or a file; its home page says what it can browse."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cellchain.core.roles import Role
from cellchain.extensions import db
from cellchain.manufacturing.models import Lot
from cellchain.sites import monitor
from tests.support.ward import Ward
from tests.test_permission_matrix import MONITOR_POSTS, route_methods, sample_url


def test_the_monitor_is_refused_every_write_route(app: Any, clients: Any, make_user: Any):
    mona = make_user("mona", Role.MONITOR)
    pages, api = clients.web(mona), clients.api(mona)
    wrong, walked = [], 0
    for rule, method in route_methods(app):
        if method in ("GET", "HEAD", "OPTIONS") or (rule.endpoint, method) in MONITOR_POSTS:
            continue
        if rule.endpoint in ("web.login", "web.choose_language"):
            continue  # public: no account involved
        client = api if rule.rule.startswith("/api/") else pages
        response = client.open(sample_url(rule), method=method, json={})
        walked += 1
        if response.status_code != 403:
            wrong.append(f"{method} {rule.rule} → {response.status_code}")
    assert wrong == []
    assert walked > 100


def test_a_monitor_reads_every_site_pseudonymised(ward: Ward, clients: Any, make_user: Any):
    patient = ward.patient()
    clinician = ward.clinic.clinician
    mona = make_user("mona", Role.MONITOR)
    page = clients.web(mona).get(f"/patients/{patient.id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and patient.study_id in text
    assert clinician.full_name not in text
    assert monitor.pseudonym(clinician) in text
    answer = clients.api(mona).get(f"/api/v1/patients/{patient.id}").get_json()
    assert answer["study_id"] == patient.study_id
    assert answer["enrolled_by"] == monitor.pseudonym(clinician)
    # others read the name as before
    own = clients.web(clinician).get(f"/patients/{patient.id}").get_data(as_text=True)
    assert clinician.full_name in own or clinician.username in own


def test_names_are_replaced_as_html_and_json_write_them():
    names = {"Wáng Lì": "Clinician U3", "O'Brien Ann": "QA U4"}
    html = "<td>O&#39;Brien Ann</td><td>Wáng Lì</td>"
    assert monitor.pseudonymise(html, names, json_body=False) == (
        "<td>QA U4</td><td>Clinician U3</td>"
    )
    body = '{"by": "W\\u00e1ng L\\u00ec", "login": "wang", "wang": 1}'
    hidden = monitor.pseudonymise(body, names, json_body=True, logins={"wang": "Clinician U3"})
    assert hidden == '{"by": "Clinician U3", "login": "Clinician U3", "wang": 1}'


def test_a_monitor_is_given_no_pdf(ward: Ward, clients: Any, make_user: Any):
    mona = make_user("mona", Role.MONITOR)
    lot_id = db.session.scalar(select(Lot.id).order_by(Lot.id))
    refused = clients.web(mona).get(f"/lots/{lot_id}/batch-record.pdf")
    assert refused.status_code == 403 and refused.mimetype == "text/html"
    # QA is given the PDF (the refusal is the monitor's)
    given = clients.web(ward.lab.qa).get(f"/lots/{lot_id}/batch-record.pdf")
    assert given.status_code == 200 and given.mimetype == "application/pdf"


def test_the_monitors_home_page_says_what_it_can_browse(clients: Any, make_user: Any):
    mona = make_user("mona", Role.MONITOR)
    home = clients.web(mona).get("/").get_data(as_text=True)
    assert 'id="monitor-home"' in home and "/sites" in home and "/patients" in home


def test_the_monitor_role_is_never_held_with_another(clients: Any, make_user: Any):
    admin = make_user("ada", Role.ADMIN)
    refused = clients.api(admin).post(
        "/api/v1/users",
        json={
            "username": "mixed",
            "full_name": "Mixed Roles",
            "password": "a long enough password 123",
            "roles": ["monitor", "clinician"],
        },
    )
    assert refused.status_code in (409, 422), refused.get_json()
