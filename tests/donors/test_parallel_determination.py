"""Two QA users signing the same determination at the same moment: exactly one wins."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from cellchain.core.models import Signature
from cellchain.core.types import utcnow
from cellchain.donors import service
from cellchain.donors.models import EligibilityDetermination
from cellchain.errors import Conflict
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD


@pytest.mark.postgres_only
def test_parallel_determinations_end_with_one(app, lab, make_user):
    donation = lab.receive(lab.register())
    lab.full_panel(donation)
    donation_id = donation.id
    signers = [lab.qa.id, make_user("blake", "qa").id]
    barrier = threading.Barrier(len(signers))
    outcomes: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def sign(user_id: int) -> None:
        try:
            with app.app_context():
                session = db.session
                found = service.get_donation(session, donation_id)
                user = session.get(type(lab.qa), user_id)
                barrier.wait(timeout=30)
                try:
                    service.determine_eligibility(
                        session,
                        found,
                        eligible=True,
                        reason=None,
                        user=user,
                        password=TEST_PASSWORD,
                        now=utcnow(),
                    )
                    session.commit()
                    result = "signed"
                except Conflict:
                    session.rollback()
                    result = "refused"
                with lock:
                    outcomes.append(result)
                db.session.remove()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=sign, args=(user_id,)) for user_id in signers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert sorted(outcomes) == ["refused", "signed"]
    db.session.expire_all()
    determinations = db.session.scalar(select(func.count()).select_from(EligibilityDetermination))
    signed = db.session.scalar(
        select(func.count())
        .select_from(Signature)
        .where(Signature.entity_type == "eligibility_determination")
    )
    assert (determinations, signed) == (1, 1)
