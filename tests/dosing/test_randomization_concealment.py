"""Allocation concealment and the single blind, as an independent review of issue 19 found them
broken (each test red before the fix): one account both seeing the unused slots and enrolling;
a patient drawn from a schedule replaced meanwhile; the schedule's arms in the signature kept
in the audit trail; the administrator (blind) reading the arm in the audit trail; a dose
refusal naming the arm. Through the API and the pages."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from cellchain.core import accounts
from cellchain.core.models import AuditEntry, User, UserRole
from cellchain.core.roles import Role, effective_roles, role_conflict
from cellchain.core.types import utcnow
from cellchain.dosing import patients, randomization
from cellchain.dosing.models import Patient, RandomizationSchedule, RandomizationSlot
from cellchain.errors import Conflict, PermissionDenied
from cellchain.extensions import db
from cellchain.sites.service import sites_of
from tests.conftest import TEST_PASSWORD, at_once
from tests.support.clinic import UTC, enrolment, randomization_list
from tests.support.enrolment import enrol_body

ENROLLING = (Role.CLINICIAN, Role.INVESTIGATOR)


def _count(model: Any) -> int:
    db.session.expire_all()
    return len(db.session.execute(select(model.id)).all())


def _legacy(make_user: Any, username: str, *roles: Role) -> User:
    """An account holding ``roles`` together, as one made before the rule or edited in the
    database would (the account service refuses to make it)."""
    first, *others = roles
    user = make_user(username, first)
    db.session.add_all(UserRole(user_id=user.id, role=role.value) for role in others)
    db.session.commit()
    db.session.expire_all()
    return db.session.get(User, user.id)


# --- one account never both sees the unused slots and enrols ------------------------------------


def test_one_account_never_both_sees_unused_slots_and_enrols(
    clinic: Any, clients: Any, make_user: Any
) -> None:
    clinic.randomize("CONTROL", "MSC")
    admin = make_user("ad", "admin")
    both = make_user("sam", "investigator")
    granted = clients.api(admin).put(
        f"/api/v1/users/{both.id}/roles",
        json={"roles": ["investigator", "statistician"], "reason": "covering for the statistician"},
    )
    assert granted.status_code == 409, granted.get_json()
    assert "allocation concealment" in granted.get_json()["detail"]
    db.session.expire_all()
    assert {role.value for role in db.session.get(User, both.id).roles} == {"investigator"}
    api = clients.api(both)
    assert api.get("/api/v1/randomization").get_json()["slots"] in (None, [])
    assert api.post("/api/v1/patients", json=enrol_body(study_id="AS-050")).status_code == 201


@pytest.mark.parametrize("enrolling", ENROLLING, ids=lambda r: r.value)
def test_the_statistician_is_never_given_a_role_that_enrols(
    clients: Any, make_user: Any, enrolling: Role
) -> None:
    admin = make_user("ad", "admin")
    api = clients.api(admin)
    made = api.post(
        "/api/v1/users",
        json={
            "username": "sam",
            "full_name": "Sam Both",
            "password": "a long enough password 1",
            "roles": ["statistician", enrolling.value],
        },
    )
    assert made.status_code == 409, made.get_json()
    assert "Randomization and enrolment are never combined" in made.get_json()["title"]
    stella = make_user("stella", "statistician")
    changed = api.put(
        f"/api/v1/users/{stella.id}/roles",
        json={"roles": ["statistician", enrolling.value], "reason": "short of staff"},
    )
    assert changed.status_code == 409
    db.session.expire_all()
    assert db.session.execute(select(User.id).where(User.username == "sam")).first() is None
    assert {role.value for role in db.session.get(User, stella.id).roles} == {"statistician"}
    # the page refuses it too
    page = clients.web(admin).post(
        f"/users/{stella.id}/roles",
        data={"roles": ["statistician", enrolling.value], "reason": "short of staff"},
    )
    assert page.status_code == 302
    db.session.expire_all()
    assert {role.value for role in db.session.get(User, stella.id).roles} == {"statistician"}


def test_an_account_holding_both_from_before_the_rule_is_flagged_and_neither_sees_nor_enrols(
    clinic: Any, clients: Any, make_user: Any
) -> None:
    clinic.randomize("CONTROL", "MSC")
    both = _legacy(make_user, "sam", Role.INVESTIGATOR, Role.STATISTICIAN)
    assert role_conflict(both.roles) == {Role.STATISTICIAN}
    assert effective_roles(both.roles) == {Role.INVESTIGATOR}
    api = clients.api(both)
    slots = api.get("/api/v1/randomization")
    assert slots.status_code != 200 or not slots.get_json().get("slots")
    page = clients.web(both).get("/randomization").get_data(as_text=True)
    assert "R-001" not in page and 'id="slots"' not in page
    refused = api.post("/api/v1/patients", json=enrol_body(study_id="AS-050"))
    assert refused.status_code == 403, refused.get_json()
    assert "allocation concealment" in refused.get_json()["detail"]
    assert _count(Patient) == 0
    resigned = api.post(
        "/api/v1/randomization/import",
        json={"csv": randomization_list("MSC"), "password": TEST_PASSWORD},
    )
    assert resigned.status_code == 403
    # flagged for the administrator, who mends it with a reason
    admin = make_user("ad", "admin")
    shown = clients.api(admin).get(f"/api/v1/users/{both.id}").get_json()
    assert shown["suspended_roles"] == ["statistician"]
    assert f'id="suspended-{both.id}"' in clients.web(admin).get("/users").get_data(as_text=True)
    user_page = clients.web(admin).get(f"/users/{both.id}").get_data(as_text=True)
    assert 'id="roles-suspended"' in user_page and "never enrols" in user_page
    mended = clients.api(admin).put(
        f"/api/v1/users/{both.id}/roles",
        json={"roles": ["investigator"], "reason": "allocation concealment"},
    )
    assert mended.status_code == 200 and mended.get_json()["suspended_roles"] == []


def test_enrol_and_draw_refuse_whoever_manages_the_randomization(
    clinic: Any, make_user: Any
) -> None:
    """Defence in depth: the services refuse such an actor whatever called them."""
    clinic.randomize("CONTROL", "MSC")
    both = _legacy(make_user, "sam", Role.CLINICIAN, Role.STATISTICIAN)
    with pytest.raises(PermissionDenied, match="allocation concealment"):
        patients.enrol(
            db.session,
            clinic.protocol,
            enrolment(study_id="AS-050"),
            facility_code="X9999",
            actor=both,
            now=utcnow(),
            zone=UTC,
        )
    db.session.rollback()
    schedule = randomization.ready_for(db.session, clinic.protocol)
    patient = _bare_patient(clinic, "AS-051", enrolled_by=both)
    with pytest.raises(PermissionDenied, match="allocation concealment"):
        randomization.draw(db.session, schedule, patient, now=utcnow())
    db.session.rollback()
    assert _count(Patient) == 0
    used = db.session.execute(
        select(RandomizationSlot.id).where(RandomizationSlot.patient_id.is_not(None))
    ).all()
    assert used == []


# --- the schedule replaced while an enrolment draws ---------------------------------------------


def _bare_patient(clinic: Any, study_id: str, *, enrolled_by: User | None = None) -> Patient:
    """A patient row as ``patients.enrol`` makes it just before it draws."""
    form = enrolment(study_id=study_id)
    patient = Patient(
        study_id=study_id,
        coi="",
        protocol_id=clinic.protocol.id,
        date_of_birth=form.date_of_birth,
        sex="male",
        arm="",
        arm_source="trial_randomization",
        checklist_json="{}",
        day0=form.day0,
        enrolled_at=utcnow(),
        enrolled_by_id=(enrolled_by or clinic.clinician).id,
        status="enrolled",
        site_id=sites_of(db.session, clinic.clinician)[0].id,  # the clinician's site
    )
    db.session.add(patient)
    db.session.flush()
    return patient


def test_replacing_the_schedule_while_an_enrolment_draws_never_uses_a_superseded_one(
    clinic: Any,
) -> None:
    clinic.randomize("MSC")
    protocol = clinic.protocol
    # the enrolment reads the active schedule...
    read = randomization.ready_for(db.session, protocol)
    first_id = read.id
    # ... the statistician replaces it, nothing used yet, and commits
    randomization.import_list(
        db.session,
        protocol,
        text=randomization_list("CONTROL"),
        user=clinic.statistician,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    # ... the enrolment goes on and draws
    patient = _bare_patient(clinic, "AS-777")
    slot = randomization.draw(
        db.session, db.session.get(RandomizationSchedule, first_id), patient, now=utcnow()
    )
    db.session.commit()
    active = randomization.active_schedule(db.session, protocol.code)
    assert active is not None and active.id != first_id
    assert slot.schedule_id == active.id and slot.arm == "CONTROL"
    superseded = db.session.get(RandomizationSchedule, first_id)
    assert randomization.used_slots(db.session, superseded) == 0


def test_a_used_schedule_is_never_replaced(clinic: Any, clients: Any) -> None:
    clinic.randomize("MSC")
    assert (
        clients.api(clinic.clinician)
        .post("/api/v1/patients", json=enrol_body(study_id="AS-001"))
        .status_code
        == 201
    )
    with pytest.raises(Conflict, match="cannot be replaced"):
        clinic.randomize("CONTROL")
    db.session.rollback()
    assert _count(RandomizationSchedule) == 1


@pytest.mark.postgres_only
def test_an_enrolment_and_a_replacement_at_once_never_use_a_superseded_schedule(
    app: Any, clinic: Any
) -> None:
    from cellchain.dosing.models import Protocol

    clinic.randomize("MSC")
    clinician_id, statistician_id, protocol_id = (
        clinic.clinician.id,
        clinic.statistician.id,
        clinic.protocol.id,
    )

    def enrolling() -> str:
        try:
            patients.enrol(
                db.session,
                db.session.get(Protocol, protocol_id),
                enrolment(study_id="AS-001"),
                facility_code="X9999",
                actor=db.session.get(User, clinician_id),
                now=utcnow(),
                zone=UTC,
            )
            db.session.commit()
            return "enrolled"
        except Conflict:
            db.session.rollback()
            return "enrolment refused"

    def replacing() -> str:
        try:
            randomization.import_list(
                db.session,
                db.session.get(Protocol, protocol_id),
                text=randomization_list("CONTROL"),
                user=db.session.get(User, statistician_id),
                password=TEST_PASSWORD,
                now=utcnow(),
            )
            db.session.commit()
            return "replaced"
        except Conflict:
            db.session.rollback()
            return "replacement refused"

    outcomes = at_once(app, [enrolling, replacing])
    assert "enrolled" in outcomes, outcomes
    db.session.expire_all()
    active = randomization.active_schedule(db.session, clinic.protocol.code)
    assert active is not None
    used = db.session.execute(
        select(RandomizationSlot.schedule_id).where(RandomizationSlot.patient_id.is_not(None))
    ).scalars()
    assert list(used) == [active.id], outcomes


# --- the schedule's arms never in the trail -----------------------------------------------------


def test_the_signature_kept_in_the_trail_binds_the_arms_without_showing_them(
    clinic: Any, clients: Any
) -> None:
    """The investigator enrols and reads the audit trail: the schedule's signature (its
    content is in the trail's state entry of the ``signatures`` row) shows no slot's arm."""
    clinic.randomize("CONTROL", "MSC")
    csv = clients.api(clinic.investigator).get("/api/v1/audit/export.csv")
    assert csv.status_code == 200
    assert not re.search(r"R-0\d\d[\\\"]+,[\\\"]+(MSC|CONTROL)", csv.get_data(as_text=True))
    signed = []
    for changes in db.session.execute(
        select(AuditEntry.changes).where(AuditEntry.action == "records.state")
    ).scalars():
        for values in (json.loads(changes).get("signatures") or [None, {}])[1].values():
            if values and values["entity_type"] == "randomization_schedule":
                signed.append(json.loads(values["content"])["content"]["slots"])
    assert signed and all(
        arm not in {"MSC", "CONTROL"} and len(arm) == 64 for slots in signed for _, _, arm in slots
    )
    # the signature still verifies against the schedule it signed
    status = clients.api(clinic.statistician).get("/api/v1/randomization").get_json()
    assert status["schedule"]["signatures"][0]["valid"] is True, status["schedule"]


# --- the blind administrator and the audit trail ------------------------------------------------


def test_the_administrator_who_is_blind_does_not_read_the_arm_in_the_audit_trail(
    clinic: Any, clients: Any, make_user: Any
) -> None:
    patient = clinic.enrol(arm="CONTROL")
    admin = make_user("ad", "admin")
    shown = clients.api(admin).get(f"/api/v1/patients/{patient.id}").get_json()
    assert shown["arm"] is None  # the rule: the administrator is blind
    api = clients.api(admin)
    trail = api.get("/api/v1/audit", query_string={"action": "patient.enrolled", "limit": 100})
    assert trail.status_code == 200, trail.get_json()
    (entry,) = trail.get_json()
    assert entry["changes"]["arm"] == [None, "not shown to your role"]
    assert entry["changes"]["randomization_number"] == [None, "not shown to your role"]
    assert entry["changes"]["study_id"] == [None, patient.study_id]
    everything = api.get("/api/v1/audit", query_string={"limit": 1000}).get_data(as_text=True)
    # (the schedule's signature lists every randomization number, and no arm: not secret)
    assert '"CONTROL"' not in everything and '"randomization_number":"R-001"' not in everything
    csv = api.get("/api/v1/audit/export.csv").get_data(as_text=True)
    assert '""CONTROL""' not in csv and '""randomization_number"":""R-001""' not in csv
    web = clients.web(admin)
    page = web.get("/audit?action=patient.enrolled").get_data(as_text=True)
    assert "R-001" not in page and "CONTROL" not in page and "not shown to your role" in page
    states = web.get("/audit?states=1&limit=1000").get_data(as_text=True)
    assert "&#39;arm&#39;: &#39;CONTROL&#39;" not in states
    assert "&#39;arm&#39;: &#39;not shown to your role&#39;" in states
    assert "&#39;randomization_number&#39;: &#39;R-001&#39;" not in states
    page_csv = web.get("/audit/export.csv").get_data(as_text=True)
    assert '""CONTROL""' not in page_csv
    assert '""randomization_number"":""R-001""' not in page_csv
    # QA, who sees arms (and verifies the chain), reads the trail as stored
    qa = clients.api(clinic.lab.qa)
    (stored,) = qa.get("/api/v1/audit", query_string={"action": "patient.enrolled"}).get_json()
    assert stored["changes"]["arm"] == [None, "CONTROL"]
    assert stored["changes"]["randomization_number"] == [None, "R-001"]
    qa_csv = qa.get("/api/v1/audit/export.csv").get_data(as_text=True)
    assert '""randomization_number"":""R-001""' in qa_csv and '""arm"":""CONTROL""' in qa_csv
    verified = qa.post("/api/v1/audit/verify")
    assert verified.status_code == 200 and verified.get_json()["intact"] is True


def test_a_dose_refused_for_a_patient_who_never_receives_cells_does_not_name_the_arm(
    clinic: Any, clients: Any
) -> None:
    patient = clinic.enrol(arm="CONTROL")
    refused = clients.api(clinic.lab.tech).post(
        f"/api/v1/patients/{patient.id}/doses", json={"visit": "D0"}
    )
    assert refused.status_code in (409, 422), refused.get_json()
    text = json.dumps(refused.get_json())
    assert "never receives cells" in text
    assert "DMARDs only" not in text and "CONTROL" not in text and "Control" not in text


#: the patient's pages a blind role may open
PATHS = [
    "/patients/{id}",
    "/patients/{id}/adverse-events",
    "/patients/{id}/doses",
    "/patients/{id}/doses/D0",
    "/patients/{id}/doses/D0/plan",
    "/patients/{id}/doses/M3/plan",
    "/patients/{id}/endpoints",
    "/patients/{id}/follow-up",
    "/patients/{id}/infusions",
    "/patients/{id}/labels",
    "/patients/{id}/rechecks",
    "/patients/{id}/rechecks/visits",
]


def test_blind_roles_never_read_the_arm_anywhere(clinic: Any, clients: Any, make_user: Any) -> None:
    patient = clinic.enrol(arm="CONTROL")
    blind = {"technician": clinic.lab.tech, "qc": clinic.lab.qc, "admin": make_user("ad", "admin")}
    leaks = []
    for role, user in blind.items():
        for client, prefix in ((clients.api(user), "/api/v1"), (clients.web(user), "")):
            for path in PATHS:
                url = prefix + path.format(id=patient.id)
                body = client.get(url).get_data(as_text=True)
                found = re.search(r".{0,90}(DMARDs only|R-001|\"CONTROL\").{0,60}", body)
                if found:
                    leaks.append((role, url, found.group(0)))
    assert not leaks, "\n".join(map(str, leaks))


def test_the_account_service_refuses_the_combination_whoever_calls_it(
    session: Any, make_user: Any, policy: Any
) -> None:
    admin = make_user("ad", "admin")
    with pytest.raises(Conflict, match="allocation concealment"):
        accounts.create_user(
            session,
            actor=admin,
            now=utcnow(),
            username="sam",
            full_name="Sam Both",
            password="a long enough password 1",
            roles=["statistician", "investigator"],
            policy=policy,
        )
