"""The bedside check's SQL statements (issue 20: "facts gathered once per request"): one
``POST /api/v1/bedside/checks`` sends a fixed number of statements, whatever the number of
bags, weights and thaws of the dose. Counts, not times: a change that reads a fact per bag or
reads the facts again for the answer fails here."""

from __future__ import annotations

from typing import Any

from cellchain.extensions import db
from tests.support.statements import counting_statements
from tests.support.ward import Ward, payload

#: Every statement of the request, for a go: the token with its user and roles, and its use
#: (2), the scans resolved and the facts (21), the check, its audit entries and its record
#: state (9). Was 76 for a dose of 2 bags and 84 for 3 before issue 20 (a query per bag, the
#: authentication in 7, the facts read again for the answer).
MOST_STATEMENTS = 32


def checked(ward: Ward, clients: Any, *, kg: float, weighings: int = 1) -> tuple[int, Any]:
    """A dose for a patient of ``kg`` taken to the bedside and checked over the API: the
    statements the check sent, and the answer."""
    patient = ward.patient(weight_kg=kg)
    for hours_ago in range(2, weighings + 1):
        ward.clinic.weigh(patient, kg, hours_ago=0.5 / hours_ago)
    patient, order = ward.at_bedside(patient)
    nurse = clients.api(ward.clinic.clinician)
    body = {"wristband": payload(patient.coi), "label": payload(order.dose_unit.code)}
    bags = len(order.bags)
    db.session.commit()
    db.session.expire_all()
    with counting_statements() as seen:
        answer = nurse.post("/api/v1/bedside/checks", json=body)
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["verdict"] == "go", answer.get_json()
    return len(seen), bags


def test_a_bedside_check_sends_a_fixed_number_of_statements(ward: Ward, clients: Any) -> None:
    small, two = checked(ward, clients, kg=100.0)
    large, three = checked(ward, clients, kg=190.0, weighings=4)
    assert (two, three) == (2, 3)  # one more bag, so one more thaw; more weights
    assert small == large, "a statement per bag, thaw or weight"
    assert small <= MOST_STATEMENTS, small


def test_the_answer_is_the_check_just_recorded(ward: Ward, clients: Any) -> None:
    """Built from the gathered facts, the answer still says what a read of the check says."""
    patient, order = ward.at_bedside()
    nurse = clients.api(ward.clinic.clinician)
    body = {"wristband": payload(patient.coi), "label": payload(order.dose_unit.code)}
    made = nurse.post("/api/v1/bedside/checks", json=body)
    assert made.status_code == 201
    read = nurse.get(f"/api/v1/bedside/checks/{made.get_json()['id']}")
    assert read.status_code == 200
    assert made.get_json() == read.get_json()
    assert made.get_json()["patient"] == patient.study_id
    assert made.get_json()["dose_unit"] == order.dose_unit.code
    assert made.get_json()["checked_by"] == ward.clinic.clinician.username
