"""A recall is visible everywhere (issue 16, item 9): every page, API answer and report that
shows a recalled unit, lot, donation, dose or patient names the recall (number, status,
reason) and links to it; the chain-of-identity report never says only "all valid" under a
recall. One query behind all of them, in a fixed number of statements."""

from __future__ import annotations

import io
from typing import Any

from flask import current_app, url_for
from pypdf import PdfReader

from cellchain.extensions import db
from cellchain.manufacturing.processing import processing
from cellchain.traceability import notices
from cellchain.traceability.coi import coi
from cellchain.traceability.models import RecallTarget
from tests.support import scenes
from tests.support.recalls import infuse, open_recall
from tests.support.statements import counting_statements
from tests.support.zones import ZURICH


@scenes.scene
def scene(ward, released) -> dict[str, Any]:
    """AS-001 infused, AS-002's dose on its way to the clinic, AS-003's prepared in the lab."""
    infusion = infuse(ward)
    moving = ward.prepared()
    shipment = ward.ship(moving)
    waiting = ward.prepared()
    donation = processing.lot_donation(db.session, released)
    bag = processing.bags_of(db.session, released)[-1]
    return {
        "infusion": infusion,
        "moving": moving,
        "shipment": shipment,
        "waiting": waiting,
        "donation": donation,
        "lot": released,
        "bag": bag,
    }


def recall_donation(ward: Any, scene: dict[str, Any]) -> Any:
    return open_recall(ward, RecallTarget.DONATION, scene["donation"].id).recall


def pages(scene: dict[str, Any]) -> dict[str, str]:
    with current_app.test_request_context():
        return _pages(scene)


def _pages(scene: dict[str, Any]) -> dict[str, str]:
    infusion = scene["infusion"]
    return {
        "donation": url_for("donors.donation", donation_id=scene["donation"].id),
        "lot": url_for("manufacturing.lot", lot_id=scene["lot"].id),
        "unit": url_for("chain.unit", unit_id=scene["bag"].id),
        "dose": url_for("dosing.dose", order_id=scene["waiting"].id),
        "infused patient": url_for("dosing.patient", patient_id=infusion.patient_id),
        "waiting patient": url_for("dosing.patient", patient_id=scene["waiting"].patient_id),
        "shipment": url_for("shipments.shipment", shipment_id=scene["shipment"].id),
        "clinic": url_for("bedside.overview"),
        "infusion": url_for("bedside.infusion", infusion_id=infusion.id),
        "coi report": url_for("coi.report", patient_id=infusion.patient_id),
        "unit labels": url_for("labels.unit_labels", unit_id=scene["bag"].id),
        "lot labels": url_for("labels.lot_labels", lot_id=scene["lot"].id),
        "patient labels": url_for("labels.patient_labels", patient_id=infusion.patient_id),
    }


def answers(scene: dict[str, Any]) -> dict[str, str]:
    infusion = scene["infusion"]
    return {
        "donation": f"/api/v1/donations/{scene['donation'].id}",
        "lot": f"/api/v1/lots/{scene['lot'].id}",
        "unit": f"/api/v1/units/{scene['bag'].id}",
        "dose": f"/api/v1/doses/{scene['waiting'].id}",
        "infused patient": f"/api/v1/patients/{infusion.patient_id}",
        "waiting patient": f"/api/v1/patients/{scene['waiting'].patient_id}",
        "shipment": f"/api/v1/shipments/{scene['shipment'].id}",
        "infusion": f"/api/v1/infusions/{infusion.id}",
        "coi report": f"/api/v1/patients/{infusion.patient_id}/coi-report",
        "trace forward": f"/api/v1/trace/forward/donation/{scene['donation'].id}",
        "trace back": f"/api/v1/trace/back/infusion/{infusion.id}",
    }


def test_every_page_names_the_recall_and_links_to_it(ward, scene, clients):
    web = clients.web(ward.clinic.clinician)
    before = {name: web.get(path) for name, path in pages(scene).items()}
    assert {name: r.status_code for name, r in before.items()} == dict.fromkeys(before, 200)
    assert [name for name, r in before.items() if "data-recall=" in r.get_data(as_text=True)] == []

    recall = recall_donation(ward, scene)

    link = f'href="/recalls/{recall.id}"'
    for name, path in pages(scene).items():
        page = web.get(path)
        assert page.status_code == 200, name
        html = page.get_data(as_text=True)
        assert f'data-recall="{recall.number}"' in html, name
        assert link in html, name
        assert "open" in html, name
    coi_page = web.get(pages(scene)["coi report"]).get_data(as_text=True)
    assert "UNDER RECALL" in coi_page and recall.reason in coi_page


def test_every_api_answer_names_the_recall(ward, scene, clients):
    api = clients.api(ward.clinic.clinician)
    for name, path in answers(scene).items():
        answer = api.get(path)
        assert answer.status_code == 200, (name, answer.get_json())
        assert answer.get_json()["recalls"] == [], name

    recall = recall_donation(ward, scene)

    for name, path in answers(scene).items():
        [named] = api.get(path).get_json()["recalls"]
        assert (named["number"], named["status"], named["id"]) == (
            recall.number,
            "open",
            recall.id,
        ), name
        assert named["url"] == f"/recalls/{recall.id}", name
        assert named["reason"] == recall.reason, name
    body = api.get(answers(scene)["coi report"]).get_json()
    assert body["summary"].startswith(f"UNDER RECALL: {recall.number}")
    assert [r["number"] for r in body["infusions"][0]["recalls"]] == [recall.number]


def test_a_forward_trace_answer_names_the_recall_on_each_unit_and_patient(ward, scene, clients):
    api = clients.api(ward.lab.qa)
    path = f"/api/v1/trace/forward/lot/{scene['lot'].id}"
    before = api.get(path).get_json()
    assert [u["recalls"] for u in before["units"]] == [[]] * len(before["units"])

    recall = recall_donation(ward, scene)

    body = api.get(path).get_json()
    by_code = {u["unit"]["code"]: [r["number"] for r in u["recalls"]] for u in body["units"]}
    assert by_code[scene["bag"].code] == [recall.number]
    named_patients = {
        p["patient_id"]: [r["number"] for r in p["recalls"]] for p in body["patients"]
    }
    assert named_patients[scene["infusion"].patient_id] == [recall.number]
    assert named_patients[scene["waiting"].patient_id] == [recall.number]


def test_the_coi_report_is_never_just_all_valid_under_a_recall(ward, scene, clients):
    patient = scene["infusion"].patient
    assert coi.patient_report(db.session, patient, zone=ZURICH).summary.endswith("all valid.")

    recall = recall_donation(ward, scene)

    report = coi.patient_report(db.session, patient, zone=ZURICH)
    assert report.invalid_count == 0 and report.alert
    assert [r.number for r in report.recalls] == [recall.number]
    assert report.summary.startswith(f"UNDER RECALL: {recall.number} (open)")
    pdf = clients.web(ward.clinic.clinician).get(f"/patients/{patient.id}/coi-report.pdf")
    assert pdf.status_code == 200
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    assert f"RECALL {recall.number}" in text


def test_notices_name_each_kind_of_record_in_a_fixed_number_of_statements(ward, scene):
    recall = recall_donation(ward, scene)
    infusion, waiting, moving = scene["infusion"], scene["waiting"], scene["moving"]
    db.session.commit()

    asked = {
        "units": [scene["bag"].id, waiting.dose_unit_id],
        "lots": [scene["lot"].id],
        "donations": [scene["donation"].id],
        "doses": [waiting.id, moving.id, infusion.dose_order_id],
        "patients": [infusion.patient_id, waiting.patient_id],
    }
    with counting_statements() as few:
        notices.recalls_naming(db.session, **{kind: ids[:1] for kind, ids in asked.items()})
    with counting_statements() as statements:
        found = notices.recalls_naming(db.session, **asked)
    # one per kind of record asked about, then the recalls (and who opened them), whatever
    # the number of records
    assert len(statements) == len(few) <= len(asked) + 3
    for recalls in (
        found.unit(scene["bag"].id),
        found.lot(scene["lot"].id),
        found.donation(scene["donation"].id),
        found.dose(waiting.id),
        found.dose(infusion.dose_order_id),  # infused: its units are named
        found.patient(infusion.patient_id),  # to be notified
        found.patient(waiting.patient_id),  # their dose was withdrawn
    ):
        assert recalls == [recall]
    assert found.all() == [recall]
    assert notices.recalls_naming(db.session, patients=[999999]).all() == []


# --- lists (issue 16, item 9): every list that shows a recalled record names the recall -------


def list_pages(scene: dict[str, Any]) -> dict[str, str]:
    return {
        "donations": "/donations",
        "lots": "/manufacturing",
        "patients": "/patients",
        "shipments": "/shipments",
        "follow-up due": "/follow-up?coming_up=1",
        "trace forward": f"/trace/forward/donation/{scene['donation'].id}",
    }


def list_answers(scene: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Each list API, and how to find the recalled record's entry in its answer."""
    donation, lot = scene["donation"].id, scene["lot"].id
    infused = scene["infusion"].patient_id
    scene_patients = {infused, scene["moving"].patient_id, scene["waiting"].patient_id}
    return {
        "donations": (
            "/api/v1/donations?per_page=100",
            lambda body: [i for i in body["items"] if i["id"] == donation],
        ),
        "lots": ("/api/v1/lots", lambda body: [i for i in body if i["id"] == lot]),
        "patients": ("/api/v1/patients", lambda body: [i for i in body if i["id"] == infused]),
        "shipments": (
            "/api/v1/shipments",
            lambda body: [i for i in body if i["id"] == scene["shipment"].id],
        ),
        "follow-up due": (
            "/api/v1/follow-up/due?coming_up=true",
            lambda body: [i for i in body if i["patient_id"] in scene_patients][:1],
        ),
        "patient follow-up": (
            f"/api/v1/patients/{infused}/follow-up",
            lambda body: body[:1],
        ),
    }


def test_every_list_page_names_the_recall_and_links_to_it(ward, scene, clients):
    web = clients.web(ward.lab.qa)
    before = {name: web.get(path) for name, path in list_pages(scene).items()}
    assert {name: r.status_code for name, r in before.items()} == dict.fromkeys(before, 200)
    assert [name for name, r in before.items() if "data-recall=" in r.get_data(as_text=True)] == []

    recall = recall_donation(ward, scene)

    for name, path in list_pages(scene).items():
        page = web.get(path)
        assert page.status_code == 200, name
        html = page.get_data(as_text=True)
        assert f'data-recall="{recall.number}"' in html, name
        assert f'href="/recalls/{recall.id}"' in html, name
        assert f"RECALLED {recall.number} (open)" in html, name


def test_every_list_answer_names_the_recall(ward, scene, clients):
    api = clients.api(ward.lab.qa)
    for name, (path, entries) in list_answers(scene).items():
        answer = api.get(path)
        assert answer.status_code == 200, (name, answer.get_json())
        assert [e["recalls"] for e in entries(answer.get_json())] == [[]], name

    recall = recall_donation(ward, scene)

    for name, (path, entries) in list_answers(scene).items():
        [entry] = entries(api.get(path).get_json())
        [named] = entry["recalls"]
        assert (named["number"], named["status"], named["url"]) == (
            recall.number,
            "open",
            f"/recalls/{recall.id}",
        ), name


def test_lists_name_recalls_in_a_fixed_number_of_statements(ward, scene, clients):
    """The recalls of a list's records are asked for once, not once per row: every shipment
    on the list is named, in the statements of one look-up (its doses, the recalls, who
    opened them)."""
    recall = recall_donation(ward, scene)
    api = clients.api(ward.lab.qa)
    with counting_statements() as statements:
        body = api.get("/api/v1/shipments").get_json()
    assert len(body) >= 2
    assert all([r["number"] for r in s["recalls"]] == [recall.number] for s in body)
    assert len([s for s in statements if "recall" in s.lower()]) <= 3


# --- documents: the certificate of analysis and the batch record of a recalled lot -----------


def pdf_text(response: Any) -> str:
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)


def test_a_recalled_lots_certificate_and_batch_record_say_so_first(ward, scene, clients):
    lot = scene["lot"]
    web, api = clients.web(ward.lab.qa), clients.api(ward.lab.qa)
    documents = {
        "certificate page": lambda: web.get(f"/lots/{lot.id}/certificate.pdf"),
        "certificate API": lambda: api.get(f"/api/v1/lots/{lot.id}/certificate.pdf"),
        "batch record": lambda: web.get(f"/lots/{lot.id}/batch-record.pdf"),
    }
    for name, fetch in documents.items():
        assert "RECALL" not in pdf_text(fetch()), name

    recall = recall_donation(ward, scene)

    for name, fetch in documents.items():
        text = pdf_text(fetch())
        assert f"RECALL {recall.number} (open)" in text, name
        assert f"/recalls/{recall.id}" in text, name
        # the recall comes before the disposition and the summary, and in every page header
        assert text.index(f"RECALL {recall.number}") < text.index("Product"), name
        assert text.count(f"Status: RELEASED · RECALL {recall.number}") == text.count("Page "), name


def test_the_qa_and_eligibility_queues_name_the_recall(desk, clients):
    """A lot in quarantine and a donation awaiting its determination, both recalled, are
    named on QA's queue and the eligibility queue, page and API."""
    lab = desk.lab
    waiting = lab.receive(lab.register())
    made = processing.lot_donation(db.session, desk.lot)
    db.session.commit()
    web, api = clients.web(lab.qa), clients.api(lab.qa)

    def entries() -> dict[str, list[Any]]:
        review = api.get("/api/v1/qa/awaiting-review").get_json()
        queue = api.get("/api/v1/donations/eligibility-queue").get_json()
        return {
            "QA queue": [e["recalls"] for e in review if e["lot_id"] == desk.lot.id],
            "eligibility queue": [e["recalls"] for e in queue if e["donation_id"] == waiting.id],
        }

    for path in ("/qa", "/eligibility"):
        assert "data-recall=" not in web.get(path).get_data(as_text=True), path
    assert entries() == {"QA queue": [[]], "eligibility queue": [[]]}

    of_lot = open_recall(desk, RecallTarget.DONATION, made.id).recall
    of_waiting = open_recall(desk, RecallTarget.DONATION, waiting.id).recall

    for path, recall in (("/qa", of_lot), ("/eligibility", of_waiting)):
        html = web.get(path).get_data(as_text=True)
        assert f'data-recall="{recall.number}"' in html, path
        assert f'href="/recalls/{recall.id}"' in html, path
    named = {name: [[r["number"] for r in e] for e in found] for name, found in entries().items()}
    assert named == {"QA queue": [[of_lot.number]], "eligibility queue": [[of_waiting.number]]}
