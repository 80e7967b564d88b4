"""The trial's data export (CDISC ODM 1.3.2 and a CSV bundle) and the DSMB summary: the ODM
validates against the schema, the bundle has every form and the dictionary, no name leaves
the site, the progress reaches 100 %, both are audited, a role without access is refused
with nothing saved, and the summary's counts by arm on the page and in the PDF."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import odmlib
import pytest
import xmlschema
from sqlalchemy import func, select

from cellchain.clinic.endpoints import endpoints
from cellchain.clinic.follow_up import adverse_events, scheduling
from cellchain.core.models import AuditEntry, User
from cellchain.core.types import utcnow
from cellchain.dosing.rechecks import rechecks
from cellchain.extensions import db
from cellchain.trial_data import dataset
from cellchain.trial_data.models import TrialDataExport
from tests.conftest import TEST_PASSWORD
from tests.support.clinic import UTC
from tests.support.follow_up import back_date, infuse
from tests.support.pdf import pages_text, squeeze

ODM_NS = "{http://www.cdisc.org/ns/odm/v1.3}"


def odm_schema() -> Any:
    """The ODM 1.3.2 schema as shipped by odmlib (with its foundation, xml.xsd, xmldsig)."""
    return xmlschema.XMLSchema(
        str(Path(odmlib.__file__).parent / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd")
    )


@pytest.fixture
def trial(clinic: Any) -> dict[str, Any]:
    """Two MSC subjects (one infused, with an adverse event and baseline endpoints) and one
    control subject; the MSC subject's second dose order was cancelled."""
    if hasattr(clinic, "randomize"):  # a signed randomization list gives the arms
        clinic.randomize("MSC", "CONTROL", "MSC")
    infused = back_date(clinic.enrol(study_id="AS-101", arm="MSC"), 10)
    control = back_date(clinic.enrol(study_id="AS-102", arm="CONTROL"), 210)
    waiting = clinic.enrol(study_id="AS-103", arm="MSC")
    infusion = infuse(clinic, infused, "D0", at=utcnow() - dt.timedelta(days=9))
    now = utcnow()
    event = adverse_events.record_adverse_event(
        db.session,
        infused,
        adverse_events.AdverseEventReport(
            onset_at=now - dt.timedelta(days=8),
            description="Fever after the infusion",
            grade=3,
            seriousness="serious",
            outcome="recovered",
            infusion_id=infusion.id,
            serious_criteria=frozenset({"hospitalisation"}),
            aware_at=now - dt.timedelta(days=8),
            term="Pyrexia",
        ),
        actor=clinic.clinician,
        now=now,
    )
    endpoints.record_endpoints(
        db.session,
        infused,
        visit="BL",
        assessed_on=infused.enrolled_at.date(),
        values={
            **{name: 4.0 for name in endpoints.BASDAI_FIELDS + endpoints.BASFI_FIELDS},
            "patient_global": 5.0,
            "crp_mg_l": 12.0,
            "esr_mm_h": 30.0,
        },
        actor=clinic.clinician,
        now=now,
        zone=UTC,
    )
    db.session.commit()
    # the month-3 re-check: first failed (ECOG 3), then passed; the pregnancy test not
    # applicable, with the reason typed
    not_applicable = rechecks.RecheckAnswer(option="not_applicable", reason="male")
    failed = clinic.recheck(
        infused,
        now=now - dt.timedelta(days=2),
        ecog=rechecks.RecheckAnswer(value=3),
        pregnancy_test=not_applicable,
    )
    passed = clinic.recheck(infused, now=now - dt.timedelta(days=1), pregnancy_test=not_applicable)
    # visits: AS-101's month 6 moved outside its window (deviation not signed yet); AS-103's
    # day 0 moved outside its window, the deviation signed by the investigator; AS-102's
    # month 6 (day 182 ± 14 of 210) recorded as missed
    today = now.date()
    m6_moved = scheduling.reschedule_visit(
        db.session,
        infused,
        visit="M6",
        planned_on=today + dt.timedelta(days=100),
        reason="Patient abroad in the summer",
        actor=clinic.clinician,
        now=now,
        zone=UTC,
    )
    d0_moved = scheduling.reschedule_visit(
        db.session,
        waiting,
        visit="D0",
        planned_on=today + dt.timedelta(days=20),
        reason="The cleanroom slot moved",
        actor=clinic.clinician,
        now=now,
        zone=UTC,
    )
    scheduling.sign_deviation(
        db.session, d0_moved, investigator=clinic.investigator, password=TEST_PASSWORD, now=now
    )
    missed = scheduling.record_missed(
        db.session,
        control,
        visit="M6",
        reason="Moved abroad, reachable by phone only",
        actor=clinic.clinician,
        now=now,
        zone=UTC,
    )
    db.session.commit()
    return {
        "infused": infused,
        "control": control,
        "waiting": waiting,
        "event": event,
        "rechecks": (failed, passed),
        "moves": (m6_moved, d0_moved),
        "missed": missed,
    }


def export(clients: Any, user: Any, fmt: str) -> tuple[dict[str, Any], bytes]:
    """Ask for, generate and download an export through the API."""
    api = clients.api(user)
    asked = api.post("/api/v1/trial-data/exports", json={"format": fmt})
    assert asked.status_code == 202, asked.get_json()
    assert asked.get_json()["status"] == "queued"
    run = api.post(f"/api/v1/trial-data/exports/{asked.get_json()['id']}/run")
    assert run.status_code == 200, run.get_json()
    done = run.get_json()
    file = api.get(f"/api/v1/trial-data/exports/{done['id']}/file")
    assert file.status_code == 200
    return done, file.data


def full_names() -> list[str]:
    return [name for name in db.session.scalars(select(User.full_name)) if name]


def count_exports() -> int:
    return db.session.scalar(select(func.count()).select_from(TrialDataExport)) or 0


# --- ODM -----------------------------------------------------------------------------------------


def test_the_odm_export_validates_against_the_odm_1_3_2_schema(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    done, xml = export(clients, clinic.investigator, "odm")
    schema = odm_schema()
    errors = [str(error) for error in schema.iter_errors(xml.decode())]
    assert errors == []
    assert done["status"] == "done" and done["percent"] == 100
    assert done["sha256"] == hashlib.sha256(xml).hexdigest()
    assert done["subjects"] == 3
    text = xml.decode()
    assert 'ODMVersion="1.3.2"' in text and 'FileType="Snapshot"' in text
    # the infused subject's data: the infusion at D0, the AE with its grade, the endpoints
    assert 'SubjectKey="AS-101"' in text
    assert trial["infused"].coi in text
    assert 'ItemOID="I.AE.TERM" Value="Pyrexia"' in text
    assert 'ItemOID="I.AE.CTCAE_GRADE" Value="3"' in text
    assert 'ItemOID="I.INFUSION.STATUS" Value="completed"' in text
    assert 'ItemOID="I.ENDPOINTS.CRP_MG_L" Value="12.0"' in text
    assert 'ItemOID="I.ENROL.ARM" Value="CONTROL"' in text


def test_a_change_that_breaks_the_schema_is_caught_by_the_validation(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    """The validation can fail: the same file without its required GlobalVariables is refused."""
    _done, xml = export(clients, clinic.investigator, "odm")
    broken = re.sub(rb"<GlobalVariables>.*?</GlobalVariables>", b"", xml, flags=re.S)
    assert not odm_schema().is_valid(broken.decode())


# --- CSV bundle ----------------------------------------------------------------------------------


def test_the_csv_bundle_has_every_form_the_dictionary_and_a_manifest(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    done, body = export(clients, clinic.investigator, "csv")
    bundle = zipfile.ZipFile(io.BytesIO(body))
    names = set(bundle.namelist())
    assert {f"{form.name.lower()}.csv" for form in dataset.FORMS} <= names
    assert {"data_dictionary.csv", "MANIFEST.txt"} <= names
    dictionary = list(csv.DictReader(io.StringIO(bundle.read("data_dictionary.csv").decode())))
    assert {row["form"] for row in dictionary} == {form.name for form in dataset.FORMS}
    grade = next(r for r in dictionary if r["form"] == "AE" and r["item"] == "ctcae_grade")
    assert grade["code_list"] == "1|2|3|4|5"
    doses = list(csv.DictReader(io.StringIO(bundle.read("dose.csv").decode())))
    assert [(d["study_id"], d["event"], d["status"]) for d in doses] == [
        ("AS-101", "D0", "infused")
    ]
    manifest = bundle.read("MANIFEST.txt").decode()
    for name in names - {"MANIFEST.txt"}:
        assert f"{hashlib.sha256(bundle.read(name)).hexdigest()}  {name}" in manifest
    assert done["sha256"] == hashlib.sha256(body).hexdigest()


def test_no_name_and_no_date_of_birth_leaves_the_site(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    _d, xml = export(clients, clinic.investigator, "odm")
    _d, body = export(clients, clinic.investigator, "csv")
    bundle = zipfile.ZipFile(io.BytesIO(body))
    texts = [xml.decode()] + [bundle.read(name).decode() for name in bundle.namelist()]
    # the searched files hold rows of the forms recorded by a person: the re-check too
    for form in (
        *("enrol", "weight", "dose", "infusion", "endpoints", "ae", "recheck"),
        *("visit", "reschedule", "deviation"),
    ):
        assert len(bundle.read(f"{form}.csv").decode().splitlines()) > 1, form
    names = full_names()
    assert "Ivan Tester" in names and "Cleo Tester" in names
    users = list(db.session.scalars(select(User.username)))
    born = trial["infused"].date_of_birth.isoformat()
    for text in texts:
        for name in names:
            assert name not in text
        for username in users:
            assert f'"{username}"' not in text and f",{username}," not in text
        assert born not in text
    enrol = list(csv.DictReader(io.StringIO(bundle.read("enrol.csv").decode())))
    assert {row["year_of_birth"] for row in enrol} == {str(trial["infused"].date_of_birth.year)}
    assert "date_of_birth" not in enrol[0]


# --- progress, audit, refusal --------------------------------------------------------------------


def test_the_page_starts_an_export_and_its_progress_reaches_100_percent(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    web = clients.web(clinic.investigator)
    page = web.get("/trial-data")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "trial_export.js" in html and "<script>" not in html  # CSP: no inline script
    asked = web.post("/trial-data/exports", data={"format": "odm", "defer": "1"})
    assert asked.status_code == 202
    state = asked.get_json()
    assert (state["status"], state["percent"]) == ("queued", 0)
    progress = web.get(state["progress_url"]).get_json()
    assert progress["status"] == "queued"
    ran = web.post(state["run_url"], headers={"Accept": "application/json"})
    assert ran.status_code == 200
    progress = web.get(state["progress_url"]).get_json()
    assert (progress["status"], progress["percent"]) == ("done", 100)
    again = web.post(state["run_url"], headers={"Accept": "application/json"})
    assert again.status_code == 409  # generated once
    download = web.get(progress["download_url"])
    assert download.status_code == 200 and download.data.startswith(b"<?xml")
    listing = web.get("/trial-data").get_data(as_text=True)
    assert f'data-export="{state["id"]}" data-status="done"' in listing


def test_the_progress_is_committed_step_by_step_while_it_runs(
    clinic: Any, trial: dict[str, Any]
) -> None:
    """Each checkpoint sees a higher percent, readable by another session (another worker)."""
    from cellchain.trial_data import exports
    from cellchain.trial_data.models import ExportFormat

    seen: list[tuple[int, str]] = []
    job = exports.request_export(
        db.session, ExportFormat.CSV, actor=clinic.investigator, now=utcnow()
    )
    db.session.commit()

    def checkpoint() -> None:
        db.session.commit()
        with db.engine.connect() as other:
            seen.append(
                tuple(  # type: ignore[arg-type]
                    other.execute(
                        select(TrialDataExport.percent, TrialDataExport.status).where(
                            TrialDataExport.id == job.id
                        )
                    ).one()
                )
            )

    exports.run_export(
        db.session,
        job,
        actor=clinic.investigator,
        clock=utcnow,
        checkpoint=checkpoint,
        protocol_code=clinic.protocol.code,
        site_name="Test site",
    )
    db.session.commit()
    percents = [percent for percent, _status in seen]
    assert percents == sorted(percents) and len(set(percents)) >= 5
    assert {status for _p, status in seen} == {"running"}
    assert (job.percent, job.status) == (100, "done")


def test_generation_and_download_are_audited_with_the_hash(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    done, body = export(clients, clinic.investigator, "csv")
    entries = {
        entry.action: entry
        for entry in db.session.scalars(
            select(AuditEntry).where(
                AuditEntry.entity_type == "trial_data_export",
                AuditEntry.entity_id == str(done["id"]),
            )
        )
    }
    assert {"trial_data.export_requested", "trial_data.exported", "trial_data.downloaded"} <= set(
        entries
    )
    digest = hashlib.sha256(body).hexdigest()
    for action in ("trial_data.exported", "trial_data.downloaded"):
        assert entries[action].actor_id == clinic.investigator.id
        assert digest in json.dumps(json.loads(entries[action].changes))


def test_a_role_without_access_is_refused_and_nothing_is_saved(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    before = count_exports()
    audit_before = db.session.scalar(select(func.count()).select_from(AuditEntry))
    tech = clinic.lab.tech
    api = clients.api(tech)
    refused = api.post("/api/v1/trial-data/exports", json={"format": "odm"})
    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert api.get("/api/v1/trial-data/exports").status_code == 403
    assert api.get("/api/v1/trial-data/dsmb-summary").status_code == 403
    web = clients.web(tech)
    assert web.get("/trial-data").status_code == 403
    assert web.post("/trial-data/exports", data={"format": "odm"}).status_code == 403
    assert web.get("/trial-data/dsmb").status_code == 403
    assert web.get("/trial-data/dsmb.pdf").status_code == 403
    assert count_exports() == before
    # logins and token creation write their own entries; no export entry was written
    assert not db.session.scalars(
        select(AuditEntry).where(AuditEntry.action.like("trial_data.%"))
    ).first()
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) >= audit_before
    # the file of someone else's export is refused too
    done, _ = export(clients, clinic.investigator, "odm")
    assert api.get(f"/api/v1/trial-data/exports/{done['id']}/file").status_code == 403
    assert web.get(f"/trial-data/exports/{done['id']}/download").status_code == 403


def test_a_bad_format_is_refused_with_422_and_nothing_saved(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    before = count_exports()
    api = clients.api(clinic.investigator)
    refused = api.post("/api/v1/trial-data/exports", json={"format": "sas"})
    assert refused.status_code == 422
    assert count_exports() == before


def test_a_file_changed_after_generation_is_not_served(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    done, _ = export(clients, clinic.investigator, "odm")
    row = db.session.get(TrialDataExport, done["id"])
    row.content = b"<tampered/>"
    db.session.commit()
    answer = clients.api(clinic.investigator).get(f"/api/v1/trial-data/exports/{done['id']}/file")
    assert answer.status_code == 409


# --- DSMB summary --------------------------------------------------------------------------------


def test_the_dsmb_summary_counts_by_arm_on_the_page_the_api_and_the_pdf(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    summary = clients.api(clinic.investigator).get("/api/v1/trial-data/dsmb-summary").get_json()
    arms = {arm["code"]: arm for arm in summary["arms"]}
    assert (arms["MSC"]["enrolled"], arms["CONTROL"]["enrolled"]) == (2, 1)
    assert arms["MSC"]["doses"]["D0"]["infused"] == 1
    assert (arms["MSC"]["serious"], arms["CONTROL"]["adverse_events"]) == (1, 0)
    assert arms["MSC"]["by_grade"]["3"] == 1
    assert summary["planned_enrolment"] == 10

    web = clients.web(clinic.investigator)
    page = web.get("/trial-data/dsmb").get_data(as_text=True)
    enrolment = page.split('id="enrolment"')[1].split("</table>")[0]
    # planned (10 at 1:1), randomized, enrolled, withdrawn
    assert re.search(
        r"<td>MSC \+ DMARDs \(MSC\)</td><td>5</td><td>2</td><td>2</td><td>0</td>", enrolment
    )
    assert re.search(r"<td>Total</td><td>10</td><td>3</td><td>3</td><td>0</td>", enrolment)

    pdf = web.get("/trial-data/dsmb.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = squeeze(" ".join(pages_text(pdf.data)))
    assert "UNBLINDED" in text
    assert "MSC + DMARDs (MSC) 5 2 2 0" in text
    assert "DMARDs only (CONTROL) 5 1 1 0" in text
    assert "3 of 10 slots used" in text
    # ordered, awaiting the check, prepared, infused, cancelled, destroyed
    assert "MSC D0 1 0 0 1 0 0" in text
    assert "AS-101" not in text  # counts only


def test_a_destroyed_dose_is_exported_as_destroyed_not_cancelled(
    clinic: Any, trial: dict[str, Any]
) -> None:
    """The table keeps a destroyed dose as cancelled; the audit trail's dose.destroyed says
    which, and the export and the summary say destroyed."""
    from cellchain.core import audit
    from cellchain.dosing.models import DoseOrder
    from cellchain.trial_data import dsmb

    order = db.session.scalars(
        select(DoseOrder).where(DoseOrder.patient_id == trial["infused"].id)
    ).one()
    extra = infuse(clinic, trial["waiting"], "D0")
    destroyed = extra.dose_order
    destroyed.status = "cancelled"
    audit.record(
        db.session,
        actor=clinic.lab.tech,
        at=utcnow(),
        action="dose.destroyed",
        entity_type="dose_order",
        entity_id=destroyed.id,
        changes={"status": ("prepared", "cancelled")},
    )
    db.session.commit()
    data = dataset.collect(
        db.session, protocol_code=clinic.protocol.code, today=utcnow().date(), zone=UTC
    )
    statuses = {r.values["dose_id"]: r.values["status"] for r in data.records_of("DOSE")}
    assert statuses == {order.id: "infused", destroyed.id: "destroyed"}
    summary = dsmb.trial_summary(db.session, protocol_code=clinic.protocol.code, now=utcnow())
    msc = next(arm for arm in summary.arms if arm.code == "MSC")
    assert (msc.dose_count("D0", "destroyed"), msc.dose_count("D0", "cancelled")) == (1, 0)


def test_a_post_thaw_count_and_its_deviation_are_exported(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    """A dose counted after thaw outside tolerance, infused on the investigator's decision
    with a deviation: the count is in POSTTHAW at its visit, the deviation in DEVIATION and
    in the summary's count."""
    from cellchain.clinic.models import PostThawCount
    from cellchain.dosing.models import DoseOrder
    from cellchain.manufacturing.models import Deviation

    order = db.session.scalars(
        select(DoseOrder).where(DoseOrder.patient_id == trial["infused"].id)
    ).one()
    now = utcnow()
    deviation = Deviation(
        category="other",
        description="Dose infused 14 % below target after its post-thaw count",
        status="open",
        opened_at=now,
        opened_by_id=clinic.investigator.id,
    )
    db.session.add(deviation)
    db.session.flush()
    db.session.add(
        PostThawCount(
            dose_order_id=order.id,
            total_cells_per_ml=4.0e6,
            viability_percent=80.0,
            place="bedside",
            method="NucleoCounter NC-200, AO/DAPI",
            counted_at=now,
            counted_by_id=clinic.clinician.id,
            recorded_at=now,
            delivered_cells=6.0e7,
            deviation_percent=-14.3,
            within_tolerance=False,
            working_json="[]",
            decision="proceed",
            decision_reason="Clinical benefit expected",
            decided_at=now,
            decided_by_id=clinic.investigator.id,
            deviation_id=deviation.id,
        )
    )
    db.session.commit()
    _done, body = export(clients, clinic.investigator, "csv")
    bundle = zipfile.ZipFile(io.BytesIO(body))
    counts = list(csv.DictReader(io.StringIO(bundle.read("postthaw.csv").decode())))
    assert [(c["study_id"], c["event"], c["within_tolerance"], c["decision"]) for c in counts] == [
        ("AS-101", "D0", "false", "proceed")
    ]
    deviations = list(csv.DictReader(io.StringIO(bundle.read("deviation.csv").decode())))
    assert [
        (d["study_id"], d["kind"], d["deviation_id"], d["dose_id"], d["visit"])
        for d in deviations
        if d["kind"] != "visit_outside_window"  # the fixture's moved visits
    ] == [("AS-101", "post_thaw_decision", str(deviation.id), str(order.id), "D0")]
    _done, xml = export(clients, clinic.investigator, "odm")
    assert odm_schema().is_valid(xml.decode())
    summary = clients.api(clinic.investigator).get("/api/v1/trial-data/dsmb-summary").get_json()
    msc = next(arm for arm in summary["arms"] if arm["code"] == "MSC")
    # with the fixture's two visits moved outside their window (one signed)
    assert (msc["deviations"], msc["deviations_open"]) == (3, 2)


def test_without_javascript_the_form_generates_the_export_and_shows_it(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    web = clients.web(clinic.investigator)
    posted = web.post("/trial-data/exports", data={"format": "csv"})
    assert posted.status_code == 302
    page = web.get(posted.headers["Location"])
    html = page.get_data(as_text=True)
    row = db.session.scalars(select(TrialDataExport).order_by(TrialDataExport.id.desc())).first()
    assert row is not None and row.status == "done"
    assert f'id="sha256">{row.sha256}<' in html
    assert 'id="download"' in html and "Generate now" not in html
    # a queued export (asked for by the page's script) offers "Generate now" on its page
    queued = web.post("/trial-data/exports", data={"format": "odm", "defer": "1"}).get_json()
    assert "Generate now" in web.get(queued["page_url"]).get_data(as_text=True)
    ran = web.post(queued["run_url"])
    assert ran.status_code == 302 and ran.headers["Location"].endswith(queued["page_url"])


# --- pre-infusion re-checks and randomization ----------------------------------------------------


def test_each_pre_infusion_recheck_is_exported_at_its_infusion_visit(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    """Both month-3 re-checks (the failed one and the one that passed) are in RECHECK at M3,
    one row per item with its answer or value, met or not, the re-check's result and time;
    the dictionary lists every item; the ODM holds them and stays valid."""
    failed, passed = trial["rechecks"]
    _done, body = export(clients, clinic.investigator, "csv")
    bundle = zipfile.ZipFile(io.BytesIO(body))
    rows = list(csv.DictReader(io.StringIO(bundle.read("recheck.csv").decode())))
    items = [item["code"] for item in clinic.protocol.parameters["pre_infusion_recheck"]["items"]]
    assert [(r["study_id"], r["event"], r["repeat"]) for r in rows] == [
        ("AS-101", "M3", str(n)) for n in range(1, 2 * len(items) + 1)
    ]
    first = {r["item"]: r for r in rows if r["recheck_id"] == str(failed.id)}
    second = {r["item"]: r for r in rows if r["recheck_id"] == str(passed.id)}
    assert list(first) == list(second) == items
    assert {r["passed"] for r in first.values()} == {"false"}
    assert {r["passed"] for r in second.values()} == {"true"}
    assert (first["ecog"]["value"], first["ecog"]["value_unit"], first["ecog"]["met"]) == (
        "3.0",
        "ECOG score",
        "false",
    )
    assert (second["ecog"]["value"], second["ecog"]["met"]) == ("1.0", "true")
    assert (second["creatinine"]["value"], second["creatinine"]["value_unit"]) == (
        "80.0",
        "µmol/L",
    )
    assert (second["no_active_infection"]["answer"], second["no_active_infection"]["met"]) == (
        "true",
        "true",
    )
    pregnancy = second["pregnancy_test"]
    assert (pregnancy["option"], pregnancy["reason"], pregnancy["met"]) == (
        "not_applicable",
        "male",
        "true",
    )
    assert first["ecog"]["recorded_at"] == dataset.text_value(failed.recorded_at)
    assert "recorded_by" not in rows[0]
    dictionary = list(csv.DictReader(io.StringIO(bundle.read("data_dictionary.csv").decode())))
    listed = [r["item"] for r in dictionary if r["form"] == "RECHECK"]
    assert listed == [item.name for item in dataset.form_named("RECHECK").items] and "met" in listed

    _done, xml = export(clients, clinic.investigator, "odm")
    assert [str(e) for e in odm_schema().iter_errors(xml.decode())] == []
    root = ET.fromstring(xml)
    m3 = root.find(
        f".//{ODM_NS}SubjectData[@SubjectKey='AS-101']/{ODM_NS}StudyEventData"
        f"[@StudyEventOID='SE.M3']/{ODM_NS}FormData[@FormOID='F.RECHECK']"
    )
    assert m3 is not None and len(m3) == 2 * len(items)
    assert 'ItemOID="I.RECHECK.ITEM" Value="ecog"' in xml.decode()
    assert (
        root.find(f".//{ODM_NS}StudyEventDef[@OID='SE.M3']/{ODM_NS}FormRef[@FormOID='F.RECHECK']")
        is not None
    )


def test_the_enrolment_form_carries_the_randomization_number_and_no_unused_slot_leaves(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    """Each subject's randomization number is the slot drawn at enrolment; the unused slots
    of the signed list (R-004 to R-010) are in neither file."""
    from cellchain.dosing import randomization
    from cellchain.dosing.models import RandomizationSlot

    schedule = randomization.active_schedule(db.session, clinic.protocol.code)
    assert schedule is not None
    drawn = {
        slot.patient_id: slot
        for slot in db.session.scalars(
            select(RandomizationSlot).where(RandomizationSlot.schedule_id == schedule.id)
        )
        if slot.patient_id is not None
    }
    expected = {
        patient.study_id: (drawn[patient.id].randomization_number, drawn[patient.id].arm)
        for patient in (trial["infused"], trial["control"], trial["waiting"])
    }
    assert sorted(number for number, _arm in expected.values()) == ["R-001", "R-002", "R-003"]
    _d, xml = export(clients, clinic.investigator, "odm")
    _d, body = export(clients, clinic.investigator, "csv")
    bundle = zipfile.ZipFile(io.BytesIO(body))
    enrol = list(csv.DictReader(io.StringIO(bundle.read("enrol.csv").decode())))
    assert {r["study_id"]: (r["randomization_number"], r["arm"]) for r in enrol} == expected
    assert 'ItemOID="I.ENROL.RANDOMIZATION_NUMBER" Value="R-001"' in xml.decode()
    texts = [xml.decode()] + [bundle.read(name).decode() for name in bundle.namelist()]
    unused = [s.randomization_number for s in schedule.slots if s.patient_id is None]
    assert len(unused) == 7
    for text in texts:
        for number in unused:
            assert number not in text


def test_the_dsmb_summary_shows_planned_and_randomized_by_arm_from_the_signed_schedule(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    """Planned by arm is the protocol's planned enrolment split by its ratio (10 at 1:1);
    randomized counts the signed schedule's used slots by the arm each gave; the schedule
    itself is counts only (never an unused slot's arm)."""
    summary = clients.api(clinic.investigator).get("/api/v1/trial-data/dsmb-summary").get_json()
    arms = {arm["code"]: arm for arm in summary["arms"]}
    assert [(a["planned"], a["randomized"], a["enrolled"]) for a in arms.values()] == [
        (5, 2, 2),
        (5, 1, 1),
    ]
    assert (summary["schedule"]["method"], summary["schedule"]["planned"]) == ("imported", 10)
    assert summary["schedule"]["used"] == 3
    assert "slots" not in summary["schedule"]
    page = clients.web(clinic.investigator).get("/trial-data/dsmb").get_data(as_text=True)
    assert "3 of 10 slots used" in page.split('id="randomization"')[1].split("</p>")[0]


def test_without_a_signed_schedule_the_summary_says_so(clinic: Any, clients: Any) -> None:
    summary = clients.api(clinic.investigator).get("/api/v1/trial-data/dsmb-summary").get_json()
    assert summary["schedule"] is None
    page = clients.web(clinic.investigator).get("/trial-data/dsmb").get_data(as_text=True)
    assert "Randomization: no schedule signed." in page


# --- visits: rescheduled, missed, their protocol deviations --------------------------------------


def test_visits_reschedules_missed_visits_and_their_deviations_are_exported(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    """VISIT holds each visit's planned day, window and status (done, missed with its reason,
    not applicable, rescheduled, deviation pending); RESCHEDULE each move; DEVIATION each move
    outside the protocol window, signed or still open; the ODM stays valid."""
    m6_moved, d0_moved = trial["moves"]
    today = utcnow().date()
    _done, body = export(clients, clinic.investigator, "csv")
    bundle = zipfile.ZipFile(io.BytesIO(body))

    def rows(name: str) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(bundle.read(f"{name}.csv").decode())))

    visits = {(r["study_id"], r["event"]): r for r in rows("visit")}
    assert {event for (study_id, event) in visits if study_id == "AS-101"} == {
        "D0",
        "M3",
        "M6",
        "M12",
    }
    d0 = visits[("AS-101", "D0")]
    # day 0 has no window (± 0 days): infused the day after the day planned
    assert (d0["status"], d0["done_on"], d0["outside_window"]) == (
        "done",
        (today - dt.timedelta(days=9)).isoformat(),
        "true",
    )
    m6 = visits[("AS-101", "M6")]
    assert (m6["rescheduled"], m6["deviation_pending"], m6["planned_on"]) == (
        "true",
        "true",
        (today + dt.timedelta(days=100)).isoformat(),
    )
    assert m6["status"] == "planned" and m6["done_on"] == ""
    missed = visits[("AS-102", "M6")]
    assert (missed["status"], missed["missed_reason"]) == (
        "missed",
        "Moved abroad, reachable by phone only",
    )
    assert missed["missed_recorded_at"] == dataset.text_value(trial["missed"].recorded_at)
    assert visits[("AS-102", "D0")]["status"] == "not_applicable"
    moved = visits[("AS-103", "D0")]
    assert (moved["planned_on"], moved["rescheduled"], moved["deviation_pending"]) == (
        (today + dt.timedelta(days=20)).isoformat(),
        "true",
        "false",
    )
    enrol = {r["study_id"]: r for r in rows("enrol")}
    assert enrol["AS-103"]["day0"] == (today + dt.timedelta(days=20)).isoformat()

    moves = [
        (r["study_id"], r["event"], r["reason"], r["outside_protocol"]) for r in rows("reschedule")
    ]
    assert moves == [
        ("AS-101", "M6", "Patient abroad in the summer", "true"),
        ("AS-103", "D0", "The cleanroom slot moved", "true"),
    ]
    signed = next(r for r in rows("reschedule") if r["study_id"] == "AS-103")
    assert signed["deviation_signed_at"] == dataset.text_value(d0_moved.deviation_signed_at)
    assert signed["previous_on"] == today.isoformat() and signed["superseded"] == "false"

    deviations = [
        (r["study_id"], r["kind"], r["visit"], r["reschedule_id"], r["status"])
        for r in rows("deviation")
    ]
    assert deviations == [
        ("AS-101", "visit_outside_window", "M6", str(m6_moved.id), "open"),
        ("AS-103", "visit_outside_window", "D0", str(d0_moved.id), "signed"),
    ]
    dictionary = list(csv.DictReader(io.StringIO(bundle.read("data_dictionary.csv").decode())))
    for form in ("VISIT", "RESCHEDULE", "DEVIATION"):
        assert [r["item"] for r in dictionary if r["form"] == form] == [
            item.name for item in dataset.form_named(form).items
        ]
    status = next(r for r in dictionary if r["form"] == "VISIT" and r["item"] == "status")
    assert status["code_list"] == "done|not_applicable|missed|planned|due|overdue"

    _done, xml = export(clients, clinic.investigator, "odm")
    assert [str(e) for e in odm_schema().iter_errors(xml.decode())] == []
    assert 'ItemOID="I.VISIT.STATUS" Value="missed"' in xml.decode()
    assert 'ItemOID="I.DEVIATION.KIND" Value="visit_outside_window"' in xml.decode()


def test_a_superseded_unsigned_move_is_no_deviation_and_the_summary_counts_visit_deviations(
    clinic: Any, trial: dict[str, Any], clients: Any
) -> None:
    """AS-101's month 6 moved again, back inside its window: the first move (never signed)
    is no deviation any more, and stays in RESCHEDULE as superseded. The DSMB summary counts
    the visits' deviations (signed; still open) and the missed visits by arm."""
    summary = clients.api(clinic.investigator).get("/api/v1/trial-data/dsmb-summary").get_json()
    arms = {arm["code"]: arm for arm in summary["arms"]}
    assert (arms["MSC"]["deviations"], arms["MSC"]["deviations_open"]) == (2, 1)
    assert (arms["MSC"]["missed_visits"], arms["CONTROL"]["missed_visits"]) == (0, 1)
    page = clients.web(clinic.investigator).get("/trial-data/dsmb").get_data(as_text=True)
    table = page.split('id="deviations"')[1].split("</table>")[0]
    assert re.search(r"<td>MSC</td><td>2</td><td>1</td><td>0</td>", table)
    assert re.search(r"<td>CONTROL</td><td>0</td><td>0</td><td>1</td>", table)

    infused = trial["infused"]
    first_infusion = utcnow().date() - dt.timedelta(days=9)
    scheduling.reschedule_visit(
        db.session,
        infused,
        visit="M6",
        planned_on=first_infusion + dt.timedelta(days=185),
        reason="Back from abroad earlier",
        actor=clinic.clinician,
        now=utcnow(),
        zone=UTC,
    )
    db.session.commit()
    _done, body = export(clients, clinic.investigator, "csv")
    bundle = zipfile.ZipFile(io.BytesIO(body))
    moves = list(csv.DictReader(io.StringIO(bundle.read("reschedule.csv").decode())))
    m6 = [
        (r["repeat"], r["outside_protocol"], r["superseded"]) for r in moves if r["event"] == "M6"
    ]
    assert m6 == [("1", "true", "true"), ("2", "false", "false")]
    deviations = list(csv.DictReader(io.StringIO(bundle.read("deviation.csv").decode())))
    assert [(d["study_id"], d["status"]) for d in deviations] == [("AS-103", "signed")]
    summary = clients.api(clinic.investigator).get("/api/v1/trial-data/dsmb-summary").get_json()
    msc = next(arm for arm in summary["arms"] if arm["code"] == "MSC")
    assert (msc["deviations"], msc["deviations_open"]) == (1, 0)


@pytest.mark.postgres_only
def test_the_data_are_read_in_one_snapshot_while_the_clinic_writes(
    clinic: Any, trial: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under PostgreSQL's default READ COMMITTED each of ``collect``'s queries would see what
    others committed meanwhile; the export reads in one REPEATABLE READ transaction."""
    from cellchain.trial_data import dataset, exports
    from cellchain.trial_data.models import ExportFormat

    levels: list[str] = []
    collect = dataset.collect

    def recording(session: Any, **kwargs: Any) -> Any:
        levels.append(session.connection().get_isolation_level())
        return collect(session, **kwargs)

    monkeypatch.setattr(dataset, "collect", recording)
    job = exports.request_export(
        db.session, ExportFormat.ODM, actor=clinic.investigator, now=utcnow()
    )
    db.session.commit()
    exports.run_export(
        db.session,
        job,
        actor=clinic.investigator,
        clock=utcnow,
        checkpoint=db.session.commit,
        protocol_code=clinic.protocol.code,
        site_name="Test site",
    )
    db.session.commit()
    assert levels == ["REPEATABLE READ"] and job.status == "done"
