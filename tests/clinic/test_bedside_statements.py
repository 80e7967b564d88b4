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
#: (2); both scans looked up together (1); the dose with its patient, protocol, weights,
#: bags, shipment, infusion, thaws and latest post-thaw count (1); the dose's units' lots,
#: prints and status changes, its second check's signatures and both patients' schedules
#: (infusions, moves and missed visits) in one UNION ALL on the driver's cursor (1); the check
#: (1), not read back (record_state keeps the values the ORM inserted); the chain head moved
#: once for the check's entry and the state entry together, one insert (3); the record-state
#: stamp (1). On PostgreSQL the insert, the stamp and the head's move are one statement
#: (``audit._stamping_append``): 2 fewer. The protocol in force is the patient's own
#: (effective) version: not read again. Was 76 for a dose of 2 bags and 84 for 3 before
#: issue 20 (a query per bag, the authentication in 7, the facts read again for the answer),
#: then 32, 18, 14. Issue 22: one more, the clinician's site memberships (which patients
#: they see and the zone they read in, read once per request).
MOST_STATEMENTS = 11
#: PostgreSQL's bound (the stamp folded into the audit append)
MOST_STATEMENTS_POSTGRESQL = 10


def checked(ward: Ward, clients: Any, *, kg: float, weighings: int = 1) -> tuple[list[str], int]:
    """A dose for a patient of ``kg`` taken to the bedside and checked over the API: the
    statements the check sent, and the dose's number of bags."""
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
    return seen, bags


def test_a_bedside_check_sends_a_fixed_number_of_statements(ward: Ward, clients: Any) -> None:
    small, two = checked(ward, clients, kg=100.0)
    large, three = checked(ward, clients, kg=190.0, weighings=4)
    assert (two, three) == (2, 3)  # one more bag, so one more thaw; more weights
    assert len(small) == len(large), "a statement per bag, thaw or weight"
    postgres = db.session.get_bind().dialect.name == "postgresql"
    assert len(small) <= (MOST_STATEMENTS_POSTGRESQL if postgres else MOST_STATEMENTS), small


def test_the_audit_chain_head_moves_once_per_check(ward: Ward, clients: Any) -> None:
    """The check's entry and its record-state entry are one batch: the head is locked and
    set once, the entries inserted in one statement (on PostgreSQL the same one that sets
    the head: ``audit._APPEND``)."""
    seen, _bags = checked(ward, clients, kg=100.0)
    heads = [s for s in seen if "audit_chain_head" in s.lower()]
    inserts = [s for s in seen if "INSERT INTO AUDIT_ENTRIES" in s.upper()]
    assert (len(heads), len(inserts)) == (2, 1), seen


def test_each_fact_table_is_read_once(ward: Ward, clients: Any) -> None:
    """Bags, weights, thaws, post-thaw counts, shipments and infusions come with the dose in
    one statement, the schedule's infusions, moves and missed visits in another: none of
    them is read on its own (a query per bag would be one of these), nor is the protocol in
    force or the check just inserted."""
    seen, _bags = checked(ward, clients, kg=190.0, weighings=3)
    alone = [
        table
        for table in (
            "dose_bags",
            "weights",
            "thaws",
            "post_thaw_counts",
            "shipments",
            "infusions",  # the schedule is one statement, starting with its kind
            "visit_reschedules",
            "missed_visits",
            "protocols",  # the version in force is the patient's, read with the dose
            "bedside_checks",  # the check just inserted is not read back
        )
        if any(" ".join(s.split()).startswith(f"SELECT {table}.") for s in seen)
    ]
    assert alone == [], alone
    assert sum(s.lstrip().upper().startswith("SELECT ISSUED_IDENTIFIERS") for s in seen) == 1


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
