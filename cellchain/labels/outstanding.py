"""Labels printed and not yet accounted for, for the technician's work queue (issue 21): the
prints of a unit's label (a container, bag or dose; not a patient's wristband) with copies
neither applied (scanned on their container, ``service.record_applied``) nor destroyed
(``service.destroy_labels``) — what the reconciliation counts as outstanding. The listing
beside its count, the condition written once; the count is one statement.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import selectinload

from cellchain.extensions import DbSession
from cellchain.labels.models import LabelPrint


def _outstanding() -> tuple[ColumnElement[bool], ...]:
    """The condition of ``outstanding_prints``."""
    return (
        LabelPrint.unit_id.is_not(None),
        LabelPrint.applied + LabelPrint.destroyed < LabelPrint.copies,
    )


def outstanding_prints(session: DbSession) -> list[LabelPrint]:
    """Unit label prints with copies still to apply (or destroy), the oldest first."""
    return list(
        session.execute(
            select(LabelPrint)
            .where(*_outstanding())
            .options(selectinload(LabelPrint.unit), selectinload(LabelPrint.printed_by))
            .order_by(LabelPrint.printed_at, LabelPrint.id)
        ).scalars()
    )


def count_outstanding_prints(session: DbSession) -> int:
    """How many prints ``outstanding_prints`` lists (one statement)."""
    return session.execute(
        select(func.count()).select_from(LabelPrint).where(*_outstanding())
    ).scalar_one()
