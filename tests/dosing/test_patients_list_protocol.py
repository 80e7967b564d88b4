"""The patients list names each patient's protocol and clinical site (follow-up of issue 22),
read for the whole page at once, in English and in Chinese."""

from __future__ import annotations

from typing import Any

from cellchain.extensions import db
from tests.lists.support import cells, statements_of
from tests.lists.test_patient_list import copies

CHINESE = "zh-CN,zh;q=0.9"


def header(html: str) -> str:
    return html.split('id="patients"', 1)[1].split("</thead>", 1)[0]


def test_each_patient_shows_its_protocol_and_site(clinic: Any, clients: Any) -> None:
    patient = clinic.enrol()
    protocol, site = patient.protocol.code, patient.site.code
    web = clients.web(clinic.clinician)

    html = web.get("/patients").get_data(as_text=True)
    chinese = web.get("/patients", headers={"Accept-Language": CHINESE}).get_data(as_text=True)

    assert ">Protocol</th>" in header(html) and ">Site</th>" in header(html)
    assert cells(html, "patients", 0) == [patient.study_id]
    assert cells(html, "patients", 2) == [protocol]
    assert cells(html, "patients", 3) == [site]
    assert ">方案</th>" in header(chinese) and ">中心</th>" in header(chinese)
    assert cells(chinese, "patients", 2) == [protocol]


def test_the_protocols_and_sites_are_read_once_per_page(clinic: Any, clients: Any) -> None:
    patient = clinic.enrol()
    web = clients.web(clinic.clinician)
    statements_of(web, "/patients")
    one = len(statements_of(web, "/patients"))
    copies(patient, 20)
    db.session.expire_all()

    html = web.get("/patients").get_data(as_text=True)
    assert len(statements_of(web, "/patients")) == one
    assert cells(html, "patients", 2) == [patient.protocol.code] * 21
