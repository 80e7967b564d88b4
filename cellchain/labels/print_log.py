"""The print log as a list that scales (issue 21): every label printed on the site (a unit's,
a bag's, a dose's, a patient's wristband), newest first, paged, sorted, filtered and
searched in the database; and the first page of one unit's, lot's or patient's log, which
their label pages show (and read again after a print, without a reload).

A page costs a fixed number of statements whatever the number of prints: the count, the
page's rows (with the lot number, joined), then one statement each for the page's units,
patients, printers, accounting events and the events' recorders (``selectinload``).

The query's shape is here, beside its ``ListSpec``: :class:`PrintLogQueryIn` (the
``core.listing_schemas.ListQueryIn`` of this list, with its filters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import marshmallow as ma
from marshmallow import validate
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import selectinload

from cellchain.chain.models import UNIT_STATUS_NAMES, Unit
from cellchain.core import listing
from cellchain.core.listing_schemas import ListQueryIn
from cellchain.dosing.models import Patient, PatientStatus
from cellchain.extensions import DbSession
from cellchain.labels.models import LabelEvent, LabelPrint, OutputFormat
from cellchain.labels.outstanding import labels_to_apply_condition
from cellchain.labels.templates import REQUIRED
from cellchain.manufacturing.models import Lot

#: The label types a print may be of (the templates' types), for the filter.
LABEL_TYPES: tuple[str, ...] = tuple(sorted(REQUIRED))


class PrintLogQueryIn(ListQueryIn):
    """The print log's page (``core.listing``; newest first; sort by printed, unit or type;
    ``q`` searches the unit code (or a wristband's study ID and COI identifier), the lot
    number and the reprint reason), filtered by label type, format, quarantine marking and
    whether it was a reprint."""

    label_type = ma.fields.String(validate=validate.OneOf(LABEL_TYPES))
    format = ma.fields.String(validate=validate.OneOf([f.value for f in OutputFormat]))
    quarantine = ma.fields.Boolean(
        metadata={"description": "yes: only labels printed with the quarantine marking; no: none"}
    )
    reprint = ma.fields.Boolean(
        metadata={"description": "yes: only reprints (printed with a reason); no: first prints"}
    )
    open = ma.fields.Boolean(
        metadata={
            "description": (
                "yes: only unit labels with copies neither applied nor destroyed (the labels "
                "to apply); no: the others"
            )
        }
    )


def _print_search(text: str) -> ColumnElement[bool]:
    """A print matches a search text in its unit's code, its wristband's study ID or COI
    identifier, its lot's number or its reprint reason."""
    pattern = "%" + listing.like_escaped(text) + "%"
    return or_(
        Unit.code.ilike(pattern, escape="\\"),
        Patient.coi.ilike(pattern, escape="\\"),
        Patient.study_id.ilike(pattern, escape="\\"),
        Lot.lot_number.ilike(pattern, escape="\\"),
        LabelPrint.reason.ilike(pattern, escape="\\"),
    )


#: The print log: newest first; a wristband sorts by its COI identifier among the unit codes.
PRINT_LOG = listing.ListSpec(
    sorts={
        "printed": LabelPrint.id,
        "unit": func.coalesce(Unit.code, Patient.coi),
        "type": LabelPrint.label_type,
    },
    default_sort="printed",
    tiebreaker=LabelPrint.id,
    search=_print_search,
)


@dataclass(frozen=True)
class Subject:
    """Whose log: one unit's, one lot's or one patient's (``None`` of each: the site's)."""

    unit_id: int | None = None
    lot_id: int | None = None
    patient_id: int | None = None


class ListedPrint:
    """A print as the log shows it: the record (every attribute reads through to it) and
    the number of its lot (None for a print of no lot)."""

    def __init__(self, record: LabelPrint, lot_number: str | None) -> None:
        self.record = record
        self.lot_number = lot_number

    def __getattr__(self, name: str) -> Any:
        return getattr(self.record, name)

    @property
    def unit_status_name(self) -> str:
        """The unit's (or the wristband's patient's) status when printed, in the reader's
        language (the stored value when it is none the lab knows)."""
        status = self.record.unit_status
        if self.record.unit_id is None and status in {s.value for s in PatientStatus}:
            return PatientStatus(status).label
        return str(UNIT_STATUS_NAMES.get(status, status))


def prints_page(
    session: DbSession,
    request: listing.PageRequest,
    *,
    subject: Subject = Subject(),
    label_type: str | None = None,
    output_format: str | None = None,
    quarantine: bool | None = None,
    reprint: bool | None = None,
    unaccounted: bool | None = None,
) -> listing.Page[ListedPrint]:
    """A page of the print log (of ``subject`` only, when it names one), filtered; the
    prints' units, patients, printers and accounting events read once for the page."""
    lot_number: Any = Lot.lot_number  # one more column: typed Select[Any], as fetch_page takes
    query: Select[Any] = (
        select(LabelPrint, lot_number)
        .outerjoin(Unit, LabelPrint.unit_id == Unit.id)
        .outerjoin(Patient, LabelPrint.patient_id == Patient.id)
        .outerjoin(Lot, LabelPrint.lot_id == Lot.id)
        .options(
            selectinload(LabelPrint.unit),
            selectinload(LabelPrint.patient),
            selectinload(LabelPrint.printed_by),
            selectinload(LabelPrint.events).selectinload(LabelEvent.recorded_by),
        )
    )
    if subject.unit_id is not None:
        query = query.where(LabelPrint.unit_id == subject.unit_id)
    if subject.lot_id is not None:
        query = query.where(LabelPrint.lot_id == subject.lot_id)
    if subject.patient_id is not None:
        query = query.where(LabelPrint.patient_id == subject.patient_id)
    if label_type is not None:
        query = query.where(LabelPrint.label_type == label_type)
    if output_format is not None:
        query = query.where(LabelPrint.output_format == output_format)
    if quarantine is not None:
        query = query.where(LabelPrint.quarantine == quarantine)
    if reprint is not None:
        query = query.where(
            LabelPrint.reason.is_not(None) if reprint else LabelPrint.reason.is_(None)
        )
    if unaccounted is not None:
        outstanding = and_(*labels_to_apply_condition())
        query = query.where(outstanding if unaccounted else ~outstanding)
    page = listing.fetch_page(session, query, PRINT_LOG, request)
    return page.with_items([ListedPrint(record, number) for record, number in page.items])


def filters_of(query: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``prints_page`` a loaded ``PrintLogQueryIn`` asks for."""
    return {
        "label_type": query.get("label_type"),
        "output_format": query.get("format"),
        "quarantine": query.get("quarantine"),
        "reprint": query.get("reprint"),
        "unaccounted": query.get("open"),
    }
