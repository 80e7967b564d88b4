"""Building blocks for tests that need donations: users of each role, an approved product,
registered, received and tested donations. Every helper goes through the services and commits,
as a request would."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask

from cellchain.core.models import User
from cellchain.core.types import utcnow
from cellchain.donors import panels, service
from cellchain.donors.models import (
    ContainerCondition,
    Donation,
    InfectiousResult,
    ScreeningOutcome,
)
from cellchain.extensions import db
from cellchain.labels import template_documents
from cellchain.manufacturing import service as products
from cellchain.manufacturing.models import ProductDefinition
from tests.conftest import TEST_PASSWORD
from tests.support.scenes import scene

UTC = ZoneInfo("UTC")


def new_donor(**overrides: Any) -> service.NewDonor:
    today = utcnow().date()
    values: dict[str, Any] = {
        "consent_date": today - dt.timedelta(days=30),
        "consent_form_version": "ICF v3.1",
        "screening_outcome": ScreeningOutcome.ACCEPTABLE,
        "screening_date": today - dt.timedelta(days=2),
    }
    values.update(overrides)
    return service.NewDonor(**values)


def registration(**overrides: Any) -> service.DonationRegistration:
    """A valid registration: born 6 h ago, collected 5 h ago, both tissues, a new donor."""
    now = utcnow()
    values: dict[str, Any] = {
        "umbilical_cord": True,
        "placenta": True,
        "delivery_at": now - dt.timedelta(hours=6),
        "collected_at": now - dt.timedelta(hours=5),
        "collection_site": "Maternity ward, City Hospital",
        "collector": "Midwife R. Okafor",
        "transport_conditions": "2–8 °C validated shipper",
        "new_donor": new_donor(),
    }
    values.update(overrides)
    return service.DonationRegistration(**values)


@dataclass
class Lab:
    """A site with a technician, a QC analyst and QA, and UC-MSC v1 in force."""

    app: Flask
    tech: User
    qc: User
    qa: User
    product: ProductDefinition

    @property
    def session(self) -> Any:
        return db.session

    def register(self, **overrides: Any) -> Donation:
        donation = service.register_donation(
            db.session,
            registration(**overrides),
            facility_code=self.app.config["FACILITY_CODE"],
            site_zone=UTC,
            actor=self.tech,
            now=utcnow(),
        )
        db.session.commit()
        return donation

    def receive(self, donation: Donation, **overrides: Any) -> Donation:
        values: dict[str, Any] = {
            "received_at": utcnow() - dt.timedelta(hours=1),
            "temperature_c": 4.5,
            "condition": ContainerCondition.INTACT,
            "accept": True,
        }
        values.update(overrides)
        service.receive_donation(
            db.session, donation, service.Receipt(**values), actor=self.tech, now=utcnow()
        )
        db.session.commit()
        return donation

    def record(
        self, donation: Donation, code: str, result: InfectiousResult, **overrides: Any
    ) -> Any:
        entry = service.ResultEntry(
            test_code=code,
            specimen_date=overrides.pop("specimen_date", donation.collected_at.date()),
            result=result,
            **overrides,
        )
        recorded = service.record_test_result(
            db.session, donation, entry, site_zone=UTC, actor=self.qc, now=utcnow()
        )
        db.session.commit()
        return recorded

    def full_panel(
        self,
        donation: Donation,
        *,
        results: dict[str, InfectiousResult] | None = None,
        skip: tuple[str, ...] = (),
    ) -> None:
        """Record every panel test, non-reactive unless ``results`` says otherwise."""
        for test in service.panel_of(donation):
            if test.code in skip:
                continue
            outcome = (results or {}).get(test.code, InfectiousResult.NON_REACTIVE)
            self.record(donation, test.code, outcome)

    def determine(self, donation: Donation, *, eligible: bool = True, reason: str | None = None):
        determination = service.determine_eligibility(
            db.session,
            donation,
            eligible=eligible,
            reason=reason,
            user=self.qa,
            password=TEST_PASSWORD,
            now=utcnow(),
        )
        db.session.commit()
        return determination

    def eligible_donation(self) -> Donation:
        donation = self.receive(self.register())
        self.full_panel(donation)
        self.determine(donation)
        return donation


def approve_default_product(qa: User) -> ProductDefinition:
    """UC-MSC v1 in force, with its donor test panel and the label templates (issue 22)."""
    product = products.PRODUCTS.load_default(db.session, actor=qa, now=utcnow())
    products.PRODUCTS.approve(db.session, product, user=qa, password=TEST_PASSWORD, now=utcnow())
    approve_default_panel(qa)
    approve_default_label_templates(qa)
    db.session.commit()
    return product


def approve_default_panel(qa: User) -> Any:
    """The default donor test panel UC-MSC in force (not committed)."""
    panel = panels.load_default(db.session, actor=qa, now=utcnow())
    if panel.status == "draft":
        panels.DONOR_TEST_PANELS.approve(
            db.session, panel, user=qa, password=TEST_PASSWORD, now=utcnow()
        )
    return panel


def approve_default_label_templates(qa: User) -> list[Any]:
    """The label templates of ``labels/`` in force (not committed)."""
    loaded = template_documents.load_defaults(db.session, actor=qa, now=utcnow())
    for template in loaded:
        if template.status == "draft":
            template_documents.LABEL_TEMPLATES.approve(
                db.session, template, user=qa, password=TEST_PASSWORD, now=utcnow()
            )
    return loaded


def make_lab(app: Flask, make_user: Callable[..., User]) -> Lab:
    tech = make_user("tina", "technician")
    qc = make_user("quinn", "qc_analyst")
    qa = make_user("alex", "qa")
    return Lab(app=app, tech=tech, qc=qc, qa=qa, product=approve_default_product(qa))


def with_changes(value: Any, **changes: Any) -> Any:
    return dataclasses.replace(value, **changes)


@scene
def lab(app: Flask, make_user: Callable[..., User]) -> Any:
    """A technician, a QC analyst and QA, with the UC-MSC product definition in force."""
    return make_lab(app, make_user)
