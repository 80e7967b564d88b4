"""The site-wide list of dose orders (issue 21, "Lists that scale"): every patient's doses,
paged, sorted, filtered and searched in the database, newest first.

A page costs a fixed number of statements whatever the number of doses: the count, the
page's rows (each with when its infusion started, read in the same statement), then one
statement each for the page's patients, bags and the bags' units (``selectinload``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import selectinload

from cellchain.chain.models import Unit
from cellchain.core import listing
from cellchain.dosing import patients
from cellchain.dosing.models import DoseBag, DoseOrder, DoseStatus, Patient
from cellchain.extensions import DbSession


def _dose_search(text: str) -> ColumnElement[bool]:
    """A dose order matches a search text in its patient's study ID or chain-of-identity
    identifier, or the code of a bag allocated to it or of the prepared dose."""
    pattern = "%" + listing.like_escaped(text) + "%"
    return or_(
        Patient.study_id.ilike(pattern, escape="\\"),
        Patient.coi.ilike(pattern, escape="\\"),
        DoseOrder.bags.any(DoseBag.unit.has(Unit.code.ilike(pattern, escape="\\"))),
        DoseOrder.dose_unit.has(Unit.code.ilike(pattern, escape="\\")),
    )


#: The doses list: newest first (ordered), sorted by ordered, status, study ID or visit.
DOSE_LIST = listing.ListSpec(
    sorts={
        "ordered": DoseOrder.id,
        "status": DoseOrder.status,
        "study_id": Patient.study_id,
        "visit": DoseOrder.visit,
    },
    default_sort="ordered",
    tiebreaker=DoseOrder.id,
    search=_dose_search,
)


@dataclass(frozen=True)
class ListedDose:
    """A dose order as the list shows it, with when its infusion started (None if not)."""

    order: DoseOrder
    infused_at: dt.datetime | None

    @property
    def bag_codes(self) -> list[str]:
        return [bag.unit.code for bag in self.order.bags]


def _infusion_start() -> Any:
    """When the dose's infusion started: a correlated subquery of the clinic's infusions
    (one per dose order, ever). The clinic is built on dosing: its table is read here, its
    rules are not called (as ``patients.schedule_facts`` does)."""
    from cellchain.clinic.models import Infusion

    return (
        select(Infusion.started_at)
        .where(Infusion.dose_order_id == DoseOrder.id)
        .correlate(DoseOrder)
        .scalar_subquery()
        .label("infused_at")
    )


def doses_page(
    session: DbSession,
    request: listing.PageRequest,
    *,
    status: DoseStatus | None = None,
    visit: str | None = None,
) -> listing.Page[ListedDose]:
    """A page of the dose orders of every patient, with their patients, bags and infusion
    starts read once for the page."""
    query = (
        select(DoseOrder, _infusion_start())
        .join(Patient, DoseOrder.patient_id == Patient.id)
        .options(
            selectinload(DoseOrder.patient),
            selectinload(DoseOrder.bags).selectinload(DoseBag.unit),
        )
    )
    if status is not None:
        query = query.where(DoseOrder.status == status.value)
    if visit:
        query = query.where(DoseOrder.visit == visit)
    page = listing.fetch_page(session, query, DOSE_LIST, request)
    return page.with_items([ListedDose(order, infused_at) for order, infused_at in page.items])


def visit_codes(session: DbSession, *, at: dt.datetime) -> Sequence[str]:
    """The infusion visits of the protocols in force at ``at``, in the order of their days
    (the list's visit filter; a code two protocols share once); none before QA approved a
    protocol."""
    days: dict[str, int] = {}
    for protocol in patients.protocols_in_force(session, at=at):
        for item in protocol.parameters["infusions"]:
            code = str(item["code"])
            days[code] = min(days.get(code, int(item["day"])), int(item["day"]))
    return sorted(days, key=lambda code: (days[code], code))
