"""Units over HTTP: the scan resolver, unit detail, custody events, traces and derivation in
the API, and the unit page with its custody form."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from cellchain.chain import service as chain
from cellchain.chain.models import LineageEdge, LineageOperation, Unit, UnitEvent, UnitStatus
from cellchain.core.identifiers import make_coi, make_unit_code, parse_identifier
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.conftest import issue_din
from tests.support.chain import (
    Tree,
    build_tree,
    container_of,
    derive,
    other_check_character,
    set_status,
)

PROBLEM = "application/problem+json"


# --- helpers --------------------------------------------------------------------------------


def assert_problem(response, status: int) -> dict:
    """The response is an RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body


def counts() -> dict[str, int]:
    """Committed rows of what a unit request writes (the test's session sees the latest)."""
    db.session.rollback()
    return {
        model.__name__: db.session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (Unit, LineageEdge, UnitEvent, AuditEntry)
    }


def reloaded(unit: Unit) -> Unit:
    """The unit as committed by the requests since it was loaded."""
    db.session.rollback()
    db.session.refresh(unit)
    return unit


def display(code: str) -> str:
    return parse_identifier(code).display


def element(page: str, element_id: str) -> str:
    """Inner HTML of the first element with ``id``."""
    found = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, f"no element #{element_id} in the page"
    return found.group(2)


def input_value(page: str, name: str) -> str | None:
    tag = re.search(rf'<input[^>]*\bname="{name}"[^>]*>', page, re.S)
    assert tag, f"no input {name!r} in the page"
    value = re.search(r'value="([^"]*)"', tag.group(0))
    return value.group(1) if value else None


@pytest.fixture
def tree(lab) -> Tree:
    return build_tree(lab)


@pytest.fixture
def tech_api(lab, clients):
    return clients.api(lab.tech)


@pytest.fixture
def qc_api(lab, clients):
    return clients.api(lab.qc)


@pytest.fixture
def clinician(make_user):
    return make_user("cleo", "clinician")


# --- API: scan ------------------------------------------------------------------------------


def test_scan_of_a_unit_code_answers_with_the_unit(tech_api, tree):
    bag = tree.b1

    response = tech_api.get("/api/v1/scan", query_string={"code": display(bag.code)})

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["kind"], body["code"]) == ("UNIT", bag.code)
    assert (body["entity_type"], body["entity_id"]) == ("unit", str(bag.id))
    assert body["url"] == f"/units/{bag.id}"
    unit = body["unit"]
    assert (unit["id"], unit["code"], unit["status"]) == (bag.id, bag.code, "quarantine")
    assert (unit["kind"], unit["din"], unit["location"]) == ("cryobag", bag.donation.din, "BSC-1")
    assert unit["display"] == display(bag.code)


def test_scan_of_a_label_payload_answers_with_the_same_unit(tech_api, tree):
    bag = tree.b1
    payload = f"CC1.{bag.code}"

    response = tech_api.get("/api/v1/scan", query_string={"code": payload})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["unit"]["id"] == bag.id
    truncated = tech_api.get("/api/v1/scan", query_string={"code": payload[:-3]})
    assert truncated.status_code == 422


def test_any_role_may_scan(qc_api, tree):
    response = qc_api.get("/api/v1/scan", query_string={"code": tree.v1.code.lower()})

    assert response.status_code == 200
    assert response.get_json()["unit"]["id"] == tree.v1.id


def test_scan_of_a_din_answers_with_the_donation_and_no_unit(tech_api, tree):
    donation = tree.container.donation

    response = tech_api.get("/api/v1/scan", query_string={"code": display(donation.din)})

    assert response.status_code == 200
    body = response.get_json()
    assert (body["kind"], body["code"], body["unit"]) == ("DIN", donation.din, None)
    assert body["url"] == f"/donations/{donation.id}"


def test_scan_of_a_reserved_din_leads_to_its_identifier_page(app, tech_api):
    din = issue_din(app)

    body = tech_api.get("/api/v1/scan", query_string={"code": din}).get_json()

    assert (body["kind"], body["unit"], body["entity_type"]) == ("DIN", None, None)
    assert body["url"] == f"/identifiers/{din}"


def test_scan_with_a_wrong_check_character_is_422(tech_api, tree):
    response = tech_api.get(
        "/api/v1/scan", query_string={"code": other_check_character(tree.b1.code)}
    )

    body = assert_problem(response, 422)
    assert body["type"] == "urn:cellchain:problem:invalid-identifier"
    assert "Check character mismatch" in body["detail"]


def test_scan_of_a_well_formed_code_never_issued_is_404(tech_api, tree):
    never = make_unit_code(parse_identifier(tree.container.donation.din).body, "C", 9999)

    body = assert_problem(tech_api.get("/api/v1/scan", query_string={"code": never.display}), 404)
    assert "has not issued it" in body["detail"]


def test_scan_of_a_chain_of_identity_identifier_never_issued_is_404_not_500(tech_api):
    """A COI embeds no DIN: the refusal names its facility from the identifier (it asked the
    COI for its DIN and answered 500)."""
    never = make_coi("X9999", 2026, 999999)

    body = assert_problem(tech_api.get("/api/v1/scan", query_string={"code": never.display}), 404)
    assert "is a valid COI of facility X9999, but this site has not issued it" in body["detail"]


def test_scan_without_a_code_is_422(tech_api):
    body = assert_problem(tech_api.get("/api/v1/scan"), 422)
    assert "code" in body["errors"]


def test_scan_needs_a_token(app, tree):
    assert_problem(app.test_client().get("/api/v1/scan", query_string={"code": tree.b1.code}), 401)


# --- API: unit detail -----------------------------------------------------------------------


def test_unit_detail_has_parents_children_and_history(qc_api, tree):
    harvest = tree.harvest

    response = qc_api.get(f"/api/v1/units/{harvest.id}")

    assert response.status_code == 200
    body = response.get_json()
    assert (body["id"], body["code"], body["status"]) == (harvest.id, harvest.code, "quarantine")
    assert [(p["unit"]["code"], p["operation"]) for p in body["parents"]] == [
        (tree.v1.code, "passage"),
        (tree.v2.code, "passage"),
    ]
    assert [(c["unit"]["code"], c["operation"]) for c in body["children"]] == [
        (tree.s1.code, "split"),
        (tree.s2.code, "split"),
        (tree.s3.code, "split"),
    ]
    assert [e["event_type"] for e in body["history"]] == ["created"]
    assert body["history"][0]["actor"] == "tina"
    assert body["created_by"] == "tina"
    assert body["din"] == harvest.donation.din
    assert body["display"] == display(harvest.code)


def test_unit_detail_of_a_received_container_lists_its_history_in_order(lab, qc_api):
    donation = lab.receive(lab.register(placenta=False), temperature_c=5.5)
    [container] = donation.units

    response = qc_api.get(f"/api/v1/units/{container.id}")

    assert response.status_code == 200
    body = response.get_json()

    assert body["parents"] == [] and body["children"] == []
    assert [e["event_type"] for e in body["history"]] == ["created", "received"]
    assert body["history"][1]["temperature_c"] == 5.5
    times = [dt.datetime.fromisoformat(e["at"]) for e in body["history"]]
    assert times == sorted(times)


def test_unit_detail_shows_a_recorded_move(tech_api, tree):
    moved = tech_api.post(
        f"/api/v1/units/{tree.v1.id}/events", json={"event_type": "moved", "location": "INC-3"}
    )
    assert moved.status_code == 201

    response = tech_api.get(f"/api/v1/units/{tree.v1.id}")

    assert response.status_code == 200
    body = response.get_json()
    assert body["location"] == "INC-3"
    assert [e["event_type"] for e in body["history"]] == ["created", "moved"]


def test_unit_detail_of_an_unknown_unit_is_404(qc_api, lab):
    assert_problem(qc_api.get("/api/v1/units/999999"), 404)


# --- API: custody events --------------------------------------------------------------------


def test_a_move_is_201_and_changes_the_location(tech_api, tree):
    vessel = tree.v1

    response = tech_api.post(
        f"/api/v1/units/{vessel.id}/events",
        json={"event_type": "moved", "location": "Incubator 3", "note": "shelf 2"},
    )

    assert response.status_code == 201, response.get_data(as_text=True)
    event = response.get_json()
    assert (event["unit_id"], event["event_type"], event["actor"]) == (vessel.id, "moved", "tina")
    assert (event["location"], event["from_location"]) == ("Incubator 3", "BSC-1")
    assert reloaded(vessel).location == "Incubator 3"
    assert [e.event_type for e in chain.history(db.session, vessel)] == ["created", "moved"]
    scanned = tech_api.get("/api/v1/scan", query_string={"code": vessel.code}).get_json()
    assert scanned["unit"]["location"] == "Incubator 3"


def test_a_back_dated_event_is_kept_with_its_time(tech_api, tree):
    vessel = tree.v1
    at = vessel.created_at + (utcnow() - vessel.created_at) / 2

    response = tech_api.post(
        f"/api/v1/units/{vessel.id}/events",
        json={"event_type": "scanned", "at": at.isoformat()},
    )

    assert response.status_code == 201, response.get_data(as_text=True)
    assert dt.datetime.fromisoformat(response.get_json()["at"]) == at


def test_a_hand_off_without_counterparty_is_422_and_writes_nothing(tech_api, tree):
    before = counts()

    response = tech_api.post(
        f"/api/v1/units/{tree.v1.id}/events", json={"event_type": "handed_off"}
    )

    body = assert_problem(response, 422)
    assert body["errors"]["counterparty"] == ["Required."]
    assert counts() == before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"event_type": "created", "location": "x"}, "event_type"),
        ({"event_type": "status_changed"}, "event_type"),
        ({"location": "Incubator 3"}, "event_type"),
        ({"event_type": "moved"}, "location"),
        ({"event_type": "scanned", "temperature_c": 150}, "temperature_c"),
        ({"event_type": "scanned", "at": "not a time"}, "at"),
        ({"event_type": "scanned", "colour": "blue"}, "colour"),
    ],
)
def test_bad_custody_input_is_422_with_the_field(tech_api, tree, payload, field):
    before = counts()

    body = assert_problem(tech_api.post(f"/api/v1/units/{tree.v1.id}/events", json=payload), 422)

    assert field in body["errors"], body
    assert counts() == before


def test_an_event_in_the_future_is_422(tech_api, tree):
    at = (utcnow() + dt.timedelta(hours=1)).isoformat()

    body = assert_problem(
        tech_api.post(
            f"/api/v1/units/{tree.v1.id}/events", json={"event_type": "scanned", "at": at}
        ),
        422,
    )
    assert "at" in body["errors"]


def test_a_consumed_unit_cannot_be_moved_over_the_api(lab, tech_api, tree):
    set_status(lab.session, tree.v1, UnitStatus.CONSUMED)

    body = assert_problem(
        tech_api.post(
            f"/api/v1/units/{tree.v1.id}/events", json={"event_type": "moved", "location": "Bin"}
        ),
        409,
    )
    assert "can be scanned" in body["detail"]
    scanned = tech_api.post(f"/api/v1/units/{tree.v1.id}/events", json={"event_type": "scanned"})
    assert scanned.status_code == 201


def test_a_clinician_may_record_custody(clients, clinician, tree):
    response = clients.api(clinician).post(
        f"/api/v1/units/{tree.b1.id}/events",
        json={"event_type": "received", "location": "Ward 4", "temperature_c": -140},
    )

    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["actor"] == "cleo"
    assert reloaded(tree.b1).location == "Ward 4"


def test_a_qc_analyst_may_not_record_custody(qc_api, tree):
    before = counts()

    assert_problem(
        qc_api.post(f"/api/v1/units/{tree.b1.id}/events", json={"event_type": "scanned"}), 403
    )

    assert counts() == before


def test_custody_on_an_unknown_unit_is_404(tech_api, lab):
    assert_problem(
        tech_api.post("/api/v1/units/999999/events", json={"event_type": "scanned"}), 404
    )


# --- API: traces ----------------------------------------------------------------------------


def steps(body: dict) -> list[tuple[str, int]]:
    return [(step["unit"]["code"], step["distance"]) for step in body["units"]]


def test_trace_back_over_the_api(qc_api, tree):
    response = qc_api.get(f"/api/v1/units/{tree.b2.id}/trace/back")

    assert response.status_code == 200
    body = response.get_json()
    assert (body["start"]["code"], body["direction"]) == (tree.b2.code, "back")
    assert steps(body) == [
        (tree.s1.code, 1),
        (tree.harvest.code, 2),
        (tree.v1.code, 3),
        (tree.v2.code, 3),
        (tree.container.code, 4),
    ]


def test_trace_forward_over_the_api(qc_api, tree):
    response = qc_api.get(f"/api/v1/units/{tree.container.id}/trace/forward")

    assert response.status_code == 200
    body = response.get_json()
    assert (body["start"]["code"], body["direction"]) == (tree.container.code, "forward")
    t = tree
    assert steps(body) == [
        (t.v1.code, 1),
        (t.v2.code, 1),
        (t.harvest.code, 2),
        (t.s1.code, 3),
        (t.s2.code, 3),
        (t.s3.code, 3),
        (t.b1.code, 4),
        (t.b2.code, 4),
    ]
    assert {step["unit"]["status"] for step in body["units"]} == {"quarantine"}


@pytest.mark.parametrize("direction", ["back", "forward"])
def test_trace_of_an_unknown_unit_is_404(qc_api, lab, direction):
    assert_problem(qc_api.get(f"/api/v1/units/999999/trace/{direction}"), 404)


# --- API: derive ----------------------------------------------------------------------------


def derive_body(parents: list[str], **changes) -> dict:
    body = {
        "parents": parents,
        "kind": "culture_vessel",
        "operation": "harvest",
        "count": 1,
        "location": "BSC-2",
    }
    body.update(changes)
    return body


def test_a_technician_derives_units_from_scanned_codes(tech_api, lab):
    container = container_of(lab)
    v1, v2 = derive(lab, [container], count=2)

    response = tech_api.post(
        "/api/v1/units/derive",
        json=derive_body([display(v1.code), v2.code.lower()], count=2, consume_parents=True),
    )

    assert response.status_code == 201, response.get_data(as_text=True)
    children = response.get_json()
    assert len(children) == 2
    for child in children:
        code = parse_identifier(child["code"])
        assert code.din == parse_identifier(container.donation.din).body
        assert code.unit_kind_letter == "V"
        assert (child["status"], child["kind"], child["location"]) == (
            "quarantine",
            "culture_vessel",
            "BSC-2",
        )
        assert child["donation_id"] == container.donation_id
        made = db.session.get(Unit, child["id"])
        assert chain.parents_of(db.session, made) == [(v1, "harvest"), (v2, "harvest")]
    assert (reloaded(v1).status, reloaded(v2).status) == ("consumed", "consumed")


def test_derivation_across_two_donations_is_409_and_writes_nothing(tech_api, lab):
    first = container_of(lab)
    second = container_of(lab)
    before = counts()

    response = tech_api.post("/api/v1/units/derive", json=derive_body([first.code, second.code]))

    body = assert_problem(response, 409)
    assert body["title"] == "Pooling across donations refused"
    assert first.donation.din in body["detail"] and second.donation.din in body["detail"]
    assert counts() == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"count": 0}, "count"),
        ({"count": chain.MAX_UNITS_PER_STEP + 1}, "count"),
        ({"kind": "teacup"}, "kind"),
        ({"operation": "pool"}, "operation"),
        ({"location": ""}, "location"),
        ({"parents": []}, "parents"),
    ],
)
def test_bad_derivation_input_is_422(tech_api, lab, changes, field):
    container = container_of(lab)
    before = counts()

    body = assert_problem(
        tech_api.post("/api/v1/units/derive", json={**derive_body([container.code]), **changes}),
        422,
    )

    assert field in body["errors"], body
    assert counts() == before


def test_deriving_from_a_din_or_an_unknown_code_is_refused(tech_api, lab):
    container = container_of(lab)
    din = container.donation.din
    never = make_unit_code(din[:-1], "V", 9999).canonical

    body = assert_problem(tech_api.post("/api/v1/units/derive", json=derive_body([din])), 422)
    assert "a donation's DIN" in body["detail"]
    assert_problem(tech_api.post("/api/v1/units/derive", json=derive_body([never])), 404)
    body = assert_problem(
        tech_api.post(
            "/api/v1/units/derive", json=derive_body([container.code, display(container.code)])
        ),
        422,
    )
    assert "twice" in body["detail"]


@pytest.mark.parametrize("role", ["qc_analyst", "clinician", "qa"])
def test_only_technicians_derive(clients, make_user, lab, role):
    container = container_of(lab)
    client = clients.api(make_user(f"user-{role}".replace("_", "-"), role))
    before = counts()

    assert_problem(client.post("/api/v1/units/derive", json=derive_body([container.code])), 403)
    assert counts() == before


# --- web: scan and the unit page ------------------------------------------------------------


@pytest.fixture
def tech_web(lab, clients):
    return clients.web(lab.tech)


def test_scanning_a_unit_code_opens_its_page(tech_web, tree):
    response = tech_web.get("/scan", query_string={"code": display(tree.s2.code).lower()})

    assert response.status_code == 302
    assert urlsplit(response.location).path == f"/units/{tree.s2.id}"


def test_the_unit_page_shows_identity_status_quarantine_and_history(tech_web, tree):
    harvest = tree.harvest

    response = tech_web.get(f"/units/{harvest.id}")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'{harvest.code[:-1]}<span class="k">{harvest.code[-1]}</span>' in page
    assert display(harvest.code) in page
    assert "quarantine" in element(page, "unit-status")
    assert "QUARANTINE" in element(page, "hold")
    assert element(page, "unit-location") == "BSC-1"
    history = re.search(r'<table class="events">(.*?)</table>', page, re.S)
    assert history, "no history table"
    assert "created" in history.group(1) and "BSC-1" in history.group(1)
    assert tree.v1.code[:-1] in element(page, "parents")
    assert tree.s3.code[:-1] in element(page, "children")
    back, forward = page.split('id="trace-back"')[1].split('id="trace-forward"')
    assert tree.container.code[:-1] in back and tree.v2.code[:-1] in back
    assert tree.b2.code[:-1] in forward and tree.container.code[:-1] not in forward
    assert 'id="custody-form"' in page


def test_an_eligible_donations_unit_shows_no_quarantine_banner(lab, tech_web):
    [container, _placenta] = lab.eligible_donation().units

    page = tech_web.get(f"/units/{container.id}").get_data(as_text=True)

    assert "QUARANTINE" not in page
    assert "quarantine" in element(page, "unit-status")  # the unit itself is not released yet


def test_a_qc_analyst_sees_the_unit_but_no_custody_form(lab, clients, tree):
    client = clients.web(lab.qc)

    page = client.get(f"/units/{tree.v1.id}").get_data(as_text=True)

    assert tree.v1.code[:-1] in page
    assert 'id="custody-form"' not in page
    refused = client.post(
        f"/units/{tree.v1.id}/events", data={"event_type": "moved", "location": "Bin"}
    )
    assert refused.status_code == 403
    assert reloaded(tree.v1).location == "BSC-1"


def test_a_move_without_location_shows_the_form_again_with_what_was_typed(tech_web, tree):
    vessel = tree.v1
    before = counts()

    response = tech_web.post(
        f"/units/{vessel.id}/events",
        data={
            "event_type": "moved",
            "location": "",
            "temperature_c": "21.5",
            "note": "left the <b>hood</b>",
        },
    )

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Where the unit is now is required." in element(page, "form-error")
    assert '<div class="field-error">Required.</div>' in page
    assert re.search(r'<option value="moved"\s+selected>', page)
    assert input_value(page, "note") == str(escape("left the <b>hood</b>"))
    assert input_value(page, "temperature_c") == "21.5"
    assert "<b>hood</b>" not in page
    assert counts() == before
    assert reloaded(vessel).location == "BSC-1"


def test_a_valid_move_redirects_and_the_page_shows_the_event(tech_web, tree):
    vessel = tree.v2

    response = tech_web.post(
        f"/units/{vessel.id}/events",
        data={"event_type": "moved", "location": "Incubator 7", "at": "", "note": "door B"},
    )

    assert response.status_code == 302, response.get_data(as_text=True)
    assert urlsplit(response.location).path == f"/units/{vessel.id}"
    page = tech_web.get(response.location).get_data(as_text=True)
    assert "Recorded: moved." in page
    assert element(page, "unit-location") == "Incubator 7"
    history = re.search(r'<table class="events">(.*?)</table>', page, re.S).group(1)
    assert "moved" in history and "BSC-1 → Incubator 7" in history and "door B" in history
    assert [e.event_type for e in chain.history(db.session, reloaded(vessel))] == [
        "created",
        "moved",
    ]


def test_a_refused_custody_on_a_gone_unit_is_shown_on_the_page(lab, tech_web, tree):
    set_status(lab.session, tree.s3, UnitStatus.DISCARDED)

    response = tech_web.post(
        f"/units/{tree.s3.id}/events",
        data={"event_type": "handed_off", "counterparty": "courier"},
    )

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "no longer moved or handed off" in element(page, "form-error")
    assert input_value(page, "counterparty") == "courier"


def test_the_page_of_an_unknown_unit_is_404(tech_web, lab):
    assert tech_web.get("/units/999999").status_code == 404
    assert tech_web.post("/units/999999/events", data={"event_type": "scanned"}).status_code == 404


def test_lineage_operation_names_are_readable_on_the_page(tech_web, lab):
    container = container_of(lab)
    for status in (UnitStatus.AVAILABLE, UnitStatus.ALLOCATED):  # a dose is made from allocated
        chain.change_status(db.session, container, status, actor=lab.tech, now=utcnow(), reason="t")
    db.session.commit()
    [dose] = derive(lab, [container], operation=LineageOperation.PREPARE_DOSE)

    page = tech_web.get(f"/units/{dose.id}").get_data(as_text=True)

    assert "prepare dose of" in element(page, "parents")
