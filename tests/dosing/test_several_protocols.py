"""Several protocols and products at once (issue 22): a patient belongs to the protocol version
they were enrolled under, whose dose, limits, visits and arms apply to them, and a dose comes
only from a product their protocol names; the protocol document's check refuses a version
whose windows overlap or whose dose is not a positive number, by field.

The second protocol is the demo's PL-MSC-OL-01 (one arm, open label, 2.0 × 10⁶ viable
cells/kg, day 0 only); its product, placenta-derived PL-MSC. A test makes the released
UC-MSC lot a PL-MSC lot by pointing it at the PL-MSC product definition: how a wrong product
would reach a dose if nothing refused it.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from cellchain.clinic.shipments import shipments
from cellchain.core.types import utcnow
from cellchain.dosing import orders, patients, service
from cellchain.dosing.defaults import (
    NCT01420432_PARAMETERS,
    PL_MSC_OL_01_CODE,
    PL_MSC_OL_01_PARAMETERS,
    PL_MSC_OL_01_TITLE,
)
from cellchain.dosing.models import ArmSource, Protocol
from cellchain.dosing.protocol_rules import protocol_errors
from cellchain.errors import DomainError, InvalidInput
from cellchain.extensions import db
from cellchain.manufacturing.defaults import PL_MSC_CODE, PL_MSC_PARAMETERS, PL_MSC_TITLE
from cellchain.manufacturing.models import ProductDefinition
from cellchain.manufacturing.service import PRODUCTS
from cellchain.trial_data import dataset, dsmb, exports
from cellchain.trial_data.models import ExportFormat
from tests.conftest import TEST_PASSWORD
from tests.support.clinic import UTC

# --- set-up


def second_protocol(clinic: Any) -> Protocol:
    """PL-MSC-OL-01 signed into force by QA beside NCT01420432."""
    protocol = service.PROTOCOLS.draft(
        db.session,
        actor=clinic.lab.qa,
        now=utcnow(),
        code=PL_MSC_OL_01_CODE,
        title=PL_MSC_OL_01_TITLE,
        parameters=PL_MSC_OL_01_PARAMETERS,
    )
    service.PROTOCOLS.approve(
        db.session, protocol, user=clinic.lab.qa, password=TEST_PASSWORD, now=utcnow()
    )
    db.session.commit()
    return protocol


def placenta_product(qa: Any) -> ProductDefinition:
    product = PRODUCTS.draft(
        db.session,
        actor=qa,
        now=utcnow(),
        code=PL_MSC_CODE,
        title=PL_MSC_TITLE,
        parameters=PL_MSC_PARAMETERS,
    )
    PRODUCTS.approve(db.session, product, user=qa, password=TEST_PASSWORD, now=utcnow())
    db.session.commit()
    return product


def made_of(lot: Any, product: ProductDefinition) -> None:
    lot.product_definition_id = product.id
    db.session.commit()
    db.session.expire_all()


def answers(**changes: Any) -> dict[str, patients.ChecklistAnswer]:
    """Every item of PL-MSC-OL-01's checklist met."""
    values = {"ecog": 1.0, "creatinine": 70.0}
    met = {
        item["code"]: patients.ChecklistAnswer(True, values.get(item["code"]))
        for item in PL_MSC_OL_01_PARAMETERS["inclusion"]
    }
    met.update(
        {
            item["code"]: patients.ChecklistAnswer(False)
            for item in PL_MSC_OL_01_PARAMETERS["exclusion"]
        }
    )
    met.update(changes)
    return met


def enrol_second(
    clinic: Any, protocol: Protocol, study_id: str = "PL-001", *, age: int = 45
) -> Any:
    today = utcnow().date()
    patient = patients.enrol(
        db.session,
        protocol,
        patients.Enrolment(
            study_id=study_id,
            date_of_birth=today.replace(year=today.year - age) - dt.timedelta(days=30),
            sex="female",
            day0=today,
            answers=answers(),
        ),
        facility_code="X9999",
        actor=clinic.clinician,
        now=utcnow(),
        zone=UTC,
    )
    db.session.commit()
    return patient


def order(clinic: Any, patient: Any, visit: str = "D0") -> Any:
    placed = orders.order_dose(
        db.session, patient, visit, actor=clinic.lab.tech, now=utcnow(), zone=UTC
    )
    db.session.commit()
    return placed


# --- the protocol document's check


def test_both_demo_protocols_pass_the_protocol_check() -> None:
    assert protocol_errors(NCT01420432_PARAMETERS) == {}
    assert protocol_errors(PL_MSC_OL_01_PARAMETERS) == {}


@pytest.mark.parametrize("dose", ["1e6", None, 0, -2.0e6, True, [1.0e6]])
def test_a_dose_not_a_positive_number_is_refused_by_field_and_nothing_saved(
    clinic: Any, dose: Any
) -> None:
    parameters = dict(copy.deepcopy(PL_MSC_OL_01_PARAMETERS), dose_viable_cells_per_kg=dose)
    before = db.session.scalar(select(func.count(Protocol.id)))
    with pytest.raises(InvalidInput) as refused:
        service.PROTOCOLS.draft(
            db.session,
            actor=clinic.lab.qa,
            now=utcnow(),
            code=PL_MSC_OL_01_CODE,
            title=PL_MSC_OL_01_TITLE,
            parameters=parameters,
        )
    db.session.rollback()
    assert set(refused.value.errors or {}) == {"dose_viable_cells_per_kg"}
    assert db.session.scalar(select(func.count(Protocol.id))) == before


def test_visit_windows_that_overlap_are_refused_by_field() -> None:
    parameters = copy.deepcopy(PL_MSC_OL_01_PARAMETERS)
    parameters["follow_up"][1]["window_days"] = 160  # M6 (182 ± 160) reaches D28 (28 ± 3)
    with pytest.raises(InvalidInput) as refused:
        service.PROTOCOLS.check(parameters)
    errors = refused.value.errors or {}
    assert list(errors) == ["follow_up[M6].window_days"]  # the field the draft form labels so
    message = errors["follow_up[M6].window_days"][0]
    assert "D28" in message and "M6" in message


def test_a_protocol_must_name_its_products_and_a_randomization_fitting_its_arms() -> None:
    unnamed = {k: v for k, v in PL_MSC_OL_01_PARAMETERS.items() if k != "products"}
    assert list(protocol_errors(unnamed)) == ["products"]
    assert list(protocol_errors(dict(PL_MSC_OL_01_PARAMETERS, products=[]))) == ["products"]
    one_arm_randomized = dict(
        PL_MSC_OL_01_PARAMETERS, randomization={"ratio": "1", "planned_enrolment": 4}
    )
    assert list(protocol_errors(one_arm_randomized)) == ["randomization"]
    two_arms_unrandomized = {
        k: v for k, v in NCT01420432_PARAMETERS.items() if k != "randomization"
    }
    assert list(protocol_errors(two_arms_unrandomized)) == ["randomization"]
    no_day_0 = copy.deepcopy(PL_MSC_OL_01_PARAMETERS)
    no_day_0["infusions"][0]["day"] = 3
    assert "infusions" in protocol_errors(no_day_0)


# --- enrolment


def test_enrolment_in_each_protocol_follows_that_protocol(clinic: Any) -> None:
    first = clinic.enrol()
    second = second_protocol(clinic)
    assert [p.code for p in patients.protocols_in_force(db.session, at=utcnow())] == [
        "NCT01420432",
        "PL-MSC-OL-01",
    ]
    pl = enrol_second(clinic, second, age=65)  # over NCT01420432's 60, within 18–70
    assert first.protocol.code == "NCT01420432" and first.arm_source == "trial_randomization"
    assert pl.protocol_id == second.id and pl.coi
    assert (pl.arm, pl.arm_source, pl.randomization_number) == (
        "OPEN",
        ArmSource.SINGLE_ARM.value,
        None,
    )
    assert patients.receives_cells(pl)
    with pytest.raises(InvalidInput) as refused:
        enrol_second(clinic, second, "PL-002", age=72)
    db.session.rollback()
    assert "date_of_birth" in (refused.value.errors or {})


def test_with_two_protocols_in_force_the_enrolment_names_one(clinic: Any) -> None:
    # the only one
    assert patients.chosen_protocol(db.session, None, at=utcnow()).code == "NCT01420432"
    second_protocol(clinic)
    with pytest.raises(InvalidInput) as refused:
        patients.chosen_protocol(db.session, None, at=utcnow())
    assert "protocol" in (refused.value.errors or {})
    assert patients.chosen_protocol(db.session, "pl-msc-ol-01", at=utcnow()).code == "PL-MSC-OL-01"
    with pytest.raises(InvalidInput):
        patients.chosen_protocol(db.session, "NCT00000000", at=utcnow())
    # the randomization pages: only NCT01420432 is randomized
    assert patients.randomized_protocol(db.session, None, at=utcnow()).code == "NCT01420432"


def test_the_api_enrols_under_the_protocol_named(clinic: Any, clients: Any) -> None:
    from tests.support.enrolment import enrol_body

    second_protocol(clinic)
    api = clients.api(clinic.clinician)
    body = enrol_body(study_id="PL-010")
    body["answers"] = {
        code: {"answer": a.answer, "value": a.value} for code, a in answers().items()
    }
    unnamed = api.post("/api/v1/patients", json=body)
    assert unnamed.status_code == 422 and "protocol" in unnamed.get_json()["errors"]
    enrolled = api.post("/api/v1/patients", json=dict(body, protocol="PL-MSC-OL-01"))
    assert enrolled.status_code == 201, enrolled.get_json()
    assert enrolled.get_json()["protocol"] == "PL-MSC-OL-01 v1"
    assert enrolled.get_json()["arm"] == "OPEN"


# --- dose and schedule from the patient's protocol


def test_the_second_protocols_dose_is_2e6_per_kg_from_its_product(
    clinic: Any, released: Any
) -> None:
    made_of(released, placenta_product(clinic.lab.qa))
    pl = enrol_second(clinic, second_protocol(clinic))
    clinic.weigh(pl, 64.5)
    placed = order(clinic, pl)
    assert placed.target_cells == pytest.approx(2.0e6 * 64.5)
    assert placed.protocol_id == pl.protocol_id
    # 1.29e8 / (5.0e6 × 93 %) = 27.74 mL → 27.7 mL, from two bags
    assert placed.volume_ml == 27.7 and len(placed.bags) == 2
    assert abs(placed.deviation_percent) < 1


def test_the_visit_schedule_is_the_patients_protocols(clinic: Any) -> None:
    nct = clinic.enrol()
    pl = enrol_second(clinic, second_protocol(clinic))
    nct_visits = patients.schedule_of(db.session, nct, UTC)
    pl_visits = patients.schedule_of(db.session, pl, UTC)
    assert [v.code for v in nct_visits] == ["D0", "M3", "M6", "M12"]
    assert [(v.code, v.day, v.window_days, v.infusion) for v in pl_visits] == [
        ("D0", 0, 0, True),
        ("D28", 28, 3, False),
        ("M6", 182, 21, False),
    ]
    with pytest.raises(DomainError):  # no month-3 infusion in PL-MSC-OL-01
        patients.visit_of(pl, "M3", patients.facts_of(db.session, pl, UTC))


# --- a dose from the wrong product, refused at every path


def test_allocation_takes_only_bags_of_the_patients_protocols_products(
    clinic: Any, released: Any
) -> None:
    nct = clinic.enrol()
    clinic.weigh(nct, 70.0)
    pl = enrol_second(clinic, second_protocol(clinic))
    clinic.weigh(pl, 64.5)
    # only UC-MSC bags: PL-001 (PL-MSC only) is refused
    with pytest.raises(orders.DoseRefused) as refused:
        order(clinic, pl)
    db.session.rollback()
    assert "PL-MSC" in str(refused.value) and "bags" in (refused.value.errors or {})
    # only PL-MSC bags: the NCT01420432 patient (UC-MSC only) is refused
    made_of(released, placenta_product(clinic.lab.qa))
    with pytest.raises(orders.DoseRefused) as refused:
        order(clinic, nct)
    db.session.rollback()
    assert "UC-MSC" in str(refused.value)
    assert orders.orders_of(db.session, nct) == []


def test_the_second_check_refuses_a_bag_of_another_product(clinic: Any, released: Any) -> None:
    patient = clinic.enrol()
    clinic.weigh(patient, 70.0)
    placed = order(clinic, patient)
    made_of(released, placenta_product(clinic.lab.qa))
    with pytest.raises(orders.DoseRefused) as refused:
        orders.second_check(
            db.session,
            placed,
            checker=clinic.lab.qa,
            password=TEST_PASSWORD,
            volume_ml=placed.volume_ml,
            bag_codes=[bag.unit.code for bag in placed.bags],
            now=utcnow(),
        )
    db.session.rollback()
    assert "PL-MSC is not a product of protocol NCT01420432" in str(refused.value)
    again = db.session.get(type(placed), placed.id)
    assert again is not None and again.status == "allocated"


def test_dispatch_refuses_a_dose_of_another_product(ward: Any, released: Any) -> None:
    prepared = ward.prepared()
    made_of(released, placenta_product(ward.lab.qa))
    with pytest.raises(DomainError) as refused:
        ward.ship(prepared)
    db.session.rollback()
    assert "PL-MSC is not a product of protocol NCT01420432" in str(refused.value)
    assert shipments.shipment_of(db.session, prepared) is None


def test_the_bedside_stops_a_dose_of_another_product(ward: Any, released: Any) -> None:
    patient, prepared = ward.at_bedside()
    made_of(released, placenta_product(ward.lab.qa))
    check = ward.verify(patient, prepared)
    assert check.verdict == "stop"
    failed = {result["code"]: result for result in check.failed}
    assert set(failed) == {"released"}
    assert "PL-MSC" in failed["released"]["detail"]
    assert "does not allow" in failed["released"]["detail"]


def test_the_bedside_rule_judges_the_lots_product_against_the_protocol() -> None:
    import dataclasses

    from cellchain.clinic.bedside.bedside import Check, LotFacts, evaluate
    from tests.clinic.test_bedside_rules import GOOD

    assert GOOD.limits is not None and GOOD.dose is not None
    limits = dataclasses.replace(GOOD.limits, protocol_code="P-1", products=frozenset({"UC-MSC"}))
    lot = GOOD.dose.lots[0]
    for product, passes in (("UC-MSC", True), ("PL-MSC", False), ("", False)):
        dose = dataclasses.replace(
            GOOD.dose, lots=(LotFacts(lot.number, lot.status, lot.expires_at, product),)
        )
        facts = dataclasses.replace(GOOD, dose=dose, limits=limits)
        (released,) = [r for r in evaluate(facts) if r.code is Check.RELEASED]
        assert released.passed is passes


# --- trial data per protocol


def test_the_trial_export_and_dsmb_summary_are_per_protocol(clinic: Any) -> None:
    nct = clinic.enrol()
    second = second_protocol(clinic)
    pl = enrol_second(clinic, second)
    today = utcnow().date()
    pl_data = dataset.collect(db.session, protocol_code=second.code, today=today, zone=UTC)
    nct_data = dataset.collect(db.session, protocol_code="NCT01420432", today=today, zone=UTC)
    assert pl_data.subjects == [pl.study_id]
    assert nct_data.subjects == [nct.study_id]
    summary = dsmb.trial_summary(db.session, protocol_code=second.code, now=utcnow())
    assert [arm.code for arm in summary.arms] == ["OPEN"] and summary.enrolled == 1
    assert summary.visits == ["D0"] and summary.schedule is None
    investigator = clinic.investigator
    with pytest.raises(InvalidInput) as refused:
        exports.request_export(db.session, ExportFormat.CSV, actor=investigator, now=utcnow())
    assert "protocol" in (refused.value.errors or {})
    export = exports.request_export(
        db.session,
        ExportFormat.CSV,
        actor=investigator,
        now=utcnow(),
        protocol_code="pl-msc-ol-01",
    )
    db.session.commit()
    done = exports.run_export(
        db.session,
        export,
        actor=investigator,
        clock=utcnow,
        checkpoint=db.session.commit,
        site_name="Test site",
        zone=UTC,
    )
    db.session.commit()
    assert done.protocol_code == "PL-MSC-OL-01" and done.subjects == 1
    assert done.file_name is not None and done.file_name.startswith("PL-MSC-OL-01-data-")


def test_the_dsmb_page_chooses_among_the_trials(clinic: Any, clients: Any) -> None:
    second_protocol(clinic)
    web = clients.web(clinic.investigator)
    choice = web.get("/trial-data/dsmb").get_data(as_text=True)
    assert 'data-protocol="NCT01420432"' in choice and 'data-protocol="PL-MSC-OL-01"' in choice
    page = web.get("/trial-data/dsmb?protocol=PL-MSC-OL-01")
    assert page.status_code == 200 and "PL-MSC-OL-01" in page.get_data(as_text=True)
    api = clients.api(clinic.investigator).get(
        "/api/v1/trial-data/dsmb-summary?protocol=PL-MSC-OL-01"
    )
    assert api.status_code == 200, api.get_json()
