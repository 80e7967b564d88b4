"""The home page shows each of the user's roles' work queues (issue 21): "count · label",
linking to the page that lists them, the counts right after the matching records are made;
a role without a queue sees the navigation only; a line is shown only where the user's
(unsuspended) roles grant its permission. ``GET /api/v1/worklist`` answers the same."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from cellchain.clinic.models import ShipmentStatus
from cellchain.core import accounts
from cellchain.core.models import UserRole
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import DeviationCategory
from cellchain.traceability.models import RecallTarget
from tests.conftest import TEST_PASSWORD
from tests.support.follow_up import back_date
from tests.support.recalls import infuse, open_recall
from tests.support.tokens import mint

_LINE = re.compile(
    r'<li data-queue="(?P<key>[a-z_]+)"(?P<muted> class="muted")?>'
    r'<span class="worklist-count">(?P<count>\d+)</span> · <a href="(?P<href>[^"]+)">'
)


def home(client: Any) -> str:
    response = client.get("/")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def counts(client: Any) -> dict[str, int]:
    """Each queue line of the home page: its key and the count shown."""
    return {m["key"]: int(m["count"]) for m in _LINE.finditer(home(client))}


def sections(page: str) -> list[str]:
    return re.findall(r'<section class="worklist" aria-labelledby="queue-([a-z_]+)"', page)


def deviation(category: DeviationCategory = DeviationCategory.PROCESS) -> Any:
    opened = deviations.open_deviation(
        db.session,
        lot=None,
        category=category,
        description="Tank T-1 read −120 °C for 20 minutes",
        actor=None,
        now=utcnow(),
    )
    db.session.commit()
    return opened


# --- technician ---------------------------------------------------------------------------------


def test_the_technician_sees_donations_to_receive_and_storage_alarms(lab: Any, clients: Any):
    tech = clients.web(lab.tech)
    assert counts(tech) == {
        "donations_to_receive": 0,
        "storage_alarms": 0,
        "vessels_due": 0,
        "materials_expiring": 0,
        "materials_expired_in_stock": 0,
        "materials_low": 0,
        "equipment_due": 0,
        "labels_to_print": 0,
        "labels_to_apply": 0,
    }
    page = home(tech)
    # a zero is shown muted, linking to the page that lists them all the same
    first = next(_LINE.finditer(page))
    assert first["muted"] and first["href"] == "/donations?status=registered"
    assert "Your work" in page and 'href="/donations"' in page  # the navigation stays

    waiting = [lab.register(), lab.register()]
    received = lab.register()
    lab.receive(received)
    deviation(DeviationCategory.STORAGE_EXCURSION)
    deviation(DeviationCategory.PROCESS)  # not a storage alarm
    closed = deviation(DeviationCategory.STORAGE_EXCURSION)
    deviations.close_deviation(
        db.session,
        closed,
        resolution="Reading repeated: −150 °C; probe fault",
        user=lab.qa,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()

    assert counts(tech) == {
        "donations_to_receive": len(waiting),
        "storage_alarms": 1,
        "vessels_due": 0,
        "materials_expiring": 0,
        "materials_expired_in_stock": 0,
        "materials_low": 0,
        "equipment_due": 0,
        "labels_to_print": 0,
        "labels_to_apply": 0,
    }
    assert not next(_LINE.finditer(home(tech)))["muted"]


# --- QC -----------------------------------------------------------------------------------------


def test_the_qc_analyst_sees_the_samples_awaiting_results(desk: Any, clients: Any) -> None:
    qc = clients.web(desk.lab.qc)
    assert counts(qc) == {"samples_awaiting_results": 0}
    tubes = desk.sample(tubes=3, used_up=False)
    assert counts(qc) == {"samples_awaiting_results": 3}
    desk.record(desk.entry("STERILITY"), sample=tubes[0])
    assert counts(qc) == {"samples_awaiting_results": 2}


# --- QA -----------------------------------------------------------------------------------------


def test_qa_sees_the_lots_in_quarantine_to_review(desk: Any, clients: Any) -> None:
    assert counts(clients.web(desk.lab.qa))["lots_to_review"] == 1


def test_qa_sees_eligibility_deviations_held_receipts_and_recalls(
    ward: Any, released: Any, clients: Any
) -> None:
    lab = ward.lab
    qa = clients.web(lab.qa)
    before = counts(qa)
    # the ward's lot is released: nothing of the fixtures waits for QA
    assert before == {
        "eligibility_to_sign": 0,
        "lots_to_review": 0,
        "open_deviations": 0,
        "receipts_held": 0,
        "recalls_to_close": 0,
    }

    lab.register(), lab.register()
    rejected = lab.register()
    lab.receive(rejected, accept=False, note="Container leaking")
    deviation(), deviation(DeviationCategory.STORAGE_EXCURSION)
    held = ward.receive(ward.ship(ward.prepared()), temperature_c=-100.0)
    assert held.status == ShipmentStatus.HELD.value
    open_recall(ward, RecallTarget.LOT, released.id)

    assert counts(qa) == {
        "eligibility_to_sign": 2,  # the rejected donation is not QA's to sign
        "lots_to_review": 0,
        "open_deviations": 2,
        "receipts_held": 1,
        "recalls_to_close": 1,
    }


# --- clinician ----------------------------------------------------------------------------------


def test_the_clinician_sees_shipments_arriving_doses_thawing_and_infusions_running(
    ward: Any, clients: Any
) -> None:
    nurse = clients.web(ward.clinic.clinician)
    before = counts(nurse)
    assert {k: before[k] for k in ("shipments_arriving", "doses_thawing", "infusions_running")} == {
        "shipments_arriving": 0,
        "doses_thawing": 0,
        "infusions_running": 0,
    }
    ward.ship(ward.prepared(), shipper="DS-0001")  # on its way
    ward.at_bedside()  # received and thawed, not yet infused
    infuse(ward)  # running
    after = counts(nurse)
    assert {k: after[k] for k in ("shipments_arriving", "doses_thawing", "infusions_running")} == {
        "shipments_arriving": 1,
        "doses_thawing": 1,
        "infusions_running": 1,
    }
    page = home(nurse)
    assert 'data-queue="infusions_running"><span class="worklist-count">1</span> · ' in page
    assert '<a href="/clinic">infusions running</a>' in page or "infusions running" in page


def test_the_clinician_sees_the_visits_due_and_overdue(clinic: Any, clients: Any) -> None:
    nurse = clients.web(clinic.clinician)
    assert (counts(nurse)["visits_due"], counts(nurse)["visits_overdue"]) == (0, 0)
    clinic.randomize("MSC", "MSC", "MSC")
    clinic.enrol(study_id="AS-001")  # day 0 today: its window is open
    back_date(clinic.enrol(study_id="AS-002"), 30)  # day 0 ± 14 days closed 16 days ago
    clinic.enrol(study_id="AS-003", day0=utcnow().date() + dt.timedelta(days=30))  # planned
    shown = counts(nurse)
    assert (shown["visits_due"], shown["visits_overdue"]) == (1, 1)
    assert re.search(r'data-queue="visits_overdue">.*?href="/follow-up"', home(nurse))


# --- investigator -------------------------------------------------------------------------------


def test_the_investigator_sees_adverse_events_to_assess_and_deviations_to_sign(
    clinic: Any, clients: Any
) -> None:
    from cellchain.clinic.follow_up import adverse_events, reporting
    from tests.clinic.test_adverse_events import report

    doctor = clients.web(clinic.investigator)
    assert counts(doctor) == {
        "adverse_events_to_assess": 0,
        "visit_deviations_to_sign": 0,
        "post_thaw_decisions": 0,
    }
    patient = clinic.enrol(day0=utcnow().date() + dt.timedelta(days=20))
    clinic.weigh(patient, 70.0)
    events = [
        adverse_events.record_adverse_event(
            db.session, patient, report(onset_at=utcnow()), actor=clinic.clinician, now=utcnow()
        )
        for _ in range(2)
    ]
    db.session.commit()
    nurse = clients.api(clinic.clinician)
    url = f"/api/v1/patients/{patient.id}/visit-reschedules"
    today = utcnow().date()
    inside = {"visit": "D0", "planned_on": (today + dt.timedelta(days=25)).isoformat()}
    outside = {"visit": "D0", "planned_on": today.isoformat()}  # 20 days early: > 14
    assert nurse.post(url, json={**inside, "reason": "Cleanroom slot"}).status_code == 201
    assert counts(doctor)["visit_deviations_to_sign"] == 0
    assert nurse.post(url, json={**outside, "reason": "Slot moved"}).status_code == 201
    # moved again, still outside the window: the first move is superseded, one to sign
    again = {"visit": "D0", "planned_on": (today + dt.timedelta(days=1)).isoformat()}
    assert nurse.post(url, json={**again, "reason": "Slot moved again"}).status_code == 201
    assert counts(doctor) == {
        "adverse_events_to_assess": 2,
        "visit_deviations_to_sign": 1,
        "post_thaw_decisions": 0,
    }

    reporting.assess(
        db.session,
        events[0],
        causality="unrelated",
        expected=True,
        actor=clinic.investigator,
        password=TEST_PASSWORD,
        now=utcnow(),
    )
    db.session.commit()
    assert counts(doctor)["adverse_events_to_assess"] == 1


# --- administrator ------------------------------------------------------------------------------


def test_the_administrator_sees_locked_accounts_and_tokens_expiring(
    app: Any, make_user: Any, clients: Any
) -> None:
    admin = make_user("ada", "admin")
    web = clients.web(admin)
    assert counts(web) == {"locked_accounts": 0, "expiring_tokens": 0}
    locked, gone = make_user("lou", "technician"), make_user("gus", "technician")
    locked.locked_at = utcnow()
    gone.locked_at, gone.active = utcnow(), False  # deactivated: nothing to unlock
    db.session.commit()
    mint(locked, days=3)
    mint(locked, days=90)  # not soon
    mint(locked, days=1, at=utcnow() - dt.timedelta(days=2))  # already expired
    revoked, _secret = accounts.create_token(
        db.session, user=locked, now=utcnow(), name="revoked", days=2
    )
    revoked.revoked_at = utcnow()
    db.session.commit()
    assert counts(web) == {"locked_accounts": 1, "expiring_tokens": 1}


# --- roles without a queue, several roles, suspended roles --------------------------------------


def test_the_statistician_sees_the_navigation_only(clinic: Any, clients: Any) -> None:
    page = home(clients.web(clinic.statistician))
    assert sections(page) == [] and not _LINE.search(page)
    assert ("Your work" in page and 'href="/randomization"' in page) or "Randomization" in page


def test_a_user_with_two_roles_sees_both_queues(lab: Any, make_user: Any, clients: Any) -> None:
    both = make_user("tess", "technician", "qc_analyst")
    lab.register()
    page = home(clients.web(both))
    assert sections(page) == ["technician", "qc_analyst"]
    assert counts(clients.web(both)) == {
        "donations_to_receive": 1,
        "storage_alarms": 0,
        "vessels_due": 0,
        "materials_expiring": 0,
        "materials_expired_in_stock": 0,
        "materials_low": 0,
        "equipment_due": 0,
        "labels_to_print": 0,
        "labels_to_apply": 0,
        "samples_awaiting_results": 0,
    }


def test_a_suspended_role_shows_no_queue(lab: Any, make_user: Any, clients: Any) -> None:
    """An administrator who also holds QA (made outside the application) has QA suspended
    (``role_conflict``): the QA queue, which needs QA's permissions, is not shown."""
    admin = make_user("ada", "admin")
    db.session.add(UserRole(user_id=admin.id, role="qa"))
    db.session.commit()
    lab.register()
    page = home(clients.web(admin))
    assert sections(page) == ["admin"]
    assert "eligibility_to_sign" not in page


# --- the API ------------------------------------------------------------------------------------


def test_the_api_answers_the_acting_users_queues(lab: Any, clients: Any) -> None:
    lab.register(), lab.register()
    body = clients.api(lab.tech).get("/api/v1/worklist").get_json()
    assert body == {
        "queues": [
            {
                "role": "technician",
                "role_label": "GMP lab technician",
                "items": [
                    {
                        "key": "donations_to_receive",
                        "label": "donations to receive",
                        "count": 2,
                        "path": "/donations?status=registered",
                    },
                    {
                        "key": "storage_alarms",
                        "label": "storage excursions open",
                        "count": 0,
                        "path": "/storage",
                    },
                    {
                        "key": "vessels_due",
                        "label": "culture vessels due for a passage or harvest",
                        "count": 0,
                        "path": "/manufacturing/vessels?due=1",
                    },
                    {
                        "key": "materials_expiring",
                        "label": "material lots expiring soon",
                        "count": 0,
                        "path": "/materials?state=expiring",
                    },
                    {
                        "key": "materials_expired_in_stock",
                        "label": "expired material lots still in stock",
                        "count": 0,
                        "path": "/materials?state=expired_in_stock",
                    },
                    {
                        "key": "materials_low",
                        "label": "materials below their reorder level",
                        "count": 0,
                        "path": "/materials?state=low",
                    },
                    {
                        "key": "equipment_due",
                        "label": "equipment due for calibration or maintenance within 14 days "
                        "or overdue",
                        "count": 0,
                        "path": "/equipment?due=1",
                    },
                    {
                        "key": "labels_to_print",
                        "label": "bags needing a label printed",
                        "count": 0,
                        "path": "/labels/outstanding#to-print",
                    },
                    {
                        "key": "labels_to_apply",
                        "label": "labels printed, not yet applied",
                        "count": 0,
                        "path": "/labels/outstanding#to-apply",
                    },
                ],
            }
        ]
    }
    assert clients.api(lab.qc).get("/api/v1/worklist").get_json()["queues"][0]["role"] == (
        "qc_analyst"
    )
