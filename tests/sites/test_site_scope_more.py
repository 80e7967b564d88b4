"""The paths that crossed sites after issue 22 (docs/sites.md): a notification about a site's
record reaches only that site's clinic users (lab and QA roles stay facility-wide), in-app and
in the outbox."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from cellchain.clinic.follow_up import adverse_events
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.notifications.models import OutboxEmail
from cellchain.sites import service as sites
from tests.notifications.test_events import report
from tests.support.follow_up import back_date
from tests.support.mailbox import last_notification_id, notifications_of_kind, recipients_of


def _site_b_staff(make_user: Any, *, active: bool = True) -> dict[Role, Any]:
    """A second clinical site, with a clinician and an investigator of it only (inactive:
    the dispatch then needs no site chosen, the only active one is taken)."""
    site = sites.create_site(
        db.session,
        sites.SiteForm(code="BER", name="Berlin", time_zone="Europe/Berlin", active=active),
        actor=None,
        now=utcnow(),
    )
    staff = {}
    for role in (Role.CLINICIAN, Role.INVESTIGATOR):
        user = make_user(f"b-{role.value}", role)  # made a member of the first site
        sites.set_memberships(db.session, user, [site.id], actor=None, now=utcnow())
        user.email = f"{user.username}@berlin.example"
        staff[role] = user
    db.session.commit()
    return staff


def _site_a_staff(make_user: Any) -> dict[Role, Any]:
    staff = {}
    for role in (Role.CLINICIAN, Role.INVESTIGATOR, Role.QA):
        user = make_user(f"a-{role.value.replace('_', '-')}", role)
        user.email = f"{user.username}@hospital.example"
        staff[role] = user
    db.session.commit()
    return staff


def _mailed(notification: Any) -> set[int]:
    return set(
        db.session.scalars(
            select(OutboxEmail.user_id).where(OutboxEmail.notification_id == notification.id)
        )
    )


def test_a_serious_adverse_event_of_site_a_tells_site_a_not_site_b(
    clinic: Any, make_user: Any
) -> None:
    patient = back_date(clinic.enrol(), 10)  # at the first clinical site
    own, other = _site_a_staff(make_user), _site_b_staff(make_user)
    since = last_notification_id()
    adverse_events.record_adverse_event(
        db.session, patient, report(), actor=clinic.clinician, now=utcnow()
    )
    db.session.commit()
    (notification,) = notifications_of_kind("serious_adverse_event", since=since)
    told, mailed = recipients_of(notification), _mailed(notification)
    assert own[Role.INVESTIGATOR].id in told and own[Role.INVESTIGATOR].id in mailed
    assert own[Role.QA].id in told and own[Role.QA].id in mailed  # QA: facility-wide
    assert other[Role.INVESTIGATOR].id not in told
    assert other[Role.INVESTIGATOR].id not in mailed


def test_a_shipment_to_site_a_tells_site_a_clinicians_not_site_b(ward: Any, make_user: Any) -> None:
    order = ward.prepared()
    own, other = _site_a_staff(make_user), _site_b_staff(make_user, active=False)
    since = last_notification_id()
    ward.ship(order)
    (notification,) = notifications_of_kind("shipment_dispatched", since=since)
    told, mailed = recipients_of(notification), _mailed(notification)
    assert own[Role.CLINICIAN].id in told and own[Role.CLINICIAN].id in mailed
    assert other[Role.CLINICIAN].id not in told
    assert other[Role.CLINICIAN].id not in mailed


# --- the audit trail ----------------------------------------------------------------------


def _audit_total(client: Any, query: str) -> tuple[int, list[dict[str, Any]]]:
    response = client.get(f"/api/v1/audit?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return json.loads(response.headers["X-Pagination"])["total"], response.get_json()


def test_the_audit_trail_hides_other_sites_records_from_clinic_users(
    clinic: Any, make_user: Any, clients: Any
) -> None:
    patient = back_date(clinic.enrol(), 10)  # at the first clinical site
    adverse_events.record_adverse_event(
        db.session, patient, report(), actor=clinic.clinician, now=utcnow()
    )
    db.session.commit()
    own = _site_a_staff(make_user)
    other = _site_b_staff(make_user)
    query = f"entity_type=patient&entity_id={patient.id}"
    for reader in (own[Role.INVESTIGATOR], own[Role.QA]):  # its site's, and facility-wide
        total, entries = _audit_total(clients.api(reader), query)
        assert total >= 1 and {e["entity_id"] for e in entries} == {str(patient.id)}
    api = clients.api(other[Role.INVESTIGATOR])
    assert _audit_total(api, query) == (0, [])
    assert _audit_total(api, "entity_type=adverse_event") == (0, [])
    # the whole list: paged in the database, the total counts only what the reader sees
    total, entries = _audit_total(api, "page_size=5")
    hidden = {("patient", str(patient.id))}
    assert not hidden & {(e["entity_type"], e["entity_id"]) for e in entries}
    everything, _ = _audit_total(clients.api(own[Role.QA]), "page_size=5")
    assert total < everything
    export = clients.web(other[Role.INVESTIGATOR]).get(f"/audit/export.csv?{query}")
    assert export.status_code == 200
    assert export.get_data(as_text=True).strip().count("\n") == 0  # the header only
    page = clients.web(other[Role.INVESTIGATOR]).get(f"/audit?{query}")
    assert page.status_code == 200


# --- stored trial-data exports --------------------------------------------------------------


def _export(api: Any) -> int:
    asked = api.post("/api/v1/trial-data/exports", json={"format": "csv"})
    assert asked.status_code == 202, asked.get_json()
    export_id: int = asked.get_json()["id"]
    assert api.post(f"/api/v1/trial-data/exports/{export_id}/run").status_code == 200
    return export_id


def test_an_investigator_reads_only_the_exports_they_asked_for(
    clinic: Any, make_user: Any, clients: Any
) -> None:
    back_date(clinic.enrol(), 10)
    own = make_user("inv-a", Role.INVESTIGATOR)  # of the first clinical site
    other = _site_b_staff(make_user)[Role.INVESTIGATOR]
    statistician = make_user("stat", Role.STATISTICIAN)
    theirs = _export(clients.api(statistician))  # the whole trial, every site
    mine = _export(clients.api(own))
    api = clients.api(own)
    assert [e["id"] for e in api.get("/api/v1/trial-data/exports").get_json()] == [mine]
    assert api.get(f"/api/v1/trial-data/exports/{mine}/file").status_code == 200
    for path in ("", "/file"):
        assert api.get(f"/api/v1/trial-data/exports/{theirs}{path}").status_code == 404
    assert clients.web(own).get(f"/trial-data/exports/{theirs}").status_code == 404
    assert clients.api(other).get("/api/v1/trial-data/exports").get_json() == []
    # the statistician (facility/sponsor side) lists every export
    listed = clients.api(statistician).get("/api/v1/trial-data/exports").get_json()
    assert {e["id"] for e in listed} == {mine, theirs}
