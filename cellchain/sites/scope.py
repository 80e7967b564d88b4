"""The site invariant: a clinic user sees only their own sites' patients and everything of
those patients, through every query (docs/sites.md).

Rather than a filter repeated in every list, page, search, export and count, the rule is one
ORM option: while ``VISIBLE_SITES`` holds a set of site ids (set per request by
``wiring.py`` for a site-restricted user, see ``service.visible_site_ids``), every ORM
SELECT of a patient-linked table — by ``select``, ``session.get``, a relationship's lazy
load or a count — gets ``with_loader_criteria`` keeping only rows of patients of those sites
(and shipments going to them). A record of another site is then absent from every list and
a 404 on its own page, whatever the route. Outside a request (CLI, scheduled jobs, tests'
direct calls) the variable is unset and nothing is filtered.

A rule that must see every site's rows to be right (the study ID unique across sites, the
randomization's free slots) reads inside ``unscoped()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache, lru_cache
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, event, or_, select, tuple_
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

T = TypeVar("T")

#: the site ids whose records the acting user sees; None: every site (not restricted)
VISIBLE_SITES: ContextVar[frozenset[int] | None] = ContextVar("visible_sites", default=None)

#: tables the rule never filters although they name a patient: the randomization slots
#: (the draw counts the free ones; nobody but the statistician lists them)
UNFILTERED = frozenset({"randomization_slots"})

_INSTALLED = False


@contextmanager
def restricted_to(site_ids: frozenset[int] | None) -> Iterator[None]:
    """Filter every query by ``site_ids`` (None: no filter) for the block."""
    token = VISIBLE_SITES.set(site_ids)
    try:
        yield
    finally:
        VISIBLE_SITES.reset(token)


@contextmanager
def unscoped() -> Iterator[None]:
    """Read every site's rows for the block (a rule that must be right across sites)."""
    with restricted_to(None):
        yield


def carried(rows: Iterable[T]) -> Iterator[T]:
    """``rows`` read under the sites filter in force now: a streamed answer (the audit CSV)
    is read after its view returned, where the request's filter is no longer set. Set
    around each row only, so that no token crosses a ``yield``."""
    site_ids = VISIBLE_SITES.get()

    def read() -> Iterator[T]:
        iterator = iter(rows)
        while True:
            with restricted_to(site_ids):
                try:
                    row = next(iterator)
                except StopIteration:
                    return
            yield row

    return read()


@cache
def _linked() -> tuple[tuple[type, str, bool], ...]:
    """Every mapped class naming a patient or a dose order: (class, column, nullable)."""
    from cellchain.clinic.models import Shipment
    from cellchain.dosing.models import DoseOrder, Patient
    from cellchain.extensions import db

    found = []
    for mapper in db.Model.registry.mappers:  # type: ignore[attr-defined]
        cls = mapper.class_
        table = getattr(mapper.local_table, "name", "")
        if cls in (Patient, Shipment, DoseOrder) or table in UNFILTERED:
            continue
        for name in ("patient_id", "dose_order_id", "order_id"):
            if name in mapper.columns and (name != "order_id" or table == "dose_bags"):
                found.append((cls, name, bool(mapper.columns[name].nullable)))
                break
    return tuple(found)


@lru_cache(maxsize=256)
def _criteria(site_ids: frozenset[int], viewer: int | None) -> tuple[Any, ...]:
    """The loader criteria keeping only rows of patients of ``site_ids``. Lambdas, so that
    the criteria follow the tables into their aliases (a joined eager load)."""
    from cellchain.clinic.models import Shipment
    from cellchain.dosing.models import DoseOrder, Patient

    ids = sorted(site_ids)
    patients = select(Patient.id).where(Patient.site_id.in_(ids)).scalar_subquery()
    orders = select(DoseOrder.id).where(DoseOrder.patient_id.in_(patients)).scalar_subquery()
    options: list[Any] = [
        with_loader_criteria(Patient, lambda cls: cls.site_id.in_(ids), include_aliases=True),
        with_loader_criteria(
            Shipment, lambda cls: cls.destination_site_id.in_(ids), include_aliases=True
        ),
        with_loader_criteria(
            DoseOrder, lambda cls: cls.patient_id.in_(patients), include_aliases=True
        ),
    ]
    makers = {
        ("patient_id", False): lambda cls: cls.patient_id.in_(patients),
        ("patient_id", True): lambda cls: or_(
            cls.patient_id.is_(None), cls.patient_id.in_(patients)
        ),
        ("dose_order_id", False): lambda cls: cls.dose_order_id.in_(orders),
        ("dose_order_id", True): lambda cls: or_(
            cls.dose_order_id.is_(None), cls.dose_order_id.in_(orders)
        ),
        ("order_id", False): lambda cls: cls.order_id.in_(orders),
        ("order_id", True): lambda cls: or_(cls.order_id.is_(None), cls.order_id.in_(orders)),
    }
    # the custody events of the units given to another site's patients (their prepared dose
    # and its bags), whose notes name the patient (the units themselves are the lab's, seen
    # by all); read from the tables (not the ORM classes) so that no criterion applies inside
    from sqlalchemy import String, cast

    from cellchain.chain.models import UnitEvent
    from cellchain.core.models import AuditEntry, IssuedIdentifier
    from cellchain.core.record_state import STATE_ACTIONS

    patients_t = Patient.__table__
    hidden_units = _hidden_units(ids).scalar_subquery()
    hidden_entries = _hidden_audit_entries(ids, viewer)
    hidden_patients = (
        select(cast(patients_t.c.id, String(80)))
        .where(patients_t.c.site_id.not_in(ids))
        .scalar_subquery()
    )
    options += [
        with_loader_criteria(
            UnitEvent, lambda cls: cls.unit_id.not_in(hidden_units), include_aliases=True
        ),
        with_loader_criteria(
            IssuedIdentifier,
            lambda cls: or_(
                cls.entity_type.is_(None),
                cls.entity_type != "patient",
                cls.entity_id.not_in(hidden_patients),
            ),
            include_aliases=True,
        ),
    ]
    from cellchain.manufacturing.models import Deviation

    hidden_deviations = _hidden_deviations(ids).scalar_subquery()
    options.append(
        with_loader_criteria(
            Deviation, lambda cls: cls.id.not_in(hidden_deviations), include_aliases=True
        )
    )
    hidden_acts = _hidden_audit_acts(ids)
    options.append(
        with_loader_criteria(
            AuditEntry,
            lambda cls: and_(
                # the record-state entries: the rows of every site a transaction wrote
                cls.action.not_in(STATE_ACTIONS),
                tuple_(cls.entity_type, cls.entity_id).not_in(hidden_entries),
                tuple_(cls.action, cls.entity_id, cls.at).not_in(hidden_acts),
            ),
            include_aliases=True,
        )
    )
    for cls, name, nullable in _linked():
        options.append(with_loader_criteria(cls, makers[(name, nullable)], include_aliases=True))
    return tuple(options)


#: the audit trail's record types that belong to a clinical site, and the column naming it
#: (a patient's, through the record's patient, or a shipment's destination); their entries
#: are hidden from another site's users, as are (``_hidden_audit_entries``) those of the
#: units given to another site's patients (their prepared dose and its bags: their custody,
#: thaw, labels), of the identifiers issued to those patients and units (a COI, a unit
#: code), of the label prints of those patients and units, and of another user's trial-data
#: export; the record-state entries (``records.state``, ``records.baseline``: every row a
#: transaction wrote, of any site) are hidden from every site-restricted user
AUDITED_SITE_RECORDS = (
    ("patient", "patients", "id"),
    ("dose_order", "dose_orders", "patient_id"),
    ("adverse_event", "adverse_events", "patient_id"),
    ("infusion", "infusions", "patient_id"),
    ("bedside_check", "bedside_checks", "patient_id"),
    ("shipment", "shipments", "destination_site_id"),
    ("weight", "weights", "patient_id"),
    ("label_print", "label_prints", "patient_id"),
)


def _hidden_units(site_ids: list[int]) -> Any:
    """The ids of the units given to other sites' patients (their prepared dose and its
    bags), read from the tables (no criterion applies inside)."""
    from sqlalchemy import union

    from cellchain.extensions import db

    tables = db.Model.metadata.tables
    patients, orders, bags = tables["patients"], tables["dose_orders"], tables["dose_bags"]
    elsewhere = select(patients.c.id).where(patients.c.site_id.not_in(site_ids))
    live = orders.c.status != "cancelled"
    # a bag of another site's cancelled dose went back to the lab: once in a dose of one of
    # these sites' patients, it is theirs (its bedside codes must read as theirs)
    given_here = (
        select(bags.c.unit_id)
        .join(orders, orders.c.id == bags.c.order_id)
        .where(live, orders.c.patient_id.not_in(elsewhere))
    )
    return union(
        select(orders.c.dose_unit_id).where(
            orders.c.patient_id.in_(elsewhere), orders.c.dose_unit_id.is_not(None)
        ),
        select(bags.c.unit_id)
        .join(orders, orders.c.id == bags.c.order_id)
        .where(orders.c.patient_id.in_(elsewhere), or_(live, bags.c.unit_id.not_in(given_here))),
    )


def _hidden_deviations(site_ids: list[int]) -> Any:
    """The ids of the deviations opened on another site's patient's dose (an investigator's
    override of its calculated dose, a post-thaw count outside tolerance infused on their
    decision): their description names the patient. Read from the tables."""
    from sqlalchemy import union

    from cellchain.extensions import db

    tables = db.Model.metadata.tables
    patients, orders, counts = (
        tables["patients"],
        tables["dose_orders"],
        tables["post_thaw_counts"],
    )
    elsewhere = select(patients.c.id).where(patients.c.site_id.not_in(site_ids))
    return union(
        select(orders.c.deviation_id).where(
            orders.c.patient_id.in_(elsewhere), orders.c.deviation_id.is_not(None)
        ),
        select(counts.c.deviation_id)
        .join(orders, orders.c.id == counts.c.dose_order_id)
        .where(orders.c.patient_id.in_(elsewhere), counts.c.deviation_id.is_not(None)),
    )


def _viewer_id() -> int | None:
    """The id of the user of the request, if any (the login read by ``wiring``)."""
    from flask import g, has_request_context

    if not has_request_context():
        return None
    return getattr(g.get("_login_user"), "id", None)


def _hidden_audit_entries(site_ids: list[int], viewer: int | None) -> Any:
    """(entity_type, entity_id) of the audit entries of other sites' records, read from the
    tables (no criterion applies inside)."""
    from sqlalchemy import String, cast, literal, union_all

    from cellchain.extensions import db

    tables = db.Model.metadata.tables
    patients = tables["patients"]
    elsewhere = select(patients.c.id).where(patients.c.site_id.not_in(site_ids))
    units = _hidden_units(site_ids).subquery()
    unit_ids = select(units.c[0])
    parts = []
    for entity_type, name, column in AUDITED_SITE_RECORDS:
        table = tables[name]
        outside: ColumnElement[bool]
        if column == "destination_site_id":
            outside = table.c[column].not_in(site_ids)
        elif column == "id":
            outside = table.c.id.in_(elsewhere)
        else:
            outside = table.c[column].in_(elsewhere)
        if name == "label_prints":  # a bag's or a dose's label names the unit
            outside = or_(outside, table.c.unit_id.in_(unit_ids))
        parts.append(
            select(literal(entity_type, String(60)), cast(table.c.id, String(80))).where(outside)
        )
    parts.append(select(literal("unit", String(60)), cast(units.c[0], String(80))))
    deviations = _hidden_deviations(site_ids).subquery()
    parts.append(select(literal("deviation", String(60)), cast(deviations.c[0], String(80))))
    issued = tables["issued_identifiers"]
    parts.append(
        select(literal("identifier", String(60)), issued.c.code).where(
            or_(
                and_(
                    issued.c.entity_type == "patient",
                    issued.c.entity_id.in_(
                        select(cast(patients.c.id, String(80))).where(patients.c.id.in_(elsewhere))
                    ),
                ),
                and_(
                    issued.c.entity_type == "unit",
                    issued.c.entity_id.in_(select(cast(units.c[0], String(80)))),
                ),
            )
        )
    )
    # a trial-data export is its requester's (an investigator's holds their sites' patients)
    exports = tables["trial_data_exports"]
    parts.append(
        select(literal("trial_data_export", String(60)), cast(exports.c.id, String(80))).where(
            exports.c.requested_by_id != viewer if viewer is not None else literal(True)
        )
    )
    return union_all(*parts)


def _hidden_audit_acts(site_ids: list[int]) -> Any:
    """(action, entity_id, at) of the entries that name another site's patient in a record
    of the facility: a recall's opening (the patients it will notify, of every site) and
    its notification of such a patient (one per patient, at the time it was recorded)."""
    from sqlalchemy import String, cast, literal, union_all

    from cellchain.extensions import db

    tables = db.Model.metadata.tables
    patients, notified = tables["patients"], tables["recall_notifications"]
    doses, orders = tables["recall_doses"], tables["dose_orders"]
    elsewhere = select(patients.c.id).where(patients.c.site_id.not_in(site_ids))
    recalls = union_all(
        select(notified.c.recall_id).where(notified.c.patient_id.in_(elsewhere)),
        select(doses.c.recall_id)
        .join(orders, orders.c.id == doses.c.dose_order_id)
        .where(orders.c.patient_id.in_(elsewhere)),
    ).subquery()
    entries = tables["audit_entries"]
    return union_all(
        select(
            literal("recall.opened", String(60)),
            cast(entries.c.entity_id, String(80)),
            entries.c.at,
        ).where(
            entries.c.action == "recall.opened",
            entries.c.entity_type == "recall",
            entries.c.entity_id.in_(select(cast(recalls.c[0], String(80)))),
        ),
        select(
            literal("recall.patient_notified", String(60)),
            cast(notified.c.recall_id, String(80)),
            notified.c.recorded_at,
        ).where(notified.c.patient_id.in_(elsewhere), notified.c.recorded_at.is_not(None)),
    )


def _filter(state: ORMExecuteState) -> None:
    site_ids = VISIBLE_SITES.get()
    if site_ids is None or not state.is_select:
        return
    if state.is_column_load:  # refreshing a row already read: never hide it
        return
    # built once per (sites, user) and process: SQL, not rows, so valid for every statement
    # (building them for each SELECT was half a clinic user's request time)
    state.statement = state.statement.options(*_criteria(site_ids, _viewer_id()))


def install() -> None:
    """Listen to every session's ORM SELECTs (once per process)."""
    global _INSTALLED
    if _INSTALLED:
        return
    event.listen(Session, "do_orm_execute", _filter)
    _INSTALLED = True
