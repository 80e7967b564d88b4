"""Sites as records (issue 22, docs/sites.md): made and edited by an administrator, audited;
a shipment goes to an active clinical site; a patient is enrolled at one of the enrolling
user's sites; a clinic user reads times in their site's zone."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.clinic.models import Shipment
from cellchain.clinic.shipments import shipments
from cellchain.core.models import AuditEntry
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.errors import InvalidInput
from cellchain.extensions import db
from cellchain.sites import service as sites
from cellchain.sites.models import Site, SiteKind, SiteMembership
from tests.support.clinic import UTC, enrolment
from tests.support.ward import Ward, payload


def _count(model: Any) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def _actions(entity_type: str) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.entity_type == entity_type)
            .order_by(AuditEntry.seq)
        )
    )


def test_an_administrator_creates_lists_and_edits_sites_audited(clients: Any, make_user: Any):
    admin = make_user("ada", Role.ADMIN)  # the first user: the configured sites are made
    api = clients.api(admin)
    listed = api.get("/api/v1/sites").get_json()
    assert [(s["code"], s["kind"]) for s in listed] == [
        ("X9999", "manufacturing_facility"),
        ("SITE-1", "clinical_site"),
    ]
    made = api.post(
        "/api/v1/sites",
        json={"code": "ber", "name": "Berlin site", "time_zone": "Europe/Berlin"},
    )
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["code"] == "BER" and made.get_json()["kind"] == "clinical_site"
    site_id = made.get_json()["id"]
    changed = api.put(
        f"/api/v1/sites/{site_id}",
        json={"name": "Berlin sponsor site", "time_zone": "Europe/Berlin", "active": True},
    )
    assert changed.status_code == 200 and changed.get_json()["name"] == "Berlin sponsor site"
    assert _actions("site")[-2:] == ["site.created", "site.changed"]
    page = clients.web(admin).get(f"/sites/{site_id}").get_data(as_text=True)
    assert "Berlin sponsor site" in page and "Europe/Berlin" in page


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "MARS", "name": "Mars", "time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"code": "SITE-1", "name": "Again", "time_zone": "UTC"}, "code"),
        ({"code": "a b", "name": "Spaces", "time_zone": "UTC"}, "code"),
    ],
)
def test_a_bad_site_is_refused_and_nothing_is_saved(clients: Any, make_user: Any, body, field):
    admin = make_user("ada", Role.ADMIN)
    before = _count(Site)
    refused = clients.api(admin).post("/api/v1/sites", json=body)
    assert refused.status_code == 422, refused.get_json()
    assert field in refused.get_json()["errors"]
    assert _count(Site) == before


def test_there_is_only_one_manufacturing_facility(clients: Any, make_user: Any):
    admin = make_user("ada", Role.ADMIN)
    refused = clients.api(admin).post(
        "/api/v1/sites",
        json={
            "code": "FAC2",
            "name": "Second lab",
            "kind": "manufacturing_facility",
            "time_zone": "UTC",
        },
    )
    assert refused.status_code == 409
    assert "only one" in refused.get_json()["detail"]


def test_only_an_administrator_manages_sites(clients: Any, make_user: Any):
    tech = make_user("tom", Role.TECHNICIAN)
    api = clients.api(tech)
    assert api.get("/api/v1/sites").status_code == 200
    body = {"code": "XX", "name": "x", "time_zone": "UTC"}
    assert api.post("/api/v1/sites", json=body).status_code == 403


def test_memberships_are_set_by_an_administrator_audited(clients: Any, make_user: Any):
    admin = make_user("ada", Role.ADMIN)
    clinician = make_user("cleo", Role.CLINICIAN)
    first = sites.list_sites(db.session, kind=SiteKind.CLINICAL_SITE)[0]
    second = sites.create_site(
        db.session,
        sites.SiteForm(code="BER", name="Berlin", time_zone="Europe/Berlin"),
        actor=admin,
        now=utcnow(),
    )
    db.session.commit()
    api = clients.api(admin)
    answer = api.put(
        f"/api/v1/sites/members/{clinician.id}", json={"site_ids": [first.id, second.id]}
    )
    assert answer.status_code == 200
    assert [s["code"] for s in answer.get_json()] == ["SITE-1", "BER"]
    entry = db.session.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == "user.sites_changed", AuditEntry.entity_id == str(clinician.id))
        .order_by(AuditEntry.seq.desc())
    ).first()
    assert entry is not None and "BER" in entry.changes
    # the account page offers the same, as a form
    page = clients.web(admin).post(
        f"/users/{clinician.id}/sites", data={"site_ids": [str(second.id)]}
    )
    assert page.status_code == 302
    db.session.expire_all()
    assert {
        row.site_id
        for row in db.session.scalars(select(SiteMembership))
        if row.user_id == clinician.id
    } == {second.id}
    unknown = api.put(f"/api/v1/sites/members/{clinician.id}", json={"site_ids": [999]})
    assert unknown.status_code == 422


def _two_sites(ward: Ward) -> tuple[Site, Site]:
    first = sites.list_sites(db.session, kind=SiteKind.CLINICAL_SITE)[0]
    second = sites.create_site(
        db.session,
        sites.SiteForm(code="BER", name="Berlin", time_zone="Europe/Berlin"),
        actor=None,
        now=utcnow(),
    )
    db.session.commit()
    return first, second


@pytest.mark.parametrize("where", ["unknown", "inactive", "facility", "none of two"])
def test_a_shipment_goes_to_an_active_clinical_site_or_nothing_is_saved(ward: Ward, where):
    order = ward.prepared()
    _first, second = _two_sites(ward)
    site_id: int | None
    if where == "unknown":
        site_id = 999_999
    elif where == "inactive":
        second.active = False
        db.session.commit()
        site_id = second.id
    elif where == "facility":
        site_id = sites.facility(db.session).id  # type: ignore[union-attr]
    else:
        site_id = None  # two clinical sites: one must be named
    before = _count(Shipment)
    with pytest.raises(InvalidInput) as refused:
        shipments.dispatch(
            db.session,
            shipments.Dispatch(
                "DS-9", "TL-9", "", "courier", [payload(order.dose_unit.code)], site_id=site_id
            ),
            actor=ward.lab.tech,
            now=utcnow(),
        )
    db.session.rollback()
    assert "site_id" in refused.value.errors
    assert _count(Shipment) == before


def test_a_dose_goes_only_to_its_patients_site(ward: Ward):
    order = ward.prepared()
    first, second = _two_sites(ward)
    with pytest.raises(InvalidInput, match="is for a patient of"):
        shipments.dispatch(
            db.session,
            shipments.Dispatch(
                "DS-9", "TL-9", "", "courier", [payload(order.dose_unit.code)], site_id=second.id
            ),
            actor=ward.lab.tech,
            now=utcnow(),
        )
    db.session.rollback()
    shipment = shipments.dispatch(
        db.session,
        shipments.Dispatch(
            "DS-9", "TL-9", "", "courier", [payload(order.dose_unit.code)], site_id=first.id
        ),
        actor=ward.lab.tech,
        now=utcnow(),
    )
    assert shipment.destination_site_id == first.id
    assert shipment.destination == first.name  # where at the site left blank: the site's name


def test_a_patient_is_enrolled_at_one_of_the_enrolling_users_sites(ward: Ward, make_user):
    from cellchain.dosing import patients

    first, second = _two_sites(ward)
    patient = ward.patient()
    assert patient.site_id == first.id  # the clinician's only site
    outsider = make_user("otto", Role.CLINICIAN)
    sites.set_memberships(db.session, outsider, [], actor=None, now=utcnow())  # type: ignore[arg-type]
    db.session.commit()
    for site_id, who in ((second.id, ward.clinic.clinician), (None, outsider)):
        with pytest.raises(InvalidInput) as refused:
            patients.enrol(
                db.session,
                ward.clinic.protocol,
                enrolment(study_id="AS-900"),
                facility_code="X9999",
                actor=who,
                now=utcnow(),
                zone=UTC,
                site_id=site_id,
            )
        db.session.rollback()
        assert "site_id" in refused.value.errors


def test_a_clinic_user_reads_times_in_their_sites_zone(ward: Ward, clients: Any, make_user):
    first, _second = _two_sites(ward)
    patient = ward.patient()
    facility_reader = clients.web(ward.lab.qa)  # the configured zone (UTC here)
    page = facility_reader.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "+00:00" in page
    # the clinician's site moves to Berlin: +01:00 in winter, +02:00 in summer
    sites.update_site(
        db.session,
        first,
        sites.SiteForm(name=first.name, time_zone="Europe/Berlin"),
        actor=ward.lab.qa,
        now=utcnow(),
    )
    db.session.commit()
    page = clients.web(ward.clinic.clinician).get(f"/patients/{patient.id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "+01:00" in text or "+02:00" in text
