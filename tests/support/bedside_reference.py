"""The bedside check's facts as ``gather`` read them before issue 20's fifth pass (commit
2052bad): both scans' identifiers, the dose with its facts (``doses.doses_read``) and the
schedules through the ORM, then the lots, the second check's signatures, the status reasons
and the label prints one statement each. The readers of signatures, status reasons and
schedules are copied as they were (their rows are now judged by functions that the new
reads share). Tests compare the facts (and the verdict and checks
they give) of ``bedside.gather`` now with what this gathers from the same records."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Select, String, bindparam, select

from cellchain.chain import service as chain
from cellchain.chain.models import Unit
from cellchain.clinic.bedside import post_thaw
from cellchain.clinic.bedside.bedside import (
    USABLE_AT_BEDSIDE,
    BedsideFacts,
    DoseFacts,
    LotFacts,
    PatientFacts,
    ProtocolLimits,
    _problem_text,
)
from cellchain.clinic.bedside.doses import (
    DoseRead,
    LotRead,
    ShipmentRead,
    _in_bag_order,
    _lot_links,
    doses_read,
    lots_of_dose,
    scan_dose,
    units_of_dose,
)
from cellchain.clinic.bedside.thaw import DEFAULT_THAW_WINDOW_MINUTES, thaw_state
from cellchain.clinic.models import Infusion, PostThawCount, PostThawDecision, Shipment
from cellchain.clinic.shipments.shipments import shipment_of
from cellchain.core import numbering, signatures
from cellchain.core.display import local_time
from cellchain.core.identifiers import InvalidIdentifier
from cellchain.core.models import IssuedIdentifier
from cellchain.core.payload import read_scan
from cellchain.dosing import patients
from cellchain.dosing.models import DoseOrder, Patient, PatientStatus, Weight
from cellchain.dosing.orders import SECOND_CHECK_MEANING
from cellchain.dosing.rechecks import rechecks
from cellchain.errors import DomainError, InvalidInput, NotFound
from cellchain.extensions import DbSession
from cellchain.labels import service as labels
from cellchain.manufacturing.models import Lot, ProductDefinition


def resolve_wristband(session: DbSession, scan: str) -> Patient:
    """The patient a scanned wristband names, or a clear error saying what was scanned."""
    return _patient_of_issued(session, numbering.lookup(session, scan))


def _patient_of_issued(session: DbSession, issued: IssuedIdentifier) -> Patient:
    """``resolve_wristband`` of an identifier already looked up."""
    if issued.kind != "COI" or issued.entity_type != "patient" or issued.entity_id is None:
        what = {"UNIT": "a unit's label (a bag or a dose?)", "DIN": "a donation's DIN"}.get(
            issued.kind, f"a {issued.kind} code"
        )
        raise InvalidInput(
            f"{issued.code} is {what}, not a patient's wristband; scan the wristband first.",
            errors={"wristband": ["Not a wristband."]},
            title="Not a wristband",
        )
    return patients.get_patient(session, int(issued.entity_id))


def gather(
    session: DbSession, wristband_scan: str, label_scan: str, *, now: dt.datetime, zone: ZoneInfo
) -> tuple[BedsideFacts, Patient | None, DoseOrder | None]:
    """The facts behind a verdict, and the records the scans resolved to.

    Both scans are looked up in one statement, and the dose a unit label names is read with
    its patient, protocol, shipment, infusion and the patient's latest weight in another
    (``doses_read``); a scan that fails is resolved again the usual way, for its error."""
    issued = _issued(session, (wristband_scan, label_scan))
    label = issued.get(label_scan)
    read: list[DoseRead] | None = None
    if label is not None and label.kind == "UNIT" and label.entity_type == "unit":
        read = doses_read(session, int(label.entity_id)) if label.entity_id else None
    patient: Patient | None = None
    wristband_problem = label_problem = None
    try:
        wristband = issued.get(wristband_scan)
        patient = (
            _patient_of_issued(session, wristband)
            if wristband is not None
            else resolve_wristband(session, wristband_scan)
        )
    except (InvalidIdentifier, DomainError) as problem:
        wristband_problem = _problem_text(problem)
    order: DoseOrder | None = None
    try:
        order = scan_dose(session, label_scan, issued=label, read=read).order
    except (InvalidIdentifier, DomainError) as problem:
        label_problem = _problem_text(problem)
    dose_read = next((each for each in read or () if each.order is order), None)
    # the schedules of the wristband's patient and of the dose's (the same one, unless the
    # wristband is wrong) in one read
    schedules = _schedule_facts(
        session, sorted({p.id for p in (patient, order.patient if order else None) if p}), zone
    )
    facts = BedsideFacts(
        now=now,
        zone=zone,
        patient=(
            _patient_facts(
                session,
                patient,
                schedules[patient.id],
                now=now,
                zone=zone,
                latest=(
                    (dose_read.latest_weight,)
                    if dose_read is not None and dose_read.order.patient_id == patient.id
                    else None
                ),
            )
            if patient
            else None
        ),
        wristband_problem=wristband_problem,
        dose=(
            _dose_facts(session, order, schedules[order.patient_id], zone, dose_read, now=now)
            if order
            else None
        ),
        label_problem=label_problem,
        limits=_limits(session, patient or (order.patient if order else None), at=now),
    )
    return facts, patient, order


#: The issued identifiers of a few codes (``_issued``), built once.
_ISSUED = select(IssuedIdentifier).where(
    IssuedIdentifier.code.in_(bindparam("codes", expanding=True, type_=String()))
)


def _issued(session: DbSession, scans: Sequence[str]) -> dict[str, IssuedIdentifier]:
    """The issued identifiers of the scans that are well-formed codes this site issued, in
    one statement (``numbering.lookup`` of each); the others are absent."""
    codes: dict[str, str] = {}
    for scan in scans:
        try:
            codes[scan] = read_scan(scan).canonical
        except (InvalidIdentifier, DomainError, ValueError):
            continue  # resolved again by its own lookup, which says what is wrong
    if not codes:
        return {}
    found = {
        issued.code: issued
        for issued in session.execute(_ISSUED, {"codes": sorted(set(codes.values()))}).scalars()
    }
    return {scan: found[code] for scan, code in codes.items() if code in found}


def _patient_facts(
    session: DbSession,
    patient: Patient,
    schedule: patients.ScheduleFacts,
    *,
    now: dt.datetime,
    zone: ZoneInfo,
    latest: tuple[Weight | None] | None = None,
) -> PatientFacts:
    """``latest``: the patient's latest weight when already read (``doses_read``)."""
    today = now.astimezone(zone).date()
    weight = latest[0] if latest is not None else patients.latest_weight(session, patient)
    return PatientFacts(
        id=patient.id,
        study_id=patient.study_id,
        coi=patient.coi,
        arm_name=_arm_name(patient),
        receives_cells=_receives_cells(patient),
        enrolled=patient.status == PatientStatus.ENROLLED.value,
        open_visits=tuple(
            (visit.code, visit.name)
            for visit in _schedule(patient, schedule)
            if visit.infusion and visit.open_on(today)
        ),
        latest_weight_kg=weight.weight_kg if weight else None,
        latest_weight_at=weight.measured_at if weight else None,
        latest_weight_unconfirmed=(
            _unconfirmed_reason(weight, zone)
            if weight is not None
            and weight.change_percent is not None
            and weight.confirmation is None
            else None
        ),
    )


def _dose_facts(
    session: DbSession,
    order: DoseOrder,
    schedule: patients.ScheduleFacts,
    zone: ZoneInfo,
    read: DoseRead | None = None,
    *,
    now: dt.datetime,
) -> DoseFacts:
    """``read``: the order's facts read with it (``doses_read``), else read here."""
    visit = _visit_of(order.patient, order.visit, schedule)
    shipment: ShipmentRead | Shipment | None = (
        read.shipment if read is not None else shipment_of(session, order)
    )
    lots: list[LotRead]
    if read is not None:
        lots = lot_reads_of_dose(session, order)
        window, expires = _deadline(
            order, [lot.product_parameters for lot in lots], read.first_thaw_at
        )
        thawed = read.thaws_completed
    else:
        loaded = lots_of_dose(session, order)
        lots = [LotRead.of(lot) for lot in loaded]
        thaw = thaw_state(session, order, loaded)
        window, expires = thaw.window_minutes, thaw.expires_at
        thawed = sum(1 for t in thaw.thaws if t.completed_at is not None)
    second_checks = [
        entry for entry in _manifest(session, order) if entry.meaning == SECOND_CHECK_MEANING
    ]
    infused = (
        read.infused
        if read is not None
        else session.execute(select(Infusion.id).where(Infusion.dose_order_id == order.id)).first()
        is not None
    )
    dose_units = units_of_dose(order)
    reasons = _status_reasons(session, dose_units)
    return DoseFacts(
        order_id=order.id,
        dose_code=order.dose_unit.code if order.dose_unit else f"dose order {order.id}",
        patient_id=order.patient_id,
        patient_study_id=order.patient.study_id,
        patient_coi=order.patient.coi,
        visit=order.visit,
        visit_name=visit.name,
        visit_earliest=visit.earliest,
        visit_latest=visit.latest,
        visit_closed=(
            visit.closed_reason(visit.earliest) if visit.missed or visit.deviation_pending else None
        ),
        status=order.status,
        second_check_valid=order.checked_by_id is not None
        and bool(second_checks)
        and all(entry.valid for entry in second_checks),
        lots=tuple(
            LotFacts(
                number=lot.lot_number,
                status=lot.status,
                expires_at=lot.expires_at,
                product_code=lot.product_code,
            )
            for lot in lots
        ),
        units=tuple((unit.code, unit.status) for unit in dose_units),
        why_not_usable=tuple(
            (unit.code, reasons[unit.id])
            for unit in dose_units
            if unit.status not in USABLE_AT_BEDSIDE and unit.id in reasons
        ),
        label_problems=tuple(labels.label_problems(session, dose_units)),
        shipment_status=shipment.status if shipment else None,
        hold_reason=shipment.hold_reason if shipment else None,
        bags=len(order.bags),
        bags_thawed=thawed,
        thaw_expires_at=expires,
        thaw_window_minutes=window,
        delivered_cells=order.delivered_cells,
        post_thaw=_post_thaw_facts(
            session, order, latest=(read.latest_count,) if read is not None else None
        ),
        weight_used_kg=order.weight.weight_kg,
        override=order.override_reason is not None,
        infused=infused,
        recheck=_recheck_facts(session, order.patient, order.visit, now=now),
    )


def _limits(session: Any, patient: Patient | None, *, at: dt.datetime) -> ProtocolLimits | None:
    if patient is None:
        return None
    parameters = patient.protocol.parameters
    return ProtocolLimits(
        dose_per_kg=float(parameters["dose_viable_cells_per_kg"]),
        tolerance_percent=float(parameters["dose_tolerance_percent"]),
        weight_recency_days=int(parameters["weight_recency_days"]),
        weight_change_flag_percent=float(parameters["weight_change_flag_percent"]),
        protocol_code=patient.protocol.code,
        products=patients.patient_products(session, patient, at=at),
    )


# --- use cases ----------------------------------------------------------------------------------


# --- the readers as they were at 2052bad -------------------------------------------------


def _manifest(session: DbSession, record: DoseOrder) -> list[signatures.SignatureManifest]:
    """``signatures.manifest`` as it read and judged at 2052bad."""
    keys = {signatures.key_of(record): record}
    found: dict[tuple[str, str], list[signatures.SignatureManifest]] = {}
    rows = session.execute(signatures._manifests_statement(), {"keys": list(keys)})
    hashes: dict[tuple[str, str, int], str | None] = {}
    for sig, username in rows:
        key = (sig.entity_type, sig.entity_id)
        version = signatures.manifest_of(sig.content)
        if (*key, version) not in hashes:
            hashes[(*key, version)] = signatures._hash_by_manifest(
                _SignedAsBefore(keys[key]), version
            )
        found.setdefault(key, []).append(
            signatures.SignatureManifest(
                signature_id=sig.id,
                printed_name=sig.printed_name,
                username=username,
                signed_at=sig.signed_at,
                meaning=sig.meaning,
                valid=sig.content_hash == hashes[(*key, version)],
            )
        )
    return found.get(signatures.key_of(record), [])


def _status_reasons(session: DbSession, units: Sequence[Unit]) -> dict[int, str]:
    """``chain.status_reasons`` as it was at 2052bad."""
    if not units:
        return {}
    rows = session.execute(
        chain._reasons_statement(), {"unit_ids": [unit.id for unit in units]}
    ).all()
    latest = {unit_id: note for unit_id, note in rows}
    return {unit_id: note for unit_id, note in latest.items() if note}


def _schedule_facts(
    session: DbSession, patient_ids: Sequence[int], zone: ZoneInfo
) -> dict[int, patients.ScheduleFacts]:
    """``patients.schedule_facts`` as it was at 2052bad."""
    ids = list(patient_ids)
    if not ids:
        return {}
    first: dict[int, dt.date] = {}
    moves: dict[int, dict[str, patients.Move]] = {}
    missed: dict[int, set[str]] = {}
    for row in session.execute(patients._schedule_statement(), {"ids": ids}):
        if row.kind == 0:
            first.setdefault(row.patient_id, row.happened_at.astimezone(zone).date())
        elif row.kind == 1:
            moves.setdefault(row.patient_id, {})[row.visit] = patients.Move(
                planned_on=row.planned_on,
                earliest=row.earliest,
                latest=row.latest,
                outside_protocol=bool(row.outside_protocol),
                signed=bool(row.signed),
                reschedule_id=row.id,
            )
        else:
            missed.setdefault(row.patient_id, set()).add(row.visit)
    return {
        patient_id: patients.ScheduleFacts(
            first_infusion_on=first.get(patient_id),
            moves=moves.get(patient_id, {}),
            missed=frozenset(missed.get(patient_id, ())),
        )
        for patient_id in ids
    }


def lot_reads_of_dose(session: DbSession, order: DoseOrder) -> list[LotRead]:
    """``lots_of_dose`` as plain rows (the same lots in the same order): the bedside's read
    of the lots at 2052bad, kept here with the rest of that code since ``doses.units_read``
    replaced it."""
    unit_ids = [bag.unit_id for bag in order.bags]
    if not unit_ids:
        return []
    rows = session.execute(_lot_reads_statement(), {"unit_ids": unit_ids}).all()
    return _in_bag_order(
        unit_ids,
        [
            (
                unit,
                source,
                lot_id,
                LotRead(lot_id, number, status, expires, dict(json.loads(p)), product),
            )
            for unit, source, lot_id, number, status, expires, p, product in rows
        ],
    )


@cache
def _lot_reads_statement() -> Select[Any]:
    """The statement of ``lot_reads_of_dose``: ``_lots_statement``'s links, the lots' four
    columns and their product definitions' parameters; built once."""
    linked = _lot_links(bindparam("unit_ids", expanding=True, type_=Integer()))
    return (
        select(
            linked.c[0],
            linked.c[2],
            Lot.id,
            Lot.lot_number,
            Lot.status,
            Lot.expires_at,
            ProductDefinition.parameters_json,
            ProductDefinition.code,
        )
        .join(Lot, Lot.id == linked.c[1])
        .join(ProductDefinition, ProductDefinition.id == Lot.product_definition_id)
    )


# --- the rules as they were at d990bf2 ---------------------------------------------------
# (the ORM versions now call facts-taking functions that the plain-row read shares; these
# are the bodies they replaced, so the pinned test compares with code that did not change)


def _receives_cells(patient: Patient) -> bool:
    for arm in patient.protocol.parameters["arms"]:
        if arm["code"] == patient.arm:
            return bool(arm["receives_cells"])
    return False


def _arm_name(patient: Patient) -> str:
    for arm in patient.protocol.parameters["arms"]:
        if arm["code"] == patient.arm:
            return str(arm["name"])
    return patient.arm


def _unconfirmed_reason(weight: Weight, zone: ZoneInfo) -> str:
    return (
        f"The latest weight ({weight.weight_kg:g} kg, measured "
        f"{local_time(weight.measured_at, zone)}) "
        f"changed {weight.change_percent:+.1f} % from {weight.change_reference} and is not "
        "confirmed: weigh the patient again, or have a second person countersign it on the "
        "patient page."
    )


def _schedule(patient: Patient, facts: patients.ScheduleFacts) -> list[patients.Visit]:
    cells = _receives_cells(patient)
    anchor = facts.first_infusion_on if cells and facts.first_infusion_on else patient.day0
    provisional = cells and facts.first_infusion_on is None
    parameters = patient.protocol.parameters
    items = [(item, True) for item in parameters["infusions"]] + [
        (item, False) for item in parameters.get("follow_up", [])
    ]
    visits = []
    for item, infusion in items:
        day = int(item["day"])
        code = str(item["code"])
        planned = patient.day0 if day == 0 else anchor + dt.timedelta(days=day)
        move = facts.moves.get(code)
        if day != 0 and move is not None and provisional:
            move = None
        window: tuple[dt.date, dt.date] | None = None
        if move is not None and day != 0:
            planned = move.planned_on
            window = (planned, planned) if move.outside_protocol else (move.earliest, move.latest)
        visits.append(
            patients.Visit(
                code=code,
                name=str(item["name"]),
                day=day,
                planned_on=planned,
                window_days=int(item.get("window_days", 0)),
                infusion=infusion,
                provisional=provisional and day != 0,
                rescheduled=move is not None,
                deviation_pending=move is not None and move.outside_protocol and not move.signed,
                missed=code in facts.missed,
                window=window,
            )
        )
    return sorted(visits, key=lambda visit: visit.day)


def _visit_of(patient: Patient, code: str, facts: patients.ScheduleFacts) -> patients.Visit:
    for visit in _schedule(patient, facts):
        if visit.code == code and visit.infusion:
            return visit
    raise NotFound(f"Protocol {patient.protocol.code} has no infusion visit {code!r}.")


def _deadline(
    order: DoseOrder, products: Sequence[Mapping[str, Any]], first_started: dt.datetime | None
) -> tuple[int, dt.datetime | None]:
    limits = [
        int(minutes)
        for parameters in products
        if (minutes := parameters.get("thaw_to_infusion_minutes")) is not None
    ]
    protocol = order.protocol.parameters.get("thaw_to_infusion_minutes")
    if protocol is not None:
        limits.append(int(protocol))
    window = min(limits, default=DEFAULT_THAW_WINDOW_MINUTES)
    return window, first_started + dt.timedelta(minutes=window) if first_started else None


def _post_thaw_facts(
    session: DbSession, order: DoseOrder, *, latest: tuple[PostThawCount | None] | None = None
) -> post_thaw.PostThawFacts | None:
    count = latest[0] if latest is not None else post_thaw.latest_count(session, order)
    if count is None:
        return None
    valid = False
    if count.decision is not None:
        meaning = post_thaw.DECISION_MEANINGS[PostThawDecision(count.decision)]
        entries = [e for e in signatures.manifest(session, count) if e.meaning == meaning]
        valid = bool(entries) and all(entry.valid for entry in entries)
    return post_thaw.PostThawFacts(
        count_id=count.id,
        counted_at=count.counted_at,
        counted_by=count.counted_by.full_name,
        place=count.place,
        total_cells_per_ml=count.total_cells_per_ml,
        viability_percent=count.viability_percent,
        delivered_cells=count.delivered_cells,
        decision=count.decision,
        decided_by=count.decided_by.full_name if count.decided_by else None,
        decided_at=count.decided_at,
        decision_valid=valid,
        deviation_id=count.deviation_id,
    )


def _recheck_facts(
    session: DbSession, patient: Patient, visit: str, *, now: dt.datetime
) -> rechecks.RecheckFacts | None:
    if not rechecks.required(session, patient, visit, at=now):
        return None
    name = dict(rechecks.visits(session, patient, at=now)).get(visit, visit)
    days = rechecks.valid_days(session, patient, at=now)
    recheck = rechecks.latest(session, patient, visit)
    if recheck is None:
        return rechecks.RecheckFacts(visit_name=name, valid_days=days)
    return rechecks.RecheckFacts(
        visit_name=name,
        valid_days=days,
        recorded_at=recheck.recorded_at,
        recorded_by=recheck.recorded_by.full_name,
        passed=recheck.passed,
        failed_items=tuple(rechecks.failed_items(recheck)),
    )


class _SignedAsBefore:
    """A dose order signed by ``DoseOrder.signed_content`` as it was at d990bf2."""

    signature_entity_type = DoseOrder.signature_entity_type

    def __init__(self, order: DoseOrder) -> None:
        self.order = order
        self.signature_entity_id = order.signature_entity_id

    def signed_content(self) -> dict[str, Any]:
        order = self.order
        return {
            "patient": order.patient.study_id,
            "coi": order.patient.coi,
            "visit": order.visit,
            "weight_kg": order.weight.weight_kg,
            "weight_measured_at": order.weight.measured_at.isoformat(),
            "target_cells": order.target_cells,
            "volume_ml": order.volume_ml,
            "delivered_cells": order.delivered_cells,
            "deviation_percent": order.deviation_percent,
            "dmso_g_per_kg": order.dmso_g_per_kg,
            "endotoxin_eu_per_kg": order.endotoxin_eu_per_kg,
            "bags": [[bag.unit.code, bag.volume_ml] for bag in order.bags],
            "override_reason": order.override_reason,
        }
