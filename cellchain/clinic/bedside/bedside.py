"""Bedside verification: the moment that matters most (DOMAIN.md §8).

Two clinicians scan the patient's wristband and then the bag or dose label. The system
answers with one verdict, **go** or **stop**, and every check behind it:

==============  ==============================================================================
patient         the wristband's patient is the dose order's patient (COI and study ID, whole)
visit           the dose is for the infusion visit open today
prepared        the dose was prepared and its second-check signature still holds
released        every bag's lot is released and unexpired
not_recalled    received at the clinic; nothing recalled, quarantined, blocked or on hold
labelled        the dose and every bag carry the label their status requires, printed and
                applied per the print log and not superseded (a reprint, a status change)
thaw            every bag thawed, and the infusion can start within the thaw window
weight          the dose is within tolerance for the latest weight, measured recently,
                confirmed if it changed by the flag (re-weighed or countersigned), and the
                weight has not changed by the flag since the dose was prepared; at the dose's
                latest post-thaw count when one was taken (``post_thaw``), where outside
                tolerance needs the investigator's signed decision to proceed
arm             the patient is in an arm that receives cells
recheck         an infusion after the first (M3) has a passing pre-infusion re-check recorded
                within its validity (``dosing/rechecks``); day 0: the enrolment checklist
visit_window    the dose's visit is within its window today
not_infused     the dose was never infused
==============  ==============================================================================

The checks are a pure function of *facts* gathered from the database (``gather`` → ``evaluate``),
so each rule can be tested alone and the verdict is go only when every check passes. A stop is
recorded with the failed checks; nothing can be signed or started from it, and an identity
mismatch has no override. A go is signed by two clinicians with their own passwords; the
infusion is started from it only after the checks are made again at that moment.

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import String, bindparam, select
from sqlalchemy.orm.attributes import set_committed_value

from cellchain.chain import service as chain
from cellchain.chain.models import EventType, Unit, UnitStatus
from cellchain.chain.service import CustodyInput
from cellchain.clinic.bedside.doses import (
    DoseRead,
    DoseRow,
    LotRead,
    PatientRead,
    ShipmentRead,
    UnitsRead,
    WeightRead,
    dose_read_among,
    dose_reads,
    doses_read,
    issued_site_columns,
    lots_of_dose,
    not_issued,
    scan_dose,
    seen_by_actor,
    units_of_dose,
    units_read,
)
from cellchain.clinic.bedside.post_thaw import PostThawFacts, count_facts, facts_of
from cellchain.clinic.bedside.thaw import deadline, deadline_of, thaw_state
from cellchain.clinic.models import BedsideCheck, Infusion, Shipment, ShipmentStatus, Verdict
from cellchain.clinic.shipments.shipments import shipment_of
from cellchain.clinic.wording import (
    Said,
    Verbatim,
    Wording,
    english,
    joined,
    say,
    to_json,
    translated,
    wording_of,
)
from cellchain.core import audit, numbering, signatures
from cellchain.core.display import local_time, scientific
from cellchain.core.driver import DriverStatement
from cellchain.core.i18n import N_, SOURCE_LANGUAGE, LazyText, _, lazy, using_language
from cellchain.core.identifiers import InvalidIdentifier
from cellchain.core.models import IssuedIdentifier, User
from cellchain.core.payload import read_scan
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, has_permission
from cellchain.dosing import patients
from cellchain.dosing.models import DoseOrder, DoseStatus, Patient, PatientStatus, Weight
from cellchain.dosing.orders import SECOND_CHECK_MEANING
from cellchain.dosing.rechecks import rechecks
from cellchain.errors import Conflict, DomainError, InvalidInput, NotFound, PermissionDenied
from cellchain.extensions import DbSession
from cellchain.labels import service as labels
from cellchain.manufacturing.models import LotStatus

#: The meaning each of the two clinicians signs with.
BEDSIDE_MEANING = N_("verification: bedside identity and dose check before infusion")
#: Where a scanned code is stored, at most (what a scanner types is short).
SCAN_LENGTH = 120
#: Percentages are compared with this tolerance (floating-point noise, not a clinical margin).
EPSILON_PERCENT = 1e-6


class Check(enum.StrEnum):
    """The checks behind a bedside verdict, in the order they are shown."""

    PATIENT = "patient"
    VISIT = "visit"
    PREPARED = "prepared"
    RELEASED = "released"
    NOT_RECALLED = "not_recalled"
    LABELLED = "labelled"
    THAW = "thaw"
    WEIGHT = "weight"
    ARM = "arm"
    RECHECK = "recheck"
    VISIT_WINDOW = "visit_window"
    NOT_INFUSED = "not_infused"


#: A dose's units at the bedside: dispensed (or infused, which ``not_infused`` judges).
USABLE_AT_BEDSIDE = frozenset({UnitStatus.DISPENSED.value, UnitStatus.INFUSED.value})


# --- facts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatientFacts:
    """The patient the wristband names."""

    id: int
    study_id: str
    coi: str
    arm_name: str
    receives_cells: bool
    #: still enrolled (a withdrawn patient receives nothing more)
    enrolled: bool
    #: infusion visits (code, name) whose window is open today
    open_visits: tuple[tuple[str, str], ...]
    latest_weight_kg: float | None
    latest_weight_at: dt.datetime | None
    #: the latest weight changed by the flag and is not yet re-weighed or countersigned:
    #: why, in words (None when it is confirmed or needed no confirmation)
    latest_weight_unconfirmed: str | None = None


@dataclass(frozen=True)
class LotFacts:
    number: str
    status: str
    expires_at: dt.datetime | None
    #: the code of the lot's product definition (issue 22: the patient's protocol names the
    #: products a dose may come from)
    product_code: str = ""


@dataclass(frozen=True)
class DoseFacts:
    """The dose the label names, as the database knows it now."""

    order_id: int
    dose_code: str
    patient_id: int
    patient_study_id: str
    patient_coi: str
    visit: str
    visit_name: str
    visit_earliest: dt.date
    visit_latest: dt.date
    status: str
    #: the second check's signature exists and its content still matches the dose
    second_check_valid: bool
    lots: tuple[LotFacts, ...]
    #: (code, status) of the prepared dose and each bag
    units: tuple[tuple[str, str], ...]
    shipment_status: str | None
    hold_reason: str | None
    bags: int
    bags_thawed: int
    thaw_expires_at: dt.datetime | None
    thaw_window_minutes: int
    delivered_cells: float
    weight_used_kg: float
    override: bool
    infused: bool
    #: the dose's latest post-thaw count, which replaces the release count at fill
    post_thaw: PostThawFacts | None = None
    #: (code, why) for each unit not dispensed or infused: its latest status change's note
    why_not_usable: tuple[tuple[str, str], ...] = ()
    #: each unit's missing or superseded label (``labels.service.label_states``), in English,
    #: each keeping its wording (``core.wording.wording_of``); none when the dose and every
    #: bag carry the label their status requires
    label_problems: tuple[str, ...] = ()
    #: why the visit is closed whatever the day: recorded as missed, or moved outside the
    #: protocol with the deviation not yet signed (``patients.Visit.closed_reason``)
    visit_closed: str | None = None
    #: the visit's latest pre-infusion re-check (``rechecks.facts``); None when the visit
    #: needs none (day 0)
    recheck: rechecks.RecheckFacts | None = None


@dataclass(frozen=True)
class ProtocolLimits:
    dose_per_kg: float
    tolerance_percent: float
    weight_recency_days: int
    weight_change_flag_percent: float
    #: the patient's protocol's code and the products it allows (``patients.allowed_products``;
    #: None: not judged)
    protocol_code: str = ""
    products: frozenset[str] | None = None


@dataclass(frozen=True)
class BedsideFacts:
    """Everything the verdict depends on; ``None`` where a scan could not be resolved."""

    now: dt.datetime
    zone: ZoneInfo
    patient: PatientFacts | None
    wristband_problem: str | None
    dose: DoseFacts | None
    label_problem: str | None
    limits: ProtocolLimits | None

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(self.zone).date()


@dataclass(frozen=True)
class CheckResult:
    code: Check
    title: str
    passed: bool
    detail: str
    #: the title's and the detail's wording, kept beside the English to be read translated
    wording: tuple[Wording, Wording] | None = None

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "code": self.code.value,
            "title": self.title,
            "passed": self.passed,
            "detail": self.detail,
        }
        if self.wording is not None:
            body["wording"] = {
                "title": to_json(self.wording[0]),
                "detail": to_json(self.wording[1]),
            }
        return body


def verdict_of(results: Sequence[CheckResult]) -> Verdict:
    """Go only when every check was made and passed."""
    made = {result.code for result in results}
    if made != set(Check) or not all(result.passed for result in results):
        return Verdict.STOP
    return Verdict.GO


# --- the checks ---------------------------------------------------------------------------------

NOT_IDENTIFIED = "Cannot be checked: the scans do not identify both the patient and a dose."
_NOT_IDENTIFIED = say(
    lazy("Cannot be checked: the scans do not identify both the patient and a dose.")
)


def _result(code: Check, title: Wording, passed: bool, detail: Wording) -> CheckResult:
    """A check's result in English (stored, signed) with its wording kept for translation."""
    return CheckResult(code, english(title), passed, english(detail), (title, detail))


def evaluate(facts: BedsideFacts) -> list[CheckResult]:
    """Every check, in order, from the facts alone."""
    return [rule(facts) for rule in RULES]


def _patient(f: BedsideFacts) -> CheckResult:
    title = say(lazy("Same patient as the dose order"))
    problems: list[Wording] = []
    if f.wristband_problem:
        problems.append(
            say(lazy("Wristband: %(problem)s"), problem=_problem_wording(f.wristband_problem))
        )
    if f.label_problem:
        problems.append(say(lazy("Label: %(problem)s"), problem=_problem_wording(f.label_problem)))
    if problems:
        return _result(Check.PATIENT, title, False, joined(problems))
    assert f.patient is not None and f.dose is not None
    if f.patient.id != f.dose.patient_id or f.patient.coi != f.dose.patient_coi:
        return _result(
            Check.PATIENT,
            title,
            False,
            say(
                lazy(
                    "WRONG PATIENT. The wristband is %(wristband)s (COI %(wristband_coi)s); "
                    "this dose is for %(patient)s (COI %(patient_coi)s). "
                    "An identity mismatch is never overridden."
                ),
                wristband=f.patient.study_id,
                wristband_coi=f.patient.coi,
                patient=f.dose.patient_study_id,
                patient_coi=f.dose.patient_coi,
            ),
        )
    return _result(
        Check.PATIENT,
        title,
        True,
        say(
            lazy("%(patient)s, COI %(coi)s, on both."),
            patient=f.patient.study_id,
            coi=f.patient.coi,
        ),
    )


def _visit(f: BedsideFacts) -> CheckResult:
    title = say(lazy("Dose is for today's visit"))
    if f.patient is None or f.dose is None:
        return _result(Check.VISIT, title, False, _NOT_IDENTIFIED)
    open_codes = [code for code, _name in f.patient.open_visits]
    if f.dose.visit in open_codes:
        return _result(
            Check.VISIT, title, True, say(lazy("%(visit)s, open today."), visit=f.dose.visit_name)
        )
    if f.patient.open_visits:
        return _result(
            Check.VISIT,
            title,
            False,
            say(
                lazy("This dose is for %(visit)s; today is the %(open)s visit."),
                visit=f.dose.visit_name,
                open=", ".join(name for _code, name in f.patient.open_visits),
            ),
        )
    return _result(
        Check.VISIT,
        title,
        False,
        say(
            lazy("This dose is for %(visit)s; no infusion visit is open today."),
            visit=f.dose.visit_name,
        ),
    )


def _prepared(f: BedsideFacts) -> CheckResult:
    title = say(lazy("Dose prepared and second-checked"))
    if f.dose is None:
        return _result(Check.PREPARED, title, False, _NOT_IDENTIFIED)
    # Not the dose table: a dose already infused passes here and fails "not already infused"
    # (``_not_infused``), so each check of the bedside verification reports one thing.
    if f.dose.status not in (DoseStatus.PREPARED.value, DoseStatus.INFUSED.value):
        return _result(
            Check.PREPARED,
            title,
            False,
            say(lazy("The dose order is %(status)s, not prepared."), status=f.dose.status),
        )
    if not f.dose.second_check_valid:
        return _result(
            Check.PREPARED,
            title,
            False,
            say(lazy("The second check's signature is missing or no longer matches the dose.")),
        )
    return _result(Check.PREPARED, title, True, say(lazy("Second check signed and valid.")))


def _released(f: BedsideFacts) -> CheckResult:
    title = say(lazy("Product released and unexpired"))
    if f.dose is None:
        return _result(Check.RELEASED, title, False, _NOT_IDENTIFIED)
    if not f.dose.lots:
        return _result(
            Check.RELEASED, title, False, say(lazy("No lot is known for the dose's bags."))
        )
    problems: list[Wording] = []
    for lot in f.dose.lots:
        if (
            f.limits is not None
            and f.limits.products is not None
            and lot.product_code.upper() not in f.limits.products
        ):
            problems.append(
                say(
                    lazy(
                        "Lot %(lot)s is of product %(product)s, which protocol %(protocol)s"
                        " does not allow (%(allowed)s)."
                    ),
                    lot=lot.number,
                    product=lot.product_code,
                    protocol=f.limits.protocol_code,
                    allowed=", ".join(sorted(f.limits.products)) or "—",
                )
            )
        if lot.status != LotStatus.RELEASED.value:
            problems.append(
                say(
                    lazy("Lot %(lot)s is %(status)s, not released."),
                    lot=lot.number,
                    status=lot.status,
                )
            )
        elif lot.expires_at is None:
            problems.append(say(lazy("Lot %(lot)s expired (has no expiry)."), lot=lot.number))
        elif lot.expires_at <= f.now:
            problems.append(
                say(
                    lazy("Lot %(lot)s expired (%(expiry)s)."),
                    lot=lot.number,
                    expiry=local_time(lot.expires_at, f.zone),
                )
            )
    if problems:
        return _result(Check.RELEASED, title, False, joined(problems))
    return _result(
        Check.RELEASED,
        title,
        True,
        say(
            lazy("%(lots)s."),
            lots=joined(
                [
                    say(
                        lazy("lot %(lot)s released, expires %(expiry)s"),
                        lot=lot.number,
                        # no problem above: every lot has an expiry
                        expiry=local_time(lot.expires_at, f.zone),  # type: ignore[arg-type]
                    )
                    for lot in f.dose.lots
                ],
                "; ",
            ),
        ),
    )


def _not_recalled(f: BedsideFacts) -> CheckResult:
    title = say(lazy("Received; not recalled, quarantined or on hold"))
    if f.dose is None:
        return _result(Check.NOT_RECALLED, title, False, _NOT_IDENTIFIED)
    problems: list[Wording] = []
    if f.dose.shipment_status is None:
        problems.append(say(lazy("The dose has not left the lab.")))
    elif f.dose.shipment_status == ShipmentStatus.IN_TRANSIT.value:
        problems.append(say(lazy("The shipment is in transit: receive it at the clinic first.")))
    elif f.dose.shipment_status == ShipmentStatus.HELD.value:
        problems.append(
            say(
                lazy("Held for QA at receipt: %(reason)s"), reason=Verbatim(str(f.dose.hold_reason))
            )
        )
    elif f.dose.shipment_status != ShipmentStatus.RECEIVED.value:
        problems.append(say(lazy("The shipment was %(status)s."), status=f.dose.shipment_status))
    why = dict(f.dose.why_not_usable)
    for code, status in f.dose.units:
        if status not in USABLE_AT_BEDSIDE:
            problems.append(
                say(
                    lazy("%(unit)s is %(status)s (%(why)s)."),
                    unit=code,
                    status=status,
                    why=Verbatim(why[code]),
                )
                if code in why
                else say(lazy("%(unit)s is %(status)s."), unit=code, status=status)
            )
    if problems:
        return _result(Check.NOT_RECALLED, title, False, joined(problems))
    return _result(Check.NOT_RECALLED, title, True, say(lazy("Received at the clinic; no hold.")))


def _labelled(f: BedsideFacts) -> CheckResult:
    title = say(lazy("Dose and bags carry the labels their status requires"))
    if f.dose is None:
        return _result(Check.LABELLED, title, False, _NOT_IDENTIFIED)
    if f.dose.label_problems:
        return _result(
            Check.LABELLED,
            title,
            False,
            # each problem's English is signed; its wording, kept beside, reads translated
            joined([wording_of(problem) for problem in f.dose.label_problems]),
        )
    return _result(
        Check.LABELLED,
        title,
        True,
        say(
            lazy(
                "The dose label and each bag's released label are printed and applied; "
                "none superseded."
            )
        ),
    )


def _thaw(f: BedsideFacts) -> CheckResult:
    if f.dose is None:
        return _result(Check.THAW, say(lazy("Within the thaw window")), False, _NOT_IDENTIFIED)
    title = say(
        lazy("Thawed, infusion starts within %(minutes)s min of the thaw"),
        minutes=f.dose.thaw_window_minutes,
    )
    if f.dose.thaw_expires_at is not None and f.now > f.dose.thaw_expires_at:
        return _result(
            Check.THAW,
            title,
            False,
            say(
                lazy("The thaw window closed at %(closed)s; this dose may no longer be infused."),
                closed=local_time(f.dose.thaw_expires_at, f.zone),
            ),
        )
    if f.dose.bags_thawed < f.dose.bags or f.dose.thaw_expires_at is None:
        return _result(
            Check.THAW,
            title,
            False,
            say(
                lazy(
                    "%(thawed)s of %(bags)s bag(s) thawed; scan each bag to start and "
                    "complete its thaw."
                ),
                thawed=f.dose.bags_thawed,
                bags=f.dose.bags,
            ),
        )
    left = (f.dose.thaw_expires_at - f.now).total_seconds() / 60
    return _result(
        Check.THAW,
        title,
        True,
        say(
            lazy("Start by %(deadline)s (%(left)s min left)."),
            deadline=local_time(f.dose.thaw_expires_at, f.zone),
            left=f"{left:.0f}",
        ),
    )


def _weight(f: BedsideFacts) -> CheckResult:
    if f.limits is None or f.patient is None or f.dose is None:
        return _result(
            Check.WEIGHT, say(lazy("Dose fits the current weight")), False, _NOT_IDENTIFIED
        )
    limits = f.limits
    tolerance = f"{limits.tolerance_percent:g}"
    title = say(lazy("Dose within ± %(tolerance)s %% for the latest weight"), tolerance=tolerance)
    kg, measured = f.patient.latest_weight_kg, f.patient.latest_weight_at
    if kg is None or measured is None:
        return _result(Check.WEIGHT, title, False, say(lazy("No weight is on file.")))
    problems: list[Wording] = []
    if f.patient.latest_weight_unconfirmed:
        problems.append(Verbatim(f.patient.latest_weight_unconfirmed))
    if f.now - measured > dt.timedelta(days=limits.weight_recency_days):
        problems.append(
            say(
                lazy(
                    "The latest weight (%(kg)s kg) was measured %(measured)s, more than "
                    "%(days)s days ago."
                ),
                kg=f"{kg:g}",
                measured=local_time(measured, f.zone),
                days=limits.weight_recency_days,
            )
        )
    change = (kg - f.dose.weight_used_kg) / f.dose.weight_used_kg * 100
    # 68.0 → 74.8 kg is +10 % exactly but +9.999999999999996 in floating point: compare with
    # a tolerance far below any weighing resolution, so "≥ 10 %" means what it says.
    if abs(change) >= limits.weight_change_flag_percent - EPSILON_PERCENT:
        problems.append(
            say(
                lazy(
                    "The weight changed %(change)s %% since the dose was prepared "
                    "(%(before)s → %(kg)s kg); the dose must be prepared again."
                ),
                change=f"{change:+.1f}",
                before=f"{f.dose.weight_used_kg:g}",
                kg=f"{kg:g}",
            )
        )
    target = limits.dose_per_kg * kg
    count = f.dose.post_thaw
    # The latest post-thaw count replaces the release count at fill; an override signed when
    # the dose was ordered accepted the figure of the fill, not this one.
    delivered = count.delivered_cells if count else f.dose.delivered_cells
    deviation = (delivered - target) / target * 100
    same_weight = abs(kg - f.dose.weight_used_kg) < 1e-9
    accepted = same_weight and (count.proceed_signed if count else f.dose.override)
    if count is not None and count.not_to_be_infused:
        problems.append(
            say(
                lazy(
                    "%(who)s decided at the post-thaw count that this dose is not to be "
                    "infused; destroy it on its page."
                ),
                who=count.decided_by,
            )
        )
    used = _count_used(f, count)
    if abs(deviation) > limits.tolerance_percent + EPSILON_PERCENT and not accepted:
        outside = say(
            lazy(
                "The dose delivers %(deviation)s %% of %(target)s cells for %(kg)s kg "
                "at the %(used)s, outside ± %(tolerance)s %%"
            ),
            deviation=f"{deviation:+.1f}",
            target=scientific(target),
            kg=f"{kg:g}",
            used=used,
            tolerance=tolerance,
        )
        ordered = limits.dose_per_kg * f.dose.weight_used_kg
        at_order = (delivered - ordered) / ordered * 100
        # Outside only because the patient weighs other than when the dose was ordered: the
        # count (or an override, or a decision) was judged for the weight of the order, so
        # no investigator's decision on it applies; the dose is made for the new weight.
        if not same_weight and (
            abs(at_order) <= limits.tolerance_percent + EPSILON_PERCENT
            or (count.proceed_signed if count else f.dose.override)
        ):
            problems.append(
                say(
                    lazy(
                        "%(outside)s: it was prepared for %(before)s kg "
                        "(%(at_order)s %% of %(ordered)s cells) and the weight changed since. "
                        "Re-weigh the patient; if the new weight is right, this dose is "
                        "cancelled and a new one prepared for it (no investigator's decision "
                        "applies)."
                    ),
                    outside=outside,
                    before=f"{f.dose.weight_used_kg:g}",
                    at_order=f"{at_order:+.1f}",
                    ordered=scientific(ordered),
                )
            )
        elif count:
            problems.append(
                say(lazy("%(outside)s; an investigator must sign a decision."), outside=outside)
            )
        else:
            problems.append(say(lazy("%(outside)s."), outside=outside))
    if problems:
        return _result(Check.WEIGHT, title, False, joined(problems))
    values = {
        "kg": f"{kg:g}",
        "measured": local_time(measured, f.zone),
        "deviation": f"{deviation:+.1f}",
        "target": scientific(target),
        "used": used,
    }
    if abs(deviation) > limits.tolerance_percent + 1e-9 and count:
        detail = say(
            lazy(
                "%(kg)s kg measured %(measured)s: %(deviation)s %% of %(target)s cells at the "
                "%(used)s (outside tolerance: %(who)s signed the decision to proceed "
                "%(decided)s, deviation #%(deviation_id)s)."
            ),
            who=count.decided_by,
            decided=local_time(count.decided_at, f.zone),  # type: ignore[arg-type]
            deviation_id=count.deviation_id,
            **values,
        )
    elif abs(deviation) > limits.tolerance_percent + 1e-9:
        detail = say(
            lazy(
                "%(kg)s kg measured %(measured)s: %(deviation)s %% of %(target)s cells at the "
                "%(used)s (outside tolerance, accepted by an investigator's signed override)."
            ),
            **values,
        )
    else:
        detail = say(
            lazy(
                "%(kg)s kg measured %(measured)s: %(deviation)s %% of %(target)s cells at the "
                "%(used)s."
            ),
            **values,
        )
    return _result(Check.WEIGHT, title, True, detail)


def _count_used(f: BedsideFacts, count: PostThawFacts | None) -> Said:
    """Which count the dose is judged by, in the words of the working."""
    if count is None:
        return say(lazy("release count at fill"))
    return say(
        lazy(
            "post-thaw count %(counted)s by %(who)s (%(place)s): %(total)s total cells/mL × "
            "%(viability)s %% = %(viable)s viable cells/mL"
        ),
        counted=local_time(count.counted_at, f.zone),
        who=count.counted_by,
        place=count.place,
        total=scientific(count.total_cells_per_ml),
        viability=f"{count.viability_percent:g}",
        viable=scientific(count.viable_per_ml),
    )


def _arm(f: BedsideFacts) -> CheckResult:
    title = say(lazy("Patient enrolled, in an arm that receives cells"))
    if f.patient is None:
        return _result(Check.ARM, title, False, _NOT_IDENTIFIED)
    problems: list[Wording] = []
    if not f.patient.enrolled:
        problems.append(
            say(lazy("%(patient)s is no longer enrolled (withdrawn)."), patient=f.patient.study_id)
        )
    if not f.patient.receives_cells:
        problems.append(
            say(
                lazy(
                    "%(patient)s is in an arm that never receives cells (the arm is not "
                    "named at the bedside: single blind)."
                ),
                patient=f.patient.study_id,
            )
        )
    if problems:
        return _result(Check.ARM, title, False, joined(problems))
    return _result(Check.ARM, title, True, say(lazy("Enrolled, in an arm that receives cells.")))


def _recheck(f: BedsideFacts) -> CheckResult:
    title = say(lazy("Eligibility re-checked before this infusion"))
    if f.dose is None:
        return _result(Check.RECHECK, title, False, _NOT_IDENTIFIED)
    if f.dose.recheck is None:
        return _result(
            Check.RECHECK,
            title,
            True,
            say(lazy("%(visit)s: the enrolment checklist holds."), visit=f.dose.visit_name),
        )
    problem = rechecks.judge(f.dose.recheck, now=f.now, zone=f.zone)
    if problem:
        return _result(Check.RECHECK, title, False, Verbatim(problem))
    return _result(Check.RECHECK, title, True, Verbatim(rechecks.summary(f.dose.recheck, f.zone)))


def _visit_window(f: BedsideFacts) -> CheckResult:
    title = say(lazy("Visit within its window"))
    if f.dose is None:
        return _result(Check.VISIT_WINDOW, title, False, _NOT_IDENTIFIED)
    window = (
        f.dose.visit_earliest.isoformat()
        if f.dose.visit_earliest == f.dose.visit_latest
        else f"{f.dose.visit_earliest.isoformat()} – {f.dose.visit_latest.isoformat()}"
    )
    if f.dose.visit_closed:  # recorded as missed, or moved with a deviation not yet signed
        return _result(Check.VISIT_WINDOW, title, False, Verbatim(f.dose.visit_closed))
    if not f.dose.visit_earliest <= f.today <= f.dose.visit_latest:
        return _result(
            Check.VISIT_WINDOW,
            title,
            False,
            say(
                lazy("%(visit)s is %(window)s; today is %(today)s."),
                visit=f.dose.visit_name,
                window=window,
                today=f.today.isoformat(),
            ),
        )
    return _result(
        Check.VISIT_WINDOW,
        title,
        True,
        say(lazy("%(visit)s: %(window)s."), visit=f.dose.visit_name, window=window),
    )


def _not_infused(f: BedsideFacts) -> CheckResult:
    title = say(lazy("Not already infused"))
    if f.dose is None:
        return _result(Check.NOT_INFUSED, title, False, _NOT_IDENTIFIED)
    gone = [code for code, status in f.dose.units if status == UnitStatus.INFUSED.value]
    if f.dose.infused or f.dose.status == DoseStatus.INFUSED.value or gone:
        return _result(
            Check.NOT_INFUSED,
            title,
            False,
            say(lazy("%(dose)s was already infused."), dose=f.dose.dose_code),
        )
    return _result(Check.NOT_INFUSED, title, True, say(lazy("Never infused.")))


RULES: tuple[Callable[[BedsideFacts], CheckResult], ...] = (
    _patient,
    _visit,
    _prepared,
    _released,
    _not_recalled,
    _labelled,
    _thaw,
    _weight,
    _arm,
    _recheck,
    _visit_window,
    _not_infused,
)


# --- gathering the facts ------------------------------------------------------------------------


def resolve_wristband(session: DbSession, scan: str) -> Patient:
    """The patient a scanned wristband names, or a clear error saying what was scanned."""
    return _patient_of_issued(session, numbering.lookup(session, scan))


def _patient_of_issued(session: DbSession, issued: chain.IssuedCode) -> Patient:
    """``resolve_wristband`` of an identifier already looked up."""
    if issued.kind != "COI" or issued.entity_type != "patient" or issued.entity_id is None:
        what = {
            "UNIT": _("a unit's label (a bag or a dose?)"),
            "DIN": _("a donation's DIN"),
        }.get(issued.kind) or _("a %(kind)s code", kind=issued.kind)
        raise InvalidInput(
            _(
                "%(code)s is %(what)s, not a patient's wristband; scan the wristband first.",
                code=issued.code,
                what=what,
            ),
            errors={"wristband": [_("Not a wristband.")]},
            title=_("Not a wristband"),
        )
    return patients.get_patient(session, int(issued.entity_id))


def read_wristband(session: DbSession, scan: str) -> Patient:
    """``resolve_wristband`` for a person at the bedside: an unreadable scan is refused with
    what was wrong, never with what was scanned."""
    if not (scan or "").strip():
        raise InvalidInput(
            _("Scan the patient's wristband."), errors={"wristband": [_("Required.")]}
        )
    try:
        return resolve_wristband(session, scan)
    except InvalidIdentifier as problem:
        raise unreadable(problem, "wristband") from problem


def unreadable(problem: InvalidIdentifier, field: str) -> InvalidInput:
    """A refusal of an unreadable scan that does not repeat the scan."""
    return InvalidInput(
        _problem_text(problem),
        errors={field: [_("Not a cellchain label.")]},
        title=_("Unreadable scan"),
    )


def gather(
    session: DbSession, wristband_scan: str, label_scan: str, *, now: dt.datetime, zone: ZoneInfo
) -> tuple[BedsideFacts, Patient | PatientRead | None, DoseOrder | DoseRow | None]:
    """The facts behind a verdict, and the records the scans resolved to: as plain rows
    where the scans resolve as a go needs (``_gather_read``), else as ORM objects.

    Both scans are looked up in one statement, and the dose a unit label names is read with
    its patient, protocol, shipment, infusion and the patient's latest weight in another
    (``dose_reads`` as plain rows; else ``doses_read`` through the ORM); a scan that fails
    is resolved again the usual way, for its error."""
    issued = issued_seen(session, wristband_scan, label_scan)
    label = issued.get(label_scan)
    read: list[DoseRead] | None = None
    if label is not None and label.kind == "UNIT" and label.entity_type == "unit":
        if label.entity_id:
            plain = _gather_read(
                session, issued.get(wristband_scan), int(label.entity_id), now=now, zone=zone
            )
            if plain is not None:
                return plain
        read = doses_read(session, int(label.entity_id)) if label.entity_id else None
    patient: Patient | None = None
    wristband_problem = label_problem = None
    # a scan's problem becomes part of the stored check: in English, whoever reads the page
    with using_language(SOURCE_LANGUAGE):
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
    # wristband is wrong) in one read: with the dose's units' facts when the dose was read
    patient_ids = sorted({p.id for p in (patient, order.patient if order else None) if p})
    units: UnitsRead | None = None
    if order is not None and dose_read is not None:
        units = units_read(session, order, SECOND_CHECK_MEANING, patient_ids)
        schedules = patients.schedule_facts_of(units.schedule_rows, patient_ids, zone)
    else:
        schedules = patients.schedule_facts(session, patient_ids, zone)
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
            _dose_facts(
                session, order, schedules[order.patient_id], zone, dose_read, units, now=now
            )
            if order
            else None
        ),
        label_problem=label_problem,
        limits=_limits(session, patient or (order.patient if order else None), at=now),
    )
    return facts, patient, order


def _gather_read(
    session: DbSession,
    wristband: IssuedRead | None,
    unit_id: int,
    *,
    now: dt.datetime,
    zone: ZoneInfo,
) -> tuple[BedsideFacts, PatientRead, DoseRow] | None:
    """``gather`` from plain rows (issue 20), where the scans resolve as they must for a
    go: the label names a unit of a prepared dose (``dose_reads``: the dose, its patient,
    protocol, units, weights and facts in one statement), the wristband that dose's
    patient, and no unit of the dose is blocked (a blocked unit's label needs its
    donation). None otherwise: ``gather`` then reads through the ORM, which says what is
    wrong. The facts are made by the same functions from either read."""
    reads = dose_reads(session, unit_id)
    found = dose_read_among(unit_id, reads) if reads is not None else None
    if found is None or found[1] is None or found[1].dose_unit_id is None:
        return None  # not a prepared dose's unit: ``scan_dose`` says why
    dose = found[1]
    if (
        wristband is None
        or wristband.kind != "COI"
        or wristband.entity_type != "patient"
        or wristband.entity_id != str(dose.patient_id)
    ):
        return None  # another patient, or not a wristband: ``_patient_of_issued`` says
    dose_units = dose.units()
    if any(unit.status == UnitStatus.BLOCKED.value for unit in dose_units):
        return None
    patient = dose.patient
    units = units_read(session, dose, SECOND_CHECK_MEANING, [patient.id])
    schedule = patients.schedule_facts_of(units.schedule_rows, [patient.id], zone)[patient.id]
    visits = patients.planned_schedule(patient.day0, patient.arm, patient.parameters, schedule)
    lots = units.lots
    window, expires = deadline_of(
        dose.protocol_parameters, [lot.product_parameters for lot in lots], dose.first_thaw_at
    )
    facts = BedsideFacts(
        now=now,
        zone=zone,
        patient=_patient_facts_of(patient, visits, dose.latest_weight, now=now, zone=zone),
        wristband_problem=None,
        dose=_dose_facts_of(
            dose,
            study_id=patient.study_id,
            coi=patient.coi,
            dose_unit_code=dose.dose_unit.code if dose.dose_unit else None,
            visit=patients.infusion_visit(visits, dose.visit, patient.protocol_code),
            second_checks=signatures.manifests_of([dose], units.signatures).get(
                signatures.key_of(dose), []
            ),
            lots=lots,
            units=dose_units,
            reasons=chain.latest_reasons(units.status_changes),
            label_problems=labels.label_problems_of(
                # a unit read has what ``label_problems_of`` reads of a unit not blocked
                session,
                cast(Sequence[Unit], dose_units),
                units.prints,
            ),
            shipment=dose.shipment,
            bags=len(dose.bags),
            thawed=dose.thaws_completed,
            window=window,
            expires=expires,
            post_thaw=(
                count_facts(session, dose.latest_count) if dose.latest_count is not None else None
            ),
            weight_used_kg=dose.weight_kg,
            infused=dose.infused,
            recheck=rechecks.facts_from(
                rechecks.rules_of_protocol(
                    session,
                    patient.protocol_id,
                    patient.protocol_code,
                    patient.protocol_status,
                    patient.parameters,
                    at=now,
                ),
                patient.parameters,
                dose.visit,
                lambda: rechecks.latest_of(session, patient.id, dose.visit),
            ),
        ),
        label_problem=None,
        limits=_limits_of(session, patient.parameters, patient.protocol_code, at=now),
    )
    return facts, patient, dose


class IssuedRead(NamedTuple):
    """An issued identifier as the bedside reads it (``_issued``): plain columns."""

    code: str
    kind: str
    entity_type: str | None
    entity_id: str | None
    #: the lowest and highest clinical site of the patients the code names
    #: (``doses.issued_site_columns``): the site invariant, read in the same statement
    site_low: int | None = None
    site_high: int | None = None


#: The issued identifiers of the two scans' codes (``_issued``), on the driver's cursor, with
#: the sites of the patients they name (a code of a patient the actor does not see is refused
#: as never issued: ``verify_with_facts``).
_ISSUED = DriverStatement(
    select(
        IssuedIdentifier.code,
        IssuedIdentifier.kind,
        IssuedIdentifier.entity_type,
        IssuedIdentifier.entity_id,
        *issued_site_columns(),
    ).where(
        IssuedIdentifier.code.in_(
            [bindparam("first", type_=String()), bindparam("second", type_=String())]
        )
    )
)


def issued_seen(session: DbSession, wristband_scan: str, label_scan: str) -> dict[str, IssuedRead]:
    """``_issued`` of the two scans, refused (``NotFound``, as a code never issued) when
    either names a patient, or a dose of a patient, of a site the acting user does not see
    (``scope.VISIBLE_SITES``; review 2 item 8): these reads are on the driver's cursor,
    where ``sites/scope.py``'s ORM filter does not reach. What is pending in the session is
    flushed first, as the ORM's first read would have."""
    # the reads on the driver's cursor (``_issued``, ``dose_reads``, ``units_read``) do not
    # flush the session as the ORM's do
    if session.autoflush:
        session.flush()
    issued = _issued(session, (wristband_scan, label_scan))
    for scan in (wristband_scan, label_scan):
        found = issued.get(scan)
        if found is not None and not seen_by_actor(found.site_low, found.site_high):
            raise UnseenCode(scan)
    return issued


class UnseenCode(NotFound):
    """A scan naming a patient (or their dose) the acting user does not see: refused as a
    code never issued (``doses.not_issued``), the refusal made in the reader's language by
    ``verify_with_facts`` (``gather`` runs in English, for what is stored)."""

    def __init__(self, scan: str) -> None:
        super().__init__(str(not_issued(scan).detail))
        self.scan = scan


def _issued(session: DbSession, scans: Sequence[str]) -> dict[str, IssuedRead]:
    """The issued identifiers of the (two) scans that are well-formed codes this site
    issued, in one statement of plain rows (``numbering.lookup`` of each); the others are
    absent."""
    codes: dict[str, str] = {}
    for scan in scans:
        try:
            codes[scan] = read_scan(scan).canonical
        except (InvalidIdentifier, DomainError, ValueError):
            continue  # resolved again by its own lookup, which says what is wrong
    if not codes:
        return {}
    wanted = sorted(set(codes.values()))
    if len(wanted) > 2:
        raise ValueError("the bedside looks up two scans")
    rows = _ISSUED.all(session.connection(), {"first": wanted[0], "second": wanted[-1]})
    found = {row.code: IssuedRead(*row) for row in rows}
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
    weight = latest[0] if latest is not None else patients.latest_weight(session, patient)
    return _patient_facts_of(
        PatientRead.of(patient), patients.schedule(patient, schedule), weight, now=now, zone=zone
    )


def _patient_facts_of(
    patient: PatientRead,
    visits: Sequence[patients.Visit],
    weight: Weight | WeightRead | None,
    *,
    now: dt.datetime,
    zone: ZoneInfo,
) -> PatientFacts:
    """``PatientFacts`` of a patient read, their schedule's ``visits`` and latest weight."""
    today = now.astimezone(zone).date()
    return PatientFacts(
        id=patient.id,
        study_id=patient.study_id,
        coi=patient.coi,
        arm_name=patients.arm_name_of(patient.arm, patient.parameters),
        receives_cells=patients.arm_receives_cells(patient.arm, patient.parameters),
        enrolled=patient.status == PatientStatus.ENROLLED.value,
        open_visits=tuple(
            (visit.code, visit.name) for visit in visits if visit.infusion and visit.open_on(today)
        ),
        latest_weight_kg=weight.weight_kg if weight else None,
        latest_weight_at=weight.measured_at if weight else None,
        latest_weight_unconfirmed=(
            patients.unconfirmed_reason_of(
                weight.weight_kg,
                weight.measured_at,
                weight.change_percent,
                weight.change_reference,
                zone,
            )
            if weight is not None and weight.needs_confirmation
            else None
        ),
    )


def _dose_facts(
    session: DbSession,
    order: DoseOrder,
    schedule: patients.ScheduleFacts,
    zone: ZoneInfo,
    read: DoseRead | None = None,
    units: UnitsRead | None = None,
    *,
    now: dt.datetime,
) -> DoseFacts:
    """``read``: the order's facts read with it (``doses_read``), and ``units``: its units'
    facts (``units_read``), else read here; ``now``: the time of the check (the re-check
    asked is the one in force then)."""
    visit = patients.visit_of(order.patient, order.visit, schedule)
    shipment: ShipmentRead | Shipment | None = (
        read.shipment if read is not None else shipment_of(session, order)
    )
    lots: list[LotRead]
    dose_units = units_of_dose(order)
    if read is not None and units is not None:
        # the lots, the second check's signatures, the prints and the status changes of the
        # dose's units, read in one statement of plain rows (issue 20)
        lots = units.lots
        window, expires = deadline(
            order, [lot.product_parameters for lot in lots], read.first_thaw_at
        )
        thawed = read.thaws_completed
        second_checks = signatures.manifests_of([order], units.signatures).get(
            signatures.key_of(order), []
        )
        reasons = chain.latest_reasons(units.status_changes)
        label_problems = labels.label_problems_of(session, dose_units, units.prints)
    else:
        loaded = lots_of_dose(session, order)
        lots = [LotRead.of(lot) for lot in loaded]
        thaw = thaw_state(session, order, loaded)
        window, expires = thaw.window_minutes, thaw.expires_at
        thawed = sum(1 for t in thaw.thaws if t.completed_at is not None)
        second_checks = [
            entry
            for entry in signatures.manifest(session, order)
            if entry.meaning == SECOND_CHECK_MEANING
        ]
        reasons = chain.status_reasons(session, dose_units)
        label_problems = labels.label_problems(session, dose_units)
    infused = (
        read.infused
        if read is not None
        else session.execute(select(Infusion.id).where(Infusion.dose_order_id == order.id)).first()
        is not None
    )
    return _dose_facts_of(
        order,
        study_id=order.patient.study_id,
        coi=order.patient.coi,
        dose_unit_code=order.dose_unit.code if order.dose_unit else None,
        visit=visit,
        second_checks=second_checks,
        lots=lots,
        units=dose_units,
        reasons=reasons,
        label_problems=label_problems,
        shipment=shipment,
        bags=len(order.bags),
        thawed=thawed,
        window=window,
        expires=expires,
        post_thaw=facts_of(
            session, order, latest=(read.latest_count,) if read is not None else None
        ),
        weight_used_kg=order.weight.weight_kg,
        infused=infused,
        recheck=rechecks.facts(session, order.patient, order.visit, at=now),
    )


class _OrderFigures(Protocol):
    """What ``_dose_facts_of`` reads of the order itself: a ``DoseOrder`` or ``DoseRow``."""

    @property
    def id(self) -> int: ...
    @property
    def patient_id(self) -> int: ...
    @property
    def visit(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def checked_by_id(self) -> int | None: ...
    @property
    def delivered_cells(self) -> float: ...
    @property
    def override_reason(self) -> str | None: ...


class _UnitFigures(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def code(self) -> str: ...
    @property
    def status(self) -> str: ...


def _dose_facts_of(
    order: _OrderFigures,
    *,
    study_id: str,
    coi: str,
    dose_unit_code: str | None,
    visit: patients.Visit,
    second_checks: Sequence[signatures.SignatureManifest],
    lots: Sequence[LotRead],
    units: Sequence[_UnitFigures],
    reasons: Mapping[int, str],
    label_problems: Sequence[str],
    shipment: ShipmentRead | Shipment | None,
    bags: int,
    thawed: int,
    window: int,
    expires: dt.datetime | None,
    post_thaw: PostThawFacts | None,
    weight_used_kg: float,
    infused: bool,
    recheck: rechecks.RecheckFacts | None,
) -> DoseFacts:
    """``DoseFacts`` from what was read of the dose, the ORM's or plain rows: the one
    place of the rules they share (the second check holds, why a unit is not usable, the
    visit closed whatever the day)."""
    return DoseFacts(
        order_id=order.id,
        dose_code=dose_unit_code if dose_unit_code is not None else f"dose order {order.id}",
        patient_id=order.patient_id,
        patient_study_id=study_id,
        patient_coi=coi,
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
        units=tuple((unit.code, unit.status) for unit in units),
        why_not_usable=tuple(
            (unit.code, reasons[unit.id])
            for unit in units
            if unit.status not in USABLE_AT_BEDSIDE and unit.id in reasons
        ),
        label_problems=tuple(label_problems),
        shipment_status=shipment.status if shipment else None,
        hold_reason=shipment.hold_reason if shipment else None,
        bags=bags,
        bags_thawed=thawed,
        thaw_expires_at=expires,
        thaw_window_minutes=window,
        delivered_cells=order.delivered_cells,
        post_thaw=post_thaw,
        weight_used_kg=weight_used_kg,
        override=order.override_reason is not None,
        infused=infused,
        recheck=recheck,
    )


def _limits(
    session: DbSession, patient: Patient | None, *, at: dt.datetime
) -> ProtocolLimits | None:
    if patient is None:
        return None
    return _limits_of(session, patient.protocol.parameters, patient.protocol.code, at=at)


def _limits_of(
    session: DbSession, parameters: Mapping[str, Any], protocol_code: str, *, at: dt.datetime
) -> ProtocolLimits:
    """The dose and weight limits of a protocol of ``parameters``, and the products its
    patient may receive at ``at`` (``patients.allowed_products``)."""
    return ProtocolLimits(
        dose_per_kg=float(parameters["dose_viable_cells_per_kg"]),
        tolerance_percent=float(parameters["dose_tolerance_percent"]),
        weight_recency_days=int(parameters["weight_recency_days"]),
        weight_change_flag_percent=float(parameters["weight_change_flag_percent"]),
        protocol_code=protocol_code,
        products=patients.allowed_products(session, protocol_code, parameters, at=at),
    )


# --- use cases ----------------------------------------------------------------------------------


def verify(
    session: DbSession,
    wristband_scan: str,
    label_scan: str,
    *,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
    recheck_of: BedsideCheck | None = None,
) -> BedsideCheck:
    """Scan wristband and label: every check, one verdict, recorded (a stop too)."""
    return verify_with_facts(
        session, wristband_scan, label_scan, actor=actor, now=now, zone=zone, recheck_of=recheck_of
    )[0]


def verify_with_facts(
    session: DbSession,
    wristband_scan: str,
    label_scan: str,
    *,
    actor: User,
    now: dt.datetime,
    zone: ZoneInfo,
    recheck_of: BedsideCheck | None = None,
) -> tuple[BedsideCheck, BedsideFacts]:
    """``verify``, and the facts the verdict was made from (``summary_of_new`` answers with
    them, without reading them again)."""
    if not (wristband_scan or "").strip():
        raise InvalidInput(
            _("Scan the patient's wristband."), errors={"wristband": [_("Required.")]}
        )
    if not (label_scan or "").strip():
        raise InvalidInput(_("Scan the bag or dose label."), errors={"label": [_("Required.")]})
    # the facts' texts (other packages' words among them) are stored with the check: English
    try:
        with using_language(SOURCE_LANGUAGE):
            facts, patient, order = gather(session, wristband_scan, label_scan, now=now, zone=zone)
            results = evaluate(facts)
    except UnseenCode as unseen:  # a code of a patient the actor does not see: never issued
        raise not_issued(unseen.scan) from None  # in the reader's language
    verdict = verdict_of(results)
    # the row by its keys alone: the flush inserts it and visits no other object (set through
    # the relationships, the clinician, patient and unit were each visited by the flush)
    check = BedsideCheck(
        checked_at=now,
        checked_by_id=actor.id,
        wristband_scan=stored_scan(wristband_scan, patient is not None),
        label_scan=stored_scan(label_scan, order is not None),
        patient_id=patient.id if patient else None,
        unit_id=order.dose_unit_id if order else None,
        dose_order_id=order.id if order else None,
        verdict=verdict.value,
        checks_json=json.dumps([r.as_json() for r in results], ensure_ascii=False),
        recheck_of_id=recheck_of.id if recheck_of else None,
    )
    session.add(check)
    session.flush()
    # what the answer reads of the check, as loaded (they are the rows its keys name); read
    # as plain rows (``_gather_read``), the answer names them from the facts
    # (``summary_of_new``)
    set_committed_value(check, "checked_by", actor)
    if patient is None or isinstance(patient, Patient):
        set_committed_value(check, "patient", patient)
    if order is None or isinstance(order, DoseOrder):
        set_committed_value(check, "unit", order.dose_unit if order else None)
    failed = [r.code.value for r in results if not r.passed]
    if verdict == Verdict.STOP and order is not None and order.dose_unit_id is not None:
        chain.record_custody(
            session,
            # the STOP records a custody event on the dose unit: the ORM's, read if need be
            order.dose_unit
            if isinstance(order, DoseOrder) and order.dose_unit is not None
            else chain.get_unit(session, order.dose_unit_id),
            CustodyInput(
                EventType.SCANNED,
                note=f"bedside STOP (check {check.id}): " + ", ".join(failed),
            ),
            actor=actor,
            now=now,
        )
    audit.record(
        session,
        actor=actor,
        at=now,
        action="bedside.go" if verdict == Verdict.GO else "bedside.stopped",
        entity_type="bedside_check",
        entity_id=check.id,
        changes={
            "verdict": (None, verdict.value),
            "patient": (None, patient.study_id if patient else None),
            "dose_unit": (None, order.dose_unit.code if order and order.dose_unit else None),
            "failed": (None, failed),
        },
    )
    return check, facts


@dataclass(frozen=True)
class Signer:
    """A clinician signing the bedside check: who, and their password typed now."""

    user: User
    password: str


def sign_off(
    session: DbSession, check: BedsideCheck, *, first: Signer, second: Signer, now: dt.datetime
) -> BedsideCheck:
    """Two different clinicians sign a go, each with their own password."""
    for signer in (first, second):
        if not has_permission(signer.user.roles, Permission.ADMINISTER_DOSES):
            raise PermissionDenied(
                _(
                    "%(name)s is not clinic staff; two clinicians sign at the bedside.",
                    name=signer.user.full_name,
                )
            )
    if not check.go:
        raise Conflict(
            _(
                "A stop cannot be signed: nothing is started from a red verdict. Resolve what "
                "failed and scan again."
            ),
            title=_("Stopped"),
        )
    if len(bedside_signatures(session, check)) >= 2:
        raise Conflict(
            _("Bedside check %(check)s is already signed by two clinicians.", check=check.id)
        )
    if first.user.id == second.user.id:
        raise InvalidInput(
            _("The same clinician cannot sign twice: two different people verify at the bedside."),
            errors={"second_username": [_("Must be a different clinician from the first.")]},
        )
    signatures.sign_by_two(
        session,
        record=check,
        first=(first.user, first.password, BEDSIDE_MEANING),
        second=(second.user, second.password, BEDSIDE_MEANING),
        now=now,
        permission=Permission.ADMINISTER_DOSES,
    )
    audit.record(
        session,
        actor=first.user,
        at=now,
        action="bedside.signed",
        entity_type="bedside_check",
        entity_id=check.id,
        changes={"signed_by": (None, [first.user.username, second.user.username])},
    )
    return check


def bedside_signatures(
    session: DbSession, check: BedsideCheck
) -> list[signatures.SignatureManifest]:
    """The valid bedside signatures on ``check``."""
    return [
        entry
        for entry in signatures.manifest(session, check)
        if entry.meaning == BEDSIDE_MEANING and entry.valid
    ]


def get_check(session: DbSession, check_id: int) -> BedsideCheck:
    return get_or_404(session, BedsideCheck, check_id, "bedside check", id_prefix="")


def checks_of_order(session: DbSession, order: DoseOrder) -> list[BedsideCheck]:
    return list(
        session.execute(
            select(BedsideCheck)
            .where(BedsideCheck.dose_order_id == order.id)
            .order_by(BedsideCheck.checked_at, BedsideCheck.id)
        ).scalars()
    )


def stops_of_patient(session: DbSession, patient: Patient) -> list[BedsideCheck]:
    return list(
        session.execute(
            select(BedsideCheck)
            .where(
                BedsideCheck.patient_id == patient.id,
                BedsideCheck.verdict == Verdict.STOP.value,
            )
            .order_by(BedsideCheck.checked_at.desc())
        ).scalars()
    )


#: What an unreadable scan was, in words that never repeat what was scanned.
_UNREADABLE = {
    "empty": lazy("nothing was scanned"),
    "length": lazy("it has the wrong length for a cellchain code"),
    "character": lazy("it holds characters no cellchain code has"),
    "structure": lazy("it is not laid out as a cellchain code (another system's barcode?)"),
    "no_check": lazy(
        "it was typed without its check character, which a typed code needs (the "
        "boxed character printed after the code)"
    ),
    "check": lazy("its check character does not match (a misread or a typo)"),
}
_UNREADABLE_OTHER = lazy("it could not be read")


def _unreadable_wording(reason: LazyText) -> Said:
    return say(
        lazy("The scan is not a cellchain label: %(reason)s. Scan the label's QR code again."),
        reason=say(reason),
    )


#: each unreadable scan's English text (as stored in a check) → its wording
_UNREADABLE_WORDINGS = {
    english(wording): wording
    for wording in (_unreadable_wording(r) for r in (*_UNREADABLE.values(), _UNREADABLE_OTHER))
}


def _problem_wording(text: str) -> Wording:
    """A scan's problem as stored (English) with its wording where it is one of ours."""
    return _UNREADABLE_WORDINGS.get(text) or Verbatim(text)


def _problem_text(problem: Exception) -> str:
    """The reason a scan was not accepted. An unreadable scan is described, never echoed:
    it may be another system's barcode (a hospital wristband holds a record number, which
    must not enter this system, DOMAIN.md §1)."""
    if isinstance(problem, InvalidIdentifier):
        return translated(_unreadable_wording(_UNREADABLE.get(problem.reason, _UNREADABLE_OTHER)))
    return problem.detail if isinstance(problem, DomainError) else str(problem)


def stored_scan(text: str, resolved: bool) -> str:
    """What is kept of a scan: the code if it named a record of this site, else only its
    length and a hash (enough to tell two attempts apart, nothing more)."""
    text = (text or "").strip()
    if resolved:
        return text[:SCAN_LENGTH]
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"[unreadable: {len(text)} characters, sha256 {digest}…]"


class CheckNames(NamedTuple):
    """What the answer to a bedside check names of its patient and dose unit."""

    patient_study_id: str | None
    patient_coi: str | None
    dose_unit_code: str | None


@dataclass(frozen=True)
class CheckSummary:
    """A bedside check as the bedside page and the API show it."""

    check: BedsideCheck
    signatures: list[signatures.SignatureManifest]
    signed_by_two: bool
    thaw_expires_at: dt.datetime | None
    #: the infusion started from this check (not from another check of the same dose)
    infusion: Infusion | None
    #: why a go can no longer be acted on (a newer check, the dose infused, the window
    #: closed); None while it can, and for a stop
    superseded: str | None
    #: the check's patient (study ID, COI) and dose unit code, when the answer names them
    #: from the facts (``summary_of_new``); None: read from the check's relationships
    names: CheckNames | None = None

    @property
    def actionable(self) -> bool:
        """A go that may still be signed and started from."""
        return self.check.go and self.infusion is None and self.superseded is None

    def seconds_left(self, now: dt.datetime) -> int | None:
        if self.thaw_expires_at is None or not self.check.go or self.infusion is not None:
            return None
        return int((self.thaw_expires_at - now).total_seconds())


def summary(session: DbSession, check: BedsideCheck, *, now: dt.datetime) -> CheckSummary:
    order = check.dose_order
    infusion = session.execute(
        select(Infusion).where(Infusion.bedside_check_id == check.id)
    ).scalar_one_or_none()
    expires = thaw_state(session, order).expires_at if order is not None else None
    return CheckSummary(
        check=check,
        signatures=signatures.manifest(session, check),
        signed_by_two=len({s.username for s in bedside_signatures(session, check)}) >= 2,
        thaw_expires_at=expires,
        infusion=infusion,
        superseded=_superseded(session, check, expires, now) if infusion is None else None,
    )


def summary_of_new(check: BedsideCheck, facts: BedsideFacts, *, now: dt.datetime) -> CheckSummary:
    """``summary`` of a check just made by ``verify_with_facts``, from the facts it was made
    from, without a query: no one has signed it, nothing was started from it and no check of
    the dose is newer; a go had the dose not infused and its thaw window open (else a check
    failed), so only the window closing since can supersede it."""
    expires = facts.dose.thaw_expires_at if facts.dose is not None else None
    superseded = None
    if check.go and expires is not None and now > expires:
        superseded = _("The thaw window has closed since this check.")
    # the check's patient is the wristband's (``facts.patient``) and its unit the dose's
    # prepared dose (``facts.dose``: a dose is found only when prepared, ``scan_dose``)
    patient = facts.patient if check.patient_id is not None else None
    dose = facts.dose if check.unit_id is not None else None
    return CheckSummary(
        check=check,
        signatures=[],
        signed_by_two=False,
        thaw_expires_at=expires,
        infusion=None,
        superseded=superseded,
        names=CheckNames(
            patient.study_id if patient else None,
            patient.coi if patient else None,
            dose.dose_code if dose else None,
        ),
    )


def newer_check(session: DbSession, check: BedsideCheck) -> BedsideCheck | None:
    """A later check of the same dose (a re-check at a start counts), if any."""
    if check.dose_order_id is None:
        return None
    return session.execute(
        select(BedsideCheck)
        .where(BedsideCheck.dose_order_id == check.dose_order_id, BedsideCheck.id > check.id)
        .order_by(BedsideCheck.id)
        .limit(1)
    ).scalar_one_or_none()


def _superseded(
    session: DbSession, check: BedsideCheck, expires: dt.datetime | None, now: dt.datetime
) -> str | None:
    if not check.go:
        return None
    order = check.dose_order
    if order is not None and order.status == DoseStatus.INFUSED.value:
        return _("This dose has been infused since this check.")
    later = newer_check(session, check)
    if later is not None and later.recheck_of_id != check.id:
        return _("A newer bedside check of this dose exists (check %(check)s).", check=later.id)
    if later is not None and not later.go:
        return _("The check made again at the start was a stop (check %(check)s).", check=later.id)
    if expires is not None and now > expires:
        return _("The thaw window has closed since this check.")
    return None
