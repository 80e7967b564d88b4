"""The home page and ``GET /api/v1/worklist`` send a fixed number of SQL statements, however
many records wait in the queues (issue 21): each line is one count (the visits due and
overdue share the schedule's few reads), never a read per record. Counts, not times."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cellchain.clinic.follow_up import adverse_events
from cellchain.core.models import UserRole
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.manufacturing.models import DeviationCategory
from tests.clinic.test_adverse_events import report
from tests.support.follow_up import back_date
from tests.support.statements import counting_statements
from tests.support.tokens import mint
from tests.worklists.test_home_queues import counts, deviation

#: Every queue role but the administrator (who never holds a signing role as well).
EVERY_QUEUE = ("technician", "qc_analyst", "qa", "clinician", "investigator")
#: Seventeen lines in all, fifteen counts for the five roles (each one statement, the visits'
#: two lines one read of the schedule: its patients, their protocols, completions and facts),
#: plus the request's own (the session's user, roles and token, the login throttle's …).
#: A bound well above what it is today, so a statement per record fails at once.
BOUND = 40


def statements_of(client: Any, path: str) -> list[str]:
    db.session.commit()  # each request has its own session (a fresh app context)
    with counting_statements() as statements:
        response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    # a bearer token's last use is written at most once a minute (``token_use_due``), by
    # the clock, not the data: left out so that a slow run compares like with like
    return [s for s in statements if not s.lstrip().upper().startswith("UPDATE API_TOKENS")]


def add_records(clinic: Any, lab: Any, *, patients: int, each: int, first: int) -> None:
    """``each`` donations waiting and deviations open, ``patients`` enrolled with their day 0
    due (one in two overdue) and an adverse event each."""
    for _ in range(each):
        lab.register()
        deviation()
        deviation(DeviationCategory.STORAGE_EXCURSION)
    for number in range(first, first + patients):
        patient = clinic.enrol(study_id=f"AS-{number:03d}")
        if number % 2:
            back_date(patient, 30)
        adverse_events.record_adverse_event(
            db.session, patient, report(onset_at=utcnow()), actor=clinic.clinician, now=utcnow()
        )
        db.session.commit()


def test_the_home_page_and_the_api_send_as_many_statements_with_few_or_many_records(
    clinic: Any, make_user: Any, clients: Any
) -> None:
    lab = clinic.lab
    everyone = make_user("eve", *EVERY_QUEUE)
    web, api = clients.web(everyone), clients.api(everyone)
    clinic.randomize(*["MSC"] * 5)  # the most a 1:1 list of 10 gives one arm
    add_records(clinic, lab, patients=1, each=1, first=1)
    few = counts(web)
    few_page, few_api = statements_of(web, "/"), statements_of(api, "/api/v1/worklist")

    add_records(clinic, lab, patients=4, each=8, first=2)
    many = counts(web)
    many_page, many_api = statements_of(web, "/"), statements_of(api, "/api/v1/worklist")

    # the records were counted: the queues grew
    assert many["donations_to_receive"] == few["donations_to_receive"] + 8
    assert many["storage_alarms"] == few["storage_alarms"] + 8
    assert many["open_deviations"] == few["open_deviations"] + 16
    assert many["adverse_events_to_assess"] == few["adverse_events_to_assess"] + 4
    assert (
        many["visits_due"] + many["visits_overdue"] == few["visits_due"] + few["visits_overdue"] + 4
    )
    # and cost nothing more
    assert len(many_page) == len(few_page), "\n\n".join(many_page)
    assert len(many_api) == len(few_api), "\n\n".join(many_api)
    assert len(many_page) <= BOUND, "\n\n".join(many_page)


def test_the_administrators_home_sends_as_many_statements_with_few_or_many_accounts(
    make_user: Any, clients: Any
) -> None:
    web = clients.web(make_user("ada", "admin"))
    first = make_user("lou", "technician")
    first.locked_at = utcnow()
    db.session.commit()
    mint(first, days=2)
    few_page = statements_of(web, "/")
    for number in range(8):
        user = make_user(f"user{number}", "technician")
        user.locked_at = utcnow() - dt.timedelta(minutes=number)
        db.session.add(UserRole(user_id=user.id, role="clinician"))
        db.session.commit()
        mint(user, days=3)
    assert counts(web) == {"locked_accounts": 9, "expiring_tokens": 9}
    many_page = statements_of(web, "/")
    assert len(many_page) == len(few_page) <= BOUND, "\n\n".join(many_page)
