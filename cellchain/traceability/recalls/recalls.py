"""Recalls and lookback (21 CFR 1271.290, 1271.65; DOMAIN.md §1, §7).

When a donor's late test comes back positive or a supplier recalls a reagent lot, QA opens a
recall with a reason and an e-signature. In that same transaction every unit made from the
suspect thing that still exists is **blocked** (a final status: it can never be released,
allocated, dispensed or pass the bedside check), and every patient who already received such
a unit is put on the lookback list to be notified. The recall closes, with a second QA
signature, only once every one of them is recorded as notified.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Select, case, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from cellchain.chain import service as chain
from cellchain.chain.models import Unit, UnitStatus
from cellchain.core import actions, audit, listing, numbering, record_state, signatures
from cellchain.core.display import UTC_ZONE, local_date, local_time
from cellchain.core.guarded import update_if
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, require
from cellchain.donors import service as donors
from cellchain.donors.models import Donation, DonorTestResult
from cellchain.dosing.models import DOSE_TRANSITIONS, DoseOrder, DoseStatus
from cellchain.errors import Conflict, InvalidInput, NotFound
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import MaterialLot
from cellchain.manufacturing.processing import processing
from cellchain.notifications import service as notifications
from cellchain.traceability.models import (
    AffectedOutcome,
    Recall,
    RecallClosure,
    RecallDose,
    RecallNotification,
    RecallStatus,
    RecallTarget,
    RecallUnit,
)
from cellchain.traceability.trace import trace

OPEN_MEANING = "approval: recall opened, affected product blocked"
CLOSE_MEANING = "approval: recall closed, every exposed patient notified"
#: how a notification was made (the forms offer these; the API accepts any short text)
NOTIFICATION_METHODS = ("in person", "phone", "letter", "via the investigator")
#: the methods as people read them (the stored value stays the English one)
NOTIFICATION_METHOD_NAMES: dict[str, LazyText] = {
    "in person": lazy("in person"),
    "phone": lazy("phone"),
    "letter": lazy("letter"),
    "via the investigator": lazy("via the investigator"),
}
#: the shortest reason that says something (a DIN and a test name, say)
MIN_REASON_LENGTH = 10


@dataclass(frozen=True)
class OpenedRecall:
    """A recall just opened and what it did."""

    recall: Recall
    blocked: int
    withdrawn: int
    exposed_patients: int


#: Bind parameters per statement when a recall names its units (SQLite allows 32 766,
#: psycopg 65 535): a recall of a reagent lot can reach tens of thousands of units.
CHUNK = 5000

#: Dose orders a recall withdraws: those the dose table lets be cancelled (ordered or
#: prepared, not yet infused).
WITHDRAWABLE = actions.leading_to(DOSE_TRANSITIONS, DoseStatus.CANCELLED)


def fate_of(status: UnitStatus) -> AffectedOutcome:
    """What a recall does to, or finds of, a unit in ``status``."""
    if status is UnitStatus.INFUSED:
        return AffectedOutcome.INFUSED
    if status.final:
        return AffectedOutcome.OUT_OF_USE
    return AffectedOutcome.BLOCKED


def fates(forward: trace.ForwardTrace) -> dict[AffectedOutcome, int]:
    """How many of the traced units a recall would block, find out of use, or find infused."""
    counts = dict.fromkeys(AffectedOutcome, 0)
    for traced in forward.units:
        counts[fate_of(UnitStatus(traced.unit.status))] += 1
    return counts


def open_recall(
    session: DbSession,
    *,
    target: RecallTarget,
    target_id: int,
    reason: str,
    user: User,
    password: str,
    now: dt.datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> OpenedRecall:
    """Open a recall of ``target``: block what is left of it, withdraw the doses made from
    it that are not yet infused, list who received it, sign.

    Refused when the target does not exist, when it was recalled before (open or closed),
    when everything made from it is already under other recalls, or when the reason is too
    short to say why. A wrong password signs nothing and blocks nothing.
    """
    require(user, Permission.MANAGE_RECALLS)
    reason = _required(reason, "reason", _("Why the product is recalled"), MIN_REASON_LENGTH)
    if target is RecallTarget.MATERIAL_LOT:
        _stop_material(session, target_id, now)
    start, seeds = trace.forward_seeds(session, target.value, target_id)
    earlier = recall_of(session, target, target_id)
    if earlier is not None:
        raise _already_recalled(earlier, zone)
    covering = _covering_recalls(session, seeds)
    if covering is not None:
        raise Conflict(
            _(
                "Everything made from %(start)s is already under recall %(recalls)s; this recall"
                " would block nothing and list nobody new.",
                start=start.label,
                recalls=", ".join(covering),
            ),
            title=_("Already recalled"),
        )
    opened = _open(
        session, target, target_id, start.label, reason=reason, user=user, now=now, zone=zone
    )
    recall = opened.recall
    signature = signatures.sign(
        session,
        record=recall,
        meaning=OPEN_MEANING,
        user=user,
        password=password,
        now=now,
        permission=Permission.MANAGE_RECALLS,
    )
    _audit_opened(session, opened, user=user, now=now, signature_id=signature.id)
    return opened


def open_lookback(
    session: DbSession, donation: Donation, *, cause: DonorTestResult, actor: User, now: dt.datetime
) -> OpenedRecall:
    """The lookback a late donor result opens (DOMAIN.md §7): a recall of the donation,
    opened by the system on the analyst's action, that blocks every unit made from it at once,
    withdraws its doses not yet infused and lists the patients already infused for QA to
    notify. QA works it on the recall pages and closes it with a signature.

    It is not signed when opened and does not wait for QA: a donor found reactive must stop
    the product at once (the "automated designation" of 1271.65); QA's closing signature is
    the responsible person's act. An open recall of the donation is reused (the database
    allows one open recall per target); a closed one, or recalls of its lots or materials, do
    not stop a new lookback: the exposed patients must be told of the new finding.
    """
    earlier = recall_of(session, RecallTarget.DONATION, donation.id)
    if earlier is not None and earlier.is_open:
        _start, seeds = trace.forward_seeds(session, RecallTarget.DONATION.value, donation.id)
        # it blocked everything when it was opened and nothing can be derived from a blocked
        # unit; anything still usable would be a broken invariant, so block it here as well
        left = [
            unit
            for unit in _lock(session, seeds).values()
            if fate_of(UnitStatus(unit.status)) is AffectedOutcome.BLOCKED
        ]
        _change_status(
            session,
            left,
            actor=actor,
            now=now,
            reason=f"recall {earlier.number}: lookback, {cause.test_code} {cause.result_label}",
        )
        audit.record(
            session,
            actor=actor,
            at=now,
            action="recall.lookback_joined",
            entity_type="recall",
            entity_id=earlier.id,
            changes={"result_id": (None, cause.id), "units_blocked": (None, len(left))},
            reason=f"{cause.test_code} {cause.result_label}: the donation is already under "
            f"open recall {earlier.number}",
        )
        return OpenedRecall(recall=earlier, blocked=len(left), withdrawn=0, exposed_patients=0)
    verb = "corrected to" if cause.corrects_id else "recorded as"
    reason = (
        f"Lookback opened by the system: {cause.test_code} {verb} {cause.result_label} for "
        f"donation {donation.din} after the donor was determined eligible (result #{cause.id}, "
        f"by {actor.full_name}). Determination re-opened."
    )
    opened = _open(
        session,
        RecallTarget.DONATION,
        donation.id,
        f"donation {donation.din}",
        reason=reason,
        user=actor,
        now=now,
        cause=cause,
    )
    _audit_opened(session, opened, user=actor, now=now, signature_id=None)
    return opened


def _open(
    session: DbSession,
    target: RecallTarget,
    target_id: int,
    label: str,
    *,
    reason: str,
    user: User,
    now: dt.datetime,
    cause: DonorTestResult | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> OpenedRecall:
    """Open the recall row, then block what is left, withdraw the doses not yet infused and
    list the infused patients, all under row locks (shared by QA's recall and the lookback)."""
    recall = Recall(
        number=_next_number(session, now),
        target_type=target.value,
        target_id=target_id,
        target_label=label,
        reason=reason,
        status=RecallStatus.OPEN.value,
        opened_at=now,
        opened_by_id=user.id,
        cause_result_id=cause.id if cause is not None else None,
    )
    try:
        with session.begin_nested():
            session.add(recall)
            session.flush()
    except IntegrityError:
        # another QA person opened the same recall a moment ago (the partial unique index)
        raise _already_recalled(recall_of(session, target, target_id), zone) from None

    _start, seeds = trace.forward_seeds(session, target.value, target_id)
    locked = _lock(session, seeds)
    # Walked again under the locks, as the one INSERT … SELECT that records the recall's
    # units: a unit derived between the first walk and the locks is seen now (and locked by
    # it), and one being derived from a locked unit waits and then finds its parent blocked
    # (issue 20: no second trace of ORM objects, no unit re-read twice in Python).
    affected = _record_units(session, recall, seeds)
    blocked = _block(session, recall, affected, locked, user=user, now=now)
    orders, infusions = trace.doses_of(session, [unit.id for unit in affected])
    withdrawn = _withdraw(session, recall, orders, user=user, now=now)
    exposed = [entry for entry in trace.patients_of(orders, infusions) if entry.infused]
    session.add_all(
        RecallNotification(recall_id=recall.id, patient_id=entry.patient.id) for entry in exposed
    )
    session.flush()
    session.refresh(recall)
    notifications.notify(
        session,
        "recall_opened",
        entity_type="recall",
        entity_id=recall.id,
        params={
            "recall_id": recall.id,
            "number": recall.number,
            "what": label,
            "reason": reason,
            "blocked": blocked,
            "withdrawn": withdrawn,
            "patients": len(exposed),
        },
        actor=user,
        now=now,
    )
    return OpenedRecall(
        recall=recall, blocked=blocked, withdrawn=withdrawn, exposed_patients=len(exposed)
    )


def _audit_opened(
    session: DbSession,
    opened: OpenedRecall,
    *,
    user: User,
    now: dt.datetime,
    signature_id: int | None,
) -> None:
    recall = opened.recall
    changes: dict[str, tuple[object, object]] = {
        "number": (None, recall.number),
        "target": (None, f"{recall.target_type} {recall.target_label}"),
        "units_blocked": (None, opened.blocked),
        "doses_withdrawn": (None, [row.dose_order_id for row in recall.doses]),
        "patients_to_notify": (None, [row.patient.study_id for row in recall.notifications]),
    }
    if signature_id is not None:
        changes["signature_id"] = (None, signature_id)
    else:
        changes["opened_by_system_on_result"] = (None, recall.cause_result_id)
    audit.record(
        session,
        actor=user,
        at=now,
        action="recall.opened",
        entity_type="recall",
        entity_id=recall.id,
        changes=changes,
        reason=recall.reason,
    )


def _stop_material(session: DbSession, material_id: int, now: dt.datetime) -> None:
    """Mark a material lot recalled before anything is traced: the update locks its row, so
    a step being recorded with it either committed before (and is traced) or waits and is
    then refused (``usable_material_lots`` reads the row under its lock)."""
    material = get_or_404(session, MaterialLot, material_id, "material lot")
    update_if(session, material, MaterialLot.recalled_at.is_(None), recalled_at=now)


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


@dataclass(frozen=True, slots=True)
class HeldUnit:
    """A unit under the recall's row lock, as a plain row: what blocking it needs."""

    id: int
    code: str
    status: str
    location: str


def _reached(seeds: Select[int]) -> Select[int]:
    """The ids of the units made from ``seeds`` (with them), walked in the database."""
    walk = chain.lineage_walk(seeds, upwards=False)
    return select(walk.c.unit_id)


def _covering_recalls(session: DbSession, seeds: Select[int]) -> list[str] | None:
    """The numbers of the recalls that already cover every unit made from ``seeds``, or
    None when some unit is under no recall yet (or nothing was made from them). One
    statement counts both in the database; the numbers are read only when all are covered."""
    reached = _reached(seeds).distinct().subquery()
    covered = select(RecallUnit.unit_id).where(RecallUnit.unit_id == reached.c.unit_id).exists()
    total, uncovered = session.execute(
        select(func.count(), func.count(case((~covered, 1)))).select_from(reached)
    ).one()
    if not total or uncovered:
        return None
    numbers = session.execute(
        select(Recall.number)
        .distinct()
        .join(RecallUnit, RecallUnit.recall_id == Recall.id)
        .where(RecallUnit.unit_id.in_(_reached(seeds)))
    ).scalars()
    return sorted(numbers)


def _lock(session: DbSession, seeds: Select[int]) -> dict[int, HeldUnit]:
    """Lock the rows of every unit made from ``seeds`` (PostgreSQL ``FOR UPDATE``) and read
    their status, so a bag being allocated or a dose being started at the same moment
    either finishes first (and is seen as such here) or waits and then finds the unit
    blocked. One statement, the walk in the database; plain rows, by id."""
    rows = session.execute(
        select(Unit.id, Unit.code, Unit.status, Unit.location)
        .where(Unit.id.in_(_reached(seeds)))
        .order_by(Unit.id)
        .with_for_update()
    )
    return {row[0]: HeldUnit(*row) for row in rows}


#: A unit's fate by its status (``fate_of``), as SQL: the recall's units are recorded by one
#: INSERT … SELECT.
_FATE = {status.value: fate_of(status).value for status in UnitStatus}


def _record_units(session: DbSession, recall: Recall, seeds: Select[int]) -> list[HeldUnit]:
    """Record every unit made from ``seeds`` in ``recall_units`` with its status and fate,
    walking the lineage again under the locks, in one INSERT … SELECT that locks what it
    reads (a unit derived since ``_lock`` walked); the units recorded, by id, as they are
    now (code and location are read only for a unit that the first walk did not find)."""
    unit_status = case(_FATE, value=Unit.status)
    found = session.execute(
        record_state.marked(
            insert(RecallUnit)
            .from_select(
                ["recall_id", "unit_id", "status_before", "outcome"],
                select(literal(recall.id), Unit.id, Unit.status, unit_status)
                .where(Unit.id.in_(_reached(seeds)))
                .order_by(Unit.id)
                .with_for_update(),
            )
            .returning(RecallUnit.unit_id, RecallUnit.status_before)
        )
    ).all()
    record_state.touched(session, RecallUnit, [(recall.id, unit_id) for unit_id, _ in found])
    return sorted((HeldUnit(unit_id, "", status, "") for unit_id, status in found), key=_by_id)


def _by_id(unit: HeldUnit) -> int:
    return unit.id


def _block(
    session: DbSession,
    recall: Recall,
    affected: list[HeldUnit],
    locked: dict[int, HeldUnit],
    *,
    user: User,
    now: dt.datetime,
) -> int:
    """Block every affected unit still usable, all at once; the number blocked."""
    to_block = [
        unit for unit in affected if fate_of(UnitStatus(unit.status)) is AffectedOutcome.BLOCKED
    ]
    new = [unit.id for unit in to_block if unit.id not in locked]
    if new:  # derived between the two walks: rare; locked by the second one already
        locked = locked | {
            row[0]: HeldUnit(*row)
            for chunk in _chunks(new)
            for row in session.execute(
                select(Unit.id, Unit.code, Unit.status, Unit.location).where(Unit.id.in_(chunk))
            )
        }
    _change_status(
        session,
        [
            HeldUnit(unit.id, locked[unit.id].code, unit.status, locked[unit.id].location)
            for unit in to_block
        ],
        actor=user,
        now=now,
        reason=f"recall {recall.number}: {recall.reason}",
    )
    return len(to_block)


def _change_status(
    session: DbSession, units: list[HeldUnit], *, actor: User, now: dt.datetime, reason: str
) -> None:
    """Block ``units`` (read under their row locks) at once: ``change_status_many`` names
    them by one array parameter, so there is no limit of bind parameters to chunk for, and
    the audit chain's head moves once."""
    chain.change_status_many(
        session, units, UnitStatus.BLOCKED, actor=actor, now=now, reason=reason
    )


def _withdraw(
    session: DbSession, recall: Recall, orders: list[DoseOrder], *, user: User, now: dt.datetime
) -> int:
    """Cancel the dose orders made from the recalled units that were not yet infused, so the
    patient can be given another dose for the visit; their units stay blocked. The number."""
    reason = f"withdrawn by recall {recall.number}: {recall.reason}"
    withdrawn = 0
    for order in orders:
        before = order.status
        if before not in WITHDRAWABLE:
            continue
        if not update_if(
            session, order, DoseOrder.status == before, status=DoseStatus.CANCELLED.value
        ):
            raise Conflict(
                _(
                    "Dose order %(id)s changed a moment ago; reload and open the recall again.",
                    id=order.id,
                )
            )
        session.add(RecallDose(recall_id=recall.id, dose_order_id=order.id, status_before=before))
        audit.record(
            session,
            actor=user,
            at=now,
            action="dose.cancelled",
            entity_type="dose_order",
            entity_id=order.id,
            changes={"status": (before, DoseStatus.CANCELLED.value)},
            reason=reason,
        )
        withdrawn += 1
    return withdrawn


def record_notification(
    session: DbSession,
    notification: RecallNotification,
    *,
    notified_at: dt.datetime,
    method: str,
    note: str | None,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> RecallNotification:
    """Record that the patient was notified: when, how, by whom. Once per patient."""
    recall = notification.recall
    study_id = notification.patient.study_id
    if notification.notified:
        raise _already_notified(notification, zone)
    if not recall.is_open:
        raise Conflict(
            _("Recall %(number)s is closed.", number=recall.number), title=_("Recall closed")
        )
    if notified_at > now:
        raise InvalidInput(
            _("A notification cannot be in the future."),
            errors={"notified_at": [_("Must not be in the future.")]},
        )
    # people write down minutes: a notification in the minute the recall was opened counts
    if notified_at < recall.opened_at.replace(second=0, microsecond=0):
        raise InvalidInput(
            _(
                "Recall %(number)s was opened at %(when)s; a notification of it cannot be earlier.",
                number=recall.number,
                when=local_time(recall.opened_at, zone),
            ),
            errors={"notified_at": [_("Must not be before the recall was opened.")]},
        )
    method = _required(method, "method", _("How the patient was notified"), 2)[:40]
    # Conditional on nobody having recorded it meanwhile: of two people recording the same
    # notification at once, the second is refused instead of overwriting the first.
    if not update_if(
        session,
        notification,
        RecallNotification.notified_at.is_(None),
        notified_at=notified_at.astimezone(dt.UTC),
        method=method,
        note=(note or "").strip() or None,
        recorded_at=now,
        recorded_by_id=actor.id,
    ):
        session.refresh(notification)
        raise _already_notified(notification, zone)
    audit.record(
        session,
        actor=actor,
        at=now,
        action="recall.patient_notified",
        entity_type="recall",
        entity_id=recall.id,
        changes={
            "patient": (None, study_id),
            "notified_at": (None, notified_at.isoformat()),
            "method": (None, method),
        },
    )
    return notification


def close_recall(
    session: DbSession,
    recall: Recall,
    *,
    note: str,
    user: User,
    password: str,
    now: dt.datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> Recall:
    """Close the recall with QA's signature once every exposed patient has been notified.

    The blocked units stay blocked: closing ends the lookback, it does not release anything.
    """
    require(user, Permission.MANAGE_RECALLS)
    if not recall.is_open:
        raise _already_closed(recall, zone)
    pending = [row.patient.study_id for row in recall.notifications if not row.notified]
    if pending:
        raise Conflict(
            _(
                "Recall %(number)s cannot close: %(count)s patient(s) not yet recorded as"
                " notified: %(patients)s.",
                number=recall.number,
                count=len(pending),
                patients=", ".join(pending),
            ),
            title=_("Patients not yet notified"),
        )
    note = _required(note, "note", _("What was concluded"), MIN_REASON_LENGTH)
    # Conditional on the recall still being open: of two QA people closing at once, the
    # second is refused instead of rewriting what the first signed.
    if not update_if(
        session,
        recall,
        Recall.status == RecallStatus.OPEN.value,
        status=RecallStatus.CLOSED.value,
        closed_at=now,
        closed_by_id=user.id,
        closing_note=note,
    ):
        session.refresh(recall)
        raise _already_closed(recall, zone)
    signature = signatures.sign(
        session,
        record=RecallClosure(recall),
        meaning=CLOSE_MEANING,
        user=user,
        password=password,
        now=now,
        permission=Permission.MANAGE_RECALLS,
    )
    audit.record(
        session,
        actor=user,
        at=now,
        action="recall.closed",
        entity_type="recall",
        entity_id=recall.id,
        changes={
            "status": (RecallStatus.OPEN.value, RecallStatus.CLOSED.value),
            "signature_id": (None, signature.id),
        },
        reason=note,
    )
    return recall


# --- reading ------------------------------------------------------------------------------------


def resolve_target(session: DbSession, target: RecallTarget, text: str) -> int:
    """The id of what a person named on the recall form: a DIN (scanned or typed, with its
    check character) or a lot number. Material lots are chosen from a list by id."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput(
            _("Say what is recalled: a DIN, a lot number or a material lot."),
            errors={"target": [_("Required.")]},
        )
    if target is RecallTarget.DONATION:
        return donors.find_donation(session, text).id
    if target is RecallTarget.LOT:
        return processing.find_lot(session, text).id
    raise InvalidInput(
        _("Choose the material lot from the list."), errors={"target": [_("Choose.")]}
    )


def get_recall(session: DbSession, recall_id: int) -> Recall:
    """The recall with everything its page, API and signatures read, in a fixed number of
    queries whatever the number of units and patients."""
    recall = session.execute(
        select(Recall)
        .where(Recall.id == recall_id)
        .options(
            selectinload(Recall.opened_by),
            selectinload(Recall.closed_by),
            selectinload(Recall.units).selectinload(RecallUnit.unit),
            selectinload(Recall.doses)
            .selectinload(RecallDose.dose_order)
            .selectinload(DoseOrder.patient),
            selectinload(Recall.notifications).selectinload(RecallNotification.patient),
            selectinload(Recall.notifications).selectinload(RecallNotification.recorded_by),
        )
    ).scalar_one_or_none()
    if recall is None:
        raise NotFound(_("There is no recall #%(id)s.", id=recall_id))
    return recall


def get_notification(session: DbSession, recall: Recall, patient_id: int) -> RecallNotification:
    for row in recall.notifications:
        if row.patient_id == patient_id:
            return row
    raise NotFound(
        _(
            "Patient #%(id)s did not receive product of recall %(number)s; there is nothing to"
            " notify them of.",
            id=patient_id,
            number=recall.number,
        )
    )


def list_recalls(session: DbSession) -> list[Recall]:
    """Open recalls first, then the closed ones, newest first within each."""
    recalls = session.execute(
        select(Recall).options(selectinload(Recall.notifications)).order_by(Recall.id.desc())
    ).scalars()
    return sorted(recalls, key=lambda recall: not recall.is_open)


def count_open_recalls(session: DbSession) -> int:
    """How many recalls are open (``Recall.is_open``): QA's to close once every exposed
    patient is notified (one statement)."""
    return session.execute(
        select(func.count()).select_from(Recall).where(Recall.status == RecallStatus.OPEN.value)
    ).scalar_one()


def recall_of(session: DbSession, target: RecallTarget, target_id: int) -> Recall | None:
    """The latest recall of ``target``, open or closed."""
    return session.execute(
        select(Recall)
        .where(Recall.target_type == target.value, Recall.target_id == target_id)
        .order_by(Recall.id.desc())
        .limit(1)
    ).scalar_one_or_none()


@dataclass(frozen=True)
class RecallView:
    """A recall as its page shows it: its units by outcome, its lookback, its signatures."""

    recall: Recall
    blocked: list[RecallUnit]
    out_of_use: list[RecallUnit]
    infused: list[RecallUnit]
    notifications: list[RecallNotification]
    #: dose orders made from the recalled units, not yet infused: cancelled by the recall
    withdrawn: list[RecallDose]
    opening_signatures: list[signatures.SignatureManifest]
    closing_signatures: list[signatures.SignatureManifest]

    @property
    def pending(self) -> list[RecallNotification]:
        return [row for row in self.notifications if not row.notified]


def recall_view(session: DbSession, recall: Recall) -> RecallView:
    rows = recall.units
    closure = RecallClosure(recall)
    signed = signatures.manifests(session, [recall, closure])
    return RecallView(
        recall=recall,
        blocked=[r for r in rows if r.outcome == AffectedOutcome.BLOCKED.value],
        out_of_use=[r for r in rows if r.outcome == AffectedOutcome.OUT_OF_USE.value],
        infused=[r for r in rows if r.outcome == AffectedOutcome.INFUSED.value],
        notifications=list(recall.notifications),
        withdrawn=list(recall.doses),
        opening_signatures=signed.get(signatures.key_of(recall), []),
        closing_signatures=signed.get(signatures.key_of(closure), []),
    )


# --- helpers ------------------------------------------------------------------------------------


def _next_number(session: DbSession, now: dt.datetime) -> str:
    return f"RC-{now.year}-{numbering.next_in_sequence(session, f'recall-{now.year}'):04d}"


def _already_recalled(recall: Recall | None, zone: ZoneInfo) -> Conflict:
    if recall is None:  # closed again in between: rare, and a retry will tell
        return Conflict(_("Someone else changed this recall a moment ago; reload and try again."))
    return Conflict(
        _(
            "%(target)s was already recalled: %(number)s (%(state)s), opened %(when)s by %(who)s.",
            target=recall.target_label,
            number=recall.number,
            state=recall.status_label,
            when=local_time(recall.opened_at, zone),
            who=recall.opened_by.full_name,
        ),
        title=_("Already recalled"),
    )


def _already_notified(notification: RecallNotification, zone: ZoneInfo) -> Conflict:
    recorder = notification.recorded_by.full_name if notification.recorded_by else _("someone")
    when = local_date(notification.notified_at, zone) if notification.notified_at else "?"
    return Conflict(
        _(
            "%(study_id)s was already recorded as notified on %(when)s (%(method)s) by %(who)s;"
            " a notification is recorded once.",
            study_id=notification.patient.study_id,
            when=when,
            method=notification.method,
            who=recorder,
        ),
        title=_("Already notified"),
    )


def _already_closed(recall: Recall, zone: ZoneInfo) -> Conflict:
    closer = recall.closed_by.full_name if recall.closed_by else _("someone")
    when = local_date(recall.closed_at, zone) if recall.closed_at else "?"
    return Conflict(
        _(
            "Recall %(number)s was closed on %(when)s by %(who)s.",
            number=recall.number,
            when=when,
            who=closer,
        ),
        title=_("Recall already closed"),
    )


def _required(value: str | None, field: str, what: str, shortest: int) -> str:
    text = (value or "").strip()
    if len(text) < shortest:
        raise InvalidInput(
            _("%(what)s is required (%(count)s characters at least).", what=what, count=shortest),
            errors={
                field: [
                    _("Required.")
                    if not text
                    else _("At least %(count)s characters.", count=shortest)
                ]
            },
        )
    return text


# --- the list (issue 21) ----------------------------------------------------------------------

#: The recalls list: open ones first, newest first within each (a sort by status, descending,
#: the id breaking the tie); searched in the number, what is recalled and the reason.
RECALL_LIST = listing.ListSpec(
    sorts={
        "status": Recall.status,
        "opened": Recall.id,
        "number": Recall.number,
        "closed": Recall.closed_at,
    },
    default_sort="status",
    tiebreaker=Recall.id,
    searched=(Recall.number, Recall.target_label, Recall.reason),
)


def recalls_page(
    session: DbSession, request: listing.PageRequest, *, status: RecallStatus | None = None
) -> listing.Page[Recall]:
    """A page of the recalls, each with its notifications (two statements and one)."""
    query = select(Recall).options(
        selectinload(Recall.notifications),
        selectinload(Recall.opened_by),
        selectinload(Recall.closed_by),
    )
    if status is not None:
        query = query.where(Recall.status == status.value)
    return listing.fetch_page(session, query, RECALL_LIST, request)
