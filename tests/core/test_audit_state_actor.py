"""The records.state entry of a transaction whose audit entries were written mid-transaction
(record_many: bulk status changes, label batches) names the actor, time and first entry of
the transaction (independent review of issue 20, finding F6)."""

from __future__ import annotations

from sqlalchemy import select

from cellchain.core import audit
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow


def test_state_entry_after_a_record_many_names_the_actor_and_first_entry(session, make_user):
    user = make_user("ria", "qa")
    user.full_name = "Ria Changed"
    [entry] = audit.record_many(
        session, [audit.Draft("test.many", "thing", "x")], actor=user, at=utcnow()
    )
    session.commit()
    state = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == "records.state")
        .order_by(AuditEntry.seq.desc())
    ).first()
    assert state.seq == entry.seq + 1
    assert state.actor_username == "ria"
    assert state.entity_id == str(entry.seq)
