"""Dose orders: a scheduled infusion's dose computed from a fresh weight, bags allocated
atomically, and the independent second check that makes it a prepared dose (DOMAIN.md §7).

``plan_dose`` checks every hard block and computes the dose without writing anything (the page
shows it before anyone commits to it). ``order_dose`` does it again inside the transaction and
allocates the bags: each bag moves available → allocated in a guarded update, so of two orders
racing for one bag exactly one gets it. A dose outside tolerance is refused unless an
investigator signs an override with a reason, which records a deviation. ``second_check`` is
done by another person who re-enters the volume and scans the bags; their signature makes the
dose "prepared" and creates the prepared dose as a unit, whose label names the patient.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cellchain.chain import service as chain
from cellchain.chain.models import LineageOperation, Unit, UnitKind, UnitStatus
from cellchain.core import actions, audit, signatures
from cellchain.core.display import local_time, scientific
from cellchain.core.guarded import update_if
from cellchain.core.i18n import LazyText, _, document_text, lazy
from cellchain.core.models import Signature, User
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, Role, holds, require
from cellchain.dosing import calculation, patients
from cellchain.dosing.calculation import DoseCalculation, DoseParameters, NotEnoughCells
from cellchain.dosing.models import (
    ACTIVE_DOSE_STATUSES,
    DOSE_TRANSITIONS,
    DoseBag,
    DoseOrder,
    DoseStatus,
    Patient,
    Weight,
)
from cellchain.dosing.rechecks import rechecks
from cellchain.errors import Conflict, InvalidInput, PermissionDenied
from cellchain.extensions import DbSession
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import (
    CellRecord,
    DeviationCategory,
    Lot,
    LotStatus,
    ProductDefinition,
)
from cellchain.quality.models import QcResult, ResultStatus

#: The meanings printed with the signatures on a dose order.
SECOND_CHECK_MEANING = "verification: dose independently second-checked"
OVERRIDE_MEANING = "approval: dose outside tolerance accepted"
#: Where a prepared dose is when it is made.
PREPARATION_LOCATION = "GMP lab — dose preparation"


class DoseRefused(InvalidInput):
    """A dose that may not be ordered or checked, with every reason."""

    title: str | LazyText = lazy("Dose refused")
    type_slug = "dose-refused"


class DoseAction(enum.StrEnum):
    """What may be done with a dose order once ordered."""

    SECOND_CHECK = "second_check"  #: the independent second check: the dose becomes prepared


#: The statuses each act starts from, from the transition table.
DOSE_ACTIONS: dict[DoseAction, frozenset[DoseStatus]] = {
    DoseAction.SECOND_CHECK: actions.leading_to(DOSE_TRANSITIONS, DoseStatus.PREPARED),
}


def dose_actions(order: DoseOrder) -> frozenset[DoseAction]:
    """The acts the order's status allows; the dose page offers these (permissions apart)."""
    return actions.allowed(order.status, DOSE_ACTIONS)


@dataclass(frozen=True)
class Override:
    """An investigator accepting a dose outside tolerance: reason and signature."""

    investigator: User
    password: str
    reason: str


@dataclass(frozen=True)
class DosePlan:
    """What an order would be: the weight it uses, the visit, the arithmetic and the bags."""

    patient: Patient
    visit: patients.Visit
    weight: Weight
    calculation: DoseCalculation
    units: list[Unit]
    weight_change_percent: float | None
    weight_change_flag: bool
    parameters: DoseParameters


def plan_dose(
    session: DbSession, patient: Patient, visit_code: str, *, now: dt.datetime, zone: ZoneInfo
) -> DosePlan:
    """Check every hard block and compute the dose; refused with all reasons at once."""
    parameters = patient.protocol.parameters
    dose_parameters = DoseParameters.from_protocol(parameters)
    problems: dict[str, list[str]] = {}
    if not patients.receives_cells(patient):
        raise DoseRefused(
            _(
                "%(study_id)s is in an arm that never receives cells: no dose, no bag, no"
                " infusion.",
                study_id=patient.study_id,
            ),
            errors={"patient": [_("In an arm that never receives cells.")]},
        )
    if patient.status != "enrolled":
        problems.setdefault("patient", []).append(
            _("%(study_id)s is %(status)s.", study_id=patient.study_id, status=patient.status_label)
        )
    for infusion_id, visit_code in _flagged_infusions(session, patient):
        problems.setdefault("patient", []).append(
            _(
                "The %(visit)s infusion's end, volume and rate cannot all be true as recorded"
                " (infusion %(id)s); a second clinician must acknowledge it on the infusion"
                " page before another dose is ordered.",
                visit=visit_code,
                id=infusion_id,
            )
        )
    visit = patients.visit_of(patient, visit_code, patients.facts_of(session, patient, zone))
    today = now.astimezone(zone).date()
    closed = visit.closed_reason(today, translate=True)
    if closed:
        problems.setdefault("visit", []).append(closed)
    if _live_order(session, patient, visit.code) is not None:
        problems.setdefault("visit", []).append(
            _("%(visit)s already has a dose order.", visit=document_text(visit.name))
        )
    recheck = rechecks.problem(session, patient, visit.code, now=now, zone=zone, translate=True)
    if recheck:
        problems.setdefault("recheck", []).append(recheck)
    weight = patients.latest_weight(session, patient)
    previous = _previous_dose(session, patient, visit)
    change, flag = None, False
    if weight is None:
        problems.setdefault("weight", []).append(_("No weight is on file; record today's weight."))
    else:
        recency = dt.timedelta(days=int(parameters["weight_recency_days"]))
        if now - weight.measured_at > recency:
            problems.setdefault("weight", []).append(
                _(
                    "The latest weight (%(kg)s kg) was measured %(measured)s, more than"
                    " %(days)s days ago; weigh the patient again.",
                    kg=format(weight.weight_kg, "g"),
                    measured=local_time(weight.measured_at, zone),
                    days=parameters["weight_recency_days"],
                )
            )
        if weight.needs_confirmation:
            problems.setdefault("weight", []).append(patients.unconfirmed_reason(weight, zone))
        if previous is not None:
            if weight.id == previous.weight_id or weight.measured_at <= previous.ordered_at:
                problems.setdefault("weight", []).append(
                    _(
                        "The %(visit)s dose needs a weight measured after the %(previous)s dose"
                        " was ordered; it is never copied from an earlier dose.",
                        visit=visit.name,
                        previous=previous.visit,
                    )
                )
            change = patients.weight_change_percent(weight.weight_kg, previous.weight.weight_kg)
            flag = patients.changed_by_flag(
                weight.weight_kg,
                previous.weight.weight_kg,
                float(parameters["weight_change_flag_percent"]),
            )
    products = patients.patient_products(session, patient, at=now)
    if not products:
        problems.setdefault("bags", []).append(patients.no_products_reason(patient.protocol.code))
    if problems or weight is None:
        raise DoseRefused(
            _("The dose cannot be ordered: %(problems)s", problems=patients.summarize(problems)),
            errors=problems,
        )
    # only bags of a product the patient's protocol version allows (issue 22)
    candidates = available_bags(session, now=now, products=products)
    if not candidates and available_bags(session, now=now):
        message = _(
            "No released bag of %(products)s (the product(s) of protocol %(protocol)s) is"
            " available; the bags available are of another product, which its patients never"
            " receive.",
            products=", ".join(sorted(products)),
            protocol=patient.protocol.code,
        )
        raise DoseRefused(message, errors={"bags": [message]})
    target = calculation.target_cells(weight.weight_kg, dose_parameters)
    chosen = _choose_from_one_donation(candidates, target)
    by_code = {bag.code: unit for unit, bag in candidates}
    dose = calculation.calculate(weight.weight_kg, chosen, dose_parameters)
    return DosePlan(
        patient=patient,
        visit=visit,
        weight=weight,
        calculation=dose,
        units=[by_code[bag.code] for bag in chosen],
        weight_change_percent=change,
        weight_change_flag=flag,
        parameters=dose_parameters,
    )


def order_dose(
    session: DbSession,
    patient: Patient,
    visit_code: str,
    *,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
    override: Override | None = None,
) -> DoseOrder:
    """Compute the dose and allocate its bags in this transaction."""
    plan = plan_dose(session, patient, visit_code, now=now, zone=zone)
    dose = plan.calculation
    ceilings = _ceiling_problems(dose, plan.parameters)
    if ceilings:
        raise DoseRefused(
            _("The dose cannot be given: %(problems)s", problems=" ".join(ceilings)),
            errors={"dose": ceilings},
        )
    if not dose.within_tolerance and override is None:
        raise DoseRefused(
            _(
                "The dose delivers %(deviation)s %% of the target, outside ± %(tolerance)s %%;"
                " only an investigator's signed override (which records a deviation) can accept"
                " it.",
                deviation=format(dose.deviation_percent, "+.2f"),
                tolerance=format(plan.parameters.tolerance_percent, "g"),
            ),
            errors={"override": [_("Outside tolerance: an investigator must sign an override.")]},
        )
    if override is not None and not dose.within_tolerance:
        # Before anything is allocated: only an investigator signs the override.
        _require_investigator(override.investigator)
    order = DoseOrder(
        patient_id=patient.id,
        protocol_id=patient.protocol_id,
        visit=plan.visit.code,
        planned_on=plan.visit.planned_on,
        weight_id=plan.weight.id,
        target_cells=dose.target_cells,
        volume_ml=dose.volume_ml,
        delivered_cells=dose.delivered_cells,
        deviation_percent=dose.deviation_percent,
        dmso_g_per_kg=dose.dmso_g_per_kg,
        endotoxin_eu_per_kg=dose.endotoxin_eu_per_kg,
        working_json=json.dumps(list(dose.working), ensure_ascii=False),
        weight_change_percent=plan.weight_change_percent,
        weight_change_flag=plan.weight_change_flag,
        override_reason=override.reason.strip() if override and not dose.within_tolerance else None,
        status=DoseStatus.ALLOCATED,
        ordered_at=now,
        prepared_by_id=actor.id,
    )
    session.add(order)
    session.flush()
    for position, (unit, draw) in enumerate(zip(plan.units, dose.draws, strict=True)):
        _allocate(session, unit, order, actor=actor, now=now)
        session.add(
            DoseBag(
                order_id=order.id,
                unit_id=unit.id,
                position=position,
                volume_ml=draw.volume_ml,
                cells=draw.cells,
                whole_bag=draw.whole_bag,
            )
        )
    session.flush()
    session.refresh(order)
    if order.override_reason is not None and override is not None:
        _sign_override(session, order, plan, override, now=now)
    audit.record(
        session,
        actor=actor,
        at=now,
        action="dose.ordered",
        entity_type="dose_order",
        entity_id=order.id,
        changes={
            "patient": (None, patient.study_id),
            "visit": (None, order.visit),
            "volume_ml": (None, order.volume_ml),
            "bags": (None, [bag.unit.code for bag in order.bags]),
        },
    )
    return order


def second_check(
    session: DbSession,
    order: DoseOrder,
    *,
    checker: User,
    password: str,
    volume_ml: float,
    bag_codes: Sequence[str],
    now: dt.datetime,
) -> DoseOrder:
    """The independent second check: another person re-enters the volume and scans the bags;
    their signature makes the dose prepared and creates it as a unit."""
    require(checker, Permission.CHECK_DOSES)
    if DoseAction.SECOND_CHECK not in dose_actions(order):
        raise Conflict(
            _(
                "Dose order %(id)s is %(status)s; only an allocated dose is checked.",
                id=order.id,
                status=order.status_label,
            )
        )
    if checker.id == order.prepared_by_id:
        raise DoseRefused(
            _("The second check must be done by someone other than the preparer."),
            errors={"checker": [_("You prepared this dose; another person must check it.")]},
        )
    problems: dict[str, list[str]] = {}
    if abs(volume_ml - order.volume_ml) > 1e-6:
        problems["volume_ml"] = [
            _(
                "%(volume)s mL does not match the order's volume; measure and enter it again.",
                volume=format(volume_ml, "g"),
            )
        ]
    expected = {bag.unit.code for bag in order.bags}
    scanned = set()
    for code in bag_codes:
        if code.strip():
            scanned.add(chain.resolve_unit(session, code).code)
    if scanned != expected:
        missing, extra = sorted(expected - scanned), sorted(scanned - expected)
        message = []
        if missing:
            message.append(_("not scanned: %(codes)s", codes=", ".join(missing)))
        if extra:
            message.append(_("not allocated to this dose: %(codes)s", codes=", ".join(extra)))
        problems["bags"] = [_("Bags %(problems)s.", problems="; ".join(message))]
    problems.update(
        product_problems(session, order.patient, [bag.unit for bag in order.bags], at=now)
    )
    if problems:
        raise DoseRefused(
            _(
                "The second check does not match: %(problems)s",
                problems=patients.summarize(problems),
            ),
            errors=problems,
        )
    signatures.sign(
        session,
        record=order,
        meaning=SECOND_CHECK_MEANING,
        user=checker,
        password=password,
        now=now,
        permission=Permission.CHECK_DOSES,
    )
    # Conditional on the status read: of two people checking at once, one prepares the dose.
    if not update_if(
        session,
        order,
        DoseOrder.status == DoseStatus.ALLOCATED.value,
        status=DoseStatus.PREPARED.value,
        checked_by_id=checker.id,
        checked_at=now,
    ):
        raise Conflict(
            _("Dose order %(id)s was checked by someone else a moment ago.", id=order.id)
        )
    bags = [bag.unit for bag in order.bags]
    (dose_unit,) = chain.derive_units(
        session,
        parents=bags,
        kind=UnitKind.PREPARED_DOSE,
        operation=LineageOperation.PREPARE_DOSE,
        count=1,
        location=PREPARATION_LOCATION,
        actor=checker,
        now=now,
        status=UnitStatus.ALLOCATED,  # made of released bags, for this patient only
    )
    order.dose_unit_id = dose_unit.id
    audit.record(
        session,
        actor=checker,
        at=now,
        action="dose.second_checked",
        entity_type="dose_order",
        entity_id=order.id,
        changes={
            "status": (DoseStatus.ALLOCATED.value, DoseStatus.PREPARED.value),
            "dose_unit": (None, dose_unit.code),
        },
    )
    return order


def available_bags(
    session: DbSession, *, now: dt.datetime, products: Collection[str] | None = None
) -> list[tuple[Unit, calculation.Bag]]:
    """Released, unexpired, unallocated cryobags, with what the arithmetic needs of each;
    only those of a lot of one of ``products`` (product definition codes) when given."""
    query = (
        select(Unit, CellRecord, Lot)
        .join(CellRecord, CellRecord.unit_id == Unit.id)
        .join(Lot, Lot.id == CellRecord.lot_id)
        .where(
            Unit.kind == UnitKind.CRYOBAG.value,
            Unit.status == UnitStatus.AVAILABLE.value,
            Lot.status == LotStatus.RELEASED.value,
            Lot.expires_at > now,
        )
        .order_by(Lot.expires_at, Unit.id)
    )
    if products is not None:
        query = query.join(
            ProductDefinition, ProductDefinition.id == Lot.product_definition_id
        ).where(ProductDefinition.code.in_(sorted(products)))
    rows = session.execute(query).all()
    results = _release_values(session, {lot.id for _, _, lot in rows})
    bags: list[tuple[Unit, calculation.Bag]] = []
    for unit, record, lot in rows:
        values = results.get(lot.id, {})
        viability = values.get("VIABILITY", record.viability_percent)
        if viability is None or record.total_cells_per_ml is None or record.volume_ml is None:
            continue
        bags.append(
            (
                unit,
                calculation.Bag(
                    code=unit.code,
                    total_cells_per_ml=record.total_cells_per_ml,
                    viability_percent=viability,
                    volume_ml=record.volume_ml,
                    dmso_percent=lot.dmso_percent,
                    endotoxin_eu_per_ml=values.get("ENDOTOXIN"),
                    # the query keeps lots with expires_at > now: never NULL
                    expires_at=lot.expires_at,  # type: ignore[arg-type]
                ),
            )
        )
    return bags


def product_problems(
    session: DbSession, patient: Patient, units: Sequence[Unit], *, at: dt.datetime
) -> dict[str, list[str]]:
    """Each bag of ``units`` whose lot's product the patient may not receive at ``at``
    (``patients.allowed_products``, ``patients.product_refusal``), under ``bags``; empty when
    every one is allowed."""
    ids = [unit.id for unit in units]
    if not ids:
        return {}
    rows = session.execute(
        select(CellRecord.unit_id, ProductDefinition.code)
        .join(Lot, Lot.id == CellRecord.lot_id)
        .join(ProductDefinition, ProductDefinition.id == Lot.product_definition_id)
        .where(CellRecord.unit_id.in_(ids))
    ).all()
    code_of = {unit.id: unit.code for unit in units}
    allowed = patients.patient_products(session, patient, at=at)
    problems = []
    for unit_id, product in rows:
        refusal = patients.product_refusal(allowed, product, patient.protocol.code)
        if refusal:
            problems.append(_("%(bag)s: %(problem)s", bag=code_of[unit_id], problem=refusal))
    return {"bags": problems} if problems else {}


def orders_of(session: DbSession, patient: Patient) -> list[DoseOrder]:
    return list(
        session.execute(
            select(DoseOrder).where(DoseOrder.patient_id == patient.id).order_by(DoseOrder.id)
        ).scalars()
    )


def orders_of_patients(session: DbSession, patient_ids: list[int]) -> dict[int, list[DoseOrder]]:
    """``orders_of`` for each of the patients (a page of a list) in one statement."""
    found: dict[int, list[DoseOrder]] = {patient_id: [] for patient_id in patient_ids}
    if patient_ids:
        query = (
            select(DoseOrder).where(DoseOrder.patient_id.in_(patient_ids)).order_by(DoseOrder.id)
        )
        for order in session.execute(query).scalars():
            found[order.patient_id].append(order)
    return found


def get_order(session: DbSession, order_id: int) -> DoseOrder:
    return get_or_404(session, DoseOrder, order_id, "dose order", id_prefix="")


def order_signatures(session: DbSession, order: DoseOrder) -> list[signatures.SignatureManifest]:
    return signatures.manifest(session, order)


# --- internals ----------------------------------------------------------------------------------


def _choose_from_one_donation(
    candidates: Sequence[tuple[Unit, calculation.Bag]], target: float
) -> list[calculation.Bag]:
    """The fewest bags, first-expiring, all of one donation: material of two donors is never
    combined (DOMAIN.md §1)."""
    by_donation: dict[int, list[calculation.Bag]] = {}
    for unit, bag in candidates:
        by_donation.setdefault(unit.donation_id, []).append(bag)
    options: list[list[calculation.Bag]] = []
    for bags in by_donation.values():
        try:
            options.append(calculation.choose_bags(bags, target))
        except NotEnoughCells:
            continue
    if not options:
        raise DoseRefused(
            _(
                "No donation has enough released, unexpired, unallocated bags for %(target)s"
                " viable cells (%(count)s bag(s) available in all).",
                target=scientific(target),
                count=len(candidates),
            ),
            errors={"bags": [_("Not enough viable cells in the bags of any one donation.")]},
        )
    return min(options, key=lambda bags: (len(bags), min(bag.expires_at for bag in bags)))


def _flagged_infusions(session: DbSession, patient: Patient) -> list[tuple[int, str]]:
    """(infusion id, visit) of the patient's infusions whose time flag is not acknowledged:
    what the patient received must be settled before they are dosed again."""
    from cellchain.clinic.models import Infusion  # the clinic records infusions of doses

    return [
        (row.id, row.visit)
        for row in session.execute(
            select(Infusion.id, DoseOrder.visit)
            .join(DoseOrder, DoseOrder.id == Infusion.dose_order_id)
            .where(
                Infusion.patient_id == patient.id,
                Infusion.time_flag.is_not(None),
                Infusion.time_flag_acknowledged_at.is_(None),
            )
        )
    ]


def _live_order(session: DbSession, patient: Patient, visit: str) -> DoseOrder | None:
    return session.execute(
        select(DoseOrder).where(
            DoseOrder.patient_id == patient.id,
            DoseOrder.visit == visit,
            DoseOrder.status.in_([status.value for status in ACTIVE_DOSE_STATUSES]),
        )
    ).scalar_one_or_none()


def _previous_dose(session: DbSession, patient: Patient, visit: patients.Visit) -> DoseOrder | None:
    """The live dose of the infusion before ``visit``, if any."""
    codes = [code for code, _, infusion in patients.protocol_visits(patient) if infusion]
    earlier = codes[: codes.index(visit.code)]
    if not earlier:
        return None
    return session.execute(
        select(DoseOrder)
        .where(
            DoseOrder.patient_id == patient.id,
            DoseOrder.visit.in_(earlier),
            DoseOrder.status.in_([status.value for status in ACTIVE_DOSE_STATUSES]),
        )
        .order_by(DoseOrder.ordered_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def _allocate(
    session: DbSession, unit: Unit, order: DoseOrder, *, actor: User, now: dt.datetime
) -> None:
    """available → allocated, conditional on the status read: one order per bag, ever."""
    try:
        chain.change_status(
            session,
            unit,
            UnitStatus.ALLOCATED,
            actor=actor,
            now=now,
            reason=f"allocated to dose order {order.id}",
        )
    except Conflict as error:
        raise Conflict(
            _(
                "Bag %(code)s was allocated to another dose a moment ago; order the dose again"
                " to choose other bags.",
                code=unit.code,
            ),
            title=_("Bag taken"),
        ) from error


def _require_investigator(user: User) -> None:
    """Only an investigator (effective roles: not one suspended beside Administrator) accepts a
    dose outside tolerance."""
    if not holds(user.roles, Role.INVESTIGATOR):
        raise PermissionDenied(
            _(
                "Only an investigator may accept a dose outside tolerance; %(who)s cannot sign"
                " the override.",
                who=user.full_name,
            )
        )


def _sign_override(
    session: DbSession, order: DoseOrder, plan: DosePlan, override: Override, *, now: dt.datetime
) -> Signature:
    _require_investigator(override.investigator)
    if not override.reason.strip():
        raise DoseRefused(
            _("An override needs a reason."), errors={"override_reason": [_("Say why.")]}
        )
    signature = signatures.sign(
        session,
        record=order,
        meaning=OVERRIDE_MEANING,
        user=override.investigator,
        password=override.password,
        now=now,
        permission=Role.INVESTIGATOR,
    )
    # every bag a plan draws on has its cell record
    lot_id = session.get(CellRecord, plan.units[0].id).lot_id  # type: ignore[union-attr]
    deviation = deviations.open_deviation(
        session,
        lot=session.get(Lot, lot_id),
        category=DeviationCategory.PROCESS,
        description=(
            f"Dose for {order.patient.study_id} ({order.visit}) delivers "
            f"{order.deviation_percent:+.2f} % of the target, outside the protocol's tolerance; "
            f"accepted on the investigator's signed override (signature {signature.id}): "
            f"{override.reason.strip()}"
        ),
        actor=override.investigator,
        now=now,
    )
    order.deviation_id = deviation.id
    return signature


def _release_values(session: DbSession, lot_ids: set[int]) -> dict[int, dict[str, float]]:
    """The valid VIABILITY (%) and ENDOTOXIN (EU/mL) results of each lot."""
    if not lot_ids:
        return {}
    values: dict[int, dict[str, float]] = {}
    for result in session.execute(
        select(QcResult).where(
            QcResult.lot_id.in_(lot_ids),
            QcResult.status == ResultStatus.VALID.value,
            QcResult.test_code.in_(["VIABILITY", "ENDOTOXIN"]),
        )
    ).scalars():
        if result.value_number is not None:
            values.setdefault(result.lot_id, {})[result.test_code] = result.value_number
    return values


def _ceiling_problems(dose: DoseCalculation, parameters: DoseParameters) -> list[str]:
    problems = []
    if not dose.dmso_within:
        problems.append(
            _(
                "DMSO %(dmso)s g/kg exceeds %(ceiling)s g/kg.",
                dmso=format(dose.dmso_g_per_kg, ".3f"),
                ceiling=format(parameters.dmso_ceiling_g_per_kg, "g"),
            )
        )
    if dose.endotoxin_eu_per_kg is None:
        problems.append(_("No valid endotoxin result is on file for a bag's lot."))
    elif not dose.endotoxin_within:
        problems.append(
            _(
                "Endotoxin %(endotoxin)s EU/kg exceeds %(ceiling)s EU/kg/h.",
                endotoxin=format(dose.endotoxin_eu_per_kg, ".3f"),
                ceiling=format(parameters.endotoxin_ceiling_eu_per_kg_per_h, "g"),
            )
        )
    return problems
