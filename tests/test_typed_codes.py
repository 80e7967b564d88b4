"""A typed or scanned code needs its check character on every path (issue 16 item 4).

One table: every page and API field that takes a DIN, a chain-of-identity identifier or a unit
code × the four ways the code can arrive: without its check character, with a wrong one, with
the right one, as the full label payload. The first two are refused with the reason (a 422 on
the API and the pages; at the bedside an unreadable-scan STOP, recorded); the last two reach
the record (whatever the path then decides about it). Runs on a copy of the demo site.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from cellchain.chain.models import Unit, UnitKind
from cellchain.clinic.models import BedsideCheck, Shipment
from cellchain.core import accounts
from cellchain.core.identifiers import ALPHABET
from cellchain.core.models import IssuedIdentifier, User
from cellchain.core.types import utcnow
from cellchain.demo import DEMO_USERS
from cellchain.donors.models import Donation
from cellchain.dosing.models import DoseOrder, Patient
from cellchain.extensions import db
from cellchain.manufacturing.models import CellRecord, Lot
from cellchain.manufacturing.storage import storage
from tests.conftest import DatabaseFactory

PASSWORDS = {demo.username: demo.password for demo in DEMO_USERS}


@pytest.fixture
def database_url(demo_database_url: str) -> Iterator[str]:
    """Every test here runs on a fresh copy of the demo site."""
    yield demo_database_url


# --- the four ways a code arrives ----------------------------------------------------------------


def without_check(code: str) -> str:
    return code[:-1]


def wrong_check(code: str) -> str:
    return code[:-1] + next(c for c in ALPHABET if c != code[-1])


def with_check(code: str) -> str:
    """As a person types it from the label: grouped, with the boxed check character."""
    return f"{code[:-1]} [{code[-1]}]".lower()


def payload(code: str) -> str:
    return f"CC1.{code}"


FORMS: dict[str, Callable[[str], str]] = {
    "without K": without_check,
    "wrong K": wrong_check,
    "with K": with_check,
    "payload": payload,
}
REFUSED = {"without K": "no_check", "wrong K": "check"}
#: what the refusal says, on the API, the pages and at the bedside
SAYS = {
    "no_check": ("needs its check character", "without its check character"),
    "check": ("Check character mismatch", "check character does not match"),
}
IDENTIFIER_ERRORS = tuple(phrase for phrases in SAYS.values() for phrase in phrases)


# --- the demo's records and clients ------------------------------------------------------------


@dataclass
class Site:
    app: Any

    def user(self, username: str) -> User:
        return db.session.scalars(select(User).where(User.username == username)).one()

    def api(self, username: str) -> FlaskClient:
        _row, token = accounts.create_token(
            db.session, user=self.user(username), now=utcnow(), name="typed-codes"
        )
        db.session.commit()
        client = self.app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return client

    def web(self, username: str) -> FlaskClient:
        client = self.app.test_client()
        response = client.post(
            "/login", data={"username": username, "password": PASSWORDS[username]}
        )
        assert response.status_code == 302
        return client

    def donation_din(self) -> str:
        return db.session.scalars(select(Donation.din).order_by(Donation.id)).first()

    def reserved_din(self) -> str:
        return db.session.scalars(
            select(IssuedIdentifier.code)
            .where(IssuedIdentifier.kind == "DIN", IssuedIdentifier.entity_type.is_(None))
            .order_by(IssuedIdentifier.id)
        ).first()

    def infused_order(self) -> DoseOrder:
        return db.session.scalars(
            select(DoseOrder).where(DoseOrder.status == "infused").order_by(DoseOrder.id)
        ).first()

    def patient_coi(self) -> str:
        return self.infused_order().patient.coi

    def dose_code(self) -> str:
        return self.infused_order().dose_unit.code

    def shipment(self, status: str) -> Shipment:
        return db.session.scalars(select(Shipment).where(Shipment.status == status)).first()

    def quarantined_bag(self) -> tuple[Lot, str]:
        lot = db.session.scalars(select(Lot).where(Lot.status == "quarantine")).first()
        code = db.session.scalars(
            select(Unit.code)
            .join(CellRecord, CellRecord.unit_id == Unit.id)
            .where(CellRecord.lot_id == lot.id, Unit.status == "quarantine")
            .order_by(Unit.id.desc())
        ).first()
        return lot, code

    def vessel_code(self) -> str:
        return db.session.scalars(
            select(Unit.code).where(Unit.kind == UnitKind.CULTURE_VESSEL.value).order_by(Unit.id)
        ).first()


@pytest.fixture
def site(app: Any) -> Site:
    return Site(app)


# --- the paths ---------------------------------------------------------------------------------

Path = Callable[[Site, Callable[[str], str]], Any]


def scan_box_din(site: Site, form: Callable[[str], str]) -> Any:
    return site.web("tech").get("/scan", query_string={"code": form(site.donation_din())})


def scan_box_coi(site: Site, form: Callable[[str], str]) -> Any:
    return site.web("clinician").get("/scan", query_string={"code": form(site.patient_coi())})


def scan_box_unit(site: Site, form: Callable[[str], str]) -> Any:
    return site.web("tech").get("/scan", query_string={"code": form(site.dose_code())})


def api_scan_din(site: Site, form: Callable[[str], str]) -> Any:
    return site.api("tech").get("/api/v1/scan", query_string={"code": form(site.donation_din())})


def api_scan_coi(site: Site, form: Callable[[str], str]) -> Any:
    return site.api("nurse").get("/api/v1/scan", query_string={"code": form(site.patient_coi())})


def api_identifier(site: Site, form: Callable[[str], str]) -> Any:
    code = form(site.donation_din()).replace(" ", "").replace("[", "").replace("]", "")
    return site.api("tech").get(f"/api/v1/identifiers/{code}")


def registration_reserved_din(site: Site, form: Callable[[str], str]) -> Any:
    """Receipt of a donation into a pre-printed DIN label (reserved for label stock)."""
    now = utcnow().replace(microsecond=0).isoformat()
    body = {
        "umbilical_cord": True,
        "delivery_at": now,
        "collected_at": now,
        "collection_site": "Ward 4",
        "collector": "midwife",
        "transport_conditions": "2–8 °C",
        "reserved_din": form(site.reserved_din()),
        "consent_date": utcnow().date().isoformat(),
        "consent_form_version": "v1",
        "screening_outcome": "acceptable",
        "screening_date": utcnow().date().isoformat(),
    }
    return site.api("tech").post("/api/v1/donations", json=body)


def qc_sample_bag(site: Site, form: Callable[[str], str]) -> Any:
    lot, bag = site.quarantined_bag()
    return site.api("qc").post(f"/api/v1/lots/{lot.id}/samples", json={"bag": form(bag)})


def derive_parents(site: Site, form: Callable[[str], str]) -> Any:
    body = {
        "parents": [form(site.vessel_code())],
        "kind": UnitKind.SAMPLE_TUBE.value,
        "operation": "sample",
        "location": "QC lab",
    }
    return site.api("tech").post("/api/v1/units/derive", json=body)


def storage_form(site: Site, form: Callable[[str], str]) -> Any:
    tank = storage.list_tanks(db.session)[0].tank
    _lot, bag = site.quarantined_bag()
    data = {"code": form(bag), "rack": "R9", "box": "B9", "slot": "99"}
    return site.web("tech").post(f"/storage/tanks/{tank.id}/store", data=data)


def shipment_receipt(site: Site, form: Callable[[str], str]) -> Any:
    shipment = site.shipment("in_transit")
    code = shipment.items[0].dose_order.dose_unit.code
    body = {"scan": form(code), "temperature_c": -150.0, "condition": "intact"}
    return site.api("clinician").post(f"/api/v1/shipments/{shipment.id}/receipt", json=body)


def thaw_scan(site: Site, form: Callable[[str], str]) -> Any:
    return site.api("clinician").post("/api/v1/thaw", json={"scan": form(site.dose_code())})


def bedside_wristband(site: Site, form: Callable[[str], str]) -> Any:
    body = {"wristband": form(site.patient_coi()), "label": payload(site.dose_code())}
    return site.api("clinician").post("/api/v1/bedside/checks", json=body)


def bedside_label(site: Site, form: Callable[[str], str]) -> Any:
    body = {"wristband": payload(site.patient_coi()), "label": form(site.dose_code())}
    return site.api("clinician").post("/api/v1/bedside/checks", json=body)


def bedside_wristband_page(site: Site, form: Callable[[str], str]) -> Any:
    return site.web("clinician").post(
        "/bedside/wristband", data={"wristband": form(site.patient_coi())}
    )


def recall_by_din(site: Site, form: Callable[[str], str]) -> Any:
    query = {"target_type": "donation", "target": form(site.donation_din())}
    return site.web("qa").get("/recalls/new", query_string=query)


PATHS: dict[str, Path] = {
    "scan box, DIN": scan_box_din,
    "scan box, COI": scan_box_coi,
    "scan box, unit": scan_box_unit,
    "API scan, DIN": api_scan_din,
    "API scan, COI": api_scan_coi,
    "API identifier": api_identifier,
    "registration, reserved DIN (receipt of a labelled donation)": registration_reserved_din,
    "QC sample, bag": qc_sample_bag,
    "derive, parents (step)": derive_parents,
    "storage page, unit": storage_form,
    "shipment receipt, dose": shipment_receipt,
    "thaw, dose": thaw_scan,
    "bedside, wristband": bedside_wristband,
    "bedside, label": bedside_label,
    "bedside page, wristband": bedside_wristband_page,
    "recall form, DIN": recall_by_din,
}
BEDSIDE_CHECKS = {"bedside, wristband", "bedside, label"}


def answer(response: Any) -> str:
    return response.get_data(as_text=True).replace("&#39;", "'")


@pytest.mark.parametrize("form_name", list(FORMS))
@pytest.mark.parametrize("path_name", list(PATHS))
def test_a_code_needs_its_check_character_on_every_path(
    site: Site, path_name: str, form_name: str
) -> None:
    checks_before = db.session.query(BedsideCheck).count()
    response = PATHS[path_name](site, FORMS[form_name])
    text = answer(response)
    where = f"{path_name} × {form_name}: {response.status_code} {text[:300]}"
    assert response.status_code < 500, where
    if path_name in BEDSIDE_CHECKS:
        # the bedside records a verdict either way: a STOP naming the unreadable scan
        assert response.status_code == 201, where
        check = response.get_json()
        db.session.expire_all()
        assert db.session.query(BedsideCheck).count() == checks_before + 1
        identified = check["coi"] if path_name == "bedside, wristband" else check["dose_unit"]
        if form_name in REFUSED:
            assert check["verdict"] == "stop", where
            assert identified is None, where
            assert any(phrase in text for phrase in SAYS[REFUSED[form_name]]), where
        else:
            assert identified is not None, where
            assert not any(phrase in text for phrase in IDENTIFIER_ERRORS), where
        return
    if form_name in REFUSED:
        assert response.status_code == 422, where
        assert any(phrase in text for phrase in SAYS[REFUSED[form_name]]), where
    else:
        refused_as_code = response.status_code == 422 and any(
            phrase in text for phrase in IDENTIFIER_ERRORS
        )
        assert not refused_as_code, where
        assert "not a cellchain label" not in text, where


def test_the_forms_really_differ(site: Site) -> None:
    code = site.dose_code()
    forms = {name: form(code) for name, form in FORMS.items()}
    assert len(set(forms.values())) == 4
    assert forms["without K"] == code[:-1] and forms["payload"] == f"CC1.{code}"


def test_the_demo_has_what_the_paths_need(site: Site) -> None:
    assert site.reserved_din() and site.donation_din() and site.patient_coi()
    assert site.shipment("in_transit") is not None
    assert site.quarantined_bag()[1] is not None
    assert db.session.scalars(select(Patient)).first() is not None
    assert isinstance(DatabaseFactory, type)
