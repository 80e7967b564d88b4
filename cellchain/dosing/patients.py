"""Enrolment, arm assignment, weights and the visit schedule (DOMAIN.md §7).

A patient is enrolled under the protocol version in force: age at enrolment within the
protocol's range, every inclusion item met (numeric items checked against the entered value),
no exclusion item present. The arm and randomization number are drawn from the statistician's
signed schedule (``randomization.py``), never chosen by the enroller; the chain-of-identity
identifier is allocated at enrolment. Names and record numbers never enter this system.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    Date,
    Integer,
    String,
    bindparam,
    cast,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import selectinload

from cellchain.core import audit, listing, numbering, signatures
from cellchain.core.display import local_time
from cellchain.core.guarded import update_if
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, has_permission
from cellchain.core.types import canonical_json
from cellchain.core.wording import joined_text
from cellchain.dosing import randomization
from cellchain.dosing.models import (
    ACTIVE_DOSE_STATUSES,
    ArmSource,
    DoseOrder,
    Patient,
    PatientStatus,
    Protocol,
    Sex,
    Weight,
    WeightConfirmation,
)
from cellchain.dosing.service import PROTOCOLS
from cellchain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from cellchain.extensions import DbSession
from cellchain.sites.scope import unscoped
from cellchain.sites.service import enrolment_site

#: Plausible body weights (kg) when the protocol sets no ``plausible_weight_kg``: an adult
#: (the trial's youngest age 18 or more) below 30 kg or above 250 kg is a typing error (the
#: decimal point, grams, pounds), not a patient. A trial that enrols children sets its own
#: bounds in the protocol; without them only the upper bound and "more than 0" hold.
ADULT_WEIGHT_KG = (30.0, 250.0)
ANY_AGE_WEIGHT_KG = (0.3, 250.0)
ADULT_AGE_YEARS = 18
#: The meaning of a second person's countersignature on a weight that changed.
WEIGHT_CONFIRMATION_MEANING = "verification: weight change confirmed by a second person"
_OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class ChecklistAnswer:
    """One checklist item as answered: yes/no, and the measured value for numeric items."""

    answer: bool | None
    value: float | None = None


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment form sends."""

    study_id: str
    date_of_birth: dt.date
    sex: str
    day0: dt.date
    answers: Mapping[str, ChecklistAnswer]


@dataclass(frozen=True)
class Visit:
    """A scheduled visit: an infusion (with its window) or a follow-up evaluation.

    ``planned_on`` is the day it is planned for; its window is ``window`` when given (a visit
    moved: the protocol window it was moved within, or the day a signed deviation allows),
    otherwise ``planned_on`` ± ``window_days``. ``provisional``: planned from the scheduled
    day 0 because the first infusion has not started yet (it moves when it does). A visit
    moved outside the protocol whose deviation is not signed yet (``deviation_pending``), and
    a visit recorded as missed, are open on no day: no dose is ordered or given for them.
    """

    code: str
    name: str
    day: int
    planned_on: dt.date
    window_days: int
    infusion: bool
    provisional: bool = False
    rescheduled: bool = False
    deviation_pending: bool = False
    missed: bool = False
    window: tuple[dt.date, dt.date] | None = None

    @property
    def earliest(self) -> dt.date:
        if self.window is not None:
            return self.window[0]
        return self.planned_on - dt.timedelta(days=self.window_days)

    @property
    def latest(self) -> dt.date:
        if self.window is not None:
            return self.window[1]
        return self.planned_on + dt.timedelta(days=self.window_days)

    def open_on(self, day: dt.date) -> bool:
        if self.deviation_pending or self.missed:
            return False
        return self.earliest <= day <= self.latest

    def closed_reason(self, day: dt.date, *, translate: bool = False) -> str | None:
        """Why no dose may be ordered or given for this visit on ``day``; None when open. In
        English (the bedside keeps it) unless ``translate``: in the reader's language."""

        def said(text: LazyText, **values: Any) -> str:
            return (str(text) if translate else text.message) % values

        if self.missed:
            return said(_MISSED, visit=self.name)
        if self.deviation_pending:
            return said(_MOVED_OUTSIDE, visit=self.name, day=self.planned_on.isoformat())
        if self.open_on(day):
            return None
        window = (
            said(_FROM_TO, first=self.earliest.isoformat(), last=self.latest.isoformat())
            if self.earliest != self.latest
            else self.planned_on.isoformat()
        )
        return said(
            _OUTSIDE_WINDOW,
            visit=self.name,
            day=self.planned_on.isoformat(),
            window=window,
            today=day.isoformat(),
        )


_MISSED = lazy("%(visit)s was recorded as missed: no dose is given for it.")
_MOVED_OUTSIDE = lazy(
    "%(visit)s was moved to %(day)s, outside the protocol window: an investigator must sign the"
    " protocol deviation first."
)
_FROM_TO = lazy("%(first)s to %(last)s")
_OUTSIDE_WINDOW = lazy(
    "%(visit)s is planned for %(day)s (window %(window)s); today (%(today)s) is outside its window."
)


@dataclass(frozen=True)
class Move:
    """The latest reschedule of a visit: its new day and whether it left the protocol window
    (and if so, whether the investigator signed the deviation)."""

    planned_on: dt.date
    earliest: dt.date
    latest: dt.date
    outside_protocol: bool = False
    signed: bool = False
    #: the ``visit_reschedules`` row it comes from
    reschedule_id: int | None = None


@dataclass(frozen=True)
class ScheduleFacts:
    """What a patient's schedule depends on besides the patient row: the day (site calendar)
    the first infusion started, the visits moved and the visits recorded as missed. Loaded
    for many patients at once by ``schedule_facts``."""

    first_infusion_on: dt.date | None = None
    moves: Mapping[str, Move] = field(default_factory=dict)
    missed: frozenset[str] = frozenset()


def protocol_in_force(session: DbSession, code: str, *, at: dt.datetime) -> Protocol:
    """The version of protocol ``code`` in force at ``at`` (the time of the event); refused
    when there is none."""
    return PROTOCOLS.in_force(session, code, at=at)


def protocols_in_force(session: DbSession, *, at: dt.datetime) -> list[Protocol]:
    """The version in force of every protocol that has one, by code: what a patient may be
    enrolled under (and what the trial-data pages choose among)."""
    codes = session.execute(
        select(Protocol.code).where(Protocol.status != "draft").distinct().order_by(Protocol.code)
    ).scalars()
    found = []
    for code in codes:
        try:
            found.append(PROTOCOLS.in_force(session, code, at=at))
        except Conflict:
            continue  # signed, not in force yet
    return found


def chosen_protocol(
    session: DbSession,
    code: str | None,
    among: Sequence[Protocol] | None = None,
    *,
    at: dt.datetime,
) -> Protocol:
    """The protocol in force a form or request names by ``code``; without one, the only
    protocol in force. Refused (field ``protocol``) when none is in force, when several are
    and none is named, or when the one named is not in force."""
    protocols = list(among) if among is not None else protocols_in_force(session, at=at)
    wanted = (code or "").strip().upper()
    if wanted:
        for protocol in protocols:
            if protocol.code == wanted:
                return protocol
        message = _("No version of protocol %(code)s is in force.", code=wanted)
        raise InvalidInput(message, errors={"protocol": [message]})
    if len(protocols) == 1:
        return protocols[0]
    if not protocols:
        raise Conflict(_("No protocol is in force; QA must approve one first."))
    message = _("Choose the protocol (%(codes)s).", codes=", ".join(p.code for p in protocols))
    raise InvalidInput(message, errors={"protocol": [message]})


def randomized_protocol(session: DbSession, code: str | None, *, at: dt.datetime) -> Protocol:
    """``chosen_protocol`` among the protocols in force whose patients are randomized (the
    randomization pages); the only one when ``code`` is left out."""
    among = [p for p in protocols_in_force(session, at=at) if is_randomized(p.parameters)]
    return chosen_protocol(session, code, among, at=at)


def is_randomized(parameters: Mapping[str, Any]) -> bool:
    """Whether the protocol's patients are randomized among its arms; a protocol of one arm
    (open label) is not: its patients all take that arm."""
    return len(parameters["arms"]) > 1 or "randomization" in parameters


def named_products(parameters: Mapping[str, Any]) -> frozenset[str]:
    """The product codes a protocol version of ``parameters`` names (``products``)."""
    return frozenset(str(code).strip().upper() for code in parameters.get("products") or ())


def allowed_products(
    session: DbSession, protocol_code: str, parameters: Mapping[str, Any], *, at: dt.datetime
) -> frozenset[str]:
    """The product codes a dose for a patient enrolled under a version (of protocol
    ``protocol_code``, of ``parameters``) may come from at ``at`` (the time of the event:
    order, allocation, second check, dispatch, bedside): those the patient's version names;
    when it names none (signed before issue 22 gave protocols products), those of the version of
    the same protocol in force at ``at``; none (every bag refused) when neither names any.
    Every path that judges a dose's product reads this function."""
    named = named_products(parameters)
    if named:
        return named
    current = PROTOCOLS.in_force_or_none(session, protocol_code, at=at)
    return named_products(current.parameters) if current is not None else frozenset()


def patient_products(session: DbSession, patient: Patient, *, at: dt.datetime) -> frozenset[str]:
    """``allowed_products`` for ``patient``'s protocol version."""
    return allowed_products(session, patient.protocol.code, patient.protocol.parameters, at=at)


def no_products_reason(protocol: str) -> str:
    """Why no bag may be given to a patient of ``protocol`` when ``allowed_products`` is empty
    (in the reader's language; ``english_of`` gives the English)."""
    return _(
        "Neither the patient's version of protocol %(protocol)s nor the version in force names"
        " a product its patients may receive (parameter products); QA signs a version that"
        " names them.",
        protocol=protocol,
    )


def product_refusal(allowed: frozenset[str], product_code: str, protocol: str) -> str | None:
    """Why a bag of ``product_code`` may not be given to a patient of ``protocol`` whose
    ``allowed_products`` are ``allowed``; None when allowed (in the reader's language;
    ``english_of`` gives the English)."""
    if product_code.strip().upper() in allowed:
        return None
    if not allowed:
        return no_products_reason(protocol)
    return _(
        "%(product)s is not a product of protocol %(protocol)s (%(allowed)s).",
        product=product_code,
        protocol=protocol,
        allowed=", ".join(sorted(allowed)),
    )


def age_on(date_of_birth: dt.date, day: dt.date) -> int:
    """Completed years on ``day``."""
    years = day.year - date_of_birth.year
    if (day.month, day.day) < (date_of_birth.month, date_of_birth.day):
        years -= 1
    return years


def enrol(
    session: DbSession,
    protocol: Protocol,
    form: Enrolment,
    *,
    facility_code: str,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
    site_id: int | None = None,
) -> Patient:
    """Enrol a patient, or refuse with every problem named by field; nothing is saved then.
    Whoever manages the randomization (and so has seen the unused slots) never enrols. The
    patient belongs to ``site_id``, one of the enrolling user's active clinical sites (their
    only one when not named; docs/sites.md)."""
    randomization.refuse_who_knows_the_schedule(actor)
    site = enrolment_site(session, actor, site_id)
    parameters = protocol.parameters
    today = now.astimezone(zone).date()
    errors = _enrolment_errors(parameters, form, today)
    study_id = form.study_id.strip().upper()
    with unscoped():  # a study ID is unique across every site, seen or not
        taken = session.execute(select(Patient.id).where(Patient.study_id == study_id)).first()
    if study_id and taken:
        errors["study_id"] = [_("%(study_id)s is already enrolled.", study_id=study_id)]
    if errors:
        raise InvalidInput(
            _("The patient cannot be enrolled: %(problems)s", problems=summarize(errors)),
            errors=errors,
        )
    # the arm is drawn from the statistician's signed schedule once the patient qualifies;
    # refused (nothing saved, no COI issued) when none is signed or every slot is used. A
    # protocol of one arm (open label) is not randomized: the patient takes that arm.
    randomized = is_randomized(parameters)
    schedule = randomization.ready_for(session, protocol) if randomized else None
    patient = Patient(
        study_id=study_id,
        coi="",
        protocol_id=protocol.id,
        date_of_birth=form.date_of_birth,
        sex=form.sex,
        arm="" if randomized else str(parameters["arms"][0]["code"]),
        arm_source=ArmSource.TRIAL_RANDOMIZATION if randomized else ArmSource.SINGLE_ARM,
        checklist_json=canonical_json(
            {code: {"answer": a.answer, "value": a.value} for code, a in form.answers.items()}
        ),
        day0=form.day0,
        enrolled_at=now,
        enrolled_by_id=actor.id,
        status=PatientStatus.ENROLLED,
        site_id=site.id,
    )
    session.add(patient)
    session.flush()
    if schedule is not None:
        slot = randomization.draw(session, schedule, patient, now=now)
        patient.arm, patient.randomization_number = slot.arm, slot.randomization_number
    issued = numbering.allocate_coi(
        session,
        facility_code=facility_code,
        actor=actor,
        now=now,
        purpose=f"chain of identity of {study_id}",
        entity_type="patient",
        entity_id=str(patient.id),
    )
    patient.coi = issued.code
    audit.record(
        session,
        actor=actor,
        at=now,
        action="patient.enrolled",
        entity_type="patient",
        entity_id=patient.id,
        changes={
            "study_id": (None, study_id),
            "coi": (None, issued.code),
            "arm": (None, patient.arm),
            "randomization_number": (None, patient.randomization_number),
            "protocol": (None, f"{protocol.code} v{protocol.version}"),
            "day0": (None, form.day0),
            "site": (None, site.code),
        },
    )
    return patient


def receives_cells(patient: Patient) -> bool:
    """Whether the patient's arm receives cells (the control arm never does)."""
    return arm_receives_cells(patient.arm, patient.protocol.parameters)


def arm_receives_cells(arm: str, parameters: Mapping[str, Any]) -> bool:
    """``receives_cells`` of a patient in ``arm`` of a protocol of ``parameters``."""
    for each in parameters["arms"]:
        if each["code"] == arm:
            return bool(each["receives_cells"])
    return False


def arm_name(patient: Patient) -> str:
    return arm_name_of(patient.arm, patient.protocol.parameters)


def arm_name_of(arm: str, parameters: Mapping[str, Any]) -> str:
    """``arm_name`` of ``arm`` in a protocol of ``parameters``."""
    for each in parameters["arms"]:
        if each["code"] == arm:
            return str(each["name"])
    return arm


def weight_bounds(parameters: Mapping[str, Any]) -> tuple[float, float]:
    """The lightest and heaviest plausible weight (kg) for the protocol's patients: its own
    ``plausible_weight_kg`` if it sets them, else by its age range (adults: 30–250 kg)."""
    bounds = parameters.get("plausible_weight_kg")
    if bounds:
        return float(bounds["min"]), float(bounds["max"])
    adults = int(parameters.get("age_years", {}).get("min", 0)) >= ADULT_AGE_YEARS
    return ADULT_WEIGHT_KG if adults else ANY_AGE_WEIGHT_KG


def weight_change_percent(weight_kg: float, reference_kg: float) -> float:
    return (weight_kg - reference_kg) / reference_kg * 100


def changed_by_flag(weight_kg: float, reference_kg: float, flag_percent: float) -> bool:
    """Whether ``weight_kg`` differs from ``reference_kg`` by ``flag_percent`` or more, in
    exact decimal arithmetic on the numbers as typed: 68.0 → 74.8 kg is +10 % exactly, which
    binary floating point computes as +9.999999999999996 %; "≥ 10 %" means what it says."""
    new, old = Fraction(repr(float(weight_kg))), Fraction(repr(float(reference_kg)))
    return abs(new - old) / old * 100 >= Fraction(repr(float(flag_percent)))


def record_weight(
    session: DbSession,
    patient: Patient,
    *,
    weight_kg: float,
    measured_at: dt.datetime,
    source: str,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
) -> Weight:
    """A body weight with when and how it was measured.

    Refused: outside the protocol's plausible bounds (an adult under 30 kg: grams or pounds?),
    measured in the future, before the patient was born or on a day before enrolment. A weight
    that differs by the protocol's flag (≥ 10 %) from the previous confirmed weight or from
    the weight the last dose was computed from is recorded *unconfirmed*: no dose is computed
    from it until a re-weigh agrees with it (this function, recording the next weight) or a
    second person countersigns it (``confirm_weight``).
    """
    parameters = patient.protocol.parameters
    errors: dict[str, list[str]] = {}
    lightest, heaviest = weight_bounds(parameters)
    if not (math.isfinite(weight_kg) and weight_kg > 0):
        errors["weight_kg"] = ["A weight is more than 0 kg."]
    elif weight_kg < lightest:
        ages = parameters.get("age_years", {})
        who = (
            f"an adult of this trial ({ages['min']}–{ages['max']} years)"
            if (lightest, heaviest) == ADULT_WEIGHT_KG and ages
            else "a patient of this trial"
        )
        errors["weight_kg"] = [
            f"{weight_kg:g} kg is below {lightest:g} kg, the least {who} plausibly weighs; "
            "was it typed in grams or pounds, or with the decimal point in the wrong place?"
        ]
    elif weight_kg > heaviest:
        errors["weight_kg"] = [
            f"{weight_kg:g} kg is above {heaviest:g} kg; was it typed in grams or pounds?"
        ]
    measured_on = measured_at.astimezone(zone).date()
    enrolled_on = patient.enrolled_at.astimezone(zone).date()
    if measured_at > now + dt.timedelta(minutes=5):
        errors["measured_at"] = [_("A weight cannot be measured in the future.")]
    elif measured_on < patient.date_of_birth:
        errors["measured_at"] = [
            _(
                "%(measured)s is before %(study_id)s was born (%(born)s); check the date.",
                measured=measured_on.isoformat(),
                study_id=patient.study_id,
                born=patient.date_of_birth.isoformat(),
            )
        ]
    elif measured_on < enrolled_on:
        errors["measured_at"] = [
            _(
                "%(measured)s is before %(study_id)s was enrolled (%(enrolled)s); a weight of"
                " the trial is measured from enrolment on. Check the date, or weigh the patient"
                " again.",
                measured=measured_on.isoformat(),
                study_id=patient.study_id,
                enrolled=enrolled_on.isoformat(),
            )
        ]
    if not source.strip():
        errors["source"] = [_("Say how it was measured (e.g. calibrated clinic scale).")]
    if errors:
        raise InvalidInput(
            _("The weight was not recorded: %(problems)s", problems=summarize(errors)),
            errors=errors,
        )
    flag = float(parameters["weight_change_flag_percent"])
    earlier = list(
        session.execute(
            select(Weight)
            .where(Weight.patient_id == patient.id)
            .order_by(Weight.measured_at.desc(), Weight.id.desc())
        ).scalars()
    )
    latest = earlier[0] if earlier else None
    # A re-weigh: the latest weight awaits confirmation and this later one agrees with it.
    reweigh_of = (
        latest
        if latest is not None
        and latest.needs_confirmation
        and measured_at > latest.measured_at
        and not changed_by_flag(weight_kg, latest.weight_kg, flag)
        else None
    )
    change: tuple[float, str] | None = None
    if reweigh_of is None:
        change = _change_to_confirm(session, patient, earlier, weight_kg, flag, zone)
    weight = Weight(
        patient_id=patient.id,
        weight_kg=weight_kg,
        measured_at=measured_at,
        source=source.strip(),
        recorded_at=now,
        recorded_by_id=actor.id,
        change_percent=change[0] if change else None,
        change_reference=change[1] if change else None,
    )
    session.add(weight)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="weight.recorded",
        entity_type="patient",
        entity_id=patient.id,
        changes={
            "weight_kg": (None, weight_kg),
            "measured_at": (None, measured_at),
            "unconfirmed_change_percent": (None, round(change[0], 2) if change else None),
            "change_reference": (None, change[1] if change else None),
        },
    )
    if reweigh_of is not None:
        reweigh_of.confirmation = WeightConfirmation.REWEIGHED.value
        reweigh_of.confirmed_at = now
        reweigh_of.confirmed_by_id = actor.id
        reweigh_of.confirmed_by_weight_id = weight.id
        session.flush()
        audit.record(
            session,
            actor=actor,
            at=now,
            action="weight.confirmed",
            entity_type="patient",
            entity_id=patient.id,
            changes={
                "weight": (None, f"{reweigh_of.weight_kg:g} kg (weight {reweigh_of.id})"),
                "confirmation": (None, f"re-weighed: {weight_kg:g} kg (weight {weight.id})"),
            },
        )
    return weight


def confirm_weight(
    session: DbSession, weight: Weight, *, user: User, password: str, now: dt.datetime
) -> Weight:
    """A second person countersigns a weight that changed by the protocol's flag, with their
    own password: someone other than whoever recorded it, allowed to record weights."""
    if not has_permission(user.roles, Permission.RECORD_WEIGHTS):
        raise PermissionDenied(_("%(who)s may not record or confirm weights.", who=user.full_name))
    if not weight.needs_confirmation:
        kg = format(weight.weight_kg, "g")
        raise Conflict(
            _(
                "The weight of %(kg)s kg needs no confirmation (already %(how)s).",
                kg=kg,
                how=weight.confirmation_label,
            )
            if weight.confirmation
            else _("The weight of %(kg)s kg needs no confirmation.", kg=kg)
        )
    if user.id == weight.recorded_by_id:
        raise InvalidInput(
            _(
                "A second person confirms a weight: you recorded this one. Ask a colleague to "
                "countersign it, or weigh the patient again."
            ),
            errors={"password": [_("Someone other than the person who recorded it signs.")]},
            title=_("Second person required"),
        )
    signatures.sign(
        session,
        record=weight,
        meaning=WEIGHT_CONFIRMATION_MEANING,
        user=user,
        password=password,
        now=now,
        permission=Permission.RECORD_WEIGHTS,
    )
    # Conditional on the state read: of two people confirming at once, one does.
    if not update_if(
        session,
        weight,
        Weight.confirmation.is_(None),
        confirmation=WeightConfirmation.COUNTERSIGNED.value,
        confirmed_at=now,
        confirmed_by_id=user.id,
    ):
        raise Conflict(
            _(
                "The weight of %(kg)s kg was confirmed a moment ago.",
                kg=format(weight.weight_kg, "g"),
            )
        )
    audit.record(
        session,
        actor=user,
        at=now,
        action="weight.confirmed",
        entity_type="patient",
        entity_id=weight.patient_id,
        changes={
            "weight": (None, f"{weight.weight_kg:g} kg (weight {weight.id})"),
            "confirmation": (None, f"countersigned by {user.username}"),
        },
    )
    return weight


def may_confirm(weight: Weight, user: User) -> bool:
    """Whether ``user`` may countersign ``weight`` (what the patient page offers)."""
    return (
        weight.needs_confirmation
        and user.id != weight.recorded_by_id
        and has_permission(user.roles, Permission.RECORD_WEIGHTS)
    )


def get_weight(session: DbSession, patient: Patient, weight_id: int) -> Weight:
    weight = session.get(Weight, weight_id)
    if weight is None or weight.patient_id != patient.id:
        raise NotFound(
            _("%(study_id)s has no weight %(id)s.", study_id=patient.study_id, id=weight_id)
        )
    return weight


#: why a weight may not be used for a dose yet: read in the reader's language on the dose plan
#: (``unconfirmed_reason``), in English where the bedside keeps it (``unconfirmed_reason_of``)
_UNCONFIRMED = lazy(
    "The latest weight (%(kg)s kg, measured %(measured)s) changed %(change)s %% from"
    " %(reference)s and is not confirmed: weigh the patient again, or have a second person"
    " countersign it on the patient page."
)


def unconfirmed_reason(weight: Weight, zone: ZoneInfo) -> str:
    """Why ``weight`` may not be used for a dose yet, and what to do, in the reader's words."""
    return str(_UNCONFIRMED) % _unconfirmed_values(
        weight.weight_kg, weight.measured_at, weight.change_percent, weight.change_reference, zone
    )


def _unconfirmed_values(
    weight_kg: float,
    measured_at: dt.datetime,
    change_percent: float | None,
    change_reference: str | None,
    zone: ZoneInfo,
) -> dict[str, str]:
    return {
        "kg": format(weight_kg, "g"),
        "measured": local_time(measured_at, zone),
        "change": format(change_percent or 0.0, "+.1f"),
        "reference": str(change_reference),
    }


def unconfirmed_reason_of(
    weight_kg: float,
    measured_at: dt.datetime,
    change_percent: float | None,
    change_reference: str | None,
    zone: ZoneInfo,
) -> str:
    """``unconfirmed_reason`` of a weight's columns (the bedside reads them as plain rows), in
    English: the bedside keeps it in its record."""
    return _UNCONFIRMED.message % _unconfirmed_values(
        weight_kg, measured_at, change_percent, change_reference, zone
    )


def _change_to_confirm(
    session: DbSession,
    patient: Patient,
    earlier: list[Weight],
    weight_kg: float,
    flag: float,
    zone: ZoneInfo,
) -> tuple[float, str] | None:
    """The largest change by the flag or more, from the previous confirmed weight or the
    weight of the last dose ordered, with what it was measured from; None if neither."""
    references: list[tuple[float, str]] = []
    previous = next((w for w in earlier if not w.needs_confirmation), None)
    if previous is not None:
        references.append(
            (
                previous.weight_kg,
                f"the previous weight, {previous.weight_kg:g} kg on "
                f"{local_time(previous.measured_at, zone)}",
            )
        )
    last_dose = session.execute(
        select(DoseOrder)
        .where(
            DoseOrder.patient_id == patient.id,
            DoseOrder.status.in_([status.value for status in ACTIVE_DOSE_STATUSES]),
        )
        .order_by(DoseOrder.ordered_at.desc(), DoseOrder.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if last_dose is not None:
        references.append(
            (
                last_dose.weight.weight_kg,
                f"the weight of the {last_dose.visit} dose, {last_dose.weight.weight_kg:g} kg",
            )
        )
    flagged = [
        (weight_change_percent(weight_kg, kg), words)
        for kg, words in references
        if changed_by_flag(weight_kg, kg, flag)
    ]
    return max(flagged, key=lambda item: abs(item[0])) if flagged else None


def latest_weight(session: DbSession, patient: Patient) -> Weight | None:
    return session.execute(
        select(Weight)
        .where(Weight.patient_id == patient.id)
        .order_by(Weight.measured_at.desc(), Weight.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def schedule(patient: Patient, facts: ScheduleFacts) -> list[Visit]:
    """The infusions and follow-up visits, each with its planned day and window.

    Day 0 is planned on the scheduled day 0 (``patient.day0``). Every later visit counts
    from its anchor: the day the first infusion started, or, before it has (and for an arm
    that never receives cells, for good), the scheduled day 0; visits planned before the
    first infusion of an arm that receives cells are provisional. A moved visit keeps the
    window it was moved within, or, moved outside the protocol, has the new day only (open
    once the deviation is signed)."""
    return planned_schedule(patient.day0, patient.arm, patient.protocol.parameters, facts)


def planned_schedule(
    day0: dt.date, arm: str, parameters: Mapping[str, Any], facts: ScheduleFacts
) -> list[Visit]:
    """``schedule`` of a patient of scheduled ``day0`` in ``arm`` of a protocol of
    ``parameters``: the one rule, from the facts alone (the bedside reads them as plain
    rows)."""
    cells = arm_receives_cells(arm, parameters)
    anchor = facts.first_infusion_on if cells and facts.first_infusion_on else day0
    provisional = cells and facts.first_infusion_on is None
    items = [(item, True) for item in parameters["infusions"]] + [
        (item, False) for item in parameters.get("follow_up", [])
    ]
    visits = []
    for item, infusion in items:
        day = int(item["day"])
        code = str(item["code"])
        planned = day0 if day == 0 else anchor + dt.timedelta(days=day)
        move = facts.moves.get(code)
        if day != 0 and move is not None and provisional:
            move = None  # a later visit moves only once its anchor is known (scheduling.py)
        window: tuple[dt.date, dt.date] | None = None
        if move is not None and day != 0:
            # day 0 keeps its own window around the scheduled day 0 (the move's protocol window
            # is how far day 0 may move); a later visit keeps the protocol window it moved in
            planned = move.planned_on
            window = (planned, planned) if move.outside_protocol else (move.earliest, move.latest)
        visits.append(
            Visit(
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


def protocol_visits(patient: Patient) -> list[tuple[str, str, bool]]:
    """(code, name, infusion) of the protocol's visits in order, without their days."""
    parameters = patient.protocol.parameters
    items = [(item, True) for item in parameters["infusions"]] + [
        (item, False) for item in parameters.get("follow_up", [])
    ]
    return [
        (str(item["code"]), str(item["name"]), infusion)
        for item, infusion in sorted(items, key=lambda pair: int(pair[0]["day"]))
    ]


def schedule_facts(
    session: DbSession, patient_ids: Sequence[int], zone: ZoneInfo
) -> dict[int, ScheduleFacts]:
    """The schedule facts of each patient in ``patient_ids``, in one statement whatever their
    number (a list page never queries per patient): their infusions' starts, visit moves and
    missed visits as one ``UNION ALL``. The first infusion is the earliest infusion started
    (site calendar), of whichever visit."""
    ids = list(patient_ids)
    if not ids:
        return {}
    return schedule_facts_of(session.execute(_schedule_statement(), {"ids": ids}), ids, zone)


def schedule_facts_of(
    rows: Iterable[Any], patient_ids: Sequence[int], zone: ZoneInfo
) -> dict[int, ScheduleFacts]:
    """``schedule_facts`` from its rows already read (``_schedule_rows``' columns by name,
    ordered by time, kind and id), for each patient of ``patient_ids``."""
    ids = list(patient_ids)
    first: dict[int, dt.date] = {}
    moves: dict[int, dict[str, Move]] = {}
    missed: dict[int, set[str]] = {}
    # ordered by time then id: an infusion's start, a move's recording; the latest move of
    # each visit wins
    for row in rows:
        if row.kind == 0:
            first.setdefault(row.patient_id, row.happened_at.astimezone(zone).date())
        elif row.kind == 1:
            moves.setdefault(row.patient_id, {})[row.visit] = Move(
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
        patient_id: ScheduleFacts(
            first_infusion_on=first.get(patient_id),
            moves=moves.get(patient_id, {}),
            missed=frozenset(missed.get(patient_id, ())),
        )
        for patient_id in ids
    }


@cache
def _schedule_statement() -> Any:
    """The statement of ``schedule_facts``, built once (``ids``: an expanding parameter): its
    three branches cost more to build than the statement costs to run (the bedside check
    reads it on every scan)."""
    from cellchain.clinic.models import Infusion, MissedVisit, VisitReschedule

    ids = bindparam("ids", expanding=True, type_=Integer())
    return _schedule_rows(Infusion, VisitReschedule, MissedVisit, ids)


def _schedule_rows(infusion: Any, reschedule: Any, missed: Any, ids: Any) -> Any:
    """The rows behind ``schedule_facts``: kind 0 an infusion's start (``happened_at``), kind 1 a
    visit's move, kind 2 a missed visit; the columns a kind does not have are null (typed by
    the first branch, which the result's types follow)."""
    date, flag = cast(null(), Date), cast(null(), Boolean)
    infusions = select(
        literal_column("0").label("kind"),
        infusion.id.label("id"),
        infusion.patient_id.label("patient_id"),
        infusion.started_at.label("happened_at"),
        cast(null(), String).label("visit"),
        date.label("planned_on"),
        date.label("earliest"),
        date.label("latest"),
        flag.label("outside_protocol"),
        flag.label("signed"),
    ).where(infusion.patient_id.in_(ids))
    moves = select(
        literal_column("1"),
        reschedule.id,
        reschedule.patient_id,
        reschedule.recorded_at,
        reschedule.visit,
        reschedule.planned_on,
        reschedule.protocol_earliest,
        reschedule.protocol_latest,
        reschedule.outside_protocol,
        reschedule.deviation_signed_at.is_not(None),
    ).where(reschedule.patient_id.in_(ids))
    misses = select(
        literal_column("2"),
        missed.id,
        missed.patient_id,
        missed.recorded_at,
        missed.visit,
        date,
        date,
        date,
        flag,
        flag,
    ).where(missed.patient_id.in_(ids))
    return union_all(infusions, moves, misses).order_by(
        literal_column("happened_at"), literal_column("kind"), literal_column("id")
    )


def facts_of(session: DbSession, patient: Patient, zone: ZoneInfo) -> ScheduleFacts:
    """The schedule facts of one patient (``schedule_facts``)."""
    return schedule_facts(session, [patient.id], zone)[patient.id]


def schedule_of(session: DbSession, patient: Patient, zone: ZoneInfo) -> list[Visit]:
    """One patient's schedule, its facts loaded."""
    return schedule(patient, facts_of(session, patient, zone))


def visit_of(patient: Patient, code: str, facts: ScheduleFacts) -> Visit:
    return infusion_visit(schedule(patient, facts), code, patient.protocol.code)


def infusion_visit(visits: Sequence[Visit], code: str, protocol_code: str) -> Visit:
    """``visit_of`` among a schedule's ``visits`` (``planned_schedule``)."""
    for visit in visits:
        if visit.code == code and visit.infusion:
            return visit
    raise NotFound(
        _(
            "Protocol %(protocol)s has no infusion visit %(visit)s.",
            protocol=protocol_code,
            visit=repr(code),
        )
    )


def list_patients(session: DbSession) -> list[Patient]:
    return list(session.execute(select(Patient).order_by(Patient.study_id)).scalars())


def get_patient(session: DbSession, patient_id: int) -> Patient:
    return get_or_404(session, Patient, patient_id, "patient", id_prefix="")


# --- checks -------------------------------------------------------------------------------------


def _enrolment_errors(
    parameters: Mapping[str, Any], form: Enrolment, today: dt.date
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not form.study_id.strip():
        errors["study_id"] = [_("The study subject ID is required.")]
    ages = parameters["age_years"]
    age = age_on(form.date_of_birth, today)
    if form.date_of_birth > today:
        errors["date_of_birth"] = [_("The date of birth is in the future.")]
    elif not ages["min"] <= age <= ages["max"]:
        errors["date_of_birth"] = [
            _(
                "Age %(age)s at enrolment is outside %(min)s–%(max)s years.",
                age=age,
                min=ages["min"],
                max=ages["max"],
            )
        ]
    if form.sex not in {member.value for member in Sex}:
        errors["sex"] = [_("Choose female, male or other.")]
    if form.day0 < today:
        errors["day0"] = [_("Day 0 (the first infusion) cannot be before enrolment.")]
    for item in parameters["inclusion"]:
        problem = _inclusion_problem(item, form.answers.get(item["code"]))
        if problem:
            errors[f"inclusion.{item['code']}"] = [problem]
    for item in parameters["exclusion"]:
        answer = form.answers.get(item["code"])
        if answer is None or answer.answer is None:
            errors[f"exclusion.{item['code']}"] = [_("Answer yes or no.")]
        elif answer.answer:
            errors[f"exclusion.{item['code']}"] = [_("Excluded: %(item)s.", item=item["text"])]
    return errors


def _inclusion_problem(item: Mapping[str, Any], answer: ChecklistAnswer | None) -> str | None:
    measure = item.get("measure")
    if measure:
        if answer is None or answer.value is None:
            return _("Enter the measured value (%(unit)s).", unit=measure["unit"])
        return invalid_measure(measure, answer.value) or unmet_measure(measure, answer.value)
    if answer is None or answer.answer is None:
        return _("Answer yes or no.")
    if not answer.answer:
        return _("Not met: %(item)s.", item=item["text"])
    return None


def invalid_measure(measure: Mapping[str, Any], value: float) -> str | None:
    """Why ``value`` is not a possible reading of ``measure`` at all (not a number, outside its
    scale's ``min``–``max``, a fraction of an ``integer`` score): a typing error, refused as
    invalid input, never judged against the limit. None when it is a possible reading."""
    unit = measure["unit"]
    low, high = measure.get("min"), measure.get("max")
    if low is not None and high is not None:
        scale = f"{low:g}–{high:g}"
    elif low is not None or high is not None:
        scale = (
            _("%(low)s or more", low=format(low, "g"))
            if low is not None
            else _("%(high)s or less", high=format(high, "g"))
        )
    else:
        scale = _("any number")
    whole = _("a whole number") if measure.get("integer") else _("a number")
    if not math.isfinite(value) or (
        (low is not None and value < low) or (high is not None and value > high)
    ):
        return _(
            "Invalid %(unit)s: %(value)s is not %(whole)s on the scale (%(scale)s).",
            unit=unit,
            value=format(value, "g"),
            whole=whole,
            scale=scale,
        )
    if measure.get("integer") and value != int(value):
        return _(
            "Invalid %(unit)s: %(value)s is not a whole number (%(scale)s).",
            unit=unit,
            value=format(value, "g"),
            scale=scale,
        )
    return None


def unmet_measure(measure: Mapping[str, Any], value: float) -> str | None:
    """Why a possible reading does not meet the protocol's limit; None when it does."""
    if _OPERATORS[measure["operator"]](value, measure["limit"]):
        return None
    return _(
        "%(value)s %(unit)s does not meet %(operator)s %(limit)s %(unit)s.",
        value=format(value, "g"),
        unit=measure["unit"],
        operator=measure["operator"],
        limit=format(measure["limit"], "g"),
    )


def summarize(errors: Mapping[str, list[str]]) -> str:
    """Every field's messages as one sentence, for the problem's detail: each message keeps
    its English (``joined_text``; a plain join would lose it), so a refusal's audit entry
    reads English throughout whatever the reader's language."""
    return joined_text(message for messages in errors.values() for message in messages)


# --- the list (issue 21) ----------------------------------------------------------------------

#: The patients list: by study ID (how the trial names them); searched in the study ID and
#: the chain-of-identity identifier.
PATIENT_LIST = listing.ListSpec(
    sorts={
        "study_id": Patient.study_id,
        "enrolled": Patient.id,
        "day0": Patient.day0,
        "status": Patient.status,
    },
    default_sort="study_id",
    default_direction=listing.Direction.ASC,
    tiebreaker=Patient.id,
    searched=(Patient.study_id, Patient.coi),
)


def patients_page(
    session: DbSession, request: listing.PageRequest, *, status: PatientStatus | None = None
) -> listing.Page[Patient]:
    """A page of the patients (two statements, and one each for their protocols and sites)."""
    query = select(Patient).options(selectinload(Patient.protocol), selectinload(Patient.site))
    if status is not None:
        query = query.where(Patient.status == status.value)
    return listing.fetch_page(session, query, PATIENT_LIST, request)
