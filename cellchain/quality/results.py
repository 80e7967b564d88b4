"""Rules of QC samples and release-test results (DOMAIN.md §5).

A QC sample is a tube drawn from a bag of the lot (lineage operation ``sample``). A result names
the tube it was measured on, the analyst, the instrument and the test date; it is evaluated
against the specification version in force the moment it is recorded, and the version, the
criterion and the verdict are kept with it. A result is never changed: a retest is recorded
only after QA has invalidated the earlier result with a reason and a signature. An
out-of-specification (OOS) result opens an investigation (a deviation) against the lot, which
blocks its release until QA closes it.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from cellchain.chain import service as chain
from cellchain.chain.models import LineageOperation, Unit, UnitKind
from cellchain.core import actions, audit, signatures
from cellchain.core.display import scientific
from cellchain.core.guarded import update_if
from cellchain.core.i18n import _
from cellchain.core.models import Signature, User
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, require
from cellchain.core.wording import joined_text as joined
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.equipment import service as equipment_service
from cellchain.manufacturing.models import CellRecord, DeviationCategory, Equipment, Lot, LotStatus
from cellchain.manufacturing.processing import processing
from cellchain.manufacturing.terms import term
from cellchain.notifications import service as notifications
from cellchain.quality.evaluation import evaluate, read_value
from cellchain.quality.models import QcResult, QcSample, ResultStatus, Specification
from cellchain.quality.service import SPECIFICATIONS

#: The meaning printed with QA's signature on an invalidated result.
INVALIDATION_MEANING = "approval: result invalidated, retest allowed"

#: Most sample tubes drawn at once, and the longest free texts kept.
MAX_TUBES = 20
MAX_REASON = 5000
QC_LOCATION = "QC laboratory"

#: Release testing is open while the lot awaits QA's disposition; a released or rejected lot's
#: testing is closed (``require_undisposed``).
TESTING_OPEN: frozenset[LotStatus] = frozenset({LotStatus.QUARANTINE})


class QcAction(enum.StrEnum):
    """What may be done in a lot's release testing."""

    TAKE_SAMPLES = "take_samples"  #: draw labelled QC sample tubes from a bag
    RECORD_RESULTS = "record_results"  #: record results against the specification in force


class ResultAction(enum.StrEnum):
    """What may be done with one recorded result."""

    INVALIDATE = "invalidate"  #: QA sets it aside (signed), so a retest may be recorded


#: The lot statuses each release-testing act starts from.
QC_ACTIONS: dict[QcAction, frozenset[LotStatus]] = {
    QcAction.TAKE_SAMPLES: TESTING_OPEN,
    QcAction.RECORD_RESULTS: TESTING_OPEN,
}
#: The result statuses each act on a result starts from (its lot's testing open as well).
RESULT_ACTIONS: dict[ResultAction, frozenset[ResultStatus]] = {
    ResultAction.INVALIDATE: frozenset({ResultStatus.VALID}),
}


def qc_actions(lot: Lot, specification: Specification | None) -> frozenset[QcAction]:
    """The release-testing acts the lot's status allows; the page offers these (permissions apart).

    Results are recorded against a specification in force, so none without one.
    """
    acts = actions.allowed(lot.status, QC_ACTIONS)
    if specification is None:
        return acts - {QcAction.RECORD_RESULTS}
    return acts


def result_actions(result: QcResult) -> frozenset[ResultAction]:
    """The acts the result's status and its lot's allow (permissions apart)."""
    if result.lot.status not in TESTING_OPEN:
        return frozenset()
    return actions.allowed(result.status, RESULT_ACTIONS)


@dataclass(frozen=True)
class SampleRequest:
    """Tubes to draw from one bag of the lot."""

    bag_code: str
    tubes: int = 1
    purpose: str | None = None
    #: the whole bag goes to testing (a dedicated QC bag) and is consumed
    bag_used_up: bool = True
    #: when the samples were drawn, if written up afterwards
    taken_at: dt.datetime | None = None


@dataclass(frozen=True)
class ResultEntry:
    """One measured value as the analyst enters it."""

    test_code: str
    value: Any
    instrument: str
    tested_on: dt.date
    unit: str | None = None


# --- samples ------------------------------------------------------------------------------------


def take_samples(
    session: DbSession, lot: Lot, request: SampleRequest, *, actor: User, now: dt.datetime
) -> list[QcSample]:
    """Draw ``request.tubes`` labelled sample tubes from a bag of ``lot``."""
    require_undisposed(lot)
    if not 1 <= request.tubes <= MAX_TUBES:
        raise InvalidInput(
            _(
                "Draw 1 to %(most)s tubes at a time; %(asked)s were asked for.",
                most=MAX_TUBES,
                asked=request.tubes,
            ),
            errors={"tubes": [_("Between 1 and %(most)s.", most=MAX_TUBES)]},
        )
    bag = chain.resolve_unit(session, request.bag_code)
    if bag.id not in {unit.id for unit in processing.bags_of(session, lot)}:
        raise InvalidInput(
            _(
                "%(bag)s is not a bag of lot %(lot)s; draw QC samples from the lot's own bags.",
                bag=bag.code,
                lot=lot.lot_number,
            ),
            errors={"bag": [_("Not a bag of lot %(lot)s.", lot=lot.lot_number)]},
        )
    purpose = (request.purpose or "").strip() or None
    if purpose and len(purpose) > 200:
        raise InvalidInput(
            _("The purpose is limited to %(most)s characters.", most=200),
            errors={"purpose": [_("Too long.")]},
        )
    taken_at = request.taken_at or now
    tubes = chain.derive_units(
        session,
        parents=[bag],
        kind=UnitKind.SAMPLE_TUBE,
        operation=LineageOperation.SAMPLE,
        count=request.tubes,
        location=QC_LOCATION,
        actor=actor,
        now=now,
        consume_parents=request.bag_used_up,
        at=taken_at,
    )
    samples = [
        QcSample(
            unit_id=tube.id,
            lot_id=lot.id,
            taken_from_id=bag.id,
            taken_at=taken_at,
            taken_by_id=actor.id,
            purpose=purpose,
        )
        for tube in tubes
    ]
    session.add_all(samples)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="qc.samples_taken",
        entity_type="lot",
        entity_id=lot.id,
        changes={
            "bag": (None, bag.code),
            "tubes": (None, [tube.code for tube in tubes]),
            "bag_used_up": (None, request.bag_used_up),
            "purpose": (None, purpose),
        },
    )
    notifications.notify(
        session,
        "qc_samples_awaiting_results",
        entity_type="lot",
        entity_id=lot.id,
        params={"lot_id": lot.id, "lot": lot.lot_number, "bag": bag.code, "tubes": len(tubes)},
        actor=actor,
        now=now,
    )
    return samples


def samples_of(session: DbSession, lot: Lot) -> list[QcSample]:
    return list(
        session.execute(
            select(QcSample).where(QcSample.lot_id == lot.id).order_by(QcSample.unit_id)
        ).scalars()
    )


def resolve_sample(session: DbSession, lot: Lot, code: str) -> QcSample:
    """The QC sample of ``lot`` whose tube label was scanned, or why it is not one."""
    unit = chain.resolve_unit(session, code)
    sample = session.get(QcSample, unit.id)
    if sample is None:
        raise InvalidInput(
            _(
                "%(unit)s is a %(kind)s, not a QC sample tube.",
                unit=unit.code,
                kind=unit.kind_name.lower(),
            ),
            errors={"sample": [_("Scan a QC sample tube of this lot.")]},
        )
    if sample.lot_id != lot.id:
        raise InvalidInput(
            _(
                "%(unit)s is a sample of another lot, not of %(lot)s.",
                unit=unit.code,
                lot=lot.lot_number,
            ),
            errors={"sample": [_("Not a sample of lot %(lot)s.", lot=lot.lot_number)]},
        )
    return sample


# --- results ------------------------------------------------------------------------------------


def instruments_offered(session: DbSession) -> list[Equipment]:
    """The registered instruments the results form offers (``equipment.service.instruments``):
    a choice, with any other instrument typed; either way ``record_results`` links a
    registered one and requires it in date."""
    return equipment_service.instruments(session)


def record_results(
    session: DbSession,
    lot: Lot,
    *,
    sample_code: str,
    entries: Sequence[ResultEntry],
    actor: User,
    now: dt.datetime,
    site_zone: ZoneInfo,
) -> list[QcResult]:
    """Record results measured on one sample tube: all of them, or (on any error) none.

    Each is checked against the specification in force (a test it lists, a value of the
    test's type in the test's unit), judged, and stored with the version and the verdict. A
    test that already has a valid result on this lot is refused until QA invalidates it. Each
    OOS result opens an investigation (deviation) on the lot.
    """
    require_undisposed(lot)
    if not entries:
        raise InvalidInput(_("Enter at least one result."), errors={"results": [_("None given.")]})
    spec = specification_of_lot(session, lot, at=now)
    sample = resolve_sample(session, lot, sample_code)
    tests = {test["code"]: test for test in spec.parameters["tests"]}
    valid = valid_results(session, lot)
    today = now.astimezone(site_zone).date()
    taken_on = sample.taken_at.astimezone(site_zone).date()
    errors: dict[str, list[str]] = {}
    messages: list[str] = []
    readings: list[tuple[ResultEntry, dict[str, Any], float | str]] = []
    seen: set[str] = set()
    for entry in entries:
        code = entry.test_code.strip().upper()
        test = tests.get(code)
        if test is None:
            raise InvalidInput(
                _(
                    "%(test)s is not a test of specification %(spec)s v%(version)s; its tests "
                    "are: %(tests)s.",
                    test=repr(entry.test_code),
                    spec=spec.code,
                    version=spec.version,
                    tests=", ".join(tests),
                ),
                errors={f"{code}.test": [_("Not in the specification in force.")]},
            )
        if code in seen:
            raise InvalidInput(
                _("%(test)s was entered twice.", test=code),
                errors={f"{code}.test": [_("Twice.")]},
            )
        seen.add(code)
        if code in valid:
            earlier = valid[code]
            raise Conflict(
                _(
                    "A valid %(test)s result is on file for lot %(lot)s (#%(id)s: %(value)s). "
                    "A result is never overwritten: QA invalidates it with a reason and a "
                    "signature before a retest is recorded.",
                    test=test["name"],
                    lot=lot.lot_number,
                    id=earlier.id,
                    value=format_value(earlier),
                ),
                errors={f"{code}.value": [_("A valid result is already on file.")]},
                title=_("Retest needs an invalidation"),
            )
        try:
            value = read_value(test, entry.value, entry.unit)
        except InvalidInput as refused:
            for field, problems in refused.errors.items():
                errors.setdefault(f"{code}.{field}", []).extend(problems)
            messages.append(refused.detail)
            continue
        if not entry.instrument or not entry.instrument.strip():
            errors.setdefault(f"{code}.instrument", []).append(_("Which instrument was used."))
        elif len(entry.instrument.strip()) > 60:
            errors.setdefault(f"{code}.instrument", []).append(
                _("At most %(most)s characters.", most=60)
            )
        if entry.tested_on > today:
            errors.setdefault(f"{code}.tested_on", []).append(_("Not in the future."))
        elif entry.tested_on < taken_on:
            errors.setdefault(f"{code}.tested_on", []).append(
                _("Before the sample was drawn (%(drawn)s).", drawn=taken_on.isoformat())
            )
        readings.append((entry, test, value))
    if errors:
        detail = (
            joined(messages, " ") if messages else _("Some results cannot be recorded as entered.")
        )
        raise InvalidInput(detail, errors=errors)
    # registered equipment the instrument's words name (its asset ID, however typed, alone
    # or beside a model's name) must be in service and in date on the day of the test
    # (issue 22); the result names the first
    instruments: dict[str, int] = {}
    for entry, test, _value in readings:
        named = equipment_service.named_in(session, entry.instrument)
        equipment_service.require_in_date(
            session, named, on=entry.tested_on, field=f"{test['code']}.instrument"
        )
        if named:
            instruments[test["code"]] = named[0].id
    labelled = labelled_viable_cells_per_bag(session, sample)
    results = [
        _new_result(lot, sample, spec, test, entry, value, labelled, actor=actor, now=now)
        for entry, test, value in readings
    ]
    for result in results:
        result.equipment_id = instruments.get(result.test_code)
    session.add_all(results)
    try:
        session.flush()
    except IntegrityError:
        # Another analyst recorded the same test a moment ago (the one-valid-result index).
        raise Conflict(
            _(
                "Someone recorded one of these tests for lot %(lot)s a moment ago; reload the "
                "page to see it.",
                lot=lot.lot_number,
            ),
            title=_("Recorded concurrently"),
        ) from None
    for result in results:
        _audit_result(session, result, actor=actor, now=now)
        if not result.passes:
            _open_investigation(session, lot, result, actor=actor, now=now)
    if set(tests) <= set(valid) | {result.test_code for result in results}:
        notifications.notify(  # every test of the specification has its result now
            session,
            "lot_to_review",
            entity_type="lot",
            entity_id=lot.id,
            params={"lot_id": lot.id, "lot": lot.lot_number},
            actor=actor,
            now=now,
        )
    return results


def invalidate_result(
    session: DbSession,
    result: QcResult,
    *,
    reason: str,
    user: User,
    password: str,
    now: dt.datetime,
) -> Signature:
    """QA sets a result aside with a reason and signs (password re-entered); it stays visible
    and a retest of the test may then be recorded."""
    require(user, Permission.INVALIDATE_QC_RESULTS)
    text = (reason or "").strip()
    if not text:
        raise InvalidInput(
            _(
                "Say why the result is invalid (e.g. the laboratory investigation that found "
                "an assay error)."
            ),
            errors={"reason": [_("Required.")]},
        )
    if len(text) > MAX_REASON:
        raise InvalidInput(
            _("The reason is limited to %(most)s characters.", most=MAX_REASON),
            errors={"reason": [_("Too long.")]},
        )
    require_undisposed(result.lot)
    if not result.valid:
        raise Conflict(_("Result #%(id)s was already invalidated.", id=result.id))
    if not update_if(
        session,
        result,
        QcResult.status == ResultStatus.VALID.value,
        status=ResultStatus.INVALIDATED.value,
        invalidated_at=now,
        invalidated_by_id=user.id,
        invalidation_reason=text,
    ):
        raise Conflict(
            _("Result #%(id)s was invalidated by someone else a moment ago.", id=result.id)
        )
    set_committed_value(result, "invalidated_by", user)
    signature = signatures.sign(
        session,
        record=result,
        meaning=INVALIDATION_MEANING,
        user=user,
        password=password,
        now=now,
        permission=Permission.INVALIDATE_QC_RESULTS,
    )
    audit.record(
        session,
        actor=user,
        at=now,
        action="qc_result.invalidated",
        entity_type="qc_result",
        entity_id=result.id,
        changes={
            "status": (ResultStatus.VALID.value, ResultStatus.INVALIDATED.value),
            "reason": (None, text),
            "signature_id": (None, signature.id),
        },
        reason=text,
    )
    return signature


# --- reading ------------------------------------------------------------------------------------


def specification_of_lot(session: DbSession, lot: Lot, *, at: dt.datetime) -> Specification:
    """The release specification ``lot`` is judged against: the version its first QC result
    was recorded under (a lot keeps the version it was tested under, whatever QA signs
    later); before any result, the version in force at ``at``, refused when there is none."""
    first = session.execute(
        select(QcResult.specification_id)
        .where(QcResult.lot_id == lot.id)
        .order_by(QcResult.id)
        .limit(1)
    ).scalar_one_or_none()
    if first is not None:
        return get_or_404(session, Specification, first, "specification")
    return SPECIFICATIONS.in_force(session, lot.product_definition.code, at=at)


def results_of(session: DbSession, lot: Lot) -> list[QcResult]:
    """Every result of ``lot``, valid and invalidated, in the order recorded."""
    return list(
        session.execute(
            select(QcResult).where(QcResult.lot_id == lot.id).order_by(QcResult.id)
        ).scalars()
    )


def valid_results(session: DbSession, lot: Lot) -> dict[str, QcResult]:
    """The result that counts for each test: the valid one."""
    return {
        result.test_code: result
        for result in session.execute(
            select(QcResult).where(
                QcResult.lot_id == lot.id, QcResult.status == ResultStatus.VALID.value
            )
        ).scalars()
    }


def get_result(session: DbSession, result_id: int) -> QcResult:
    return get_or_404(session, QcResult, result_id, "QC result")


def count_samples_awaiting_results(session: DbSession) -> int:
    """How many QC samples of lots not yet released or rejected (quarantine, where
    ``require_undisposed`` still lets results be recorded) have no valid result recorded on
    them yet (one statement). A sample drawn for several tests counts as done once any valid
    result names it: the specification's tests still missing are the QA review's
    (``disposition.review``), not a sample's."""
    measured = select(QcResult.sample_id).where(QcResult.status == ResultStatus.VALID.value)
    return session.execute(
        select(func.count())
        .select_from(QcSample)
        .join(Lot, Lot.id == QcSample.lot_id)
        .where(Lot.status == LotStatus.QUARANTINE.value, QcSample.unit_id.not_in(measured))
    ).scalar_one()


def out_of_specification_lot_ids(session: DbSession) -> set[int]:
    """The lots with a valid OOS result: the lots flagged red wherever they appear."""
    return set(
        session.execute(
            select(QcResult.lot_id)
            .where(QcResult.status == ResultStatus.VALID.value, QcResult.passes.is_(False))
            .distinct()
        ).scalars()
    )


def lot_of_unit(session: DbSession, unit: Unit) -> Lot | None:
    """The lot ``unit`` is a bag of, or a QC sample of; ``None`` for any other unit."""
    sample = session.get(QcSample, unit.id)
    if sample is not None:
        return sample.lot
    record = session.get(CellRecord, unit.id)
    if record is not None and record.lot_id is not None:
        return session.get(Lot, record.lot_id)
    return None


def labelled_viable_cells_per_bag(session: DbSession, sample: QcSample) -> float | None:
    """The viable cells the label of the bag the sample came from stands for: its TOTAL cells
    × its viability at fill, both printed on it. The viability is applied here once; the bag's
    count is never read as viable (DOMAIN.md §7)."""
    records = processing.cell_records(session, [sample.taken_from])
    record = records.get(sample.taken_from_id)
    return record.viable_cells_at_fill if record is not None else None


def format_value(result: QcResult) -> str:
    """A result's value as printed: ``97 %``, ``1.02 × 10⁸ cells``, ``no growth``."""
    if result.value_number is None:
        return str(result.value_text)
    number = result.value_number
    shown = scientific(number) if abs(number) >= 1e5 else f"{number:g}"
    return f"{shown} {result.unit}" if result.unit else shown


def require_undisposed(lot: Lot) -> None:
    """Results belong to the review before disposition; a released or rejected lot is closed."""
    if lot.status not in TESTING_OPEN:
        raise Conflict(
            _(
                "Lot %(lot)s has been %(status)s; its release testing is closed.",
                lot=lot.lot_number,
                status=term(lot.status),
            ),
            title=_("Lot %(status)s", status=term(lot.status)),
        )


# --- internals ----------------------------------------------------------------------------------


def _new_result(
    lot: Lot,
    sample: QcSample,
    spec: Specification,
    test: dict[str, Any],
    entry: ResultEntry,
    value: float | str,
    labelled: float | None,
    *,
    actor: User,
    now: dt.datetime,
) -> QcResult:
    relative = "within_labelled_percent" in test["criterion"]
    if relative and labelled is None:
        raise Conflict(
            _(
                "%(test)s is judged against the bag's labelled value, and the bag %(bag)s has "
                "no fill on record.",
                test=test["name"],
                bag=sample.taken_from.code,
            )
        )
    verdict = evaluate(test, value, labelled=labelled if relative else None)
    return QcResult(
        lot_id=lot.id,
        sample_id=sample.unit_id,
        specification_id=spec.id,
        test_code=test["code"],
        test_name=test["name"],
        method=test.get("method", ""),
        value_number=value if isinstance(value, float) else None,
        value_text=value if isinstance(value, str) else None,
        unit=test.get("unit") if isinstance(value, float) else None,
        labelled_value=labelled if relative else None,
        criterion=verdict.criterion,
        passes=verdict.passes,
        instrument=entry.instrument.strip(),
        tested_on=entry.tested_on,
        analyst_id=actor.id,
        recorded_at=now,
        status=ResultStatus.VALID.value,
    )


def _audit_result(session: DbSession, result: QcResult, *, actor: User, now: dt.datetime) -> None:
    audit.record(
        session,
        actor=actor,
        at=now,
        action="qc_result.recorded",
        entity_type="qc_result",
        entity_id=result.id,
        changes={
            "lot_id": (None, result.lot_id),
            "test": (None, result.test_code),
            "value": (None, result.value),
            "unit": (None, result.unit),
            "criterion": (None, result.criterion),
            "passes": (None, result.passes),
            "specification_id": (None, result.specification_id),
            "instrument": (None, result.instrument),
            "tested_on": (None, result.tested_on),
        },
    )


def _open_investigation(
    session: DbSession, lot: Lot, result: QcResult, *, actor: User, now: dt.datetime
) -> None:
    # The investigation's description is a record: English, whoever recorded the result.
    deviations.open_deviation(
        session,
        lot=lot,
        category=DeviationCategory.OUT_OF_SPECIFICATION,
        description=(
            f"Out-of-specification result #{result.id}: {result.test_name} "
            f"{format_value(result)}, criterion {result.criterion} (tested on "
            f"{result.tested_on.isoformat()}, instrument {result.instrument}). Investigate: "
            "if a laboratory error is proven, QA invalidates the result and a retest is "
            "recorded; otherwise the lot is rejected."
        ),
        actor=actor,
        now=now,
    )
