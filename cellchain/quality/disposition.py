"""QA disposition of a lot: the release review, release and rejection (DOMAIN.md §5,
21 CFR 1271.265(c)).

The review gathers every precondition of release with a tick or the reason it fails. Release
needs every one of them, a QA user who recorded none of the lot's results, samples or
manufacturing steps (segregation of duties), and that user's e-signature; the lot's bags then
become available. Rejection needs a reason and a signature; the bags become rejected for good.
A lot has at most one disposition, ever: the status change is a conditional update and the
disposition table has one row per lot, so two QA users deciding at once end with one decision.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from cellchain.chain import service as chain
from cellchain.chain.models import Unit, UnitStatus
from cellchain.core import audit, signatures
from cellchain.core.display import UTC_ZONE, local_time
from cellchain.core.guarded import update_if
from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.core.roles import Permission, require
from cellchain.core.signatures import SignatureManifest
from cellchain.core.wording import joined_text as joined
from cellchain.donors.models import Donation, Eligibility
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import (
    Deviation,
    DeviationCategory,
    Lot,
    LotStatus,
    ProcessingStep,
)
from cellchain.manufacturing.processing import processing
from cellchain.manufacturing.terms import term
from cellchain.quality import results as qc
from cellchain.quality.models import (
    Decision,
    LotDisposition,
    QcResult,
    QcSample,
    ResultStatus,
    Specification,
)

#: The meanings printed with QA's signature on a disposition.
RELEASE_MEANING = "approval: release for clinical use"
REJECT_MEANING = "responsibility: lot rejected"

MAX_REASON = 5000


@dataclass(frozen=True)
class Check:
    """One precondition of release: whether it holds, and why (or why not) in words."""

    key: str
    #: the precondition by its positive name ("Donor eligible"); never shown without ``state``
    label: str
    ok: bool
    detail: str

    @property
    def passed(self) -> bool:
        return self.ok

    @property
    def state(self) -> str:
        """PASSED or FAILED: how the precondition reads wherever it is listed (issue 16)."""
        return "PASSED" if self.ok else "FAILED"


@dataclass(frozen=True)
class TestLine:
    """A test of the specification and the lot's results for it."""

    test: dict[str, Any]
    #: the valid result, if any
    result: QcResult | None
    #: earlier results set aside by QA, oldest first
    invalidated: list[QcResult] = field(default_factory=list)

    @property
    def state(self) -> str:
        if self.result is None:
            return "missing"
        return "passes" if self.result.passes else "out of specification"


@dataclass(frozen=True)
class Review:
    """Everything QA looks at before deciding on a lot."""

    lot: Lot
    donation: Donation
    specification: Specification | None
    tests: list[TestLine]
    #: results recorded against tests the specification in force no longer lists
    other_results: list[QcResult]
    checks: list[Check]
    samples: list[QcSample]
    #: the lot's open deviations (OOS investigations, storage excursions and others)
    open_deviations: list[Deviation]
    disposition: LotDisposition | None
    signatures: list[SignatureManifest]

    @property
    def ready(self) -> bool:
        """Every precondition holds: the lot may be released (by someone allowed to)."""
        return self.disposition is None and all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    @property
    def passed(self) -> list[Check]:
        return [check for check in self.checks if check.ok]

    @property
    def verdict(self) -> str:
        """READY only when every precondition passed; otherwise NOT READY (or DECIDED)."""
        if self.disposition is not None:
            return "DECIDED"
        return "READY" if self.ready else "NOT READY"

    @property
    def summary(self) -> str:
        """The verdict in words: how many preconditions passed and failed."""
        total = len(self.checks)
        if self.ready:
            return _("all %(total)s preconditions of release passed", total=total)
        return _(
            "%(failed)s of %(total)s preconditions of release FAILED",
            failed=len(self.failed),
            total=total,
        )


def review(session: DbSession, lot: Lot, *, now: dt.datetime, zone: ZoneInfo = UTC_ZONE) -> Review:
    """The release review of ``lot`` as of ``now``, its times read in ``zone``."""
    donation = processing.lot_donation(session, lot)
    try:
        spec: Specification | None = qc.specification_of_lot(session, lot, at=now)
    except Conflict:
        spec = None
    tests, others = _test_lines(session, lot, spec)
    disposition = disposition_of(session, lot)
    return Review(
        lot=lot,
        donation=donation,
        specification=spec,
        tests=tests,
        other_results=others,
        checks=release_checks(
            session, lot, donation=donation, spec=spec, tests=tests, now=now, zone=zone
        ),
        samples=qc.samples_of(session, lot),
        open_deviations=deviations.open_deviations_of(session, lot),
        disposition=disposition,
        signatures=signatures.manifest(session, disposition) if disposition else [],
    )


def release_checks(
    session: DbSession,
    lot: Lot,
    *,
    donation: Donation,
    spec: Specification | None,
    tests: list[TestLine],
    now: dt.datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> list[Check]:
    """Each precondition of release (DOMAIN.md §5), in the order QA reads them."""
    open_ones = deviations.open_deviations_of(session, lot)
    excursions = [d for d in open_ones if d.category == DeviationCategory.STORAGE_EXCURSION.value]
    others = [d for d in open_ones if d not in excursions]
    return [
        Check("lot_in_quarantine", _("Lot awaiting disposition"), *_quarantined(lot)),
        Check("donor_eligible", _("Donor eligible"), *_donor_eligible(donation)),
        Check(
            "results", _("Every required test present, valid and passing"), *_results(spec, tests)
        ),
        Check("limits", _("Passage, CPD and DMSO within the product limits"), *_limits(lot)),
        Check("deviations", _("No open deviation"), *_no_open(others, excursion=False)),
        Check(
            "storage", _("No unresolved storage excursion"), *_no_open(excursions, excursion=True)
        ),
        Check("expiry", _("Expiry in the future"), *_expiry(lot, now, zone)),
        Check("not_blocked", _("No bag blocked (recall)"), *_none_blocked(session, lot)),
    ]


def segregation_conflicts(session: DbSession, lot: Lot, user: User) -> list[str]:
    """What ``user`` did on this lot that bars them from releasing it, in words (or nothing).

    Whoever recorded a result, drew a sample or performed a manufacturing step of the lot (or
    of the donation it was made from) may not be the one who releases it.
    """
    reasons = []
    recorded = session.scalars(
        select(QcResult.test_code).where(QcResult.lot_id == lot.id, QcResult.analyst_id == user.id)
    ).all()
    if recorded:
        reasons.append(_("you recorded %(count)s of this lot's QC results", count=len(recorded)))
    sampled = session.scalars(
        select(QcSample.unit_id).where(QcSample.lot_id == lot.id, QcSample.taken_by_id == user.id)
    ).all()
    if sampled:
        reasons.append(_("you drew %(count)s of this lot's QC samples", count=len(sampled)))
    steps = session.scalars(
        select(ProcessingStep.kind).where(
            ProcessingStep.donation_id == lot.donation_id,
            ProcessingStep.performed_by_id == user.id,
        )
    ).all()
    if steps:
        kinds = joined(sorted({term(kind) for kind in steps}), ", ")
        reasons.append(
            _(
                "you performed %(count)s of its manufacturing steps (%(kinds)s)",
                count=len(steps),
                kinds=kinds,
            )
        )
    return reasons


def release_lot(
    session: DbSession,
    lot: Lot,
    *,
    user: User,
    password: str,
    now: dt.datetime,
    comment: str | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> LotDisposition:
    """Release ``lot`` for clinical use: every check must pass and ``user`` must be independent
    of the lot. The bags in quarantine become available."""
    require(user, Permission.DISPOSE_LOTS)
    barred = segregation_conflicts(session, lot, user)
    if barred:
        raise Conflict(
            _(
                "%(who)s may not release lot %(lot)s: %(why)s. Release is by a QA person who "
                "recorded none of the lot's results or steps.",
                who=user.full_name,
                lot=lot.lot_number,
                why=joined(barred, "; "),
            ),
            title=_("Segregation of duties"),
        )
    found = review(session, lot, now=now, zone=zone)
    if found.disposition is not None:
        raise _already_decided(found.disposition, zone)
    if not found.ready:
        reasons = joined(
            (
                _("%(check)s: %(detail)s", check=check.label, detail=check.detail)
                for check in found.failed
            ),
            "; ",
        )
        raise Conflict(
            _("Lot %(lot)s cannot be released. %(reasons)s.", lot=lot.lot_number, reasons=reasons),
            title=_("Release refused"),
        )
    return _decide(
        session,
        lot,
        Decision.RELEASED,
        reason=_optional_text(comment),
        spec=found.specification,
        user=user,
        password=password,
        now=now,
        zone=zone,
    )


def reject_lot(
    session: DbSession,
    lot: Lot,
    *,
    reason: str,
    user: User,
    password: str,
    now: dt.datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> LotDisposition:
    """Reject ``lot`` for good, with a reason; its bags in quarantine become rejected."""
    require(user, Permission.DISPOSE_LOTS)
    text = _optional_text(reason)
    if text is None:
        raise InvalidInput(
            _("Say why the lot is rejected."), errors={"reason": [_("A reason is required.")]}
        )
    existing = disposition_of(session, lot)
    if existing is not None:
        raise _already_decided(existing, zone)
    try:
        spec: Specification | None = qc.specification_of_lot(session, lot, at=now)
    except Conflict:
        spec = None
    return _decide(
        session,
        lot,
        Decision.REJECTED,
        reason=text,
        spec=spec,
        user=user,
        password=password,
        now=now,
        zone=zone,
    )


def disposition_of(session: DbSession, lot: Lot) -> LotDisposition | None:
    return session.execute(
        select(LotDisposition).where(LotDisposition.lot_id == lot.id)
    ).scalar_one_or_none()


# --- QA queues ----------------------------------------------------------------------------------


def awaiting_review(
    session: DbSession, *, now: dt.datetime, zone: ZoneInfo = UTC_ZONE
) -> list[Review]:
    """Lots in quarantine, oldest first, each with its review (ready or what is missing)."""
    lots = session.execute(
        select(Lot).where(_AWAITING_REVIEW).order_by(Lot.made_at, Lot.id)
    ).scalars()
    return [review(session, lot, now=now, zone=zone) for lot in lots]


#: The condition of ``awaiting_review``: the lots not yet released or rejected.
_AWAITING_REVIEW = Lot.status == LotStatus.QUARANTINE.value


def count_awaiting_review(session: DbSession) -> int:
    """How many lots ``awaiting_review`` lists (one statement)."""
    return session.execute(
        select(func.count()).select_from(Lot).where(_AWAITING_REVIEW)
    ).scalar_one()


def lots_with_oos(session: DbSession) -> list[tuple[Lot, list[QcResult]]]:
    """Lots not yet decided that hold a valid OOS result, with those results."""
    rows = session.execute(
        select(Lot, QcResult)
        .join(QcResult, QcResult.lot_id == Lot.id)
        .where(
            Lot.status == LotStatus.QUARANTINE.value,
            QcResult.status == ResultStatus.VALID.value,
            QcResult.passes.is_(False),
        )
        .order_by(Lot.id, QcResult.id)
    ).all()
    grouped: dict[int, tuple[Lot, list[QcResult]]] = {}
    for lot, result in rows:
        grouped.setdefault(lot.id, (lot, []))[1].append(result)
    return list(grouped.values())


def open_deviations(session: DbSession) -> list[Deviation]:
    return deviations.list_deviations(session, deviations.DeviationStatus.OPEN)


# --- internals ----------------------------------------------------------------------------------


def _decide(
    session: DbSession,
    lot: Lot,
    decision: Decision,
    *,
    reason: str | None,
    spec: Specification | None,
    user: User,
    password: str,
    now: dt.datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> LotDisposition:
    # Conditional on the lot still being in quarantine: of two QA users deciding at once, the
    # second waits for the first (row lock) and then finds nothing to update.
    if not update_if(session, lot, Lot.status == LotStatus.QUARANTINE.value, status=decision.value):
        session.refresh(lot)
        existing = disposition_of(session, lot)
        if existing is not None:
            raise _already_decided(existing, zone)
        raise Conflict(
            _(
                "Lot %(lot)s is %(status)s; it cannot be %(decision)s.",
                lot=lot.lot_number,
                status=term(lot.status),
                decision=term(decision.value),
            )
        )
    disposition = LotDisposition(
        lot_id=lot.id,
        decision=decision.value,
        reason=reason,
        specification_id=spec.id if spec else None,
        decided_at=now,
        decided_by_id=user.id,
    )
    session.add(disposition)
    session.flush()
    meaning = RELEASE_MEANING if decision is Decision.RELEASED else REJECT_MEANING
    signature = signatures.sign(
        session,
        record=disposition,
        meaning=meaning,
        user=user,
        password=password,
        now=now,
        permission=Permission.DISPOSE_LOTS,
    )
    target = UnitStatus.AVAILABLE if decision is Decision.RELEASED else UnitStatus.REJECTED
    moved = _move_bags(session, lot, target, decision=decision, user=user, now=now)
    audit.record(
        session,
        actor=user,
        at=now,
        action=f"lot.{decision.value}",
        entity_type="lot",
        entity_id=lot.id,
        changes={
            "status": (LotStatus.QUARANTINE.value, decision.value),
            "reason": (None, reason),
            "bags": (None, [bag.code for bag in moved]),
            "signature_id": (None, signature.id),
        },
    )
    return disposition


def _move_bags(
    session: DbSession,
    lot: Lot,
    target: UnitStatus,
    *,
    decision: Decision,
    user: User,
    now: dt.datetime,
) -> list[Unit]:
    """Bags still in quarantine follow the decision; bags used up by QC stay as they are."""
    moved = []
    for bag in processing.bags_of(session, lot):
        if bag.status != UnitStatus.QUARANTINE.value:
            continue
        chain.change_status(
            session, bag, target, actor=user, now=now, reason=f"lot {lot.lot_number} {decision}"
        )
        moved.append(bag)
    return moved


def _test_lines(
    session: DbSession, lot: Lot, spec: Specification | None
) -> tuple[list[TestLine], list[QcResult]]:
    everything = qc.results_of(session, lot)
    lines = []
    listed = set()
    for test in spec.parameters["tests"] if spec else []:
        code = test["code"]
        listed.add(code)
        mine = [result for result in everything if result.test_code == code]
        valid = next((result for result in mine if result.valid), None)
        lines.append(TestLine(test, valid, [result for result in mine if not result.valid]))
    others = [result for result in everything if result.test_code not in listed]
    return lines, others


def _quarantined(lot: Lot) -> tuple[bool, str]:
    if lot.status == LotStatus.QUARANTINE.value:
        return True, _("in quarantine, not yet released or rejected")
    return False, _("already %(status)s", status=term(lot.status))


def _none_blocked(session: DbSession, lot: Lot) -> tuple[bool, str]:
    """A recall blocks a lot's bags for good: what is left of the lot may not be released."""
    blocked = [
        bag.code
        for bag in processing.bags_of(session, lot)
        if bag.status == UnitStatus.BLOCKED.value
    ]
    if blocked:
        return False, _(
            "%(count)s bag(s) blocked: %(codes)s", count=len(blocked), codes=", ".join(blocked)
        )
    return True, _("no bag blocked")


def _donor_eligible(donation: Donation) -> tuple[bool, str]:
    if donation.eligibility == Eligibility.ELIGIBLE.value:
        return True, _("donation %(din)s determined eligible by QA", din=donation.din)
    return False, _(
        "donation %(din)s is %(eligibility)s",
        din=donation.din,
        eligibility=term(donation.eligibility),
    )


def _results(spec: Specification | None, tests: list[TestLine]) -> tuple[bool, str]:
    if spec is None:
        return False, _("no release specification is in force")
    missing = [line.test["name"] for line in tests if line.result is None]
    failing = [
        _(
            "%(test)s %(value)s (criterion %(criterion)s)",
            test=line.test["name"],
            value=qc.format_value(line.result),
            criterion=line.result.criterion,
        )
        for line in tests
        if line.result is not None and not line.result.passes
    ]
    problems = []
    if failing:
        problems.append(_("out of specification: %(tests)s", tests=joined(failing, ", ")))
    if missing:
        problems.append(_("missing: %(tests)s", tests=", ".join(missing)))
    if problems:
        return False, joined(problems, "; ")
    return True, _(
        "all %(count)s tests of %(spec)s v%(version)s pass",
        count=len(tests),
        spec=spec.code,
        version=spec.version,
    )


def _limits(lot: Lot) -> tuple[bool, str]:
    flags = lot.limit_flags
    if flags:
        return False, "; ".join(flags)
    cpd = lot.final_cumulative_pd or 0
    return True, f"P{lot.final_passage}, CPD {cpd:.1f}, DMSO {lot.dmso_percent:g} %"


def _no_open(found: list[Deviation], *, excursion: bool) -> tuple[bool, str]:
    if not found:
        return True, _("no open excursion") if excursion else _("no open deviation")
    listed = joined(
        (_("#%(id)s (%(category)s)", id=d.id, category=term(d.category)) for d in found), ", "
    )
    return False, _("open: %(listed)s; QA closes each with a resolution first", listed=listed)


def _expiry(lot: Lot, now: dt.datetime, zone: ZoneInfo) -> tuple[bool, str]:
    if lot.expires_at is None:
        return False, _("the lot has no expiry: its product version sets no shelf life")
    if lot.expires_at <= now:
        return False, _("expired %(when)s", when=local_time(lot.expires_at, zone))
    return True, _("expires %(when)s", when=local_time(lot.expires_at, zone))


def _already_decided(disposition: LotDisposition, zone: ZoneInfo) -> Conflict:
    return Conflict(
        _(
            "Lot %(lot)s was already %(decision)s by %(who)s at %(when)s; a lot has one "
            "disposition.",
            lot=disposition.lot.lot_number,
            decision=term(disposition.decision),
            who=disposition.decided_by.full_name,
            when=local_time(disposition.decided_at, zone),
        ),
        title=_("Already decided"),
    )


def _optional_text(value: str | None) -> str | None:
    text = (value or "").strip()
    if len(text) > MAX_REASON:
        raise InvalidInput(
            _("The reason is limited to %(most)s characters.", most=MAX_REASON),
            errors={"reason": [_("Too long.")]},
        )
    return text or None
