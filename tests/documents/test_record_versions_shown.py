"""Every record keeps the version of the controlled document it was made under, and its page
links to that version (issue 22): a donation and a lot their product definition, a QC result
its specification, a patient and a dose their protocol. On a copy of the demo site, after
QA signs a new version of each: the records still name the version they were made under."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cellchain.core.models import User
from cellchain.core.types import utcnow
from cellchain.donors.models import Donation
from cellchain.dosing.models import DoseOrder, Patient
from cellchain.dosing.service import PROTOCOLS
from cellchain.extensions import db
from cellchain.manufacturing.models import Lot
from cellchain.manufacturing.service import PRODUCTS
from cellchain.quality.models import QcResult
from cellchain.quality.service import SPECIFICATIONS


@pytest.fixture
def database_url(demo_database_url: str) -> str:
    """This test's database: a copy of the demo site as ``cellchain demo`` seeds it."""
    return demo_database_url


def test_records_link_the_version_they_were_made_under_after_a_new_one(clients: Any) -> None:
    qa_user = db.session.execute(select(User).where(User.username == "qa")).scalar_one()
    for kind, code in (
        (PROTOCOLS, "NCT01420432"),
        (PRODUCTS, "UC-MSC"),
        (SPECIFICATIONS, "UC-MSC"),
    ):
        current = kind.in_force(db.session, code, at=utcnow())
        draft = kind.draft_change(
            db.session,
            actor=qa_user,
            now=utcnow(),
            code=code,
            title=current.title,
            parameters=current.parameters,
            reason="periodic review",
        )
        kind.approve(db.session, draft, user=qa_user, password="qa-demo-pass", now=utcnow())
    db.session.commit()
    web = clients.web(qa_user, "qa-demo-pass")

    def links(url: str, href: str) -> None:
        page = web.get(url).get_data(as_text=True)
        assert f'href="{href}"' in page, (url, href)

    donation = db.session.scalars(select(Donation).order_by(Donation.id)).first()
    links(f"/donations/{donation.id}", f"/products/{donation.product_definition_id}")
    lot = db.session.scalars(select(Lot).order_by(Lot.id)).first()
    links(f"/lots/{lot.id}", f"/products/{lot.product_definition_id}")
    result = db.session.scalars(select(QcResult).order_by(QcResult.id)).first()
    links(f"/lots/{result.lot_id}/testing", f"/specifications/{result.specification_id}")
    patient = db.session.scalars(select(Patient).order_by(Patient.id)).first()
    links(f"/patients/{patient.id}", f"/protocols/{patient.protocol_id}")
    order = db.session.scalars(select(DoseOrder).order_by(DoseOrder.id)).first()
    links(f"/doses/{order.id}", f"/protocols/{order.protocol_id}")
    for record in (donation, lot, result, patient, order):
        version = (
            getattr(record, "product_definition", None)
            or getattr(record, "specification", None)
            or record.protocol
        )
        assert version.status == "superseded"  # made under the version before QA's new one
