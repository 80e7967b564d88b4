"""The chain-of-identity report: each infusion from the bag back to the donor, in order, with
every signature manifested, and a signature shown INVALID once its signed content changed
(service, page, PDF and API)."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from sqlalchemy import Update, update

from cellchain.clinic.bedside import infusions
from cellchain.core.identifiers import parse_identifier
from cellchain.core.types import utcnow
from cellchain.donors.models import EligibilityDetermination
from cellchain.dosing.models import DoseOrder
from cellchain.extensions import db
from cellchain.quality.models import LotDisposition
from cellchain.traceability.coi import coi
from cellchain.traceability.coi.coi import INVALID, VALID
from tests.support.pdf import pages_text, squeeze
from tests.support.recalls import infuse
from tests.support.tamper import outside_the_trail
from tests.support.zones import ZURICH

SIGNATURE_ROW = re.compile(r'<tr class="sig[^"]*" data-part="([\w-]+)" data-status="(\w+)"')


def report_of(patient: Any, zone: ZoneInfo = ZURICH) -> coi.CoiReport:
    return coi.patient_report(db.session, patient, zone=zone)


def statuses(part: coi.CoiInfusion) -> dict[str, list[str]]:
    """Each signed record of an infusion → the status of each of its signatures."""
    assert part.verification is not None
    return {
        "lot-release": [s.status for lot in part.lots for s in lot.signatures],
        "eligibility": [s.status for s in part.donation.signatures],
        "second-check": [s.status for s in part.dose.signatures],
        "bedside": [s.status for s in part.verification.signatures],
    }


# --- the service --------------------------------------------------------------------------------


def test_an_infusion_reads_from_its_bags_back_to_the_donor_with_every_signature(
    ward, infused, released
):
    infusion, _waiting = infused
    order, patient = infusion.dose_order, infusion.patient
    donation = order.dose_unit.donation
    report = report_of(patient)

    assert report.patient.study_id == patient.study_id
    assert report.patient.coi.code == patient.coi
    assert report.patient.coi.display == parse_identifier(patient.coi).display
    assert report.patient.protocol == "NCT01420432 v1"
    assert report.patient.arm_name == "MSC + DMARDs"
    assert report.zone == "Europe/Zurich"
    [part] = report.infusions
    assert (part.number, part.visit, part.infusion.id) == (1, "D0", infusion.id)

    # the prepared dose and its bags, codes with their check character, and their lot
    assert part.dose_unit is not None and part.dose_unit.code == order.dose_unit.code
    assert part.dose_unit.display.endswith(f"[{order.dose_unit.code[-1]}]")
    assert [b.code.code for b in part.bags] == [b.unit.code for b in order.bags]
    assert {b.lot_number for b in part.bags} == {released.lot_number}
    assert [b.volume_ml for b in part.bags] == [b.volume_ml for b in order.bags]

    # the lot and QA's release
    [lot] = part.lots
    assert (lot.lot_number, lot.decision) == (released.lot_number, "released")
    [release] = lot.signatures
    assert release.printed_name == ward.lab.qa.full_name and release.meaning.startswith("approval")

    # the donation: the DIN ends with its check character (K), and the eligibility
    assert part.donation.din.code == donation.din
    assert parse_identifier(part.donation.din.code).check == donation.din[-1]
    assert part.donation.din.display.endswith(f"[{donation.din[-1]}]")
    assert part.donation.eligibility == "eligible"
    assert [s.meaning for s in part.donation.signatures] == [
        "responsibility: donor eligibility determination: eligible"
    ]

    # the dose arithmetic as ordered, and the independent second check
    dose = part.dose
    assert dose.working == order.working and len(dose.working) >= 4
    assert dose.working[0].startswith("target cells = ")
    assert (dose.target_cells, dose.delivered_cells) == (order.target_cells, order.delivered_cells)
    assert dose.volume_ml == order.volume_ml == 15.1
    assert dose.weight_kg == 70.0
    assert dose.deviation_text == f"{order.deviation_percent:+.2f} %"
    assert dose.target_cells_text == "7.00 × 10⁷"
    [second] = dose.signatures
    assert second.printed_name == ward.lab.qa.full_name
    assert second.meaning == "verification: dose independently second-checked"

    # shipment, receipt and thaw
    assert part.shipment is not None and part.shipment.received_by is not None
    assert part.shipment.status == "received"
    assert [t.code.code for t in part.thaws] == [b.unit.code for b in order.bags]

    # the go the infusion started from: every check, and two people's signatures
    verification = part.verification
    assert verification is not None and verification.verdict == "GO"
    go = infusion.bedside_check
    assert [c.title for c in verification.checks] == [c["title"] for c in go.checks]
    assert all(c.result == "pass" for c in verification.checks)
    assert {s.printed_name for s in verification.signatures} == {
        ward.clinic.clinician.full_name,
        ward.nurse.full_name,
    }
    assert [(o.kind, o.label) for o in verification.others] == [
        ("recheck", "re-check at start: GO")
    ]

    # the infusion record
    assert part.infusion.administered_by.startswith(ward.clinic.clinician.full_name)
    assert part.infusion.reaction == "not yet recorded (infusion running)"

    # every signature manifested and valid
    assert statuses(part) == {
        "lot-release": [VALID],
        "eligibility": [VALID],
        "second-check": [VALID],
        "bedside": [VALID, VALID],
    }
    assert (report.signature_count, report.invalid_count) == (5, 0)
    assert report.summary == "1 infusion, 5 signatures: all valid."


def test_times_are_shown_in_the_zone_asked_for(ward, infused):
    infusion, _ = infused
    zurich = report_of(infusion.patient, ZURICH).infusions[0]
    utc = report_of(infusion.patient, ZoneInfo("UTC")).infusions[0]
    assert zurich.infusion.started_at.at == infusion.started_at
    assert zurich.infusion.started_at.at.tzinfo == ZURICH
    local = infusion.started_at.astimezone(ZURICH)
    offset = "+01:00" if local.utcoffset() == dt.timedelta(hours=1) else "+02:00"
    # the offset, never the abbreviation (CET names one zone; CST three)
    assert zurich.infusion.started_at.text == local.strftime("%Y-%m-%d %H:%M ") + offset
    assert utc.infusion.started_at.text.endswith(" +00:00")
    signed = zurich.dose.signatures[0].signed_at
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0[12]:00", signed.text)


def test_infusions_are_read_in_the_order_they_started(ward):
    first = infuse(ward)
    patient = first.patient
    # three months on: the first infusion started 91 days ago, so Month 3 is open today
    first.started_at -= dt.timedelta(days=91)
    if first.ended_at is not None:
        first.ended_at -= dt.timedelta(days=91)
    db.session.commit()
    ward.clinic.weigh(patient, 71.0, hours_ago=0)  # a fresh weight for the new dose
    order = ward.prepared(patient, visit="M3")
    ward.receive(ward.ship(order))
    ward.thaw(order)
    started = ward.start(ward.sign(ward.verify(patient, order)))
    second = started.infusion
    assert second is not None, started

    report = report_of(patient)
    assert [(p.number, p.visit) for p in report.infusions] == [(1, "D0"), (2, "M3")]
    assert report.infusions[1].dose.order_id == order.id
    assert report.signature_count == 10

    # by the time they started, not by the order they were recorded in
    first.started_at = second.started_at + dt.timedelta(minutes=5)
    db.session.commit()
    assert [p.visit for p in report_of(patient).infusions] == ["M3", "D0"]


def test_stops_recorded_for_the_dose_are_listed_beside_the_go(ward):
    patient, order = ward.at_bedside()
    stranger = ward.patient()
    stop = ward.verify(stranger, order)  # the wrong wristband with this dose's label
    assert not stop.go
    infusion = ward.start(ward.sign(ward.verify(patient, order))).infusion
    assert infusion is not None

    verification = report_of(patient).infusions[0].verification
    assert verification is not None and verification.verdict == "GO"
    assert [(o.kind, o.verdict) for o in verification.others] == [
        ("stop", "STOP"),
        ("recheck", "GO"),
    ]
    wrong = verification.others[0]
    assert wrong.wristband == stranger.study_id
    assert "Same patient as the dose order" in wrong.failed
    # the stranger received nothing: their report is empty
    assert report_of(stranger).empty


def test_the_infusion_record_shows_the_end_volume_rate_and_reaction(ward, infused):
    infusion, _ = infused
    ended_at = utcnow()
    infusions.end(
        db.session,
        infusion,
        infusions.InfusionEnd(
            volume_infused_ml=15.1,
            rate_ml_per_h=30.0,
            reaction="Mild chills at 20 min, resolved without treatment.",
            ended_at=ended_at,
        ),
        actor=ward.clinic.clinician,
        now=utcnow(),
    )
    db.session.commit()
    record = report_of(infusion.patient, ZoneInfo("UTC")).infusions[0].infusion
    assert record.status == "completed"
    assert record.ended_at is not None and record.ended_at.at == ended_at
    assert (record.volume_infused_ml, record.rate_ml_per_h) == (15.1, 30.0)
    assert record.reaction == "Mild chills at 20 min, resolved without treatment."
    assert record.administered_by == f"{ward.clinic.clinician.full_name} (cleo)"


def test_a_patient_without_an_infusion_gets_an_empty_report(ward, infused):
    _infusion, waiting = infused  # a dose prepared, never infused
    report = report_of(waiting.patient)
    assert report.empty and report.infusions == []
    assert report.patient.study_id == waiting.patient.study_id
    assert report.summary == f"No infusion is recorded for {waiting.patient.study_id}."
    assert (report.signature_count, report.invalid_count) == (0, 0)


# --- tampering ----------------------------------------------------------------------------------

#: a change made straight in the database to content a signature covers → the record whose
#: signature must show INVALID, and the PDF section it is printed in (up to the next one)
TAMPERING: dict[str, tuple[Callable[[Any], Update], str, str]] = {
    "second-check": (
        lambda infusion: (
            update(DoseOrder)
            .where(DoseOrder.id == infusion.dose_order_id)
            .values(volume_ml=DoseOrder.volume_ml + 1)
        ),
        "Dose arithmetic and second check",
        "Shipment and receipt",
    ),
    "lot-release": (
        lambda infusion: update(LotDisposition).values(reason="Edited after the release."),
        "and its release",
        "Donation and donor eligibility",
    ),
    "eligibility": (
        lambda infusion: update(EligibilityDetermination).values(reason="Edited afterwards."),
        "Donation and donor eligibility",
        "Dose arithmetic and second check",
    ),
}


def tamper(infusion: Any, part: str) -> None:
    db.session.execute(outside_the_trail(TAMPERING[part][0](infusion)))
    db.session.commit()
    db.session.expire_all()


@pytest.mark.parametrize("tampered", list(TAMPERING))
def test_signed_content_changed_in_the_database_shows_that_signature_invalid(
    ward, infused, tampered
):
    infusion, _ = infused
    before = statuses(report_of(infusion.patient).infusions[0])
    assert all(status == VALID for found in before.values() for status in found)

    tamper(infusion, tampered)
    report = report_of(infusion.patient)
    after = statuses(report.infusions[0])
    assert after[tampered] == [INVALID]
    assert {part: found for part, found in after.items() if part != tampered} == {
        part: found for part, found in before.items() if part != tampered
    }
    assert report.invalid_count == 1
    assert "1 no longer valid" in report.summary
    [sig] = [s for s in report.infusions[0].signatures if not s.valid]
    assert sig.status == "INVALID — signed content changed"


@pytest.mark.parametrize("tampered", list(TAMPERING))
def test_the_page_and_the_pdf_mark_the_tampered_signature_invalid(ward, infused, clients, tampered):
    infusion, _ = infused
    tamper(infusion, tampered)
    web = clients.web(ward.lab.qa)

    page = web.get(f"/patients/{infusion.patient_id}/coi-report")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    rows = SIGNATURE_ROW.findall(html)
    # the tampered record's signature, and only that one, is invalid
    expected = [
        (part, "invalid" if part == tampered else "valid")
        for part in ("lot-release", "eligibility", "second-check", "bedside", "bedside")
    ]
    assert sorted(rows) == sorted(expected)
    assert html.count(INVALID) == 1

    pdf = web.get(f"/patients/{infusion.patient_id}/coi-report.pdf")
    assert pdf.status_code == 200
    text = squeeze(" ".join(pages_text(pdf.data)))
    assert text.count(INVALID) == 1
    assert len(re.findall(r"(?<!IN)VALID", text)) == 4
    _update, start, end = TAMPERING[tampered]
    section = text[text.index(start) : text.index(end, text.index(start))]
    assert INVALID in section
    assert "1 signature INVALID" in text  # every page's header says so


# --- over HTTP ----------------------------------------------------------------------------------


def test_the_page_shows_the_report_and_links_the_pdf(ward, infused, clients):
    infusion, _ = infused
    order = infusion.dose_order
    din = order.dose_unit.donation.din
    web = clients.web(ward.clinic.clinician)

    patient_page = web.get(f"/patients/{infusion.patient_id}").get_data(as_text=True)
    assert f'href="/patients/{infusion.patient_id}/coi-report"' in patient_page
    assert "Chain-of-identity report" in patient_page

    response = web.get(f"/patients/{infusion.patient_id}/coi-report")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'href="/patients/{infusion.patient_id}/coi-report.pdf"' in html
    assert infusion.patient.study_id in html
    assert f'{din[:-1]}<span class="k">{din[-1]}</span>' in html  # the DIN, K boxed
    assert order.bags[0].unit.code[:-1] in html
    assert order.working[0] in html
    # the print layout: a stylesheet of its own (the Content-Security-Policy allows no
    # inline style), which holds the print rules
    assert 'href="/static/coi_report.css"' in html
    assert "@media print" in web.get("/static/coi_report.css").get_data(as_text=True)
    assert html.count(VALID) == 5 and INVALID not in html
    # never a date of birth (the report names the patient by study ID and COI only)
    assert infusion.patient.date_of_birth.isoformat() not in html


def test_the_pdf_is_an_a4_document_naming_the_patient_and_the_din(ward, infused, clients):
    infusion, _ = infused
    order = infusion.dose_order
    response = clients.web(ward.lab.tech).get(f"/patients/{infusion.patient_id}/coi-report.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    assert "coi-report.pdf" in response.headers["Content-Disposition"]
    reader = PdfReader(io.BytesIO(response.data))
    width, height = reader.pages[0].mediabox.width, reader.pages[0].mediabox.height
    assert (round(float(width)), round(float(height))) == (595, 842)  # A4 in points
    text = squeeze(" ".join(pages_text(response.data)))
    assert infusion.patient.study_id in text
    assert parse_identifier(order.dose_unit.donation.din).display in text
    assert parse_identifier(order.bags[0].unit.code).display in text
    assert "verification: dose independently second-checked" in text
    assert text.count(VALID) == 5 and INVALID not in text
    assert "Page 1 of" in text


def test_a_patient_without_infusions_gets_an_empty_page_pdf_and_json(ward, infused, clients):
    _infusion, waiting = infused
    patient = waiting.patient
    web = clients.web(ward.clinic.clinician)

    page = web.get(f"/patients/{patient.id}/coi-report")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="coi-empty"' in html
    assert f"No infusion is recorded for {patient.study_id}" in html

    pdf = web.get(f"/patients/{patient.id}/coi-report.pdf")
    assert pdf.status_code == 200
    assert "No infusion is recorded" in squeeze(" ".join(pages_text(pdf.data)))

    body = clients.api(ward.clinic.clinician).get(f"/api/v1/patients/{patient.id}/coi-report")
    assert body.status_code == 200
    assert body.get_json()["empty"] is True and body.get_json()["infusions"] == []


def test_the_api_returns_the_report_and_404_for_an_unknown_patient(ward, infused, clients):
    infusion, _ = infused
    api = clients.api(ward.lab.qa)
    response = api.get(f"/api/v1/patients/{infusion.patient_id}/coi-report")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["patient"]["study_id"] == infusion.patient.study_id
    assert body["patient"]["coi"]["code"] == infusion.patient.coi
    assert "date_of_birth" not in body["patient"]
    [part] = body["infusions"]
    assert part["donation"]["din"]["code"] == infusion.dose_order.dose_unit.donation.din
    assert part["dose"]["working"] == infusion.dose_order.working
    assert [s["status"] for s in part["verification"]["signatures"]] == [VALID, VALID]
    assert part["dose"]["signatures"][0]["valid"] is True
    started = dt.datetime.fromisoformat(part["infusion"]["started_at"]["at"])
    assert started == infusion.started_at
    assert (body["signature_count"], body["invalid_count"], body["empty"]) == (5, 0, False)

    tamper(infusion, "second-check")
    tampered = api.get(f"/api/v1/patients/{infusion.patient_id}/coi-report").get_json()
    signature = tampered["infusions"][0]["dose"]["signatures"][0]
    assert (signature["valid"], signature["status"]) == (False, INVALID)
    assert tampered["invalid_count"] == 1

    missing = api.get("/api/v1/patients/999999/coi-report")
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"
    assert missing.get_json()["status"] == 404


def test_an_unknown_patient_has_no_page(ward, clients):
    web = clients.web(ward.clinic.clinician)
    assert web.get("/patients/999999/coi-report").status_code == 404
    assert web.get("/patients/999999/coi-report.pdf").status_code == 404
