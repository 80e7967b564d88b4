"""The donor test panel as a controlled document (issue 22): its own versions, QA's approval,
the check refusing a panel that could not decide an eligibility, a donation keeping the version
in force at its registration, the pages and the API, and migration 0043 moving the panels out
of the product definitions."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from sqlalchemy import select, text

from cellchain.core.types import utcnow
from cellchain.donors import panels, service
from cellchain.donors.models import DonorTestPanel
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing.defaults import DEFAULT_DONOR_TEST_PANEL
from tests.conftest import TEST_PASSWORD, on_postgres

PANEL = [test["code"] for test in DEFAULT_DONOR_TEST_PANEL]


def _tests(*codes: str) -> dict[str, Any]:
    return {"tests": [{"code": code, "name": f"Test {code}"} for code in codes]}


def _new_version(lab: Any, parameters: dict[str, Any]) -> DonorTestPanel:
    draft = panels.DONOR_TEST_PANELS.draft(
        db.session,
        actor=lab.qa,
        now=utcnow(),
        code="UC-MSC",
        title="Panel with HTLV",
        parameters=parameters,
    )
    panels.DONOR_TEST_PANELS.approve(
        db.session, draft, user=lab.qa, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
    return draft


# --- the check ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "says"),
    [
        ({"tests": []}, "at least one test"),
        ({}, "at least one test"),
        (_tests("HIV1-AB", "HIV1-AB"), "HIV1-AB is on the panel twice"),
        ({"tests": [{"code": "", "name": "Nameless"}]}, "empty code"),
        ({"tests": [{"code": "  ", "name": "Blank"}]}, "empty code"),
        ({"tests": [{"code": "HIV1-AB", "name": ""}]}, "has no name"),
        ({"tests": [{"code": "hiv1-ab", "name": "Lower"}]}, "capitals"),
        ({"tests": [{"code": "HIV1-AB", "name": "x", "required": False}]}, "unknown fields"),
        ({"tests": ["HIV1-AB"]}, "not a code and a name"),
        ({**_tests("HIV1-AB"), "extra": 1}, "tests only"),
    ],
)
def test_a_panel_that_could_not_decide_an_eligibility_is_refused(parameters, says):
    with pytest.raises(InvalidInput) as refused:
        panels.check_panel(parameters)
    assert says in refused.value.detail
    assert refused.value.errors["parameters"]


def test_the_default_panel_passes_its_check_and_holds_todays_figures():
    panels.check_panel(panels.DONOR_TEST_PANELS.default.parameters)
    assert [t["code"] for t in panels.DEFAULT_PANEL_PARAMETERS["tests"]] == PANEL
    assert panels.DONOR_TEST_PANELS.default.code == "UC-MSC"


def test_a_refused_draft_writes_nothing(lab):
    before = db.session.execute(select(DonorTestPanel.id)).all()
    with pytest.raises(InvalidInput):
        panels.DONOR_TEST_PANELS.draft(
            db.session, actor=lab.qa, now=utcnow(), code="UC-MSC", title="Empty", parameters={}
        )
    db.session.rollback()
    assert db.session.execute(select(DonorTestPanel.id)).all() == before


# --- versions and donations ---------------------------------------------------------------------


def test_a_donation_keeps_the_panel_version_in_force_at_its_registration(lab):
    first = lab.register()
    v1 = first.donor_test_panel
    assert (v1.code, v1.version, v1.status) == ("UC-MSC", 1, "effective")
    assert [t.code for t in service.panel_of(first)] == PANEL
    v2 = _new_version(lab, _tests(*PANEL, "HTLV-AB"))
    second = lab.register()
    assert second.donor_test_panel_id == v2.id
    assert [t.code for t in service.panel_of(second)] == [*PANEL, "HTLV-AB"]
    db.session.expire_all()
    assert first.donor_test_panel_id == v1.id  # the earlier donation keeps its version
    assert v1.status == "superseded"
    assert [t.code for t in service.panel_of(first)] == PANEL
    # a result is checked against the donation's own version
    lab.receive(second)
    lab.record(second, "HTLV-AB", service.InfectiousResult.NON_REACTIVE)
    with pytest.raises(InvalidInput, match="HTLV-AB is not on the panel of UC-MSC v1"):
        lab.record(first, "HTLV-AB", service.InfectiousResult.NON_REACTIVE)
    db.session.rollback()
    # the eligibility needs the whole panel of its version
    lab.full_panel(second, skip=("HTLV-AB",))
    assert service.review_eligibility(second).complete
    lab.receive(first)
    lab.full_panel(first)
    assert service.review_eligibility(first).complete


def test_a_product_may_name_another_panel_and_registration_needs_one_in_force(lab):
    product = lab.product
    assert panels.panel_code_of(product) == "UC-MSC"
    parameters = {**product.parameters, panels.PANEL_PARAMETER: "MOTHER-IDT"}
    from cellchain.manufacturing import service as products

    v2 = products.PRODUCTS.draft(
        db.session,
        actor=lab.qa,
        now=utcnow(),
        code="UC-MSC",
        title=product.title,
        parameters=parameters,
    )
    products.PRODUCTS.approve(db.session, v2, user=lab.qa, password=TEST_PASSWORD, now=utcnow())
    db.session.commit()
    assert panels.panel_code_of(v2) == "MOTHER-IDT"
    with pytest.raises(Conflict, match="No donor test panel MOTHER-IDT is in force"):
        lab.register()
    db.session.rollback()
    shared = panels.DONOR_TEST_PANELS.draft(
        db.session,
        actor=lab.qa,
        now=utcnow(),
        code="mother-idt",
        title="Shared panel",
        parameters=_tests("HIV1-AB", "HBSAG"),
    )
    panels.DONOR_TEST_PANELS.approve(
        db.session, shared, user=lab.qa, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
    donation = lab.register()
    assert donation.donor_test_panel.code == "MOTHER-IDT"
    assert [t.code for t in service.panel_of(donation)] == ["HIV1-AB", "HBSAG"]


def test_only_qa_approves_a_panel(lab):
    draft = panels.DONOR_TEST_PANELS.draft(
        db.session,
        actor=lab.qa,
        now=utcnow(),
        code="UC-MSC",
        title="Another",
        parameters=_tests("HIV1-AB"),
    )
    db.session.commit()
    from cellchain.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        panels.DONOR_TEST_PANELS.approve(
            db.session, draft, user=lab.tech, password=TEST_PASSWORD, now=utcnow()
        )
    db.session.rollback()


# --- pages and API ------------------------------------------------------------------------------


def test_the_pages_and_the_api_show_every_version_and_the_donation_names_its_panel(lab, clients):
    donation = lab.register()
    panel_id = donation.donor_test_panel_id
    client = clients.web(lab.qc)
    listing = client.get("/donors/panels")
    assert listing.status_code == 200
    assert f"/donors/panels/{panel_id}" in listing.get_data(as_text=True)
    page = client.get(f"/donors/panels/{panel_id}").get_data(as_text=True)
    assert 'id="panel-tests"' in page and "HIV1-NAT" in page
    shown = client.get(f"/donations/{donation.id}").get_data(as_text=True)
    assert f"/donors/panels/{panel_id}" in shown
    assert 'id="donation-panel"' in shown
    client = clients.api(lab.qc)
    api = client.get(f"/api/v1/panels/{panel_id}").get_json()
    assert api["code"] == "UC-MSC" and api["status"] == "effective"
    assert [t["code"] for t in api["parameters"]["tests"]] == PANEL
    assert api["signatures"][0]["meaning"] == "approval: donor test panel in force"
    donation_api = client.get(f"/api/v1/donations/{donation.id}").get_json()
    assert donation_api["donor_test_panel"] == {"id": panel_id, "code": "UC-MSC", "version": 1}
    assert [t["code"] for t in donation_api["panel"]] == PANEL


def test_qa_approves_a_draft_through_the_api(lab, clients):
    draft = panels.DONOR_TEST_PANELS.draft(
        db.session,
        actor=lab.qa,
        now=utcnow(),
        code="UC-MSC",
        title="With HTLV",
        parameters=_tests(*PANEL, "HTLV-AB"),
    )
    db.session.commit()
    refused = clients.api(lab.tech).post(
        f"/api/v1/panels/{draft.id}/approve", json={"password": TEST_PASSWORD}
    )
    assert refused.status_code == 403
    signed = clients.api(lab.qa).post(
        f"/api/v1/panels/{draft.id}/approve", json={"password": TEST_PASSWORD}
    )
    assert signed.status_code == 200, signed.get_json()
    assert signed.get_json()["status"] == "effective"


# --- migration 0043 -----------------------------------------------------------------------------


def _empty_database(databases: Any, tmp_path: Any) -> str:
    """A database with no table yet (to migrate step by step)."""
    if on_postgres():
        name = f"cellchain_m0043_{databases.run_id}"
        with databases.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return databases.url_of(name)
    return f"sqlite:///{tmp_path / 'm0043.sqlite'}"


def _insert(conn: Any, table: str, **values: Any) -> None:
    columns = ", ".join(values)
    conn.execute(
        text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + k for k in values)})"),
        values,
    )


def _insert_donor(conn: Any, when: dt.datetime) -> None:
    """Donor 1, as a database at 0042 holds it."""
    _insert(
        conn,
        "donors",
        id=1,
        code="DNR26-00001",
        consent_date=when.date(),
        consent_form_version="ICF v3.1",
        consent_recorded_at=when,
        screening_outcome="acceptable",
        screening_date=when.date(),
        created_at=when,
    )


def _insert_donation(conn: Any, when: dt.datetime, donation_id: int, product_id: int) -> None:
    """Donation ``donation_id`` of donor 1 under product definition ``product_id``, registered,
    as a database at 0042 holds it (no donor test panel yet)."""
    _insert(
        conn,
        "donations",
        id=donation_id,
        din=f"X99992600000{donation_id}K",
        donor_id=1,
        product_definition_id=product_id,
        umbilical_cord=True,
        placenta=False,
        delivery_at=when,
        collected_at=when,
        collection_site="Ward",
        collector="Midwife",
        transport_conditions="2-8 C",
        registered_at=when,
        status="registered",
        eligibility="pending",
    )


def test_migration_0043_makes_panels_of_the_product_definitions_and_points_donations_at_them(
    databases, tmp_path
):
    """A database at 0042 with three product versions (the second adds a test, the third
    changes something else) and a donation under the first and the third: 0043 makes panel
    v1 (superseded) and v2 (in force, for product v2 and v3) of UC-MSC, points each donation
    at its own version, leaves the product definitions as signed, and the rows it wrote
    unsealed for the baseline (``audit_seq`` 0). The label templates are not loaded into a
    database without users."""
    from flask_migrate import upgrade

    from cellchain import create_app
    from tests.conftest import test_config

    url = _empty_database(databases, tmp_path)
    app = create_app(test_config(url))
    when = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)
    first = {"donor_test_panel": DEFAULT_DONOR_TEST_PANEL, "max_passage": 5}
    second = {
        **first,
        "donor_test_panel": [*DEFAULT_DONOR_TEST_PANEL, {"code": "CMV", "name": "CMV"}],
    }
    third = {**second, "max_passage": 4}
    try:
        with app.app_context():
            upgrade(revision="0042")
            engine = db.engine
            with engine.begin() as conn:
                for pid, status, parameters in (
                    (1, "superseded", first),
                    (2, "superseded", second),
                    (3, "effective", third),
                ):
                    _insert(
                        conn,
                        "product_definitions",
                        id=pid,
                        code="UC-MSC",
                        version=pid,
                        title="UC-MSC",
                        parameters_json=json.dumps(parameters),
                        status=status,
                        created_at=when + dt.timedelta(days=pid),
                        effective_at=when + dt.timedelta(days=pid, hours=1),
                    )
                _insert_donor(conn, when)
                for did, product_id in ((1, 1), (2, 3)):
                    _insert_donation(conn, when, did, product_id)
            upgrade(revision="0043")
            with engine.connect() as conn:
                panels_found = conn.execute(
                    text(
                        "SELECT id, code, version, status, parameters_json, audit_seq "
                        "FROM donor_test_panels ORDER BY version"
                    )
                ).all()
                donations = dict(
                    conn.execute(text("SELECT id, donor_test_panel_id FROM donations")).all()
                )
                sealed = dict(conn.execute(text("SELECT id, audit_seq FROM donations")).all())
                products = (
                    conn.execute(
                        text("SELECT parameters_json FROM product_definitions ORDER BY id")
                    )
                    .scalars()
                    .all()
                )
                templates = conn.execute(text("SELECT COUNT(*) FROM label_templates")).scalar()
            db.session.remove()
            engine.dispose()
        assert [(r.code, r.version, r.status, r.audit_seq) for r in panels_found] == [
            ("UC-MSC", 1, "superseded", 0),
            ("UC-MSC", 2, "effective", 0),
        ]
        v1, v2 = (json.loads(r.parameters_json)["tests"] for r in panels_found)
        assert [t["code"] for t in v1] == PANEL
        assert [t["code"] for t in v2] == [*PANEL, "CMV"]
        assert donations == {1: panels_found[0].id, 2: panels_found[1].id}
        assert sealed == {1: 0, 2: 0}
        assert [json.loads(p) for p in products] == [first, second, third]  # as signed
        assert templates == 0
    finally:
        if on_postgres():
            databases.drop(url)


def test_migration_0043_puts_the_label_files_in_force_on_an_upgraded_site_and_links_prints(
    databases, tmp_path
):
    """A database at 0042 with a user (an upgraded site) and two prints of a donation
    container's label, one from today's file (its version and hash), one from an older file:
    0043 loads every file of ``labels/`` in force under its own version and the text's
    SHA-256 (the file's), points the first print at its version and leaves the second
    unlinked, both left unsealed."""
    from flask_migrate import upgrade

    from cellchain import create_app
    from cellchain.labels.templates import load_templates
    from tests.conftest import test_config

    files = load_templates()
    container = files["donation_container"]
    url = _empty_database(databases, tmp_path)
    app = create_app(test_config(url))
    when = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)
    try:
        with app.app_context():
            upgrade(revision="0042")
            engine = db.engine
            with engine.begin() as conn:
                _insert(
                    conn,
                    "users",
                    id=1,
                    username="tech",
                    full_name="Tina Tech",
                    password_hash="x",
                    active=True,
                    failed_attempts=0,
                    created_at=when,
                )
                _insert(
                    conn,
                    "product_definitions",
                    id=1,
                    code="UC-MSC",
                    version=1,
                    title="UC-MSC",
                    parameters_json=json.dumps({"donor_test_panel": DEFAULT_DONOR_TEST_PANEL}),
                    status="effective",
                    created_at=when,
                    effective_at=when,
                )
                _insert_donor(conn, when)
                _insert_donation(conn, when, 1, 1)
                _insert(
                    conn,
                    "units",
                    id=1,
                    code="X9999260000010001",
                    kind="donation_container",
                    status="quarantine",
                    donation_id=1,
                    location="Ward",
                    created_at=when,
                )
                for pid, version, digest in (
                    (1, container.version, container.content_hash),
                    (2, container.version - 1, "0" * 64),
                ):
                    _insert(
                        conn,
                        "label_prints",
                        id=pid,
                        unit_id=1,
                        label_type="donation_container",
                        template_version=version,
                        template_hash=digest,
                        output_format="png",
                        copies=1,
                        payload="X",
                        quarantine=True,
                        isbt=False,
                        unit_status="quarantine",
                        printed_at=when,
                        printed_by_id=1,
                        applied=0,
                        destroyed=0,
                        marking="",
                    )
            upgrade(revision="0043")
            with engine.connect() as conn:
                templates = conn.execute(
                    text(
                        "SELECT id, code, version, status, parameters_json, audit_seq "
                        "FROM label_templates"
                    )
                ).all()
                prints = dict(conn.execute(text("SELECT id, template_id FROM label_prints")).all())
                sealed = set(conn.execute(text("SELECT audit_seq FROM label_prints")).scalars())
            db.session.remove()
            engine.dispose()
        by_code = {row.code: row for row in templates}
        assert set(by_code) == {label_type.upper() for label_type in files}
        for label_type, template in files.items():
            row = by_code[label_type.upper()]
            assert (row.version, row.status, row.audit_seq) == (template.version, "effective", 0)
            stored = json.loads(row.parameters_json)["toml"]
            assert hashlib.sha256(stored.encode()).hexdigest() == template.content_hash
        assert prints == {1: by_code["DONATION_CONTAINER"].id, 2: None}
        assert sealed == {0, None}
    finally:
        if on_postgres():
            databases.drop(url)
