"""Labels for the technician's work queue (issue 21), each listing beside its count, the
condition written once, each count one statement:

- **to apply**: the prints of a unit's label (a container, bag or dose; not a patient's
  wristband) with copies neither applied (scanned on their container,
  ``service.record_applied``) nor destroyed (``service.destroy_labels``) — what the
  reconciliation counts as outstanding;
- **to print**: the cryobags of a lot that need a label printed — never labelled since the
  fill, or carrying a label printed for a status whose marking differs from the bag's now
  (released under a quarantine label; recalled or blocked, quarantined again or rejected
  under a released label). It holds what ``service.reconciliation`` lists per lot as
  ``never_printed`` and ``quarantine_labels_to_replace``, here for every lot at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import aliased, selectinload

from cellchain.chain.models import UNIT_STATUS_NAMES, Unit, UnitKind, UnitStatus
from cellchain.core import listing
from cellchain.extensions import DbSession
from cellchain.labels.models import LabelPrint
from cellchain.manufacturing.models import CellRecord, Lot

#: a bag in one of these needs no label any more (consumed, discarded, infused: the same
#: as the lot's reconciliation, ``service._GONE_STATUSES``)
_GONE = (UnitStatus.CONSUMED.value, UnitStatus.DISCARDED.value, UnitStatus.INFUSED.value)


def _marking_group(status: Any) -> ColumnElement[str]:
    """Which status marking a unit in ``status`` carries (``content.status_markings``):
    quarantine, rejected and blocked each their own, every other status none."""
    return case(
        (status == UnitStatus.QUARANTINE.value, "quarantine"),
        (status == UnitStatus.REJECTED.value, "rejected"),
        (status == UnitStatus.BLOCKED.value, "blocked"),
        else_="",
    )


def labels_to_apply_condition() -> tuple[ColumnElement[bool], ...]:
    """The condition of ``outstanding_prints`` (and of the print log's ``open`` filter)."""
    return (
        LabelPrint.unit_id.is_not(None),
        LabelPrint.applied + LabelPrint.destroyed < LabelPrint.copies,
    )


#: How many labels to apply the outstanding page shows, the oldest first; the rest are in
#: the print log filtered to them (``print_log``'s ``open``), paged.
LABELS_TO_APPLY_SHOWN = 50


def outstanding_prints(session: DbSession, limit: int | None = None) -> list[LabelPrint]:
    """Unit label prints with copies still to apply (or destroy), the oldest first (the
    first ``limit`` of them, when given)."""
    return list(
        session.execute(
            select(LabelPrint)
            .where(*labels_to_apply_condition())
            .options(selectinload(LabelPrint.unit), selectinload(LabelPrint.printed_by))
            .order_by(LabelPrint.printed_at, LabelPrint.id)
            .limit(limit)
        ).scalars()
    )


def count_outstanding_prints(session: DbSession) -> int:
    """How many prints ``outstanding_prints`` lists (one statement)."""
    return session.execute(
        select(func.count()).select_from(LabelPrint).where(*labels_to_apply_condition())
    ).scalar_one()


@dataclass(frozen=True)
class ToPrint:
    """A bag that needs a label printed, and why: never labelled (``printed_as`` None), or
    its label printed for a status whose marking differs from its status now."""

    unit: Unit
    lot_id: int
    lot_number: str
    #: the unit's status when its latest label was printed; None: no label on it
    printed_as: str | None

    @property
    def replace(self) -> bool:
        return self.printed_as is not None

    @property
    def printed_as_name(self) -> str:
        """The status its label was printed for, in the reader's language."""
        status = self.printed_as or ""
        return str(UNIT_STATUS_NAMES.get(status, status))


def _latest_live_print() -> ColumnElement[int]:
    """The unit's latest print not wholly destroyed unapplied (a spoiled reprint never
    reached the unit), as ``service.label_states`` reads the label on it."""
    return (
        select(func.max(LabelPrint.id))
        .where(LabelPrint.unit_id == Unit.id, LabelPrint.destroyed < LabelPrint.copies)
        .correlate(Unit)
        .scalar_subquery()
    )


def _to_print(latest: Any) -> ColumnElement[bool]:
    """The condition of ``labels_to_print`` on ``Unit`` joined to its ``CellRecord`` and
    outer-joined to its latest live print ``latest``: a bag of a lot, not gone, with no
    label or one printed under another marking (released since, recalled or blocked,
    quarantined again, rejected). The recall numbers a blocked bag's marking names are
    label control's detail (``service.label_states``, at every use of the bag)."""
    return and_(
        Unit.kind == UnitKind.CRYOBAG.value,
        CellRecord.lot_id.is_not(None),
        Unit.status.not_in(_GONE),
        or_(
            latest.id.is_(None),
            _marking_group(latest.unit_status) != _marking_group(Unit.status),
        ),
    )


def _bags_statement(*columns: Any) -> Select[Any]:
    latest = aliased(LabelPrint)
    return (
        select(*columns, latest.unit_status)
        .select_from(Unit)
        .join(CellRecord, CellRecord.unit_id == Unit.id)
        .outerjoin(latest, latest.id == _latest_live_print())
        .where(_to_print(latest))
    )


def _to_print_statement() -> Select[Any]:
    return _bags_statement(Unit, Lot.id, Lot.lot_number).join(Lot, Lot.id == CellRecord.lot_id)


def labels_to_print(session: DbSession) -> list[ToPrint]:
    """Every bag needing a label printed, by lot then bag, each with its lot and the status
    its label was printed for (one statement; the page shows them a page at a time)."""
    rows = session.execute(_to_print_statement().order_by(Lot.id, Unit.id)).all()
    return [ToPrint(unit, lot_id, number, printed_as) for unit, lot_id, number, printed_as in rows]


#: The bags to label as a list that scales: by lot (oldest first), then bag; a search finds
#: a unit code or a lot number.
TO_PRINT = listing.ListSpec(
    sorts={"lot": Lot.id, "unit": Unit.code},
    default_sort="lot",
    default_direction=listing.Direction.ASC,
    tiebreaker=Unit.id,
    searched=(Unit.code, Lot.lot_number),
)


def labels_to_print_page(session: DbSession, request: listing.PageRequest) -> listing.Page[ToPrint]:
    """A page of ``labels_to_print`` (two statements: the count and the page's rows)."""
    page = listing.fetch_page(session, _to_print_statement(), TO_PRINT, request)
    return page.with_items([ToPrint(*row) for row in page.items])


def count_labels_to_print(session: DbSession) -> int:
    """How many bags ``labels_to_print`` lists (one statement)."""
    return session.execute(
        select(func.count()).select_from(_bags_statement(Unit.id).subquery())
    ).scalar_one()
