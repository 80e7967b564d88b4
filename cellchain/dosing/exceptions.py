"""Dose exceptions (issue 19): cancelling a dose order, destroying a prepared dose.

A dose stopped for good (a missed thaw window, a bedside stop) must not hold its visit: after
either act the order is *cancelled* (final, ``DOSE_TRANSITIONS``), which frees the visit for a
replacement dose ordered by the normal rules (``orders.order_dose``), while a live dose still
refuses a second one.

- **Cancel** (``cancel_dose``): an allocated or prepared dose none of whose units has left the
  lab. Left the lab means ever dispensed: a dose is shipped before it can be thawed (thawing
  needs a received shipment), so "never shipped" covers "never thawed". A unit blocked by a
  donor lookback (which, unlike a recall, does not withdraw the dose) or put in quarantine
  while in the lab has not left it, so such a dose is still cancelled and its visit freed. The
  allocated bags go back to available; blocked or quarantined bags stay as they are; the
  prepared dose unit, a record made only for this patient, is discarded unless already final.
  E-signed by the actor with a reason.
- **Destroy** (``destroy_dose``): a prepared dose, in the lab, shipped or thawed. Every unit of
  the dose not already final is discarded (destroyed, final) through the chain's status change;
  a unit still in the lab passes through quarantine, as the chain has no allocated → discarded
  step. Needs a reason, the actor's e-signature and a witness's: another person signing with
  their own password, as the bedside's second signer does.

Neither is allowed on an infused (or already cancelled) dose: a clear refusal, nothing saved.
The distinction between the two is kept in the audit action (``dose.cancelled`` /
``dose.destroyed``) and the signatures' meanings; both end in the status ``cancelled``.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy.orm import object_session

from cellchain.chain import service as chain
from cellchain.chain.models import Unit, UnitStatus
from cellchain.core import actions, audit, signatures
from cellchain.core.guarded import update_if
from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.core.roles import Permission, require
from cellchain.dosing.models import DOSE_TRANSITIONS, DoseOrder, DoseStatus
from cellchain.dosing.orders import DoseRefused
from cellchain.errors import Conflict
from cellchain.extensions import DbSession

CANCEL_MEANING = "approval: dose order cancelled"
DESTROY_MEANING = "approval: dose destroyed"
WITNESS_MEANING = "witness: dose destroyed"


class DoseException(enum.StrEnum):
    """The acts that take a dose out of use so that its visit can have another."""

    CANCEL = "cancel"  #: withdraw the order; bags that never left the lab go back
    DESTROY = "destroy"  #: destroy a prepared (perhaps shipped or thawed) dose, witnessed


#: The statuses each act starts from: both end in cancelled (final), the destroy only from a
#: prepared dose (an allocated one has nothing made to destroy: it is cancelled).
EXCEPTION_ACTIONS: dict[DoseException, frozenset[DoseStatus]] = {
    DoseException.CANCEL: actions.leading_to(DOSE_TRANSITIONS, DoseStatus.CANCELLED),
    DoseException.DESTROY: actions.leading_to(DOSE_TRANSITIONS, DoseStatus.CANCELLED)
    & {DoseStatus.PREPARED},
}


def _units(order: DoseOrder) -> list[Unit]:
    units = [bag.unit for bag in order.bags]
    if order.dose_unit is not None:
        units.insert(0, order.dose_unit)
    return units


#: Where a unit of a dose is once it left the lab (shipped, perhaps thawed) or was given.
_OUT_OF_THE_LAB = frozenset({UnitStatus.DISPENSED.value, UnitStatus.INFUSED.value})


#: The note the chain writes on a unit's dispatch (``chain.change_status_many``): a unit is
#: dispensed only from allocated.
def left_the_lab(order: DoseOrder) -> bool:
    """Whether a unit of the dose was ever dispensed (shipped, perhaps thawed) or used.

    A unit still allocated never left. A unit blocked by a donor lookback or a recall, or put
    in quarantine (and perhaps discarded or rejected since), may have been blocked in the lab
    or after its dispatch: its status-change history says which."""
    units = _units(order)
    if any(unit.status in _OUT_OF_THE_LAB for unit in units):
        return True
    changed = [unit.id for unit in units if unit.status != UnitStatus.ALLOCATED.value]
    session = object_session(order)
    if not changed or session is None:
        return False
    return chain.ever_changed_to(session, changed, UnitStatus.DISPENSED)


def exception_actions(order: DoseOrder) -> frozenset[DoseException]:
    """The exception acts the order allows as it is; the dose page offers these."""
    allowed = actions.allowed(order.status, EXCEPTION_ACTIONS)
    if DoseException.CANCEL in allowed and left_the_lab(order):
        allowed = allowed - {DoseException.CANCEL}
    return allowed


def cancel_dose(
    session: DbSession,
    order: DoseOrder,
    *,
    actor: User,
    password: str,
    reason: str,
    now: dt.datetime,
) -> DoseOrder:
    """Cancel a dose none of whose units left the lab, signed: its allocated bags go back to
    available; a bag blocked (donor lookback) or in quarantine stays as it is; the prepared
    dose unit, if still live, is discarded."""
    require(actor, Permission.PREPARE_DOSES)
    _require_allowed(order, DoseException.CANCEL)
    reason = _reason(reason)
    signatures.sign(
        session,
        record=order,
        meaning=CANCEL_MEANING,
        user=actor,
        password=password,
        now=now,
        permission=Permission.PREPARE_DOSES,
    )
    before = _cancel(session, order)
    note = f"dose order {order.id} cancelled: {reason}"
    chain.change_status_many(
        session,
        [bag.unit for bag in order.bags if bag.unit.status == UnitStatus.ALLOCATED.value],
        UnitStatus.AVAILABLE,
        actor=actor,
        now=now,
        reason=note,
    )
    if order.dose_unit is not None and not UnitStatus(order.dose_unit.status).final:
        _discard(session, [order.dose_unit], actor=actor, now=now, reason=note)
    audit.record(
        session,
        actor=actor,
        at=now,
        action="dose.cancelled",
        entity_type="dose_order",
        entity_id=order.id,
        changes={"status": (before, DoseStatus.CANCELLED.value)},
        reason=reason,
    )
    return order


def destroy_dose(
    session: DbSession,
    order: DoseOrder,
    *,
    actor: User,
    password: str,
    witness: User,
    witness_password: str,
    reason: str,
    now: dt.datetime,
) -> DoseOrder:
    """Destroy a prepared dose (in the lab, shipped or thawed): its units discarded, with a
    reason, the actor's signature and a witness's (another person, own password)."""
    require(actor, Permission.ADMINISTER_DOSES)
    _require_allowed(order, DoseException.DESTROY)
    reason = _reason(reason)
    if witness.id == actor.id:
        raise DoseRefused(
            _("The witness must be someone other than the person destroying the dose."),
            errors={"witness": [_("Another person witnesses the destruction.")]},
        )
    signatures.sign(
        session,
        record=order,
        meaning=DESTROY_MEANING,
        user=actor,
        password=password,
        now=now,
        permission=Permission.ADMINISTER_DOSES,
    )
    signatures.sign(
        session,
        record=order,
        meaning=WITNESS_MEANING,
        user=witness,
        password=witness_password,
        now=now,
        permission=Permission.ADMINISTER_DOSES,
    )
    before = _cancel(session, order)
    live = [unit for unit in _units(order) if not UnitStatus(unit.status).final]
    _discard(
        session, live, actor=actor, now=now, reason=f"dose order {order.id} destroyed: {reason}"
    )
    audit.record(
        session,
        actor=actor,
        at=now,
        action="dose.destroyed",
        entity_type="dose_order",
        entity_id=order.id,
        changes={
            "status": (before, DoseStatus.CANCELLED.value),
            "witness": (None, witness.username),
            "units_discarded": (None, ", ".join(unit.code for unit in live)),
        },
        reason=reason,
    )
    return order


def _require_allowed(order: DoseOrder, act: DoseException) -> None:
    if act in exception_actions(order):
        return
    if order.status == DoseStatus.INFUSED.value:
        raise Conflict(
            _(
                "Dose order %(id)s was infused; an infused dose is neither cancelled nor"
                " destroyed.",
                id=order.id,
            ),
            title=_("Dose already infused"),
        )
    if act is DoseException.CANCEL and order.status == DoseStatus.PREPARED.value:
        raise Conflict(
            _(
                "Dose order %(id)s has left the lab (shipped or thawed); it cannot go back to"
                " stock: destroy it instead.",
                id=order.id,
            ),
            title=_("Dose left the lab"),
        )
    raise Conflict(
        _(
            "Dose order %(id)s is %(status)s; it cannot be cancelled.",
            id=order.id,
            status=order.status_label,
        )
        if act is DoseException.CANCEL
        else _(
            "Dose order %(id)s is %(status)s; only a prepared dose is destroyed.",
            id=order.id,
            status=order.status_label,
        )
    )


def _reason(reason: str) -> str:
    if not reason.strip():
        raise DoseRefused(_("Say why."), errors={"reason": [_("A reason is required.")]})
    return reason.strip()


def _cancel(session: DbSession, order: DoseOrder) -> str:
    """The order's status → cancelled, conditional on the status read. The status before."""
    before = order.status
    if not update_if(session, order, DoseOrder.status == before, status=DoseStatus.CANCELLED.value):
        raise Conflict(
            _("Dose order %(id)s changed a moment ago; reload and try again.", id=order.id)
        )
    return before


def _discard(
    session: DbSession, units: list[Unit], *, actor: User, now: dt.datetime, reason: str
) -> None:
    """Discard the units; those still allocated pass through quarantine (the chain has no
    allocated → discarded step)."""
    in_lab = [unit for unit in units if unit.status == UnitStatus.ALLOCATED.value]
    if in_lab:
        chain.change_status_many(
            session, in_lab, UnitStatus.QUARANTINE, actor=actor, now=now, reason=reason
        )
    if units:
        chain.change_status_many(
            session, units, UnitStatus.DISCARDED, actor=actor, now=now, reason=reason
        )
