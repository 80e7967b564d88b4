"""The FHIR R5 export of an infusion: a Bundle that the FHIR R5 models accept, whose references
all resolve inside it, that names the patient by study ID and COI only, carries every unit
code with its check character and the infusion's times, and is the same on every export."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.bundle import Bundle

from cellchain.clinic.bedside import infusions
from cellchain.clinic.bedside.infusions import InfusionEnd
from cellchain.core.identifiers import parse_identifier
from cellchain.core.types import utcnow
from cellchain.extensions import db
from cellchain.quality.results import lot_of_unit
from cellchain.traceability.fhir.fhir import FHIR_JSON, infusion_bundle, patient_bundle
from tests.support.ward import Ward

#: BiologicallyDerivedProductDispense.status, R5 (a required binding; the models do not check it)
DISPENSE_STATUSES = {
    "preparation",
    "in-progress",
    "allocated",
    "issued",
    "unfulfilled",
    "returned",
    "entered-in-error",
    "unknown",
}
#: Elements that would put a person's name, contact or record number into the export.
PERSONAL = {"name", "birthDate", "telecom", "address", "contact", "photo", "gender"}


@pytest.fixture
def site(ward: Ward) -> Ward:
    """The clinic's ward: a released lot, clinicians, and a dose's way to the bedside."""
    return ward


def running(site: Ward) -> Any:
    """An infusion started from a signed go: prepared → shipped → received → thawed →
    checked → signed → started."""
    patient, order = site.at_bedside()
    started = site.start(site.sign(site.verify(patient, order)))
    assert started.infusion is not None
    return started.infusion


def ended(site: Ward, infusion: Any, **changes: Any) -> Any:
    values: dict[str, Any] = {
        "volume_infused_ml": infusion.dose_order.volume_ml,
        "rate_ml_per_h": 60.0,
    }
    values.update(changes)
    infusions.end(
        db.session, infusion, InfusionEnd(**values), actor=site.clinic.clinician, now=utcnow()
    )
    db.session.commit()
    return infusion


def resources(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == resource_type
    ]


def by_url(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["fullUrl"]: entry["resource"] for entry in bundle["entry"]}


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) pair in a JSON tree, keys and list items included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", item
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")


def references(bundle: dict[str, Any]) -> list[str]:
    return [value for path, value in walk(bundle) if path.endswith(".reference")]


def unit_code(product: dict[str, Any]) -> str:
    (code,) = [i["value"] for i in product["identifier"] if i["system"].endswith(":unit")]
    return code


def test_the_bundle_is_valid_fhir_r5_with_the_resources_of_the_infusion(site: Ward) -> None:
    infusion = ended(site, running(site))
    bundle = infusion_bundle(db.session, infusion)

    parsed = Bundle.model_validate(bundle)  # R5 structure: unknown or mistyped elements fail

    assert parsed.type == "collection" and parsed.timestamp is not None
    assert parsed.identifier is not None and parsed.identifier.value
    kinds = [entry["resource"]["resourceType"] for entry in bundle["entry"]]
    bags = infusion.dose_order.bags
    assert kinds.count("Patient") == 1
    assert kinds.count("BiologicallyDerivedProduct") == len(bags) + 1
    assert kinds.count("BiologicallyDerivedProductDispense") == 1
    (dispense,) = resources(bundle, "BiologicallyDerivedProductDispense")
    # the elements R5 requires (1..1) of a dispense
    assert dispense["status"] and dispense["product"]["reference"]
    assert dispense["patient"]["reference"]


def test_every_reference_resolves_to_an_entry_of_the_bundle(site: Ward) -> None:
    bundle = infusion_bundle(db.session, ended(site, running(site)))

    urls = [entry["fullUrl"] for entry in bundle["entry"]]
    assert len(urls) == len(set(urls)), "a fullUrl appears twice"
    found = references(bundle)
    assert found, "the bundle references nothing"
    assert [ref for ref in found if ref not in urls] == []
    for entry in bundle["entry"]:
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"
    kinds = {url: resource["resourceType"] for url, resource in by_url(bundle).items()}
    (dispense,) = resources(bundle, "BiologicallyDerivedProductDispense")
    assert kinds[dispense["product"]["reference"]] == "BiologicallyDerivedProduct"
    assert kinds[dispense["patient"]["reference"]] == "Patient"
    assert kinds[dispense["performer"][0]["actor"]["reference"]] == "Practitioner"


def test_products_carry_unit_codes_din_lot_expiry_and_the_dose_has_its_bags_as_parents(
    site: Ward,
) -> None:
    infusion = running(site)
    order = infusion.dose_order
    bundle = infusion_bundle(db.session, infusion)
    products = by_url(bundle)
    by_code = {unit_code(p): p for p in resources(bundle, "BiologicallyDerivedProduct")}

    bag_codes = [bag.unit.code for bag in order.bags]
    assert set(by_code) == {order.dose_unit.code, *bag_codes}
    for code in by_code:  # each identifier is a whole unit code with its check character
        assert parse_identifier(code).canonical == code
    dose = by_code[order.dose_unit.code]
    assert [unit_code(products[p["reference"]]) for p in dose["parent"]] == bag_codes
    lot = lot_of_unit(db.session, order.bags[0].unit)
    assert lot is not None and lot.expires_at is not None
    for product in by_code.values():
        assert product["productCategory"] == {
            "system": "http://hl7.org/fhir/product-category",
            "code": "cells",
            "display": "Cells",
        }
        assert product["biologicalSourceEvent"]["value"] == order.dose_unit.donation.din
        assert dt.datetime.fromisoformat(product["expirationDate"]) == lot.expires_at
        assert product["productStatus"]["code"] == "unavailable"  # infused
        facility = products[product["processingFacility"][0]["reference"]]
        assert facility["identifier"][0]["value"] == order.dose_unit.code[:5]
        lots = [i["value"] for i in product["identifier"] if i["system"].endswith(":lot")]
        assert lots == [lot.lot_number]
    for code in bag_codes:
        assert "parent" not in by_code[code]
        counted = {p["type"]["coding"][0]["code"] for p in by_code[code]["property"]}
        assert "total-cells" in counted and "viable-cells" not in counted  # a bag's fill is total
        assert by_code[code]["storageTempRequirements"]["high"]["code"] == "Cel"
    volume = {p["type"]["coding"][0]["code"]: p["valueQuantity"] for p in dose["property"]}
    assert volume["volume"] == {
        "value": order.volume_ml,
        "unit": "mL",
        "system": "http://unitsofmeasure.org",
        "code": "mL",
    }
    assert volume["viable-cells"]["value"] == pytest.approx(order.delivered_cells)


def test_the_dispense_has_the_status_times_quantity_performer_and_the_dose(site: Ward) -> None:
    infusion = ended(site, running(site))
    order = infusion.dose_order
    (dispense,) = resources(
        infusion_bundle(db.session, infusion), "BiologicallyDerivedProductDispense"
    )

    assert dispense["status"] == "issued" and dispense["status"] in DISPENSE_STATUSES
    assert dt.datetime.fromisoformat(dispense["whenHandedOver"]) == infusion.started_at
    assert dt.datetime.fromisoformat(dispense["preparedDate"]) == order.checked_at
    assert dispense["quantity"] == {
        "value": infusion.volume_infused_ml,
        "unit": "mL",
        "system": "http://unitsofmeasure.org",
        "code": "mL",
    }
    assert dispense["performer"][0]["actor"]["display"] == "cleo"
    assert dispense["product"]["display"] == order.dose_unit.code
    assert dispense["patient"]["display"] == order.patient.study_id
    assert dispense["identifier"][0]["value"] == str(infusion.id)
    note = dispense["note"][0]["text"]
    assert f"Visit {order.visit}." in note and "completed" in note and "reaction: none" in note
    exponent = len(str(int(order.delivered_cells))) - 1
    assert f"× 10^{exponent}" in note
    assert f"Visit {order.visit}: infuse {order.volume_ml:.1f} mL" in dispense["usageInstruction"]


def test_a_running_infusion_has_no_quantity_yet(site: Ward) -> None:
    (dispense,) = resources(
        infusion_bundle(db.session, running(site)), "BiologicallyDerivedProductDispense"
    )
    assert dispense["status"] in DISPENSE_STATUSES
    assert "quantity" not in dispense
    assert "in progress" in dispense["note"][0]["text"]


def test_a_stopped_infusion_says_how_much_was_given_and_why(site: Ward) -> None:
    infusion = ended(
        site, running(site), volume_infused_ml=4.0, stopped_early=True, reaction="rigors"
    )
    bundle = infusion_bundle(db.session, infusion)
    Bundle.model_validate(bundle)
    (dispense,) = resources(bundle, "BiologicallyDerivedProductDispense")
    assert dispense["status"] == "issued"  # the product reached the patient: it is traceable
    assert dispense["quantity"]["value"] == 4.0
    assert "stopped early" in dispense["note"][0]["text"]
    assert "reaction: rigors" in dispense["note"][0]["text"]


def test_the_patient_is_named_by_study_id_and_coi_only(site: Ward) -> None:
    infusion = ended(site, running(site))
    patient = infusion.patient
    bundle = infusion_bundle(db.session, infusion)

    (exported,) = resources(bundle, "Patient")
    assert set(exported) == {"resourceType", "id", "identifier"}
    assert {i["value"] for i in exported["identifier"]} == {patient.study_id, patient.coi}
    systems = {i["value"]: i["system"] for i in exported["identifier"]}
    assert systems[patient.study_id] == f"urn:cellchain:{patient.coi[2:7]}:study-id"
    assert systems[patient.coi] == f"urn:cellchain:{patient.coi[2:7]}:coi"
    keys = {path.rsplit(".", 1)[-1] for path, _value in walk(bundle)}
    assert keys & PERSONAL == set()
    text = json.dumps(bundle, ensure_ascii=False)
    people = [site.clinic.clinician, site.nurse, site.lab.tech, site.lab.qa]
    assert [u.full_name for u in people if u.full_name in text] == []
    assert patient.date_of_birth.isoformat() not in text


def test_the_same_infusion_exports_the_same_bundle_but_for_the_timestamp(site: Ward) -> None:
    infusion = ended(site, running(site))
    first = infusion_bundle(db.session, infusion, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    db.session.expire_all()  # read everything again from the database
    again = infusion_bundle(db.session, infusion, now=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))

    assert first["timestamp"] == "2026-01-01T00:00:00Z"
    assert again["timestamp"] == "2026-01-02T00:00:00Z"
    assert {**first, "timestamp": None} == {**again, "timestamp": None}
    other = infusion_bundle(db.session, running(site))
    assert {e["fullUrl"] for e in other["entry"]} - {e["fullUrl"] for e in first["entry"]}
    assert other["identifier"] != first["identifier"]


def test_a_patient_bundle_holds_each_infusion_once_and_a_patient_without_one_alone(
    site: Ward,
) -> None:
    infusion = ended(site, running(site))
    single = infusion_bundle(db.session, infusion)
    whole = patient_bundle(db.session, infusion.patient)
    Bundle.model_validate(whole)
    assert {e["fullUrl"] for e in whole["entry"]} == {e["fullUrl"] for e in single["entry"]}
    assert [ref for ref in references(whole) if ref not in by_url(whole)] == []

    alone = patient_bundle(db.session, site.patient())
    Bundle.model_validate(alone)
    assert [e["resource"]["resourceType"] for e in alone["entry"]] == ["Patient"]


# --- over HTTP ------------------------------------------------------------------------------


def test_the_api_answers_fhir_json_and_404_for_an_unknown_infusion(
    site: Ward, clients: Any
) -> None:
    infusion = ended(site, running(site))
    client = clients.api(site.lab.qa)

    response = client.get(f"/api/v1/infusions/{infusion.id}/fhir")

    assert response.status_code == 200
    assert response.mimetype == FHIR_JSON
    bundle = json.loads(response.get_data(as_text=True))
    Bundle.model_validate(bundle)
    assert bundle["link"] == [
        {"relation": "self", "url": f"http://localhost/api/v1/infusions/{infusion.id}/fhir"}
    ]
    dose = infusion.dose_order.dose_unit.code
    assert dose in {unit_code(p) for p in resources(bundle, "BiologicallyDerivedProduct")}
    missing = client.get(f"/api/v1/infusions/{infusion.id + 1000}/fhir")
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"
    assert f"no infusion {infusion.id + 1000}" in missing.get_json()["detail"]


def test_the_infusion_page_links_to_the_export_and_the_link_works_logged_in(
    site: Ward, clients: Any
) -> None:
    infusion = running(site)
    browser = clients.web(site.clinic.clinician)
    page = browser.get(f"/bedside/infusions/{infusion.id}").get_data(as_text=True)
    href = f"/api/v1/infusions/{infusion.id}/fhir"
    assert f'href="{href}"' in page and "FHIR (R5)" in page
    downloaded = browser.get(href)
    assert downloaded.status_code == 200 and downloaded.mimetype == FHIR_JSON


def test_a_recalled_infusions_dispense_names_the_recall_and_stays_valid(
    site: Ward, clients: Any
) -> None:
    """Issue 16, item 9: an infusion whose product a recall names exports the recall as a note
    of the dispense (number, status, reason, where to read it), in a bundle still valid R5."""
    from cellchain.manufacturing.processing import processing
    from cellchain.traceability.models import RecallTarget
    from tests.support.recalls import open_recall

    infusion = ended(site, running(site))
    bundle = infusion_bundle(db.session, infusion)
    (before,) = resources(bundle, "BiologicallyDerivedProductDispense")
    assert [n["text"] for n in before["note"] if "RECALL" in n["text"]] == []
    lot = lot_of_unit(db.session, infusion.dose_order.bags[0].unit)
    donation = processing.lot_donation(db.session, lot)
    recall = open_recall(site, RecallTarget.DONATION, donation.id).recall

    for bundle in (
        infusion_bundle(db.session, infusion),
        clients.api(site.lab.qa).get(f"/api/v1/infusions/{infusion.id}/fhir").get_json(),
    ):
        Bundle.model_validate(bundle)
        (dispense,) = resources(bundle, "BiologicallyDerivedProductDispense")
        course, named = dispense["note"]
        assert course == before["note"][0]
        assert named["text"] == (
            f"RECALL {recall.number} (open): {recall.reason} — /recalls/{recall.id}"
        )
        assert named["time"]
