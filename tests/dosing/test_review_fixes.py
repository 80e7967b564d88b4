"""Review 1 fixes (issue 22): an upgraded site doses the patients it had enrolled (products
from the version in force when the patient's names none); the protocol check holds DOMAIN.md's
rules (ceilings, weight flag, DMSO density, tolerance) and refuses duplicate checklist codes;
the protocol version's page shows what QA signs (products, randomization, follow-up windows).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import update

from cellchain.core.types import utcnow
from cellchain.dosing import orders, patients, service
from cellchain.dosing.defaults import NCT01420432_PARAMETERS, PL_MSC_OL_01_PARAMETERS
from cellchain.dosing.models import Protocol
from cellchain.dosing.protocol_rules import protocol_errors
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.support.clinic import UTC
from tests.support.tamper import outside_the_trail

# --- set-up


def as_signed_before_issue_22(protocol: Protocol) -> None:
    """``protocol``'s parameters as a version signed before issue 22 holds them: no
    ``products`` (migration 0046 adds none to a signed version)."""
    old = {k: v for k, v in copy.deepcopy(protocol.parameters).items() if k != "products"}
    db.session.execute(
        outside_the_trail(
            update(Protocol)
            .where(Protocol.id == protocol.id)
            .values(parameters_json=json.dumps(old))
        )
    )
    db.session.commit()
    db.session.expire_all()


def sign_v2(qa: Any, v1: Protocol, **changes: Any) -> Protocol:
    """QA signs the next version of ``v1``'s protocol, naming its products."""
    parameters = copy.deepcopy(NCT01420432_PARAMETERS)
    parameters.update(changes)
    v2 = service.PROTOCOLS.draft(
        db.session, actor=qa, now=utcnow(), code=v1.code, title=v1.title, parameters=parameters
    )
    service.PROTOCOLS.approve(db.session, v2, user=qa, password=TEST_PASSWORD, now=utcnow())
    db.session.commit()
    return v2


# --- item 1: an upgraded site's enrolled patients


def test_an_upgraded_sites_patient_is_dosed_from_the_products_of_the_version_in_force(
    ward: Any,
) -> None:
    patient = ward.patient()
    v1 = patient.protocol
    as_signed_before_issue_22(v1)
    assert patients.named_products(v1.parameters) == frozenset()
    v2 = sign_v2(ward.lab.qa, v1)
    # ordered and allocated, second-checked, dispatched, received, thawed: nothing refused
    patient, order = ward.at_bedside(patient)
    assert patient.protocol_id == v1.id  # the patient stays on the version enrolled under
    assert order.status != "allocated" and order.bags
    check = ward.verify(patient, order)
    assert "released" not in {result["code"] for result in check.failed}
    assert check.verdict == "go"
    # every path reads one function: at a time before v2 took effect, nothing is allowed
    before = v2.effective_at - dt.timedelta(seconds=1)
    assert patients.patient_products(db.session, patient, at=before) == frozenset()
    assert patients.patient_products(db.session, patient, at=utcnow()) == {"UC-MSC"}


def test_a_version_naming_products_is_judged_by_its_own_not_the_one_in_force(
    clinic: Any, released: Any
) -> None:
    patient = clinic.enrol()
    sign_v2(clinic.lab.qa, patient.protocol, products=["PL-MSC"])
    assert patients.patient_products(db.session, patient, at=utcnow()) == {"UC-MSC"}


def test_when_neither_version_names_products_the_dose_is_refused_clearly(
    clinic: Any, released: Any
) -> None:
    patient = clinic.enrol()
    as_signed_before_issue_22(patient.protocol)
    clinic.weigh(patient, 70.0)
    with pytest.raises(orders.DoseRefused) as refused:
        orders.order_dose(db.session, patient, "D0", actor=clinic.lab.tech, now=utcnow(), zone=UTC)
    db.session.rollback()
    assert "nor the version in force names a product" in str(refused.value)
    assert "bags" in (refused.value.errors or {})
    assert orders.orders_of(db.session, patient) == []


# --- items 7 and 9: the protocol check


def with_(**changes: Any) -> dict[str, Any]:
    parameters = copy.deepcopy(NCT01420432_PARAMETERS)
    parameters.update(changes)
    return parameters


def test_both_demo_protocols_still_pass() -> None:
    assert protocol_errors(copy.deepcopy(NCT01420432_PARAMETERS)) == {}
    assert protocol_errors(copy.deepcopy(PL_MSC_OL_01_PARAMETERS)) == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dmso_ceiling_g_per_kg", 1.01),
        ("dmso_ceiling_g_per_kg", 50),
        ("endotoxin_ceiling_eu_per_kg_per_h", 5.5),
        ("endotoxin_ceiling_eu_per_kg_per_h", 500),
        ("weight_change_flag_percent", 10.5),
        ("weight_change_flag_percent", 90),
        ("dmso_density_g_per_ml", 0.001),
        ("dmso_density_g_per_ml", 1.2),
        ("dose_tolerance_percent", 20.5),
        ("dose_tolerance_percent", 0),
    ],
)
def test_a_rule_of_domain_cannot_be_loosened_by_a_protocol(field: str, value: float) -> None:
    errors = protocol_errors(with_(**{field: value}))
    assert field in errors, errors


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dmso_ceiling_g_per_kg", 0.5),
        ("endotoxin_ceiling_eu_per_kg_per_h", 5),
        ("weight_change_flag_percent", 5),
        ("dmso_density_g_per_ml", 1.10),
        ("dose_tolerance_percent", 20),
    ],
)
def test_a_stricter_or_equal_limit_passes(field: str, value: float) -> None:
    assert protocol_errors(with_(**{field: value})) == {}


@pytest.mark.parametrize("part", ["inclusion", "exclusion"])
def test_duplicate_checklist_codes_are_refused_by_field(part: str) -> None:
    parameters = copy.deepcopy(NCT01420432_PARAMETERS)
    last = copy.deepcopy(parameters[part][-1])
    last["text"] = "Another criterion"
    parameters[part].append(last)
    errors = protocol_errors(parameters)
    assert f"{part}[{last['code']}].code" in errors, errors


def test_duplicate_recheck_item_codes_are_refused_by_field() -> None:
    parameters = copy.deepcopy(NCT01420432_PARAMETERS)
    items = parameters["pre_infusion_recheck"]["items"]
    items.append(copy.deepcopy(items[-1]))
    errors = protocol_errors(parameters)
    assert f"pre_infusion_recheck.items[{items[-1]['code']}].code" in errors, errors


# --- item 18: the protocol version's page


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_the_protocol_page_shows_products_randomization_and_follow_up_windows(
    clinic: Any, released: Any, clients: Any, language: str
) -> None:
    patient = clinic.enrol()
    protocol = patient.protocol
    client = clients.web(clinic.lab.qa)
    page = client.get(
        f"/protocols/{protocol.id}", headers={"Accept-Language": f"{language},zh;q=0.9"}
    ).get_data(as_text=True)
    products = page.split('id="products"', 1)[1].split("</tr>", 1)[0]
    assert "UC-MSC" in products and 'href="/products/' in products
    randomization = protocol.parameters["randomization"]
    assert str(randomization["planned_enrolment"]) in page
    for visit in protocol.parameters["follow_up"]:
        assert f"± {visit['window_days']}" in page
    design = page.split('id="randomization"', 1)[1].split("</tr>", 1)[0]
    if language == "zh-CN":
        assert "<th>产品</th>" in products and "<th>随机化</th>" in design
    else:
        assert "<th>Products</th>" in products and "<th>Randomization</th>" in design
