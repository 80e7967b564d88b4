"""Two app servers, one PostgreSQL database (docs/deployment.md): what one server does, the
other sees at once, because they share nothing else.

Real gunicorn processes, configured as production (one secret key, one audit key file, no
demo facility code), on a database of the test's own; the test talks HTTP to each as a
reverse proxy would, sending a browser's cookie to whichever server it names.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from cellchain.chain import service as chain
from cellchain.chain.models import Unit, UnitStatus
from cellchain.core import accounts, audit_keys, audit_verification
from cellchain.core.types import utcnow
from cellchain.dosing.models import DoseOrder
from cellchain.extensions import db
from cellchain.manufacturing.processing import processing
from tests.conftest import TEST_PASSWORD, on_postgres
from tests.deployment.conftest import Answer, Browser, Server, csrf_of, server_environment

pytestmark = [
    pytest.mark.skipif(
        not on_postgres(),
        reason=(
            "several app servers share one PostgreSQL database (docs/deployment.md); a SQLite "
            "file cannot be shared between hosts: set CELLCHAIN_TEST_DATABASE_URL"
        ),
    ),
    # two servers to start (seconds): started before the short tests (``tests/conftest.py``)
    pytest.mark.heavy,
]


def _token(user: Any, name: str) -> str:
    _row, token = accounts.create_token(db.session, user=user, now=utcnow(), name=name)
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _at_once(*calls: Any) -> list[Answer]:
    """Send the requests together (each in its thread, released by one barrier); the answers
    in the order of the calls."""
    barrier = threading.Barrier(len(calls))
    answers: list[Answer | None] = [None] * len(calls)
    failures: list[BaseException] = []

    def run(index: int, call: Any) -> None:
        try:
            barrier.wait(timeout=30)
            answers[index] = call()
        except BaseException as error:  # reported by the test
            failures.append(error)

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == [], failures
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def _log_in(
    browser: Browser, server: Server, username: str, password: str = TEST_PASSWORD
) -> Answer:
    page = browser.send(server, "GET", "/login")
    assert page.status == 200
    return browser.send(
        server,
        "POST",
        "/login",
        form={"username": username, "password": password, "csrf_token": csrf_of(page)},
    )


def test_two_servers_share_a_session_a_recall_and_the_last_bag(
    app: Flask, database_url: str, clinic: Any, released: Any, start_servers: Any
) -> None:
    # --- the records: one bag left to allocate, two patients weighed for their day-0 dose
    bags = [b for b in processing.bags_of(db.session, released) if b.status == "available"]
    for extra in bags[1:]:
        chain.change_status(
            db.session,
            extra,
            UnitStatus.QUARANTINE,
            actor=clinic.lab.qa,
            now=utcnow(),
            reason="held for the test",
        )
    first, second = clinic.enrol(study_id="AS-001"), clinic.enrol(study_id="AS-002")
    for patient in (first, second):
        clinic.weigh(patient, 70.0)
    tech_token = _token(clinic.lab.tech, "server test tech")
    qa_token = _token(clinic.lab.qa, "server test qa")
    db.session.commit()
    lot_id, last_bag = released.id, bags[0].code
    patient_ids = (first.id, second.id)
    tech_name, tech_full_name = clinic.lab.tech.username, clinic.lab.tech.full_name
    clinician_name = clinic.clinician.username
    db.session.remove()

    # two failed logins of one name make it wait (``LOCKOUT_THRESHOLD``), wherever they were
    a, b = start_servers(server_environment(app, database_url, CELLCHAIN_LOCKOUT_THRESHOLD="2"))

    # --- a session opened on A works on B; its logout on B ends it on A
    browser = Browser()
    logged_in = _log_in(browser, a, tech_name)
    assert logged_in.status == 302, logged_in.text[:500]
    home_on_b = browser.send(b, "GET", "/")
    assert home_on_b.status == 200, home_on_b.text[:500]
    assert tech_full_name in home_on_b.text
    home_on_a = browser.send(a, "GET", "/")
    assert home_on_a.status == 200 and tech_full_name in home_on_a.text
    # the logout goes to B with the CSRF token of A's page: one key signs both
    cookie_before_logout = Browser(dict(browser.cookies))
    logged_out = browser.send(b, "POST", "/logout", form={"csrf_token": csrf_of(home_on_a)})
    assert logged_out.status == 302, logged_out.text[:500]
    assert logged_out.headers["Location"].endswith("/login")
    for after_logout in (browser, cookie_before_logout):
        # the session ended on the server: even the cookie kept from before opens nothing on A
        page = after_logout.send(a, "GET", "/")
        assert page.status == 302 and "/login" in page.headers["Location"], page.text[:300]

    # --- the login back-off counts the failures on both servers: one on A, one on B, and
    # the right password is refused on A while the name waits
    guesser = Browser()
    assert _log_in(guesser, a, clinician_name, "wrong password 1").status == 401
    assert _log_in(guesser, b, clinician_name, "wrong password 2").status == 401
    waiting = _log_in(guesser, a, clinician_name)
    assert waiting.status == 429, waiting.text[:500]
    assert int(waiting.headers["Retry-After"]) > 0

    # --- two dose orders racing for the last bag, one to each server: one allocation
    orders = _at_once(
        lambda: a.request(
            "POST",
            f"/api/v1/patients/{patient_ids[0]}/doses",
            headers=_bearer(tech_token),
            json_body={"visit": "D0"},
        ),
        lambda: b.request(
            "POST",
            f"/api/v1/patients/{patient_ids[1]}/doses",
            headers=_bearer(tech_token),
            json_body={"visit": "D0"},
        ),
    )
    statuses = sorted(answer.status for answer in orders)
    assert statuses[0] == 201, [answer.text[:300] for answer in orders]
    refused = next(answer for answer in orders if answer.status != 201)
    assert refused.status in (409, 422), refused.text[:500]
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    detail = refused.text
    assert "bag" in detail.lower() or "donation" in detail.lower(), detail
    allocated = next(answer for answer in orders if answer.status == 201)
    order_id = int(_json(allocated)["id"])
    with app.app_context():
        placed = db.session.scalars(select(DoseOrder)).all()
        assert [order.id for order in placed] == [order_id]
        bag = db.session.scalars(select(Unit).where(Unit.code == last_bag)).one()
        assert bag.status == UnitStatus.ALLOCATED
        db.session.remove()

    # --- a recall opened on A blocks the allocated bag on B: its second check is refused
    recall = a.request(
        "POST",
        "/api/v1/recalls",
        headers=_bearer(qa_token),
        json_body={
            "target_type": "lot",
            "target_id": lot_id,
            "reason": "Sterility failure found after release",
            "password": TEST_PASSWORD,
        },
    )
    assert recall.status == 201, recall.text[:500]
    check = b.request(
        "POST",
        f"/api/v1/doses/{order_id}/check",
        headers=_bearer(qa_token),
        json_body={
            "volume_ml": _json(allocated)["volume_ml"],
            "bags": [last_bag],
            "password": TEST_PASSWORD,
        },
    )
    # the recall withdrew the dose not yet infused (its bag blocked): nothing left to check
    assert check.status == 409, check.text[:500]
    assert f"Dose order {order_id} is cancelled" in _json(check)["detail"], check.text
    dose_on_b = b.request("GET", f"/api/v1/doses/{order_id}", headers=_bearer(qa_token))
    assert dose_on_b.status == 200 and _json(dose_on_b)["status"] == "cancelled"
    assert _json(dose_on_b)["recalls"], dose_on_b.text[:500]
    # and B's trace of the lot shows the recall A opened
    trace = b.request("GET", f"/api/v1/trace/forward/lot/{lot_id}", headers=_bearer(qa_token))
    assert trace.status == 200
    assert '"recalls"' in trace.text and "Sterility failure" in trace.text

    # --- both servers appended to the one audit chain (the race's entries at once): intact
    with app.app_context():
        verified = audit_verification.verify(
            db.session, keyring=audit_keys.current_keyring(), checkpoint_dir=None
        )
        assert verified.intact, verified.chain.problem
        db.session.remove()


def _json(answer: Answer) -> dict[str, Any]:
    import json

    data = json.loads(answer.body)
    assert isinstance(data, dict)
    return data
