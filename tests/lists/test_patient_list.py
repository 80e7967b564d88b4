"""The patients list as a list that scales (issue 21): by study ID, paged, sorted, filtered
by status and searched (study ID, COI) in the database; the page reads the dose orders of
its patients in one statement, not one per patient; bad values a 422 on the API and a note
on the page; as many statements with thousands of patients."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, inspect, select

from cellchain.dosing.models import Patient
from cellchain.extensions import db
from tests.lists.support import cells, pagination, statements_of


def copies(patient: Patient, count: int, *, start: int = 1) -> list[str]:
    """``count`` copies of ``patient`` (new study IDs and COIs) in one insert (below the ORM:
    test rows); their study IDs."""
    columns = {c.key: getattr(patient, c.key) for c in inspect(Patient).column_attrs}
    first = db.session.execute(select(func.max(Patient.id))).scalar_one() + 1
    rows = [
        {
            **columns,
            "id": first + n,
            "study_id": f"ZZ-{start + n:05d}",
            "coi": f"C{start + n:014d}X",
            "randomization_number": None,
        }
        for n in range(count)
    ]
    db.session.connection().execute(insert(Patient.__table__), rows)
    db.session.commit()
    return [row["study_id"] for row in rows]


def test_by_study_id_paged_searched_and_corrected(clinic: Any, clients: Any) -> None:
    patient = clinic.enrol()
    added = copies(patient, 60)
    web, api = clients.web(clinic.clinician), clients.api(clinic.clinician)
    html = web.get("/patients").get_data(as_text=True)
    assert cells(html, "patients", 0) == sorted([*added, patient.study_id])[:50]
    assert "Page 1 of 2" in html
    found = web.get("/patients?q=zz-00007").get_data(as_text=True)
    assert cells(found, "patients", 0) == ["ZZ-00007"]
    newest = api.get("/api/v1/patients", query_string={"sort": "enrolled", "direction": "desc"})
    assert [p["study_id"] for p in newest.get_json()][:2] == [added[-1], added[-2]]
    assert pagination(newest)["total"] == 61
    assert (
        pagination(api.get("/api/v1/patients", query_string={"status": "withdrawn"}))["total"] == 0
    )
    for query, field in (
        ({"page": 0}, "page"),
        ({"sort": "sex"}, "sort"),
        ({"status": "x"}, "status"),
    ):
        bad = api.get("/api/v1/patients", query_string=query)
        assert bad.status_code == 422 and field in bad.get_json()["errors"], query
    for bad in ("page=0", "sort=sex", "page_size=999999", "page=9", "status=x"):
        response = web.get(f"/patients?{bad}")
        assert response.status_code == 200 and "list-note" in response.get_data(as_text=True), bad


def test_the_page_costs_as_many_statements_with_thousands(clinic: Any, clients: Any) -> None:
    patient = clinic.enrol()
    copies(patient, 120)
    web = clients.web(clinic.clinician)
    paths = ("/patients", "/patients?page=2&q=ZZ&sort=day0")
    for path in paths:
        statements_of(web, path)
    few = {path: len(statements_of(web, path)) for path in paths}
    copies(patient, 3000, start=1000)
    many = {path: len(statements_of(web, path)) for path in paths}
    assert many == few
