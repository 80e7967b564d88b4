"""Two QA users signing the same determination at the same moment: exactly one wins."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cellchain.core.models import Signature
from cellchain.core.types import utcnow
from cellchain.donors import service
from cellchain.donors.models import EligibilityDetermination
from cellchain.errors import Conflict
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD, at_once


@pytest.mark.postgres_only
def test_parallel_determinations_end_with_one(app, lab, make_user):
    donation = lab.receive(lab.register())
    lab.full_panel(donation)
    donation_id = donation.id

    def sign_as(user_id: int):
        def job() -> str:
            try:
                service.determine_eligibility(
                    db.session,
                    service.get_donation(db.session, donation_id),
                    eligible=True,
                    reason=None,
                    user=db.session.get(type(lab.qa), user_id),
                    password=TEST_PASSWORD,
                    now=utcnow(),
                )
                db.session.commit()
                return "signed"
            except Conflict:
                db.session.rollback()
                return "refused"

        return job

    signers = [lab.qa.id, make_user("blake", "qa").id]
    assert at_once(app, [sign_as(user_id) for user_id in signers]) == ["refused", "signed"]
    db.session.expire_all()
    determinations = db.session.scalar(select(func.count()).select_from(EligibilityDetermination))
    signed = db.session.scalar(
        select(func.count())
        .select_from(Signature)
        .where(Signature.entity_type == "eligibility_determination")
    )
    assert (determinations, signed) == (1, 1)
