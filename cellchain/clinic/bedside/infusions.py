"""Infusions: started from a signed go, ended with what was given (DOMAIN.md §8).

``start`` is allowed only from a bedside check whose verdict was go and which two different
clinicians signed, by one of them. Every check is made again at that moment (the thaw window
may have closed since): if any fails, a new stop is recorded and nothing starts. The infusion
row is unique per dose order and the dose moves prepared → infused in a guarded update, so of
two bedside devices starting the same dose at once exactly one infusion exists.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from cellchain.chain import service as chain
from cellchain.chain.models import UnitStatus
from cellchain.clinic.bedside import bedside
from cellchain.clinic.bedside.doses import units_of_dose
from cellchain.clinic.models import (
    INFUSION_TRANSITIONS,
    BedsideCheck,
    Infusion,
    InfusionStatus,
)
from cellchain.core import actions, audit, signatures
from cellchain.core.display import local_time
from cellchain.core.guarded import update_if
from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, has_permission
from cellchain.dosing.models import DoseOrder, DoseStatus, Patient
from cellchain.dosing.patients import summarize
from cellchain.errors import (
    Conflict,
    InvalidInput,
    PermissionDenied,
    StateConflict,
)
from cellchain.extensions import DbSession

#: Volumes are read from a syringe graduated in 0.1 mL.
VOLUME_READING_ML = 0.05
#: Times are typed to the minute: an end is compared with the rate as if it came up to a
#: minute later, so a rounded end time is never flagged.
TIME_READING = dt.timedelta(minutes=1)
#: How far above the recorded rate the rate implied by volume and duration may be when the
#: protocol does not say (``infusion_rate_tolerance_percent``).
DEFAULT_RATE_TOLERANCE_PERCENT = 25.0
#: The meaning of a second clinician's signature acknowledging flagged infusion times.
TIME_FLAG_MEANING = "review: infusion times and volume confirmed as recorded"


class InfusionAction(enum.StrEnum):
    """What may be done with an infusion once started."""

    END = "end"  #: record the end: completed, or stopped early
    FOLLOW_UP = "follow_up"  #: follow-up and adverse events, once it has ended


#: The statuses each act starts from, from the transition table: the end is recorded while the
#: infusion may still end; follow-up comes when no change is left.
INFUSION_ACTIONS: dict[InfusionAction, frozenset[InfusionStatus]] = {
    InfusionAction.END: actions.leading_to(
        INFUSION_TRANSITIONS, InfusionStatus.COMPLETED, InfusionStatus.STOPPED
    ),
    InfusionAction.FOLLOW_UP: frozenset(
        status for status, nexts in INFUSION_TRANSITIONS.items() if not nexts
    ),
}


def infusion_actions(infusion: Infusion) -> frozenset[InfusionAction]:
    """The acts the infusion's status allows; the page offers these (permissions apart)."""
    return actions.allowed(infusion.status, INFUSION_ACTIONS)


@dataclass(frozen=True)
class Started:
    """What pressing start did: the infusion, or the stop recorded when a check now fails."""

    infusion: Infusion | None
    stop: BedsideCheck | None


@dataclass(frozen=True)
class InfusionEnd:
    """What the clinician records at the end of the infusion."""

    volume_infused_ml: float
    rate_ml_per_h: float
    reaction: str | None = None
    stopped_early: bool = False
    ended_at: dt.datetime | None = None


def start(
    session: DbSession, check: BedsideCheck, *, actor: User, now: dt.datetime, zone: ZoneInfo
) -> Started:
    """Start the infusion of the checked dose, if every check still passes now."""
    if not check.go:
        raise Conflict(
            _("Nothing can be started from a stop. Resolve what failed and scan again."),
            title=_("Stopped"),
        )
    signed = bedside.bedside_signatures(session, check)
    signers = {entry.username for entry in signed}
    if len(signers) < 2:
        raise Conflict(
            _("Two different clinicians must sign the bedside check before the infusion starts."),
            title=_("Not signed"),
        )
    if actor.username not in signers:
        raise Conflict(
            _("The infusion is started by one of the two clinicians who signed the check."),
            title=_("Not a signer"),
        )
    later = bedside.newer_check(session, check)
    if later is not None:
        raise Conflict(
            _(
                "A newer bedside check of this dose exists (check %(check)s); scan the "
                "wristband and the dose again and start from the newest check.",
                check=later.id,
            ),
            title=_("Not the latest check"),
        )
    recheck = bedside.verify(
        session,
        check.wristband_scan,
        check.label_scan,
        actor=actor,
        now=now,
        zone=zone,
        recheck_of=check,
    )
    if not recheck.go:
        return Started(infusion=None, stop=recheck)
    # the same stored scans name the same patient and dose; a difference would be a bug
    assert (recheck.patient_id, recheck.dose_order_id) == (check.patient_id, check.dose_order_id)
    order = check.dose_order
    assert order is not None and check.patient_id is not None
    infusion = Infusion(
        dose_order_id=order.id,
        patient_id=check.patient_id,
        bedside_check_id=check.id,
        status=InfusionStatus.IN_PROGRESS.value,
        started_at=now,
        administered_by_id=actor.id,
    )
    try:
        with session.begin_nested():  # one infusion per dose: a second start finds it taken
            session.add(infusion)
    except IntegrityError as error:
        raise _already_started(order) from error
    # Conditional on the status read, as a second guard on the same rule.
    if not update_if(
        session,
        order,
        DoseOrder.status == DoseStatus.PREPARED.value,
        status=DoseStatus.INFUSED.value,
    ):
        raise _already_started(order)
    for unit in units_of_dose(order):
        chain.change_status(
            session,
            unit,
            UnitStatus.INFUSED,
            actor=actor,
            now=now,
            reason=f"infused to {order.patient.study_id} ({order.visit}), infusion {infusion.id}",
        )
    audit.record(
        session,
        actor=actor,
        at=now,
        action="infusion.started",
        entity_type="infusion",
        entity_id=infusion.id,
        changes={
            "patient": (None, order.patient.study_id),
            "dose_unit": (None, order.dose_unit.code if order.dose_unit else None),
            "visit": (None, order.visit),
            "bedside_check": (None, check.id),
            "recheck": (None, recheck.id),
        },
    )
    return Started(infusion=infusion, stop=None)


def end(
    session: DbSession,
    infusion: Infusion,
    form: InfusionEnd,
    *,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo | None = None,
) -> Infusion:
    """Record the end: when, the volume infused, the rate and any reaction. ``zone``, the
    site's, names the start in a refusal (ISO 8601 with its offset when not given)."""
    target = InfusionStatus.STOPPED if form.stopped_early else InfusionStatus.COMPLETED
    if InfusionAction.END not in infusion_actions(infusion):
        raise StateConflict(f"Infusion {infusion.id}", infusion.status, target.value)
    ended_at = form.ended_at or now
    drawn = infusion.dose_order.volume_ml
    errors: dict[str, list[str]] = {}
    if ended_at > now:
        errors["ended_at"] = [_("The end cannot be in the future.")]
    elif ended_at <= infusion.started_at:
        errors["ended_at"] = [
            _(
                "The end must be after the start (%(start)s); enter when it ended.",
                start=local_time(infusion.started_at, zone)
                if zone is not None
                else infusion.started_at.isoformat(timespec="seconds"),
            )
        ]
    if not math.isfinite(form.volume_infused_ml) or form.volume_infused_ml < 0:
        errors["volume_infused_ml"] = [_("Enter the volume infused in mL (0 or more).")]
    elif form.volume_infused_ml > drawn + VOLUME_READING_ML:
        errors["volume_infused_ml"] = [
            _(
                "%(volume)s mL is more than the %(drawn)s mL drawn for this dose.",
                volume=format(form.volume_infused_ml, "g"),
                drawn=format(drawn, ".1f"),
            )
        ]
    if not math.isfinite(form.rate_ml_per_h) or form.rate_ml_per_h <= 0:
        errors["rate_ml_per_h"] = [_("Enter the rate in mL/h (more than 0).")]
    reaction = (form.reaction or "").strip() or None
    if form.stopped_early and reaction is None:
        errors["reaction"] = [_("Say why the infusion was stopped early (the reaction seen).")]
    if errors:
        raise InvalidInput(
            _("The end was not recorded: %(problems)s", problems=summarize(errors)), errors=errors
        )
    flag = time_flag(
        infusion.started_at,
        ended_at,
        form.volume_infused_ml,
        form.rate_ml_per_h,
        float(
            infusion.dose_order.protocol.parameters.get(
                "infusion_rate_tolerance_percent", DEFAULT_RATE_TOLERANCE_PERCENT
            )
        ),
    )
    if not update_if(
        session,
        infusion,
        Infusion.status == InfusionStatus.IN_PROGRESS.value,
        status=target.value,
        ended_at=ended_at,
        volume_infused_ml=form.volume_infused_ml,
        rate_ml_per_h=form.rate_ml_per_h,
        reaction=reaction,
        ended_recorded_at=now,
        ended_recorded_by_id=actor.id,
        time_flag=flag,
    ):
        raise Conflict(f"The end of infusion {infusion.id} was recorded by someone else.")
    audit.record(
        session,
        actor=actor,
        at=now,
        action="infusion.ended",
        entity_type="infusion",
        entity_id=infusion.id,
        changes={
            "status": (InfusionStatus.IN_PROGRESS.value, target.value),
            "ended_at": (None, ended_at),
            "volume_infused_ml": (None, form.volume_infused_ml),
            "rate_ml_per_h": (None, form.rate_ml_per_h),
            "reaction": (None, reaction),
            "time_flag": (None, flag),
        },
    )
    return infusion


def time_flag(
    started_at: dt.datetime,
    ended_at: dt.datetime,
    volume_ml: float,
    rate_ml_per_h: float,
    tolerance_percent: float,
) -> str | None:
    """Why the end, volume and rate cannot all be true as recorded, or None.

    The volume over the duration (read generously: a minute longer, as times are typed to the
    minute) implies a rate; more than ``tolerance_percent`` above the rate recorded, the record
    is flagged rather than refused: a pump that ran fast is a real event that must be on record,
    and a typing error is found by the second clinician who must acknowledge the flag.
    """
    if volume_ml <= 0 or rate_ml_per_h <= 0:
        return None
    duration = ended_at - started_at
    implied = volume_ml / ((duration + TIME_READING).total_seconds() / 3600)
    if implied <= rate_ml_per_h * (1 + tolerance_percent / 100):
        return None
    seconds = duration.total_seconds()
    took = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
    needed = volume_ml / rate_ml_per_h * 60
    return (
        f"{volume_ml:g} mL in {took} is at least {implied:.0f} mL/h, "
        f"{implied / rate_ml_per_h:.1f} × the {rate_ml_per_h:g} mL/h recorded (at that rate "
        f"it takes {needed:.0f} min). Check the end time, the volume and the rate; if they are "
        "right, the infusion ran faster than recorded."
    )


def acknowledge_time_flag(
    session: DbSession,
    infusion: Infusion,
    *,
    user: User,
    password: str,
    note: str,
    now: dt.datetime,
) -> Infusion:
    """A second clinician (not whoever recorded the end) confirms flagged infusion times as
    recorded, says what they found, and signs with their own password. Until then the
    patient's next dose cannot be ordered (``orders.plan_dose``)."""
    if not has_permission(user.roles, Permission.ADMINISTER_DOSES):
        raise PermissionDenied(_("%(name)s is not clinic staff.", name=user.full_name))
    if not infusion.time_flag_open:
        raise Conflict(
            _(
                "Infusion %(infusion)s has no flag waiting for acknowledgement.",
                infusion=infusion.id,
            )
        )
    errors: dict[str, list[str]] = {}
    if user.id == infusion.ended_recorded_by_id:
        errors["password"] = [_("A second clinician acknowledges: you recorded this end.")]
    if not (note or "").strip():
        errors["note"] = [_("Say what you checked (the pump log, the times) and what happened.")]
    if errors:
        raise InvalidInput(
            _("The flag was not acknowledged: %(problems)s", problems=summarize(errors)),
            errors=errors,
            title=_("Second clinician required") if "password" in errors else None,
        )
    infusion.time_flag_note = note.strip()
    signatures.sign(
        session,
        record=infusion,
        meaning=TIME_FLAG_MEANING,
        user=user,
        password=password,
        now=now,
        permission=Permission.ADMINISTER_DOSES,
    )
    # Conditional on the state read: of two clinicians acknowledging at once, one does.
    if not update_if(
        session,
        infusion,
        Infusion.time_flag_acknowledged_at.is_(None),
        time_flag_acknowledged_at=now,
        time_flag_acknowledged_by_id=user.id,
        time_flag_note=note.strip(),
    ):
        raise Conflict(
            _(
                "The flag of infusion %(infusion)s was acknowledged a moment ago.",
                infusion=infusion.id,
            )
        )
    audit.record(
        session,
        actor=user,
        at=now,
        action="infusion.time_flag_acknowledged",
        entity_type="infusion",
        entity_id=infusion.id,
        changes={"time_flag_note": (None, note.strip())},
    )
    return infusion


def may_acknowledge(infusion: Infusion, user: User) -> bool:
    """Whether ``user`` may acknowledge the infusion's time flag (what its page offers)."""
    return (
        infusion.time_flag_open
        and user.id != infusion.ended_recorded_by_id
        and has_permission(user.roles, Permission.ADMINISTER_DOSES)
    )


def get_infusion(session: DbSession, infusion_id: int) -> Infusion:
    return get_or_404(session, Infusion, infusion_id, "infusion", id_prefix="")


def infusion_of(session: DbSession, order: DoseOrder) -> Infusion | None:
    return session.execute(
        select(Infusion).where(Infusion.dose_order_id == order.id)
    ).scalar_one_or_none()


def count_running(session: DbSession) -> int:
    """How many infusions are running (in progress: started, not yet ended), one statement."""
    return session.execute(
        select(func.count())
        .select_from(Infusion)
        .where(Infusion.status == InfusionStatus.IN_PROGRESS.value)
    ).scalar_one()


def infusions_of(session: DbSession, patient: Patient) -> list[Infusion]:
    return list(
        session.execute(
            select(Infusion).where(Infusion.patient_id == patient.id).order_by(Infusion.started_at)
        ).scalars()
    )


def _already_started(order: DoseOrder) -> Conflict:
    return Conflict(
        _(
            "The infusion of %(dose)s was started from another bedside device a moment ago; "
            "it is given once.",
            dose=order.dose_unit.code if order.dose_unit else order.id,
        ),
        title=_("Already started"),
    )
