"""Issue 22, several protocols and products at once, on a copy of the demo site: two protocols
are in force (NCT01420432 and the open-label PL-MSC-OL-01), two products (UC-MSC and the
placenta-derived PL-MSC, each with its own release specification and donor test panel), a
placenta donation became a released lot, and PL-001 of PL-MSC-OL-01, at the second clinical
site, is dosed from it at 2.0 × 10⁶ viable cells/kg of their weight."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cellchain.core.types import utcnow
from cellchain.demo import DEMO_SECOND_SITE
from cellchain.donors.models import Donation
from cellchain.dosing import patients
from cellchain.dosing.models import ArmSource, DoseOrder, Patient
from cellchain.dosing.service import PROTOCOLS
from cellchain.extensions import db
from cellchain.manufacturing.models import CellRecord, Lot
from cellchain.quality.service import SPECIFICATIONS


@pytest.fixture
def database_url(demo_database_url: str) -> str:
    """This test's database: a copy of the demo site as ``cellchain demo`` seeds it."""
    return demo_database_url


def _lot_of(unit_id: int) -> Lot:
    record = db.session.get(CellRecord, unit_id)
    assert record is not None and record.lot_id is not None
    lot = db.session.get(Lot, record.lot_id)
    assert lot is not None
    return lot


def _patient(study_id: str) -> Patient:
    return db.session.execute(select(Patient).where(Patient.study_id == study_id)).scalar_one()


def test_the_demo_holds_two_protocols_and_two_products(app: Any) -> None:
    codes = [protocol.code for protocol in patients.protocols_in_force(db.session, at=utcnow())]
    assert codes == ["NCT01420432", "PL-MSC-OL-01"]
    second = PROTOCOLS.in_force(db.session, "PL-MSC-OL-01", at=utcnow())
    assert second.parameters["products"] == ["PL-MSC"]
    assert [arm["code"] for arm in second.parameters["arms"]] == ["OPEN"]
    assert [visit["code"] for visit in second.parameters["infusions"]] == ["D0"]
    placenta = SPECIFICATIONS.in_force(db.session, "PL-MSC", at=utcnow())
    (viability,) = [t for t in placenta.parameters["tests"] if t["code"] == "VIABILITY"]
    assert viability["criterion"] == {"min": 85}


def test_pl_001_is_dosed_from_the_placenta_lot_at_2e6_per_kg(
    app: Any, clients: Any, make_user: Any
) -> None:
    patient = _patient("PL-001")
    assert patient.protocol.code == "PL-MSC-OL-01"
    assert (patient.arm, patient.arm_source) == ("OPEN", ArmSource.SINGLE_ARM.value)
    assert patient.site.code == DEMO_SECOND_SITE[0]  # the second clinical site's patient
    assert patient.randomization_number is None
    (order,) = db.session.execute(
        select(DoseOrder).where(DoseOrder.patient_id == patient.id)
    ).scalars()
    assert order.status == "prepared" and order.protocol_id == patient.protocol_id
    assert order.weight.weight_kg == 64.5
    assert order.target_cells == pytest.approx(2.0e6 * 64.5)
    assert abs(order.deviation_percent) <= 10
    lots = {_lot_of(bag.unit_id) for bag in order.bags}
    assert {lot.product_definition.code for lot in lots} == {"PL-MSC"}
    assert {lot.status for lot in lots} == {"released"}
    (lot,) = lots
    donation = db.session.get(Donation, lot.donation_id)
    assert donation is not None and donation.placenta and not donation.umbilical_cord
    # the NCT01420432 patients' doses all came from UC-MSC lots
    as_001 = _patient("AS-001")
    (first,) = db.session.execute(
        select(DoseOrder).where(DoseOrder.patient_id == as_001.id)
    ).scalars()
    bag_lot = _lot_of(first.bags[0].unit_id)
    assert bag_lot.product_definition.code == "UC-MSC"
    # the patient's page and the API show the protocol they were enrolled under
    reader = make_user("reader", "qa")
    page = clients.web(reader).get(f"/patients/{patient.id}").get_data(as_text=True)
    assert "PL-MSC-OL-01" in page
    api = clients.api(reader).get(f"/api/v1/patients/{patient.id}").get_json()
    assert api["protocol"] == "PL-MSC-OL-01 v1" and api["arm"] == "OPEN"


def test_the_enrolment_page_offers_both_protocols(app: Any, clients: Any, make_user: Any) -> None:
    web = clients.web(make_user("cleo", "clinician"))
    choice = web.get("/patients/enrol").get_data(as_text=True)
    assert 'data-protocol="NCT01420432"' in choice and 'data-protocol="PL-MSC-OL-01"' in choice
    form = web.get("/patients/enrol?protocol=PL-MSC-OL-01").get_data(as_text=True)
    assert 'name="protocol" value="PL-MSC-OL-01"' in form
    assert "Creatinine &lt; 150" in form and "Open label, one arm" in form
