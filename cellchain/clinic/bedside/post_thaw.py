"""Post-thaw counts (issue 19): a count of the thawed dose recomputes what it delivers.

DOMAIN.md §7: viable conc. = total cells per mL × viability, "post-thaw count when one was
taken". A count is optional; when one is recorded it replaces the release count at fill for the
whole dose, at the bedside and on every page that shows the dose:

- **What is entered**: the TOTAL (nucleated, live and dead) cells per mL counted in the thawed
  product and the viability (%) of the same count, where (bedside or pharmacy), how (method and
  instrument, in words), on which cell counter, when and by whom. Viable cells per mL = total
  × this viability: the viability is applied once, here, and the release viability is never
  applied on top. The cell counter is a field of its own (issue 22): a registered, active
  cell counter, in date on the count's day on the site's calendar; a registered asset ID the
  method's words name (however spaced or hyphenated) must be in date too.
- **When**: on a prepared dose whose bags are all thawed, before its infusion starts; refused
  on an unthawed, infused or cancelled (destroyed) dose.
- **Ranges**: viability 0–100 %; a total above 0, never more than twice the fill's total
  (cells do not multiply in a frozen bag: a larger figure is a slip of units) and not below a
  thousandth of it (a figure typed in millions). A repeat count is a new row with a reason; the
  latest count is the one used.
- **Recompute**: the volumes already drawn (ordered and second-checked) at the count's viable
  concentration; deviation against the order's target (``calculation.recount``). The bedside's
  dose check uses this figure against the latest weight (``bedside._weight``).
- **Outside tolerance**: the bedside stops until an investigator signs a decision on the count
  (``decide``), as for an order outside tolerance (``orders.Override``): *proceed*, which
  records a deviation, or *do not infuse*, after which the dose is destroyed on its page
  (``dosing.exceptions``). A newer count needs its own decision.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cellchain.clinic.bedside.doses import CountRead, lots_of_dose
from cellchain.clinic.bedside.thaw import thaw_state
from cellchain.clinic.models import CountPlace, Infusion, PostThawCount, PostThawDecision
from cellchain.core import audit, signatures
from cellchain.core.display import local_time, scientific
from cellchain.core.guarded import update_if
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, Role, holds, require
from cellchain.dosing import calculation
from cellchain.dosing.models import DoseOrder, DoseStatus
from cellchain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from cellchain.extensions import DbSession
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.equipment import service as equipment_service
from cellchain.manufacturing.models import (
    CellRecord,
    DeviationCategory,
    Equipment,
    EquipmentKind,
)
from cellchain.manufacturing.storage.storage import EQUIPMENT_KIND_NAMES

#: The meaning the investigator signs each decision with.
DECISION_MEANINGS = {
    PostThawDecision.PROCEED: "approval: dose outside tolerance at its post-thaw count "
    "infused, with a deviation",
    PostThawDecision.DO_NOT_INFUSE: "approval: dose outside tolerance at its post-thaw count "
    "not to be infused",
}
#: A post-thaw total above this multiple of the fill's total is a slip of units (cells do not
#: multiply in a frozen bag); below the fill's total divided by the second, a figure typed in
#: millions.
MOST_OVER_FILL = 2.0
LEAST_UNDER_FILL = 1000.0
#: How far in the future a count's time may be (clocks of two devices differ a little).
CLOCK_SKEW = dt.timedelta(minutes=2)


class CountRefused(InvalidInput):
    """A post-thaw count or decision that may not be recorded, with every reason."""

    title: str | LazyText = lazy("Post-thaw count refused")
    type_slug = "post-thaw-count-refused"


@dataclass(frozen=True)
class CountInput:
    """A post-thaw count as entered."""

    total_cells_per_ml: float  #: TOTAL (nucleated) cells per mL counted after the thaw
    viability_percent: float  #: viability of the same count
    place: str  #: bedside or pharmacy
    method: str  #: method and instrument, in words
    counted_at: dt.datetime | None = None  #: when the sample was counted (now if not given)
    reason: str | None = None  #: why the dose is counted again (a repeat count only)
    #: the registered cell counter's asset ID, however typed (issue 22): required
    counter: str | None = None


@dataclass(frozen=True)
class PostThawFacts:
    """The dose's latest post-thaw count as the bedside judges it."""

    count_id: int
    counted_at: dt.datetime
    counted_by: str
    place: str
    total_cells_per_ml: float
    viability_percent: float
    delivered_cells: float
    decision: str | None = None
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    #: the investigator's signature on the decision exists and still matches the count
    decision_valid: bool = False
    deviation_id: int | None = None

    @property
    def viable_per_ml(self) -> float:
        return self.total_cells_per_ml * self.viability_percent / 100

    @property
    def proceed_signed(self) -> bool:
        return self.decision == PostThawDecision.PROCEED.value and self.decision_valid

    @property
    def not_to_be_infused(self) -> bool:
        return self.decision == PostThawDecision.DO_NOT_INFUSE.value


def record_count(
    session: DbSession,
    order: DoseOrder,
    data: CountInput,
    *,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
) -> PostThawCount:
    """Record a post-thaw count of a thawed dose and what the dose delivers with it."""
    require(actor, Permission.THAW_DOSES)
    _require_open(session, order, _("counted"))
    state = thaw_state(session, order)
    if not state.complete:
        raise Conflict(
            _(
                "%(dose)s is not thawed (%(thawed)s of %(bags)s bag(s)); a post-thaw count is "
                "taken after the thaw.",
                dose=_code(order),
                thawed=sum(1 for t in state.thaws if t.completed_at),
                bags=state.bag_count,
            ),
            title=_("Not thawed"),
        )
    previous = latest_count(session, order)
    if previous is not None and previous.not_to_be_infused:
        raise Conflict(
            _(
                "The investigator decided that %(dose)s is not to be infused; it is destroyed "
                "on its page, not counted again.",
                dose=_code(order),
            ),
            title=_("Not to be infused"),
        )
    counted_at = data.counted_at or now
    # the cell counter sets the dose's concentration (issue 22): a registered, active cell
    # counter, named in its own field, in date on the count's day on the site's calendar, as
    # for a QC result; a registered asset ID the method's words name must be in date too
    counter, counter_problem = _counter(session, data.counter)
    method = (data.method or "").strip()
    used = list(
        dict.fromkeys(
            [*([counter] if counter else []), *equipment_service.named_in(session, method)]
        )
    )
    on = counted_at.astimezone(zone).date()
    if counter is not None:
        equipment_service.require_in_date(session, [counter], on=on, field="counter")
    equipment_service.require_in_date(session, used, on=on, field="method")
    problems: dict[str, list[str]] = {}
    if counter_problem is not None:
        problems["counter"] = [counter_problem]
    fill = _fill_total(session, order)
    total, viability = data.total_cells_per_ml, data.viability_percent
    if not total > 0:
        problems["total_cells_per_ml"] = [_("A count above 0 total cells per mL.")]
    elif fill is not None and total > fill * MOST_OVER_FILL:
        problems["total_cells_per_ml"] = [
            _(
                "%(total)s total cells/mL is more than %(times)s × the fill's %(fill)s: cells "
                "do not multiply in a frozen bag. Check the units (cells per mL, not per bag or "
                "per µL).",
                total=scientific(total),
                times=format(MOST_OVER_FILL, "g"),
                fill=scientific(fill),
            )
        ]
    elif fill is not None and total < fill / LEAST_UNDER_FILL:
        problems["total_cells_per_ml"] = [
            _(
                "%(total)s total cells/mL is less than a thousandth of the fill's %(fill)s: "
                "enter cells per mL, not millions per mL.",
                total=scientific(total),
                fill=scientific(fill),
            )
        ]
    if not 0 <= viability <= 100:
        problems["viability_percent"] = [_("Viability is a percentage, 0 to 100.")]
    if data.place not in {place.value for place in CountPlace}:
        problems["place"] = [_("Bedside or pharmacy.")]
    if not method:
        problems["method"] = [_("Say how it was counted (method and instrument).")]
    reason = (data.reason or "").strip() or None
    if previous is not None and reason is None:
        problems["reason"] = [
            _(
                "The dose was counted at %(when)s; say why it is counted again.",
                when=local_time(previous.counted_at, zone),
            )
        ]
    if counted_at > now + CLOCK_SKEW:
        problems.setdefault("counted_at", []).append(_("A count cannot be in the future."))
    first_thaw = min((t.started_at for t in state.thaws), default=None)
    if first_thaw is not None and counted_at < first_thaw:
        problems.setdefault("counted_at", []).append(
            _(
                "Before the thaw started (%(when)s): a post-thaw count comes after it.",
                when=local_time(first_thaw, zone),
            )
        )
    if previous is not None and counted_at < previous.counted_at:
        problems.setdefault("counted_at", []).append(
            _(
                "Before the dose's latest count (%(when)s).",
                when=local_time(previous.counted_at, zone),
            )
        )
    if problems:
        raise CountRefused(
            _(
                "The post-thaw count was not recorded: %(problems)s",
                problems=" ".join(
                    message for messages in problems.values() for message in messages
                ),
            ),
            errors=problems,
        )
    tolerance = float(order.protocol.parameters["dose_tolerance_percent"])
    result = calculation.recount(
        order.target_cells,
        [(bag.unit.code, bag.volume_ml) for bag in order.bags],
        total_cells_per_ml=total,
        viability_percent=viability,
        source=count_source(counted_at, actor.full_name, data.place, zone),
        tolerance_percent=tolerance,
    )
    count = PostThawCount(
        dose_order_id=order.id,
        total_cells_per_ml=total,
        viability_percent=viability,
        place=data.place,
        method=method,
        reason=reason,
        sequence=_next_sequence(session, order, previous),
        counted_at=counted_at,
        counted_by_id=actor.id,
        recorded_at=now,
        delivered_cells=result.delivered_cells,
        deviation_percent=result.deviation_percent,
        within_tolerance=result.within_tolerance,
        working_json=json.dumps(list(result.working), ensure_ascii=False),
        equipment_id=counter.id if counter else None,
    )
    try:
        # one count per (dose, sequence): of two counts recorded at once, each seeing the
        # same latest count (or none), one is recorded and the other refused, never a repeat
        # count without its reason
        with session.begin_nested():
            session.add(count)
    except IntegrityError as error:
        raise Conflict(
            _(
                "%(dose)s was counted by someone else a moment ago: reload its page; a further "
                "count is a repeat count, with the reason for it.",
                dose=_code(order),
            ),
            title=_("Counted a moment ago"),
        ) from error
    audit.record(
        session,
        actor=actor,
        at=now,
        action="post_thaw.counted",
        entity_type="dose_order",
        entity_id=order.id,
        changes={
            "post_thaw_count": (None, count.id),
            "total_cells_per_ml": (None, total),
            "viability_percent": (None, viability),
            "place": (None, data.place),
            "delivered_cells": (
                previous.delivered_cells if previous else None,
                count.delivered_cells,
            ),
            "deviation_percent": (None, round(count.deviation_percent, 4)),
            "within_tolerance": (None, count.within_tolerance),
            # the counter first, then any other registered equipment the method names
            "equipment": (None, ", ".join(item.code for item in used) or None),
        },
        reason=reason,
    )
    return count


def decide(
    session: DbSession,
    count: PostThawCount,
    *,
    investigator: User,
    password: str,
    decision: str,
    reason: str,
    now: dt.datetime,
) -> PostThawCount:
    """The investigator's signed decision on a dose outside tolerance at its post-thaw count:
    proceed (a deviation is recorded) or do not infuse."""
    if not holds(investigator.roles, Role.INVESTIGATOR):
        raise PermissionDenied(
            _(
                "Only an investigator may decide on a dose outside tolerance at its post-thaw "
                "count; %(name)s cannot sign it.",
                name=investigator.full_name,
            )
        )
    order = count.dose_order
    _require_open(session, order, _("decided on"))
    latest = latest_count(session, order)
    if latest is None or latest.id != count.id:
        raise Conflict(
            _("A newer post-thaw count of %(dose)s exists; decide on that one.", dose=_code(order)),
            title=_("Not the latest count"),
        )
    if count.within_tolerance:
        raise Conflict(
            _(
                "At this count the dose is within tolerance (%(deviation)s %%): there is "
                "nothing for an investigator to decide.",
                deviation=format(count.deviation_percent, "+.2f"),
            ),
            title=_("Within tolerance"),
        )
    problems: dict[str, list[str]] = {}
    choices = {choice.value for choice in PostThawDecision}
    if decision not in choices:
        problems["decision"] = [_("Proceed or do not infuse.")]
    if not (reason or "").strip():
        problems["reason"] = [_("Say why.")]
    if problems:
        raise CountRefused(_("The decision was not recorded: say what and why."), errors=problems)
    choice = PostThawDecision(decision)
    # Conditional on no decision yet: of two investigators signing at once, one decides.
    if not update_if(
        session,
        count,
        PostThawCount.decision.is_(None),
        decision=choice.value,
        decision_reason=reason.strip(),
        decided_at=now,
        decided_by_id=investigator.id,
    ):
        raise Conflict(_("Post-thaw count %(count)s was decided a moment ago.", count=count.id))
    signature = signatures.sign(
        session,
        record=count,
        meaning=DECISION_MEANINGS[choice],
        user=investigator,
        password=password,
        now=now,
        permission=Role.INVESTIGATOR,
    )
    if choice is PostThawDecision.PROCEED:
        lots = lots_of_dose(session, order)
        deviation = deviations.open_deviation(
            session,
            lot=lots[0] if lots else None,
            category=DeviationCategory.PROCESS,
            description=(
                f"Dose for {order.patient.study_id} ({order.visit}) delivers "
                f"{count.deviation_percent:+.2f} % of the target at its post-thaw count "
                f"({scientific(count.total_cells_per_ml)} total cells/mL × "
                f"{count.viability_percent:g} % viable), outside the protocol's tolerance; "
                f"infused on the investigator's signed decision (signature {signature.id}): "
                f"{reason.strip()}"
            ),
            actor=investigator,
            now=now,
        )
        count.deviation_id = deviation.id
    audit.record(
        session,
        actor=investigator,
        at=now,
        action="post_thaw.decided",
        entity_type="dose_order",
        entity_id=order.id,
        changes={
            "post_thaw_count": (None, count.id),
            "decision": (None, choice.value),
            "deviation": (None, count.deviation_id),
        },
        reason=reason.strip(),
    )
    return count


def counts_of(session: DbSession, order: DoseOrder) -> list[PostThawCount]:
    """The dose's post-thaw counts, the first first."""
    return list(
        session.execute(
            select(PostThawCount)
            .where(PostThawCount.dose_order_id == order.id)
            .order_by(PostThawCount.counted_at, PostThawCount.id)
        ).scalars()
    )


def _next_sequence(session: DbSession, order: DoseOrder, previous: PostThawCount | None) -> int:
    """The number of the dose's next count: one after the latest (``previous``) it was judged
    against; after counts recorded before migration 0032 (no number), one after their
    number."""
    if previous is None:
        return 1
    if previous.sequence is not None:
        return previous.sequence + 1
    return len(counts_of(session, order)) + 1


def latest_count(session: DbSession, order: DoseOrder) -> PostThawCount | None:
    """The count the dose is judged by: its latest."""
    counts = counts_of(session, order)
    return counts[-1] if counts else None


def get_count(session: DbSession, count_id: int) -> PostThawCount:
    return get_or_404(session, PostThawCount, count_id, "post-thaw count", id_prefix="")


def count_of_dose(session: DbSession, order: DoseOrder, count_id: int) -> PostThawCount:
    """Post-thaw count ``count_id`` of ``order``; a count of another dose is not found."""
    count = session.get(PostThawCount, count_id)
    if count is None or count.dose_order_id != order.id:
        raise NotFound(
            _(
                "Dose order %(order)s has no post-thaw count %(count)s.",
                order=order.id,
                count=count_id,
            )
        )
    return count


def facts_of(
    session: DbSession, order: DoseOrder, *, latest: tuple[PostThawCount | None] | None = None
) -> PostThawFacts | None:
    """The bedside's view of the dose's latest count, the decision's signature checked;
    ``latest``: that count when already read (``doses.doses_read``)."""
    count = latest[0] if latest is not None else latest_count(session, order)
    if count is None:
        return None
    return count_facts(session, CountRead.of(count), count)


def count_facts(
    session: DbSession, count: CountRead, loaded: PostThawCount | None = None
) -> PostThawFacts:
    """``facts_of`` a count read as plain columns (``doses.dose_reads``): the one rule. A
    decision's signature is checked against the count's record (``loaded``, else read
    here): only a count outside tolerance has a decision."""
    valid = False
    if count.decision is not None:
        record = loaded if loaded is not None else get_count(session, count.id)
        meaning = DECISION_MEANINGS[PostThawDecision(count.decision)]
        entries = [e for e in signatures.manifest(session, record) if e.meaning == meaning]
        valid = bool(entries) and all(entry.valid for entry in entries)
    return PostThawFacts(
        count_id=count.id,
        counted_at=count.counted_at,
        counted_by=count.counted_by,
        place=count.place,
        total_cells_per_ml=count.total_cells_per_ml,
        viability_percent=count.viability_percent,
        delivered_cells=count.delivered_cells,
        decision=count.decision,
        decided_by=count.decided_by,
        decided_at=count.decided_at,
        decision_valid=valid,
        deviation_id=count.deviation_id,
    )


@dataclass(frozen=True)
class DoseCount:
    """Which count a dose is judged by, for its pages and the API: the working that says so,
    the counts, and whether a decision is awaited."""

    order: DoseOrder
    counts: list[PostThawCount]
    latest: PostThawCount | None
    #: "post-thaw count" or "release count at fill"
    count_used: str
    working: list[str]
    decision_needed: bool
    #: whether a count may be recorded now (a thawed, live, uninfused dose)
    may_count: bool
    signatures: list[signatures.SignatureManifest]


def dose_count(session: DbSession, order: DoseOrder) -> DoseCount:
    counts = counts_of(session, order)
    latest = counts[-1] if counts else None
    try:
        _require_open(session, order, _("counted"))
        may_count = thaw_state(session, order).complete and not (
            latest is not None and latest.not_to_be_infused
        )
    except Conflict:
        may_count = False
    return DoseCount(
        order=order,
        counts=counts,
        latest=latest,
        count_used=_("post-thaw count") if latest else _("release count at fill"),
        working=latest.working if latest else order.working,
        decision_needed=latest is not None
        and not latest.within_tolerance
        and latest.decision is None
        and order.status == DoseStatus.PREPARED.value,
        may_count=may_count,
        signatures=signatures.manifest(session, latest) if latest else [],
    )


def count_source(counted_at: dt.datetime, who: str, place: str, zone: ZoneInfo) -> str:
    """How the working names a count: "post-thaw count 2026-12-06 10:42 +08:00 by …"."""
    # stored with the count (its working): in English whoever records it
    place_words = CountPlace(place).value.replace("_", " ")
    return f"post-thaw count {local_time(counted_at, zone)} by {who} ({place_words})"


@dataclass(frozen=True)
class CounterOffer:
    """A registered cell counter in service as the count form offers it: ``why`` a count
    made now may not use it (the rule ``record_count`` applies), or None: usable."""

    item: Equipment
    why: str | None = None


def counters_offered(session: DbSession, *, on: dt.date) -> list[CounterOffer]:
    """The registered cell counters in service (``equipment.service.instruments``), each with
    why a count on day ``on`` may not use it, in two statements."""
    items = equipment_service.instruments(session)
    found = equipment_service.standings(session, items, on)
    return [CounterOffer(item, found[item.id].why) for item in items]


# --- internals ----------------------------------------------------------------------------------


def _counter(session: DbSession, typed: str | None) -> tuple[Equipment | None, str | None]:
    """The registered cell counter ``typed`` names (its asset ID however typed), or why it
    cannot count a dose: none named, not registered, another kind, out of service."""
    code = (typed or "").strip()
    if not code:
        return None, _("Choose the cell counter used (a registered cell counter).")
    item = equipment_service.by_code(session, code)
    if item is None:
        return None, _(
            "%(code)s is not registered equipment; a count is made on a registered cell counter.",
            code=code,
        )
    if item.kind != EquipmentKind.CELL_COUNTER.value:
        return None, _(
            "%(code)s is a %(kind)s, not a cell counter.",
            code=item.code,
            kind=str(EQUIPMENT_KIND_NAMES.get(item.kind, item.kind)),
        )
    if not item.active:
        return None, _("%(code)s is out of service.", code=item.code)
    return item, None


def _require_open(session: DbSession, order: DoseOrder, what: str) -> None:
    """A prepared dose not yet infused: an infused, cancelled or destroyed dose is not."""
    if order.status != DoseStatus.PREPARED.value:
        raise Conflict(
            _(
                "%(dose)s is %(status)s; only a prepared dose, thawed and not yet infused, is "
                "%(what)s after its thaw.",
                dose=_code(order),
                status=DoseStatus(order.status).label,
                what=what,
            ),
            title=_("Dose %(status)s", status=DoseStatus(order.status).label),
        )
    if session.execute(select(Infusion.id).where(Infusion.dose_order_id == order.id)).first():
        raise Conflict(
            _(
                "The infusion of %(dose)s has started; a post-thaw count is taken before.",
                dose=_code(order),
            ),
            title=_("Infusion started"),
        )


def _fill_total(session: DbSession, order: DoseOrder) -> float | None:
    """The highest total cells per mL counted at fill among the dose's bags."""
    values = [
        record.total_cells_per_ml
        for bag in order.bags
        if (record := session.get(CellRecord, bag.unit_id)) is not None
        and record.total_cells_per_ml is not None
    ]
    return max(values, default=None)


def _code(order: DoseOrder) -> str:
    return order.dose_unit.code if order.dose_unit else _("dose order %(id)s", id=order.id)
