"""The site invariant on the audit trail (docs/sites.md): an investigator of site B reads the
whole trail — the review page with its record-state entries shown, the page's CSV, the API
and the API's CSV, every page — and never reads site A's patient's study ID, chain of
identity, nor the code of its prepared dose, whatever the record type of the entry (patient,
dose, unit, identifier, label print, thaw, bedside check, infusion, adverse event, shipment,
the transaction's record states, a recall's opening and its notification of the patient);
asked for by record, no entry of the dose's units (the dose unit and its bags), of their
identifiers and label prints, nor of a trial-data export of site A's investigator. A QA
user (facility-wide) reads them all, so the check can fail."""

# ruff: noqa: F811  (the two_sites fixture, imported, is a parameter of the tests)
from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import or_, select

from cellchain.clinic.bedside.doses import units_of_dose
from cellchain.core.models import AuditEntry
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.labels.models import LabelPrint
from cellchain.sites import scope
from cellchain.sites import service as sites
from cellchain.traceability.models import RecallTarget
from cellchain.traceability.recalls import recalls
from cellchain.trial_data import exports
from cellchain.trial_data.models import ExportFormat, TrialDataExport
from tests.sites.test_site_scope import two_sites  # noqa: F401  (a fixture)
from tests.support.recalls import open_recall
from tests.support.ward import Ward

PAGE_SIZE = 500


def _page_texts(client: Any) -> list[str]:
    """Every page of the review page, its record-state entries shown (the box ticked)."""
    texts, page = [], 1
    while True:
        response = client.get(
            "/audit", query_string={"states": "1", "page": page, "page_size": PAGE_SIZE}
        )
        assert response.status_code == 200
        texts.append(response.get_data(as_text=True))
        pages = re.search(r'data-pages="(\d+)"', texts[-1])
        assert pages is not None
        if page >= int(pages.group(1)):
            return texts
        page += 1


def _api_texts(client: Any) -> tuple[list[str], int]:
    """Every page of ``GET /api/v1/audit``, and the total its paging header announces."""
    texts, page, total = [], 1, 0
    while True:
        response = client.get("/api/v1/audit", query_string={"page": page, "page_size": PAGE_SIZE})
        assert response.status_code == 200
        texts.append(response.get_data(as_text=True))
        paging = json.loads(response.headers["X-Pagination"])
        total = paging["total"]
        if page >= paging["total_pages"]:
            return texts, total
        page += 1


def _everything(clients: Any, user: Any) -> dict[str, str]:
    """The whole trail as ``user`` reads it, by each way of reading it."""
    pages, api = clients.web(user), clients.api(user)
    api_pages, _total = _api_texts(api)
    return {
        "page": "\n".join(_page_texts(pages)),
        "page CSV": pages.get("/audit/export.csv").get_data(as_text=True),
        "API": "\n".join(api_pages),
        "API CSV": api.get("/api/v1/audit/export.csv").get_data(as_text=True),
    }


def _site_a_flow(ward: Ward, patient: Any, lot: Any) -> None:
    """Site A's patient infused (the fixture: dose, labels, shipment, thaw, bedside check,
    infusion, adverse event), a trial-data export of site A's investigator, and a recall of
    the lot its dose came from (whose opening names the patient) with its notification."""
    investigator = ward.clinic.investigator
    export = exports.request_export(db.session, ExportFormat.CSV, actor=investigator, now=utcnow())
    db.session.commit()
    exports.run_export(
        db.session,
        export,
        actor=investigator,
        clock=utcnow,
        checkpoint=db.session.commit,
        site_name="Test site",
    )
    db.session.commit()
    opened = open_recall(ward, RecallTarget.LOT, lot.id)
    recalls.record_notification(
        db.session,
        recalls.get_notification(db.session, opened.recall, patient.id),
        notified_at=utcnow(),
        method="phone",
        note=None,
        actor=investigator,
        now=utcnow(),
    )
    db.session.commit()


def _secrets(two: dict[str, Any]) -> dict[str, str]:
    """What site B must never read: the patient's study ID and COI and the code of its
    prepared dose (its bags' codes are the lot's too, named by the lot's own entries)."""
    patient, order = two["patient"], two["order"]
    return {"study ID": patient.study_id, "COI": patient.coi, "dose unit": order.dose_unit.code}


def _records(two: dict[str, Any]) -> list[tuple[str, str]]:
    """Site A's records whose entries site B must not read, by record type and id."""
    patient, order = two["patient"], two["order"]
    units = units_of_dose(order)
    found = [("patient", str(patient.id)), ("dose_order", str(order.id))]
    found += [("unit", str(unit.id)) for unit in units]
    found += [("identifier", code) for code in (patient.coi, *(unit.code for unit in units))]
    prints = db.session.scalars(
        select(LabelPrint.id).where(
            or_(LabelPrint.patient_id == patient.id, LabelPrint.unit_id.in_(u.id for u in units))
        )
    ).all()
    assert prints  # the dose's label and its bags' labels
    found += [("label_print", str(id_)) for id_ in prints]
    export = db.session.scalars(select(TrialDataExport.id)).one()
    return [*found, ("trial_data_export", str(export))]


def _entries_of(client: Any, record: tuple[str, str]) -> list[Any]:
    response = client.get(
        "/api/v1/audit", query_string={"entity_type": record[0], "entity_id": record[1]}
    )
    assert response.status_code == 200
    return list(response.get_json())


def _leaking_entries(site_id: int, secrets: dict[str, str]) -> list[str]:
    """The entries a user of ``site_id`` reads that name a secret (a failure's detail)."""
    with scope.restricted_to(frozenset({site_id})):
        entries = db.session.query(AuditEntry).all()
    return [
        f"#{e.seq} {e.entity_type} {e.entity_id} {e.action}: {what}"
        for e in entries
        for what, secret in secrets.items()
        if secret in f"{e.entity_id} {e.changes} {e.reason}"
    ]


def test_an_investigator_of_another_site_never_reads_site_a_in_the_audit_trail(
    clients: Any,
    two_sites: dict[str, Any],
    ward: Ward,
    make_user: Any,
    released: Any,
) -> None:
    _site_a_flow(ward, two_sites["patient"], released)
    secrets = _secrets(two_sites)
    second = next(s for s in sites.list_sites(db.session) if s.code == "BER")
    vera = make_user("vera", Role.INVESTIGATOR)
    sites.set_memberships(db.session, vera, [second.id], actor=None, now=utcnow())
    db.session.commit()
    # a facility-wide QA user reads them all (the check below can fail)
    qa = _everything(clients, ward.lab.qa)
    for way, text in qa.items():
        for what, secret in secrets.items():
            assert secret in text, f"QA does not read {what} in the {way}"
    assert all("trial_data.exported" in text for text in qa.values())
    b = _everything(clients, vera)
    leaks = [
        f"{what} in the {way}"
        for way, text in b.items()
        for what, secret in secrets.items()
        if secret in text
    ]
    assert leaks == [], "\n".join(leaks + _leaking_entries(second.id, secrets))
    for way, text in b.items():
        assert "trial_data.export" not in text, way
    # nor, asked for by record, the entries of the patient's records, of the dose's units
    # (the dose unit and its bags: custody, thaw), of their identifiers and label prints, of
    # the site A investigator's export
    qa_api, b_api = clients.api(ward.lab.qa), clients.api(vera)
    for record in _records(two_sites):
        assert _entries_of(qa_api, record), record
        assert _entries_of(b_api, record) == [], record
    for action in (
        "records.state",
        "trial_data.exported",
        "recall.opened",
        "recall.patient_notified",
    ):
        asked = {"action": action}
        assert qa_api.get("/api/v1/audit", query_string=asked).get_json(), action
        assert b_api.get("/api/v1/audit", query_string=asked).get_json() == [], action
        page = clients.web(vera).get("/audit", query_string={"states": "1", **asked})
        assert page.status_code == 200 and '<td class="nowrap">' not in page.get_data(
            as_text=True
        ), action
    # the thaw of the dose's bag is among them
    bag = two_sites["order"].bags[0].unit
    thawed = {"entity_type": "unit", "entity_id": bag.id, "action": "thaw.completed"}
    assert qa_api.get("/api/v1/audit", query_string=thawed).get_json()
    assert b_api.get("/api/v1/audit", query_string=thawed).get_json() == []
    # the site's own investigator reads their patient's entries and their own export
    own = _everything(clients, ward.clinic.investigator)
    for way, text in own.items():
        assert two_sites["patient"].study_id in text, way
        assert "trial_data.exported" in text, way


def test_the_api_total_counts_what_the_reader_sees(
    clients: Any,
    two_sites: dict[str, Any],
    ward: Ward,
    make_user: Any,
) -> None:
    second = next(s for s in sites.list_sites(db.session) if s.code == "BER")
    vera = make_user("vera", Role.INVESTIGATOR)
    sites.set_memberships(db.session, vera, [second.id], actor=None, now=utcnow())
    db.session.commit()
    everything = db.session.query(AuditEntry).count()
    texts, total = _api_texts(clients.api(vera))
    shown = sum(len(json.loads(text)) for text in texts)
    assert shown == total < everything
    csv_rows = clients.api(vera).get("/api/v1/audit/export.csv").get_data(as_text=True)
    assert "records.state" not in csv_rows
