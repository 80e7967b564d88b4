"""Traces and recalls over HTTP: the API a hospital or QA system integrates with, and the
pages (trace forward and back, the recall preview, opening, notifying, closing), with every
refusal in plain words and on record."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cellchain.core.models import AuditEntry
from cellchain.extensions import db
from cellchain.manufacturing.processing import processing
from cellchain.traceability.models import Recall
from tests.conftest import TEST_PASSWORD
from tests.support.recalls import infuse


def audited(action: str) -> list[AuditEntry]:
    return list(db.session.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars())


def test_api_traces_forward_and_back(ward, released, clients: Any) -> None:
    infusion = infuse(ward)
    api = clients.api(ward.clinic.clinician)

    forward = api.get(f"/api/v1/trace/forward/lot/{released.id}")
    assert forward.status_code == 200, forward.get_json()
    body = forward.get_json()
    assert body["start"]["label"] == f"lot {released.lot_number}"
    assert [p["study_id"] for p in body["patients"] if p["infused"]] == [infusion.patient.study_id]
    assert {u["unit"]["code"] for u in body["units"]} >= {
        bag.code for bag in processing.bags_of(db.session, released)
    }

    back = api.get(f"/api/v1/trace/back/infusion/{infusion.id}")
    assert back.status_code == 200, back.get_json()
    path = back.get_json()
    assert path["donation"]["din"] == infusion.dose_order.dose_unit.donation.din
    assert path["lots"][0]["signatures"][0]["valid"] is True
    [clinic] = path["clinic"]
    assert clinic["infusion"]["id"] == infusion.id
    assert any(len(c["signatures"]) == 2 for c in clinic["bedside_checks"])

    assert api.get("/api/v1/trace/forward/nonsense/1").status_code == 422
    missing = api.get("/api/v1/trace/back/infusion/999999")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/problem+json")


def test_api_recall_open_notify_close(ward, released, clients: Any) -> None:
    infusion = infuse(ward)
    qa = clients.api(ward.lab.qa)
    request = {
        "target_type": "lot",
        "target_id": released.id,
        "reason": "Mycoplasma positive on the retained sample.",
        "password": TEST_PASSWORD,
    }
    opened = qa.post("/api/v1/recalls", json=request)
    assert opened.status_code == 201, opened.get_json()
    detail = opened.get_json()
    recall_id = detail["recall"]["id"]
    assert [n["study_id"] for n in detail["recall"]["notifications"]] == [infusion.patient.study_id]
    assert detail["blocked"] and {u["status_now"] for u in detail["blocked"]} == {"blocked"}

    again = qa.post("/api/v1/recalls", json=request)
    assert again.status_code == 409 and "already recalled" in again.get_json()["detail"]
    assert audited("recall.open_refused")
    unknown = qa.post("/api/v1/recalls", json={**request, "target_id": 999999})
    assert unknown.status_code == 404

    early = qa.post(
        f"/api/v1/recalls/{recall_id}/close",
        json={"note": "Everything done, bags destroyed.", "password": TEST_PASSWORD},
    )
    assert early.status_code == 409 and infusion.patient.study_id in early.get_json()["detail"]

    clinician = clients.api(ward.clinic.investigator)
    notified = clinician.post(
        f"/api/v1/recalls/{recall_id}/notifications/{infusion.patient_id}",
        json={"notified_at": "2026-01-01T10:00:00+00:00", "method": "phone"},
    )
    # the recall was opened today; a notification from January is before it
    assert notified.status_code == 422
    notified = clinician.post(
        f"/api/v1/recalls/{recall_id}/notifications/{infusion.patient_id}",
        json={"notified_at": detail["recall"]["opened_at"], "method": "phone"},
    )
    assert notified.status_code == 200, notified.get_json()
    closed = qa.post(
        f"/api/v1/recalls/{recall_id}/close",
        json={"note": "Everything done, bags destroyed.", "password": TEST_PASSWORD},
    )
    assert closed.status_code == 200, closed.get_json()
    assert closed.get_json()["recall"]["status"] == "closed"
    assert len(closed.get_json()["closing_signatures"]) == 1
    listed = qa.get("/api/v1/recalls").get_json()
    assert [r["number"] for r in listed] == [detail["recall"]["number"]]


def test_pages_preview_open_notify_and_close_a_recall(ward, released, clients: Any) -> None:
    infusion = infuse(ward)
    donation = infusion.dose_order.dose_unit.donation
    qa = clients.web(ward.lab.qa)

    found = qa.get(f"/recalls/new?target_type=donation&target={donation.din}")
    page = found.get_data(as_text=True)
    assert found.status_code == 200, page
    assert infusion.patient.study_id in page and "Open the recall and block" in page

    bad = qa.get("/recalls/new?target_type=donation&target=X999926999999")
    assert bad.status_code in (404, 422)
    assert "DIN" in bad.get_data(as_text=True) or "check" in bad.get_data(as_text=True)

    for nonsense in ({"target_type": "nonsense", "target_id": "1"}, {"target_type": "lot"}):
        garbled = qa.post("/recalls", data={**nonsense, "reason": "Whatever it was, really."})
        assert garbled.status_code == 422
        assert "Choose what is recalled" in garbled.get_data(as_text=True)

    form = {"target_type": "donation", "target_id": str(donation.id), "password": TEST_PASSWORD}
    short = qa.post("/recalls", data={**form, "reason": "bad"})
    assert short.status_code == 422
    assert "bad" in short.get_data(as_text=True)  # what was typed is kept
    wrong = qa.post("/recalls", data={**form, "reason": "HBV NAT reactive.", "password": "nope"})
    assert wrong.status_code == 401

    opened = qa.post("/recalls", data={**form, "reason": "HBV NAT reactive (retained sample)."})
    assert opened.status_code == 302, opened.get_data(as_text=True)
    recall_page = qa.get(opened.headers["Location"]).get_data(as_text=True)
    assert "HBV NAT reactive" in recall_page and infusion.patient.study_id in recall_page
    assert "not yet" in recall_page

    recall_url = opened.headers["Location"]
    recall_id = int(recall_url.rstrip("/").rsplit("/", 1)[-1])
    refused = qa.post(
        f"/recalls/{recall_id}/close",
        data={"note": "All done here, closed.", "password": TEST_PASSWORD},
    )
    assert refused.status_code == 409 and "not yet recorded" in refused.get_data(as_text=True)

    recall = db.session.get(Recall, recall_id)
    zone = ZoneInfo(ward.lab.app.config["SITE_TIMEZONE"])
    wall_clock = recall.opened_at.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S")
    nurse = clients.web(ward.clinic.clinician)
    done = nurse.post(
        f"/recalls/{recall_id}/notifications/{infusion.patient_id}",
        data={"notified_at": wall_clock, "method": "phone", "note": "Told by Dr I."},
    )
    assert done.status_code == 302, done.get_data(as_text=True)
    twice = nurse.post(
        f"/recalls/{recall_id}/notifications/{infusion.patient_id}",
        data={"notified_at": wall_clock, "method": "phone"},
    )
    assert twice.status_code == 409 and "already recorded" in twice.get_data(as_text=True)
    assert audited("recall.notification_refused")

    closed = qa.post(
        f"/recalls/{recall_id}/close",
        data={"note": "All notified; bags destroyed.", "password": TEST_PASSWORD},
    )
    assert closed.status_code == 302, closed.get_data(as_text=True)
    final = qa.get(recall_url).get_data(as_text=True)
    assert "Closed" in final and "All notified; bags destroyed." in final


def test_trace_pages_show_the_path_and_the_patients(ward, released, clients: Any) -> None:
    infusion = infuse(ward)
    web = clients.web(ward.clinic.clinician)
    forward = web.get(f"/trace/forward/donation/{infusion.dose_order.dose_unit.donation_id}")
    assert forward.status_code == 200
    assert infusion.patient.study_id in forward.get_data(as_text=True)
    assert "Recall this" not in forward.get_data(as_text=True)  # a clinician cannot recall
    back = web.get(f"/trace/back/infusion/{infusion.id}")
    page = back.get_data(as_text=True)
    assert back.status_code == 200
    assert released.lot_number in page and "GO" in page
    assert web.get("/trace/back/infusion/999999").status_code == 404
