"""Randomization (issue 19): a schedule signed by the trial statistician (permuted blocks from
a seed, or an imported list), drawn in sequence at enrolment, concealed until the enrolment is
complete; the planned enrolment and ratio enforced; the arm hidden at the bedside and from the
roles that do not need it. Through the API and the pages."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.core.models import AuditEntry, IssuedIdentifier
from cellchain.core.types import utcnow
from cellchain.dosing import randomization
from cellchain.dosing.defaults import NCT01420432_PARAMETERS
from cellchain.dosing.models import Patient, RandomizationSchedule, RandomizationSlot
from cellchain.errors import Conflict
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD, at_once
from tests.support.clinic import UTC, randomization_list
from tests.support.enrolment import enrol_body
from tests.support.pdf import pages_text, squeeze

SEED = "trial-master-file seed 2026-12-06"
PLANNED = NCT01420432_PARAMETERS["randomization"]["planned_enrolment"]


def _count(model: Any) -> int:
    db.session.expire_all()
    return int(db.session.execute(select(func.count()).select_from(model)).scalar_one())


def _status(client: Any) -> dict[str, Any]:
    answer = client.get("/api/v1/randomization")
    assert answer.status_code == 200, answer.get_json()
    return dict(answer.get_json())


def _enrol(client: Any, number: int) -> Any:
    return client.post("/api/v1/patients", json=enrol_body(study_id=f"AS-{number:03d}"))


# --- the statistician's schedule ----------------------------------------------------------------


def test_the_statistician_generates_balanced_permuted_blocks_from_a_seed_never_stored(
    clinic: Any, clients: Any
) -> None:
    stats = clients.api(clinic.statistician)
    made = stats.post(
        "/api/v1/randomization/permuted-block",
        json={"seed": SEED, "block_sizes": [2, 4], "password": TEST_PASSWORD},
    )
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    schedule = body["schedule"]
    assert schedule["method"] == "permuted_block" and schedule["block_sizes"] == "2,4"
    assert schedule["source_sha256"] == hashlib.sha256(SEED.encode()).hexdigest()
    assert [s["meaning"] for s in schedule["signatures"]] == ["approval: randomization schedule"]
    assert all(s["valid"] for s in schedule["signatures"])
    arms = [slot["arm"] for slot in body["slots"]]
    assert len(arms) == PLANNED and Counter(arms) == {"MSC": 5, "CONTROL": 5}
    assert [slot["randomization_number"] for slot in body["slots"]][:2] == ["R-001", "R-002"]
    # balanced at the end of every block of 2 or 4: never more than 2 ahead, even at the end
    running = 0
    for arm in arms:
        running += 1 if arm == "MSC" else -1
        assert abs(running) <= 2
    assert running == 0
    # the seed is nowhere in the database: not in the schedule, not in the trail
    trail = " ".join(db.session.execute(select(AuditEntry.changes)).scalars())
    assert SEED not in trail
    # the same seed gives the same schedule (reproducible by the statistician), replacing the
    # unused one; the old one is superseded
    again = stats.post(
        "/api/v1/randomization/permuted-block",
        json={"seed": SEED, "block_sizes": [2, 4], "password": TEST_PASSWORD},
    ).get_json()
    assert [slot["arm"] for slot in again["slots"]] == arms
    assert again["schedule"]["id"] != schedule["id"]
    statuses = db.session.execute(select(RandomizationSchedule.status)).scalars().all()
    assert sorted(statuses) == ["active", "superseded"]


def test_the_generator_is_written_out_and_reproducible_without_python_random() -> None:
    ratio = {"MSC": 1, "CONTROL": 1}
    one = randomization.permuted_blocks(SEED, ratio, 10, [2, 4])
    assert one == randomization.permuted_blocks(SEED, ratio, 10, [2, 4])
    assert one != randomization.permuted_blocks(SEED + "!", ratio, 10, [2, 4])
    # a 2:1 ratio in blocks of 3 and 6 keeps 2:1 in every block
    two_to_one = randomization.permuted_blocks(SEED, {"A": 2, "B": 1}, 12, [3, 6])
    assert Counter(two_to_one) == {"A": 8, "B": 4}
    for end in range(3, 13, 3):
        assert Counter(two_to_one[:end])["A"] <= 2 * end // 3 + 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seed": "short", "block_sizes": [2, 4]}, "seed"),
        ({"seed": SEED, "block_sizes": [3]}, "block_sizes"),
        ({"seed": SEED, "block_sizes": [0, 2]}, "block_sizes"),
    ],
)
def test_a_guessable_seed_or_blocks_that_break_the_ratio_are_refused(
    clinic: Any, clients: Any, body: dict[str, Any], field: str
) -> None:
    stats = clients.api(clinic.statistician)
    refused = stats.post(
        "/api/v1/randomization/permuted-block", json={**body, "password": TEST_PASSWORD}
    )
    assert refused.status_code == 422
    assert any(key.startswith(field) for key in refused.get_json()["errors"])
    assert _count(RandomizationSchedule) == 0 and _count(RandomizationSlot) == 0


def test_only_the_statistician_signs_a_schedule_with_their_own_password(
    clinic: Any, clients: Any, make_user: Any
) -> None:
    body = {"seed": SEED, "password": TEST_PASSWORD}
    for user in (clinic.clinician, clinic.investigator, clinic.lab.qa):
        answer = clients.api(user).post("/api/v1/randomization/permuted-block", json=body)
        assert answer.status_code == 403
    wrong = clients.api(clinic.statistician).post(
        "/api/v1/randomization/permuted-block", json={**body, "password": "not the password"}
    )
    assert wrong.status_code == 401
    assert _count(RandomizationSchedule) == 0


def test_an_imported_list_is_checked_against_the_protocol_and_signed(
    clinic: Any, clients: Any
) -> None:
    stats = clients.api(clinic.statistician)
    text = "randomization_number,arm\n" + randomization_list("CONTROL", "MSC")
    made = stats.post("/api/v1/randomization/import", json={"csv": text, "password": TEST_PASSWORD})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["schedule"]["method"] == "imported" and body["planned_enrolment"] == PLANNED
    assert [slot["arm"] for slot in body["slots"]][:3] == ["CONTROL", "MSC", "MSC"]
    canonical = randomization_list("CONTROL", "MSC")
    assert body["schedule"]["source_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (randomization_list().replace("R-003,MSC", "R-003,PLACEBO"), "unknown arm PLACEBO"),
        (randomization_list().replace("R-003,", "R-002,"), "repeated: R-002"),
        ("\n".join(randomization_list().splitlines()[:8]), "8 rows; the planned enrolment is 10"),
        (
            randomization_list().replace("R-010,CONTROL", "R-010,MSC"),
            "expected 5 MSC, 5 CONTROL, found 6 MSC, 4 CONTROL",
        ),
        ("R-001;MSC", "two values"),
    ],
)
def test_a_list_with_unknown_arms_duplicates_or_the_wrong_counts_is_refused(
    clinic: Any, clients: Any, text: str, words: str
) -> None:
    stats = clients.api(clinic.statistician)
    refused = stats.post(
        "/api/v1/randomization/import", json={"csv": text, "password": TEST_PASSWORD}
    )
    assert refused.status_code == 422, refused.get_json()
    assert words in refused.get_json()["detail"] and "csv" in refused.get_json()["errors"]
    assert _status(stats)["schedule"] is None and _count(RandomizationSlot) == 0


def test_a_schedule_in_use_cannot_be_replaced(clinic: Any, clients: Any) -> None:
    clinic.enrol()
    stats = clients.api(clinic.statistician)
    replaced = stats.post(
        "/api/v1/randomization/permuted-block", json={"seed": SEED, "password": TEST_PASSWORD}
    )
    assert replaced.status_code == 409
    assert "1 of its 10 slots are used" in replaced.get_json()["detail"]
    assert _count(RandomizationSchedule) == 1


# --- enrolment draws the next slot --------------------------------------------------------------


def test_no_enrolment_before_the_statistician_signs_a_schedule(clinic: Any, clients: Any) -> None:
    nurse = clients.api(clinic.clinician)
    refused = _enrol(nurse, 1)
    assert refused.status_code == 409
    assert "trial statistician generates or imports one" in refused.get_json()["detail"]
    assert _count(Patient) == 0 and _count(IssuedIdentifier) == 0
    page = clients.web(clinic.clinician).get("/patients/enrol").get_data(as_text=True)
    assert "No randomization schedule is signed" in page


def test_enrolment_draws_the_slots_in_sequence_and_the_enroller_never_picks_the_arm(
    clinic: Any, clients: Any
) -> None:
    clinic.randomize("CONTROL", "MSC", "CONTROL")
    nurse = clients.api(clinic.clinician)
    chose = nurse.post("/api/v1/patients", json=enrol_body(arm="MSC"))
    assert chose.status_code == 422
    assert "drawn from the signed randomization" in chose.get_json()["errors"]["arm"][0]
    numbered = nurse.post("/api/v1/patients", json=enrol_body(randomization_number="R-009"))
    assert numbered.status_code == 422
    assert _count(Patient) == 0
    drawn = [_enrol(nurse, n).get_json() for n in (1, 2, 3)]
    assert [(p["arm"], p["randomization_number"]) for p in drawn] == [
        ("CONTROL", "R-001"),
        ("MSC", "R-002"),
        ("CONTROL", "R-003"),
    ]
    assert [p["receives_cells"] for p in drawn] == [False, True, False]
    status = _status(nurse)
    assert (status["used"], status["remaining"], status["slots"]) == (3, 7, None)


def test_a_randomization_when_full_is_refused_and_nothing_is_saved(
    clinic: Any, clients: Any
) -> None:
    clinic.randomize()
    nurse = clients.api(clinic.clinician)
    for number in range(1, PLANNED + 1):
        assert _enrol(nurse, number).status_code == 201
    patients_before, identifiers_before = _count(Patient), _count(IssuedIdentifier)
    full = _enrol(nurse, PLANNED + 1)
    assert full.status_code == 409, full.get_json()
    problem = full.get_json()
    assert problem["title"] == "Planned enrolment reached"
    assert "all 10 randomization slots are used" in problem["detail"]
    assert (_count(Patient), _count(IssuedIdentifier)) == (patients_before, identifiers_before)
    # the page says so before the form is filled, and refuses the same way
    web = clients.web(clinic.clinician)
    assert "Planned enrolment of 10 reached" in web.get("/patients/enrol").get_data(as_text=True)
    form = {"study_id": "AS-099", "sex": "male", "day0": utcnow().date().isoformat()}
    form["date_of_birth"] = utcnow().date().replace(year=utcnow().year - 30).isoformat()
    for item in NCT01420432_PARAMETERS["inclusion"]:
        form[f"answer.{item['code']}"] = "yes"
        measure = item.get("measure")
        if measure:
            limit = measure["limit"]
            form[f"value.{item['code']}"] = str(
                limit + 10 if measure["operator"].startswith(">") else limit - (limit > 10) * 50
            )
    for item in NCT01420432_PARAMETERS["exclusion"]:
        form[f"answer.{item['code']}"] = "no"
    refused = web.post("/patients/enrol", data=form)
    assert refused.status_code == 409
    assert "planned enrolment of NCT01420432 is reached" in refused.get_data(as_text=True)
    assert _count(Patient) == patients_before


def test_the_trail_never_shows_an_unused_slots_arm(clinic: Any) -> None:
    clinic.randomize()
    slots = db.session.execute(select(RandomizationSlot)).scalars().all()
    trail = " ".join(db.session.execute(select(AuditEntry.changes)).scalars())
    assert all(slot.allocation not in trail for slot in slots)
    assert '"MSC"' not in trail and '"CONTROL"' not in trail


@pytest.mark.postgres_only
def test_two_enrolments_at_once_draw_different_slots(app: Any, clinic: Any) -> None:
    from cellchain.core.models import User
    from cellchain.dosing import patients
    from tests.support.clinic import enrolment

    clinic.randomize()
    clinician_id, protocol_id = clinic.clinician.id, clinic.protocol.id

    def enrolling(study_id: str):
        def job() -> str:
            from cellchain.dosing.models import Protocol

            try:
                patient = patients.enrol(
                    db.session,
                    db.session.get(Protocol, protocol_id),
                    enrolment(study_id=study_id),
                    facility_code="X9999",
                    actor=db.session.get(User, clinician_id),
                    now=utcnow(),
                    zone=UTC,
                )
                db.session.commit()
                return str(patient.randomization_number)
            except Conflict:
                db.session.rollback()
                return "conflict"

        return job

    assert at_once(app, [enrolling("AS-001"), enrolling("AS-002")]) == ["R-001", "R-002"]


# --- who sees the arm ---------------------------------------------------------------------------


def test_the_arm_is_shown_to_the_roles_that_need_it_and_to_no_one_else(
    clinic: Any, clients: Any, make_user: Any
) -> None:
    patient = clinic.enrol(arm="CONTROL")
    seeing = {
        "clinician": clinic.clinician,
        "investigator": clinic.investigator,
        "qa": clinic.lab.qa,
        "statistician": clinic.statistician,
    }
    blind = {"technician": clinic.lab.tech, "qc": clinic.lab.qc, "admin": make_user("ad", "admin")}
    for user in seeing.values():
        shown = clients.api(user).get(f"/api/v1/patients/{patient.id}").get_json()
        assert (shown["arm"], shown["randomization_number"]) == ("CONTROL", "R-001")
        page = clients.web(user).get(f"/patients/{patient.id}").get_data(as_text=True)
        assert "DMARDs only" in page and "R-001" in page
    for user in blind.values():
        shown = clients.api(user).get(f"/api/v1/patients/{patient.id}").get_json()
        assert (shown["arm"], shown["randomization_number"]) == (None, None)
        assert not shown["receives_cells"]  # the lab must know whom it prepares no dose for
        listed = clients.api(user).get("/api/v1/patients").get_json()
        assert [p["arm"] for p in listed] == [None]
        page = clients.web(user).get(f"/patients/{patient.id}").get_data(as_text=True)
        assert "DMARDs only" not in page and "R-001" not in page and "CONTROL" not in page
        assert "arm not shown to your role" in page
        assert "CONTROL" not in clients.web(user).get("/patients").get_data(as_text=True)
        # nor on the patient's follow-up page or chain-of-identity report (page, PDF, API)
        follow_up = clients.web(user).get(f"/patients/{patient.id}/follow-up")
        assert "DMARDs only" not in follow_up.get_data(as_text=True)
        report = clients.api(user).get(f"/api/v1/patients/{patient.id}/coi-report").get_json()
        assert (report["patient"]["arm"], report["patient"]["arm_name"]) == (
            None,
            "not shown to your role",
        )
        page = clients.web(user).get(f"/patients/{patient.id}/coi-report").get_data(as_text=True)
        assert "DMARDs only" not in page and "CONTROL" not in page
        pdf = clients.web(user).get(f"/patients/{patient.id}/coi-report.pdf").get_data()
        text = squeeze(" ".join(pages_text(pdf)))
        assert "not shown to your role" in text and "DMARDs" not in text
    for user in seeing.values():
        report = clients.api(user).get(f"/api/v1/patients/{patient.id}/coi-report").get_json()
        assert (report["patient"]["arm"], report["patient"]["arm_name"]) == (
            "CONTROL",
            "DMARDs only",
        )
        follow_up = clients.web(user).get(f"/patients/{patient.id}/follow-up")
        assert "DMARDs only" in follow_up.get_data(as_text=True)


def test_only_the_statistician_sees_the_slots_before_enrolment(clinic: Any, clients: Any) -> None:
    clinic.randomize()
    for user in (clinic.clinician, clinic.investigator, clinic.lab.qa):
        assert _status(clients.api(user))["slots"] is None
        page = clients.web(user).get("/randomization").get_data(as_text=True)
        assert 'id="slots"' not in page and "0 of 10" in page
    page = clients.web(clinic.statistician).get("/randomization").get_data(as_text=True)
    assert 'id="slots"' in page and "R-010" in page


# --- pages --------------------------------------------------------------------------------------


def test_the_statistician_generates_and_imports_on_the_page(clinic: Any, clients: Any) -> None:
    web = clients.web(clinic.statistician)
    home = web.get("/").get_data(as_text=True)
    assert 'href="/randomization"' in home
    refused = web.post(
        "/randomization/permuted-block",
        data={"seed": "a secret 11", "block_sizes": "2,4", "password": TEST_PASSWORD},
    )
    assert refused.status_code == 422 and "at least 12 characters" in refused.get_data(as_text=True)
    assert "a secret 11" not in refused.get_data(as_text=True)  # a seed is never sent back
    made = web.post(
        "/randomization/permuted-block",
        data={"seed": SEED, "block_sizes": "2, 4", "password": TEST_PASSWORD},
    )
    assert made.status_code == 302
    page = web.get("/randomization").get_data(as_text=True)
    assert "Permuted-block schedule of 10 slots signed" in page and "blocks of 2 and 4" in page
    assert hashlib.sha256(SEED.encode()).hexdigest() in page and SEED not in page
    bad = web.post(
        "/randomization/import",
        data={"csv": "R-1,MSC\nR-1,CONTROL", "password": TEST_PASSWORD},
    )
    assert bad.status_code == 422 and "repeated: R-1" in bad.get_data(as_text=True)
    imported = web.post(
        "/randomization/import",
        data={"csv": randomization_list("CONTROL"), "password": TEST_PASSWORD},
    )
    assert imported.status_code == 302
    page = web.get("/randomization").get_data(as_text=True)
    assert "list of 10 slots imported and signed" in page and "imported, active" in page
    assert 'href="/randomization"' not in clients.web(clinic.clinician).get("/").get_data(
        as_text=True
    )


def test_the_enrolment_form_has_no_arm_and_shows_it_only_after(clinic: Any, clients: Any) -> None:
    clinic.randomize("CONTROL")
    web = clients.web(clinic.clinician)
    form = web.get("/patients/enrol").get_data(as_text=True)
    assert 'name="arm"' not in form and 'name="randomization_number"' not in form
    assert "10 of 10 places left" in form


# --- single blind at the bedside ----------------------------------------------------------------


def test_the_bedside_pages_never_name_the_arm(ward: Any, clients: Any) -> None:
    from tests.support.ward import payload

    ward.clinic.randomize("MSC", "CONTROL")
    patient, order = ward.at_bedside()
    control = ward.patient(arm="CONTROL")
    web = clients.web(ward.clinic.clinician)
    scanned = web.post("/bedside/wristband", data={"wristband": payload(patient.coi)})
    assert scanned.status_code == 200 and patient.study_id in scanned.get_data(as_text=True)
    assert "DMARDs" not in scanned.get_data(as_text=True)
    checked = web.post(
        "/bedside/checks",
        data={"wristband": payload(patient.coi), "label": payload(order.dose_unit.code)},
    )
    page = web.get(checked.headers["Location"]).get_data(as_text=True)
    assert "Enrolled, in an arm that receives cells." in page and "DMARDs" not in page
    refused = web.post(
        "/bedside/checks",
        data={"wristband": payload(control.coi), "label": payload(order.dose_unit.code)},
    )
    page = web.get(refused.headers["Location"]).get_data(as_text=True)
    assert "in an arm that never receives cells" in page
    assert "DMARDs" not in page and "CONTROL" not in page
