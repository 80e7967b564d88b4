"""The clinic's fixtures: the dosing package's clinic (protocol in force, clinician,
investigator) and released lot, and a ward that takes doses from the lab to the bedside."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest

from cellchain.clinic.bedside import bedside, infusions, thaw
from cellchain.clinic.bedside.doses import units_of_dose
from cellchain.clinic.shipments import shipments
from cellchain.core.identifiers import parse_identifier
from cellchain.core.payload import encode_payload
from cellchain.core.types import utcnow
from cellchain.dosing import orders
from cellchain.dosing.rechecks import rechecks
from cellchain.extensions import db
from cellchain.manufacturing.models import EquipmentKind
from tests.conftest import TEST_PASSWORD
from tests.support.clinic import UTC
from tests.support.equipment import register_in_date
from tests.support.labels import label
from tests.support.scenes import scene


def payload(code: str) -> str:
    """What a scanner types for the label of ``code``."""
    return encode_payload(parse_identifier(code))


@dataclass
class Ward:
    """A clinic with a released lot: prepares doses and takes them to the bedside."""

    clinic: Any
    nurse: Any  #: a second clinician
    enrolled: int = field(default=0)

    @property
    def lab(self) -> Any:
        return self.clinic.lab

    def patient(self, weight_kg: float = 70.0, **changes: Any) -> Any:
        self.enrolled += 1
        changes.setdefault("study_id", f"AS-{self.enrolled:03d}")
        changes.setdefault("randomization_number", f"R-{self.enrolled:03d}")
        patient = self.clinic.enrol(**changes)
        if weight_kg:
            self.clinic.weigh(patient, weight_kg)
        return patient

    def prepared(self, patient: Any = None, visit: str = "D0", *, labelled: bool = True) -> Any:
        """A second-checked dose for ``patient`` (a new 70 kg MSC patient by default), its
        dose label and its bags' released labels printed and applied unless not ``labelled``."""
        patient = patient or self.patient()
        if rechecks.problem(db.session, patient, visit, now=utcnow(), zone=UTC):
            self.clinic.recheck(patient, visit)  # before an infusion after the first (M3)
        order = orders.order_dose(
            db.session, patient, visit, actor=self.lab.tech, now=utcnow(), zone=UTC
        )
        db.session.commit()
        orders.second_check(
            db.session,
            order,
            checker=self.lab.qa,
            password=TEST_PASSWORD,
            volume_ml=order.volume_ml,
            bag_codes=[bag.unit.code for bag in order.bags],
            now=utcnow(),
        )
        db.session.commit()
        if labelled:
            self.label(order)
        return order

    def label(self, order: Any) -> None:
        """Print and apply what the dose's units must carry to leave the lab: the dose label
        and each bag's released label (replacing its quarantine label, if it had one)."""
        label(units_of_dose(order), self.lab.tech)

    def ship(self, *dose_orders: Any, shipper: str = "DS-0001") -> Any:
        shipment = shipments.dispatch(
            db.session,
            shipments.Dispatch(
                shipper_id=shipper,
                logger_id="TL-77",
                destination="Clinic — infusion room 2",
                courier="courier: J. Doe",
                dose_scans=[payload(o.dose_unit.code) for o in dose_orders],
            ),
            actor=self.lab.tech,
            now=utcnow(),
        )
        db.session.commit()
        return shipment

    def receive(self, shipment: Any, temperature_c: float = -185.0, **changes: Any) -> Any:
        values: dict[str, Any] = {
            "scan": shipment.shipper_id,
            "temperature_c": temperature_c,
            "condition": "intact",
            "logger_excursion": False,
        }
        values.update(changes)
        received = shipments.receive(
            db.session,
            shipment,
            shipments.Receipt(**values),
            actor=self.clinic.clinician,
            now=utcnow(),
        )
        db.session.commit()
        return received

    def thaw(self, order: Any, *, at: dt.datetime | None = None) -> None:
        """Start and complete the thaw of every bag of the dose (two scans of its label):
        started at ``at`` (now by default) and completed the product's minimum thaw later."""
        started = at or utcnow()
        for scanned_at in (started, started + dt.timedelta(minutes=thaw.DEFAULT_MIN_THAW_MINUTES)):
            thaw.scan_thaw(
                db.session,
                payload(order.dose_unit.code),
                actor=self.clinic.clinician,
                now=scanned_at,
            )
            db.session.commit()

    def at_bedside(self, patient: Any = None) -> tuple[Any, Any]:
        """A dose prepared, shipped, received and thawed: ready for the bedside check."""
        order = self.prepared(patient)
        self.receive(self.ship(order))
        self.thaw(order)
        return order.patient, order

    def verify(
        self, patient: Any, order: Any, *, now: dt.datetime | None = None, label: str | None = None
    ) -> Any:
        check = bedside.verify(
            db.session,
            payload(patient.coi),
            label or payload(order.dose_unit.code),
            actor=self.clinic.clinician,
            now=now or utcnow(),
            zone=UTC,
        )
        db.session.commit()
        return check

    def sign(self, check: Any) -> Any:
        bedside.sign_off(
            db.session,
            check,
            first=bedside.Signer(self.clinic.clinician, TEST_PASSWORD),
            second=bedside.Signer(self.nurse, TEST_PASSWORD),
            now=utcnow(),
        )
        db.session.commit()
        return check

    def start(self, check: Any, *, now: dt.datetime | None = None) -> infusions.Started:
        started = infusions.start(
            db.session, check, actor=self.clinic.clinician, now=now or utcnow(), zone=UTC
        )
        db.session.commit()
        return started


@dataclass
class Clock:
    """How far the requests' clock is ahead of the real one."""

    offset: dt.timedelta = field(default_factory=dt.timedelta)

    def advance(self, **delta: float) -> None:
        self.offset += dt.timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The clock of requests (``cellchain.http.now``), moved on by ``advance``: minutes pass
    between two requests (a bag thawing, an infusion running) without waiting for them."""
    from cellchain import http

    clock, real = Clock(), http.utcnow
    monkeypatch.setattr(http, "utcnow", lambda: real() + clock.offset)
    return clock


#: the ward's cell counter (registered, in date): a post-thaw count names it (issue 22)
WARD_COUNTER = "CNT-20"


@scene
def ward(clinic: Any, released: Any, make_user: Any) -> Ward:
    register_in_date(
        db.session,
        code=WARD_COUNTER,
        kind=EquipmentKind.CELL_COUNTER,
        name="NucleoCounter NC-200 (ward)",
        actor=clinic.lab.qa,
        now=utcnow(),
    )
    db.session.commit()
    return Ward(clinic=clinic, nurse=make_user("nina", "clinician"))
