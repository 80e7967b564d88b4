"""The re-check before each infusion after the first (issue 19; DOMAIN.md §7–§8).

Day 0 relies on the enrolment checklist. Before a later infusion (the protocol's
``pre_infusion_recheck.visits``: M3), a clinician re-confirms the eligibility items that can
change since enrolment: a pregnancy test (negative, or not applicable with the reason), no
active infection, no new trial enrolment, organ function (creatinine, ejection fraction,
re-measured against the protocol's limits) and the ECOG score 0–5 against its limit (≤ 2).

Rules:

* Every item is answered and every value is a possible reading (an ECOG of 7 or 1.5 is a
  typing error): otherwise the re-check is refused with every problem on its field, nothing
  saved. An item answered but not met (a positive test, an ECOG of 3) is *recorded* as failed:
  the re-check did not pass and the patient is not eligible for that infusion.
* Who: clinic staff (``Permission.ADMINISTER_DOSES``, the people who give the infusion);
  when: the time it is recorded. Audited.
* The latest re-check of a visit is the one that counts: a later re-check (an infection that
  resolved) replaces an earlier one, and both stay on record. It holds for the protocol's
  ``valid_days`` (7, like the weight) after it was recorded.
* The gate: a dose for such a visit is not ordered (``orders.plan_dose``, which every order
  path goes through: API, page, a replacement after a cancel or destroy) and the bedside
  verdict is stop (``clinic.bedside.bedside``, made again when the infusion starts) unless the
  visit's latest re-check passed and is still valid. Both ask ``problem`` below.

Which re-check a patient needs is read from both the version they were enrolled under and
the version in force of the same protocol, whichever asks for more (``rules``): a version QA
signs later applies to the patients already enrolled. A protocol version without
``pre_infusion_recheck`` asks for none (versions approved before issue 19); the site adds it
with a new version signed by QA, and until then the protocol's page and the patient's
re-check page say so (``no_recheck_warning``).

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cellchain.core import audit
from cellchain.core.display import local_time
from cellchain.core.i18n import LazyText, _, document_text, lazy
from cellchain.core.models import User
from cellchain.core.roles import Permission, require
from cellchain.core.types import canonical_json
from cellchain.documents import versioning
from cellchain.dosing import patients
from cellchain.dosing.models import Patient, PatientStatus, PreInfusionRecheck, Protocol
from cellchain.errors import InvalidInput, NotFound
from cellchain.extensions import DbSession

#: Who records a re-check: the clinic staff who give the infusion.
PERMISSION = Permission.ADMINISTER_DOSES
NOTE_LENGTH = 2000
REASON_LENGTH = 200


@dataclass(frozen=True)
class RecheckAnswer:
    """One item as answered: ``answer`` for a yes/no item (yes = met), ``option`` (and a
    ``reason`` where the option needs one) for a choice, ``value`` for a measured item."""

    answer: bool | None = None
    option: str | None = None
    value: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class RecheckFacts:
    """What the gate judges of a visit's latest re-check (``judge``)."""

    visit_name: str
    valid_days: int
    #: None when no re-check of the visit is recorded
    recorded_at: dt.datetime | None = None
    recorded_by: str | None = None
    passed: bool = False
    #: the texts of the items not met
    failed_items: tuple[str, ...] = ()


# --- the protocol's parameter -------------------------------------------------------------------


def settings(parameters: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The protocol's ``pre_infusion_recheck``, or None when it asks for none."""
    value = parameters.get("pre_infusion_recheck")
    return value if value else None


def merged(protocols: Iterable[Protocol]) -> dict[str, Any] | None:
    """The re-check the ``protocols`` ask for together: whichever asks for more, visit by
    visit and item by item. Every visit any of them names; the shortest validity; every item
    any of them names, and for an item they define differently the stricter: a measure's
    stricter limit (the same direction; else the later version's), an option passing only
    where every version lets it pass and needing a reason where any does. None when none of
    them asks for a re-check."""
    return merged_parameters([protocol.parameters for protocol in protocols])


def merged_parameters(parameter_sets: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """``merged`` of the protocol versions of these parameters."""
    configs = [config for config in (settings(each) for each in parameter_sets) if config]
    if not configs:
        return None
    visits_: list[str] = []
    chosen: dict[str, dict[str, Any]] = {}
    for config in configs:
        visits_ += [str(code) for code in config.get("visits", []) if code not in visits_]
        for item in config.get("items", []):
            code = str(item["code"])
            chosen[code] = _stricter(chosen[code], item) if code in chosen else dict(item)
    return {
        "visits": visits_,
        "valid_days": min(int(config["valid_days"]) for config in configs),
        "items": list(chosen.values()),
    }


def _stricter(earlier: Mapping[str, Any], later: Mapping[str, Any]) -> dict[str, Any]:
    """One item as two protocol versions define it, asking for the more of the two."""
    if earlier == later:
        return dict(later)
    one, other = earlier.get("measure"), later.get("measure")
    if one and other:
        below = {"<", "<="}
        if (one["operator"] in below) == (other["operator"] in below):
            looser = one["limit"] > other["limit"]
            if one["operator"] not in below:
                looser = one["limit"] < other["limit"]
            if one["limit"] == other["limit"]:
                looser = one["operator"] in {"<=", ">="}
            return dict(later) if looser else dict(earlier)
        return dict(later)
    if earlier.get("options") and later.get("options"):
        previous = {option["value"]: option for option in earlier["options"]}
        options = []
        for option in later["options"]:
            before = previous.get(option["value"], option)
            options.append(
                {
                    **option,
                    "passes": bool(option["passes"] and before["passes"]),
                    "needs_reason": bool(option.get("needs_reason") or before.get("needs_reason")),
                }
            )
        return {**later, "options": options}
    return dict(later)


def sources(session: DbSession, patient: Patient, *, at: dt.datetime) -> list[Protocol]:
    """The protocol versions whose re-check applies to the patient at ``at`` (the time of
    the check, order or infusion): the version they were enrolled under and the version of
    the same protocol in force at ``at`` (a version QA signs later applies to the patients
    already enrolled, from its effective time, not before)."""
    protocol = patient.protocol
    current = _other_in_force(session, protocol.id, protocol.code, protocol.status, at=at)
    return [protocol] if current is None else [protocol, current]


def _other_in_force(
    session: DbSession, protocol_id: int, code: str, status: str, *, at: dt.datetime
) -> Protocol | None:
    """The version of protocol ``code`` in force at ``at`` when it is a later version than
    ``protocol_id`` (of ``status``), else None."""
    if status == versioning.VersionStatus.EFFECTIVE.value:
        return None  # the version signed last (one per code): none later, no query
    current = versioning.in_force(session, Protocol, code, at=at)
    if current is None or current.id == protocol_id:
        return None
    return current


def rules_of_protocol(
    session: DbSession,
    protocol_id: int,
    code: str,
    status: str,
    parameters: Mapping[str, Any],
    *,
    at: dt.datetime,
) -> dict[str, Any] | None:
    """``rules`` at ``at`` of a patient enrolled under protocol version ``protocol_id`` (its
    code, status and parameters already read: the bedside reads them as plain rows)."""
    current = _other_in_force(session, protocol_id, code, status, at=at)
    return merged_parameters([parameters] if current is None else [parameters, current.parameters])


def rules(session: DbSession, patient: Patient, *, at: dt.datetime) -> dict[str, Any] | None:
    """The re-check the patient needs at ``at`` (``merged`` of ``sources``); None when
    neither asks for one."""
    return merged(sources(session, patient, at=at))


def required(session: DbSession, patient: Patient, visit_code: str, *, at: dt.datetime) -> bool:
    """Whether ``visit_code`` needs a re-check before its infusion, as asked at ``at``."""
    config = rules(session, patient, at=at)
    return config is not None and visit_code in config["visits"]


def items(session: DbSession, patient: Patient, *, at: dt.datetime) -> list[Mapping[str, Any]]:
    config = rules(session, patient, at=at)
    return list(config["items"]) if config else []


def valid_days(session: DbSession, patient: Patient, *, at: dt.datetime) -> int:
    config = rules(session, patient, at=at)
    return int(config["valid_days"]) if config else 0


def visits(session: DbSession, patient: Patient, *, at: dt.datetime) -> list[tuple[str, str]]:
    """(code, name) of the patient's infusion visits that need a re-check at ``at``, in
    protocol order (read from the protocol, not the schedule: which visits need one never
    depends on when they are planned)."""
    return _visits_of(rules(session, patient, at=at), patient.protocol.parameters)


def _visits_of(
    config: Mapping[str, Any] | None, parameters: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """``visits`` of the re-check ``config`` asks for, in the order of the infusions of the
    protocol of ``parameters``."""
    if config is None:
        return []
    return [
        (str(item["code"]), str(item["name"]))
        for item in parameters["infusions"]
        if str(item["code"]) in config["visits"]
    ]


def missing(session: DbSession, patient: Patient, *, at: dt.datetime) -> str | None:
    """Why no infusion of the patient is re-checked, when the protocol has infusions after
    the first but neither the patient's version nor the version in force asks for a re-check
    (a site upgraded from before issue 19); None otherwise. Shown on the re-check page."""
    if rules(session, patient, at=at) is not None:
        return None
    return no_recheck_warning(sources(session, patient, at=at)[-1])


def no_recheck_warning(protocol: Protocol) -> str | None:
    """The warning for a protocol version with infusions after the first and no re-check
    before them; None when it asks for one or has a single infusion."""
    later = [str(item["name"]) for item in protocol.parameters.get("infusions", [])[1:]]
    if not later or settings(protocol.parameters):
        return None
    return _(
        "Protocol %(protocol)s v%(version)s asks for no re-check before %(visits)s: QA must sign"
        " a version that does (pre_infusion_recheck).",
        protocol=protocol.code,
        version=protocol.version,
        visits=", ".join(later),
    )


# --- recording ----------------------------------------------------------------------------------


def record_recheck(
    session: DbSession,
    patient: Patient,
    *,
    visit: str,
    answers: Mapping[str, RecheckAnswer],
    note: str | None,
    actor: User,
    now: dt.datetime,
) -> PreInfusionRecheck:
    """Record a re-check of every item for the patient's ``visit``; refused (nothing saved)
    when an item is unanswered or a value impossible, recorded as failed when an item is
    answered but not met."""
    require(actor, PERMISSION)
    code = visit.strip().upper()
    errors: dict[str, list[str]] = {}
    if patient.status != PatientStatus.ENROLLED.value:
        errors["patient"] = [
            _(
                "%(study_id)s is %(status)s: no further infusion.",
                study_id=patient.study_id,
                status=patient.status_label,
            )
        ]
    elif not patients.receives_cells(patient):
        errors["patient"] = [
            _(
                "%(study_id)s is in the %(arm)s arm, which never receives cells: there is no"
                " infusion to re-check for.",
                study_id=patient.study_id,
                arm=patients.arm_name(patient),
            )
        ]
    needing = [code for code, _ in visits(session, patient, at=now)]
    if code not in needing:
        errors["visit"] = [
            _(
                "A re-check is recorded before %(visits)s, not %(visit)s.",
                visits=", ".join(needing),
                visit=repr(code or visit),
            )
            if needing
            else _(
                "Protocol %(protocol)s v%(version)s asks for no re-check before an infusion.",
                protocol=patient.protocol.code,
                version=patient.protocol.version,
            )
        ]
    asked = items(session, patient, at=now)
    known = {item["code"] for item in asked}
    unknown = sorted(set(answers) - known)
    if unknown:
        errors["answers"] = [_("Not an item of the re-check: %(items)s.", items=", ".join(unknown))]
    stored: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for item in asked:
        outcome = _judge_item(item, answers.get(item["code"]))
        if isinstance(outcome, str):
            errors[f"answers.{item['code']}"] = [outcome]
            continue
        stored[item["code"]] = outcome
        if not outcome["met"]:
            failed.append(item["code"])
    if note is not None and len(note) > NOTE_LENGTH:
        errors["note"] = [_("At most %(count)s characters.", count=NOTE_LENGTH)]
    if errors:
        raise InvalidInput(
            _("The re-check was not recorded: %(problems)s", problems=patients.summarize(errors)),
            errors=errors,
        )
    recheck = PreInfusionRecheck(
        patient_id=patient.id,
        protocol_id=sources(session, patient, at=now)[-1].id,
        visit=code,
        answers_json=canonical_json(stored),
        passed=not failed,
        note=(note or "").strip() or None,
        recorded_at=now,
        recorded_by_id=actor.id,
    )
    session.add(recheck)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="recheck.passed" if not failed else "recheck.failed",
        entity_type="patient",
        entity_id=patient.id,
        changes={
            "recheck": (None, recheck.id),
            "visit": (None, code),
            "answers": (None, stored),
            "passed": (None, not failed),
            "failed_items": (None, failed),
            "note": (None, recheck.note),
        },
    )
    return recheck


def _judge_item(item: Mapping[str, Any], answer: RecheckAnswer | None) -> dict[str, Any] | str:
    """The item as stored (with ``met``), or why the answer cannot be recorded."""
    measure = item.get("measure")
    if measure:
        value = answer.value if answer else None
        if value is None:
            return _("Enter the measured value (%(unit)s).", unit=measure["unit"])
        invalid = patients.invalid_measure(measure, value)
        if invalid:
            return invalid
        return {"value": value, "met": patients.unmet_measure(measure, value) is None}
    options = item.get("options")
    if options:
        chosen = answer.option if answer else None
        by_value = {option["value"]: option for option in options}
        if chosen not in by_value:
            return _(
                "Choose one: %(options)s.", options=", ".join(option["label"] for option in options)
            )
        option = by_value[chosen]
        reason = ((answer.reason if answer else None) or "").strip()
        if option.get("needs_reason") and not reason:
            return _(
                "Say why it is %(option)s (e.g. male, post-menopausal).",
                option=option["label"].split(" (")[0],
            )
        if len(reason) > REASON_LENGTH:
            return _("At most %(count)s characters.", count=REASON_LENGTH)
        return {"option": chosen, "reason": reason or None, "met": bool(option["passes"])}
    if answer is None or answer.answer is None:
        return _("Answer yes or no.")
    return {"answer": answer.answer, "met": bool(answer.answer)}


# --- reading ------------------------------------------------------------------------------------


def rechecks_of(session: DbSession, patient: Patient) -> list[PreInfusionRecheck]:
    """The patient's re-checks, newest first."""
    return list(
        session.execute(
            select(PreInfusionRecheck)
            .where(PreInfusionRecheck.patient_id == patient.id)
            .order_by(PreInfusionRecheck.recorded_at.desc(), PreInfusionRecheck.id.desc())
        ).scalars()
    )


def latest(session: DbSession, patient: Patient, visit: str) -> PreInfusionRecheck | None:
    """The visit's latest re-check: the one that counts."""
    return latest_of(session, patient.id, visit)


def latest_of(session: DbSession, patient_id: int, visit: str) -> PreInfusionRecheck | None:
    """``latest`` of patient ``patient_id``."""
    return session.execute(
        select(PreInfusionRecheck)
        .where(PreInfusionRecheck.patient_id == patient_id, PreInfusionRecheck.visit == visit)
        .order_by(PreInfusionRecheck.recorded_at.desc(), PreInfusionRecheck.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def get_recheck(session: DbSession, patient: Patient, recheck_id: int) -> PreInfusionRecheck:
    recheck = session.get(PreInfusionRecheck, recheck_id)
    if recheck is None or recheck.patient_id != patient.id:
        raise NotFound(
            _("%(study_id)s has no re-check %(id)s.", study_id=patient.study_id, id=recheck_id)
        )
    return recheck


def failed_items(recheck: PreInfusionRecheck) -> list[str]:
    """The texts of the items the re-check found not met."""
    texts = {item["code"]: item["text"] for item in _rules_of(recheck)["items"]}
    return [texts.get(code, code) for code, a in recheck.answers.items() if not a.get("met")]


def valid_until(recheck: PreInfusionRecheck) -> dt.datetime:
    days = int(_rules_of(recheck)["valid_days"])
    return recheck.recorded_at + dt.timedelta(days=days)


def _rules_of(recheck: PreInfusionRecheck) -> dict[str, Any]:
    """The re-check as asked when it was recorded: its patient's version and the version it
    was recorded under (the version then in force, when that one asks for a re-check)."""
    return merged([recheck.patient.protocol, recheck.protocol]) or {
        "visits": [],
        "valid_days": 0,
        "items": [],
    }


def facts(
    session: DbSession, patient: Patient, visit: str, *, at: dt.datetime
) -> RecheckFacts | None:
    """What the gate judges at ``at`` for the patient's ``visit``; None when the visit needs
    no re-check (day 0: the enrolment checklist)."""
    return facts_from(
        rules(session, patient, at=at),
        patient.protocol.parameters,
        visit,
        lambda: latest(session, patient, visit),
    )


def facts_from(
    config: Mapping[str, Any] | None,
    parameters: Mapping[str, Any],
    visit: str,
    latest_recheck: Callable[[], PreInfusionRecheck | None],
) -> RecheckFacts | None:
    """``facts`` of the re-check ``config`` (``rules``) of a patient of a protocol of
    ``parameters``: the one rule; ``latest_recheck`` reads the visit's latest re-check,
    called only when the visit needs one."""
    if config is None or visit not in config["visits"]:
        return None
    name = dict(_visits_of(config, parameters)).get(visit, visit)
    days = int(config["valid_days"])
    recheck = latest_recheck()
    if recheck is None:
        return RecheckFacts(visit_name=name, valid_days=days)
    return RecheckFacts(
        visit_name=name,
        valid_days=days,
        recorded_at=recheck.recorded_at,
        recorded_by=recheck.recorded_by.full_name,
        passed=recheck.passed,
        failed_items=tuple(failed_items(recheck)),
    )


_NO_RECHECK = lazy(
    "No pre-infusion re-check for %(visit)s is recorded: a clinician re-confirms the pregnancy"
    " test, infection, other trials, organ function and ECOG score on the patient's re-check"
    " page first."
)
_NOT_MET = lazy(
    "The %(visit)s re-check of %(when)s (%(who)s) was not met: %(items)s. The patient is not"
    " eligible for this infusion unless a new re-check passes."
)
_TOO_OLD = lazy(
    "The %(visit)s re-check was recorded %(when)s, more than %(days)s days ago; re-check the"
    " patient again."
)


def judge(
    recheck: RecheckFacts | None, *, now: dt.datetime, zone: ZoneInfo, translate: bool = False
) -> str | None:
    """Why the infusion may not go ahead for want of a re-check, or None when it may: the
    visit needs none, or its latest re-check passed within its validity. Pure. In English
    (the bedside keeps it in its record) unless ``translate``: in the reader's language."""

    def said(text: LazyText, **values: Any) -> str:
        if not translate:
            return text.message % values
        # the visit's name and the items are the protocol's (controlled-document) texts
        shown = {
            name: document_text(value) if name == "visit" else value
            for name, value in values.items()
        }
        return str(text) % shown

    if recheck is None:
        return None
    if recheck.recorded_at is None:
        return said(_NO_RECHECK, visit=recheck.visit_name)
    when = local_time(recheck.recorded_at, zone)
    if not recheck.passed:
        return said(
            _NOT_MET,
            visit=recheck.visit_name,
            when=when,
            who=recheck.recorded_by,
            items="; ".join(
                document_text(item) if translate else item for item in recheck.failed_items
            ),
        )
    if now - recheck.recorded_at > dt.timedelta(days=recheck.valid_days):
        return said(_TOO_OLD, visit=recheck.visit_name, when=when, days=recheck.valid_days)
    return None


def problem(
    session: DbSession,
    patient: Patient,
    visit: str,
    *,
    now: dt.datetime,
    zone: ZoneInfo,
    translate: bool = False,
) -> str | None:
    """``judge`` of the patient's ``visit`` now: the gate of ordering and the bedside."""
    return judge(facts(session, patient, visit, at=now), now=now, zone=zone, translate=translate)


def summary(recheck: RecheckFacts, zone: ZoneInfo) -> str:
    """A passing re-check in words, for the bedside check's detail."""
    assert recheck.recorded_at is not None
    until = recheck.recorded_at + dt.timedelta(days=recheck.valid_days)
    return (
        f"{recheck.visit_name} re-check passed {local_time(recheck.recorded_at, zone)} "
        f"({recheck.recorded_by}), valid until {local_time(until, zone)}."
    )


# --- what the API and the page show -------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """A re-check with what is read from its protocol: the items not met, and until when it
    holds."""

    record: PreInfusionRecheck
    failed_items: list[str]
    valid_until: dt.datetime


@dataclass(frozen=True)
class VisitRecheck:
    """A visit that needs a re-check: its latest one, and why its infusion may not go ahead
    (None when it may, as far as the re-check goes)."""

    visit: str
    name: str
    problem: str | None
    latest: Shown | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def shown(recheck: PreInfusionRecheck) -> Shown:
    return Shown(recheck, failed_items(recheck), valid_until(recheck))


def visit_states(
    session: DbSession, patient: Patient, *, now: dt.datetime, zone: ZoneInfo
) -> list[VisitRecheck]:
    """Each of the patient's visits that needs a re-check, with its state now; none for a
    patient whose arm never receives cells (there is no infusion to re-check for)."""
    if not patients.receives_cells(patient):
        return []
    states = []
    for code, name in visits(session, patient, at=now):
        recheck = latest(session, patient, code)
        states.append(
            VisitRecheck(
                visit=code,
                name=name,
                problem=problem(session, patient, code, now=now, zone=zone, translate=True),
                latest=shown(recheck) if recheck else None,
            )
        )
    return states
