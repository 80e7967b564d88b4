"""The trial's randomization (DOMAIN.md §7; issue 19): a schedule signed by the statistician,
drawn in sequence at enrolment, concealed until the enrolment is complete.

Two ways to make a schedule, each signed by the trial statistician with their password
(meaning ``approval: randomization schedule``) and audited:

- **Permuted blocks** generated here from a seed the statistician types once. The seed is
  never stored: only its SHA-256, so the statistician (who keeps the seed in the trial
  master file) can show later that the schedule came from it, and nobody can regenerate the
  schedule from the database. The generator is written out below (HMAC-SHA256 of the seed
  over a counter, unbiased by rejection, Fisher–Yates within each block), so a second
  program can reproduce a schedule from its seed without Python's ``random``, whose
  algorithms may change between versions.
- **An imported list** (CSV: randomization number, arm) made by the sponsor's statistician
  elsewhere; refused when an arm is unknown, a number is repeated or missing, or the counts
  do not fit the protocol's planned enrolment and ratio.

One active schedule per trial; it may be replaced (the old one superseded) only while no
slot is used. Enrolment (``patients.enrol``) takes the next unused slot with a guarded
update, so two enrolments at once get different slots; when every slot is used the planned
enrolment is reached and enrolment is refused. The enroller never chooses nor sees the arm
before the patient is enrolled: an unused slot's arm is shown on the statistician's pages
only, and the trail keeps a digest of it (``core.record_state.DIGESTED_COLUMNS``).

Services flush; the caller commits (one use case, one transaction).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from cellchain.core import audit, signatures
from cellchain.core.guarded import update_if
from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.core.roles import Permission, Role, has_permission, knows_the_schedule, require
from cellchain.dosing.models import (
    Patient,
    Protocol,
    RandomizationMethod,
    RandomizationSchedule,
    RandomizationSlot,
    ScheduleStatus,
)
from cellchain.errors import Conflict, InvalidInput, PermissionDenied
from cellchain.extensions import DbSession

SIGNATURE_MEANING = "approval: randomization schedule"
#: the block sizes offered when the statistician names none (for 1:1: blocks of 2 and 4)
DEFAULT_BLOCK_MULTIPLES = (1, 2)
#: a seed shorter than this could be guessed by trying every schedule's seed
MIN_SEED_LENGTH = 12
NUMBER_MAX = 30
#: how many slots an enrolment tries when others take the next one at the same moment
_CLAIM_ATTEMPTS = 20


@dataclass(frozen=True)
class ScheduleStatusView:
    """What anyone may see of a schedule: how many slots are used and remain, never an arm."""

    schedule: RandomizationSchedule | None
    planned: int
    used: int

    @property
    def remaining(self) -> int:
        return self.planned - self.used


# --- reading ------------------------------------------------------------------------------------


def active_schedule(session: DbSession, protocol_code: str) -> RandomizationSchedule | None:
    return session.execute(
        select(RandomizationSchedule).where(
            RandomizationSchedule.protocol_code == protocol_code,
            RandomizationSchedule.status == ScheduleStatus.ACTIVE.value,
        )
    ).scalar_one_or_none()


def used_slots(session: DbSession, schedule: RandomizationSchedule) -> int:
    return int(
        session.execute(
            select(func.count(RandomizationSlot.id)).where(
                RandomizationSlot.schedule_id == schedule.id,
                RandomizationSlot.patient_id.is_not(None),
            )
        ).scalar_one()
    )


def status(session: DbSession, protocol: Protocol) -> ScheduleStatusView:
    """The active schedule of ``protocol``'s trial with its used and planned counts."""
    schedule = active_schedule(session, protocol.code)
    if schedule is None:
        return ScheduleStatusView(None, planned_enrolment(protocol), 0)
    return ScheduleStatusView(schedule, schedule.planned_enrolment, used_slots(session, schedule))


def planned_enrolment(protocol: Protocol) -> int:
    return int(protocol.parameters["randomization"]["planned_enrolment"])


def ratio_of(protocol: Protocol) -> dict[str, int]:
    """The protocol's arms with their share of the ratio, in the protocol's order ("1:1" →
    {"MSC": 1, "CONTROL": 1})."""
    arms = [arm["code"] for arm in protocol.parameters["arms"]]
    parts = str(protocol.parameters["randomization"]["ratio"]).split(":")
    if len(parts) != len(arms) or not all(part.strip().isdigit() for part in parts):
        raise Conflict(
            _(
                "The ratio %(ratio)s of %(protocol)s does not give one whole number per arm"
                " (%(arms)s); QA corrects the protocol before a schedule can be made.",
                ratio=repr(protocol.parameters["randomization"]["ratio"]),
                protocol=protocol.code,
                arms=", ".join(arms),
            )
        )
    return {arm: int(part) for arm, part in zip(arms, parts, strict=True)}


def expected_counts(protocol: Protocol) -> dict[str, int]:
    """How many patients each arm has at the planned enrolment; refused when the planned
    enrolment cannot be split by the ratio."""
    ratio = ratio_of(protocol)
    planned, total = planned_enrolment(protocol), sum(ratio.values())
    if planned <= 0 or total <= 0 or planned % total:
        raise Conflict(
            _(
                "The planned enrolment of %(protocol)s (%(planned)s) cannot be split"
                " %(ratio)s; QA corrects the protocol before a schedule can be made.",
                protocol=protocol.code,
                planned=planned,
                ratio=protocol.parameters["randomization"]["ratio"],
            )
        )
    return {arm: planned // total * share for arm, share in ratio.items()}


# --- permuted blocks ----------------------------------------------------------------------------


class SeededDraws:
    """Unbiased integers from a seed: HMAC-SHA256(seed, counter as 8 bytes big-endian), the
    first 8 bytes as an unsigned integer, redrawn when it falls in the last incomplete
    multiple of ``n`` (so every value of ``range(n)`` is equally likely)."""

    def __init__(self, seed: str) -> None:
        self._key = seed.encode("utf-8")
        self._counter = 0

    def below(self, n: int) -> int:
        limit = 2**64 - (2**64 % n)
        while True:
            digest = hmac.new(self._key, self._counter.to_bytes(8, "big"), hashlib.sha256)
            self._counter += 1
            value = int.from_bytes(digest.digest()[:8], "big")
            if value < limit:
                return value % n


def permuted_blocks(
    seed: str, ratio: dict[str, int], planned: int, block_sizes: Sequence[int]
) -> list[str]:
    """The arms of a permuted-block schedule of ``planned`` places.

    Each block's size is drawn among ``block_sizes`` that still fit (the last block takes
    what remains when none does); a block holds each arm in the ratio and is shuffled by
    Fisher–Yates. Every size and ``planned`` are multiples of the ratio's total, so the
    schedule is balanced at the end of each block.
    """
    draws = SeededDraws(seed)
    base = sum(ratio.values())
    arms: list[str] = []
    while len(arms) < planned:
        remaining = planned - len(arms)
        fitting = [size for size in block_sizes if size <= remaining]
        size = fitting[draws.below(len(fitting))] if fitting else remaining
        block = [arm for arm, share in ratio.items() for _ in range(share * size // base)]
        for i in range(len(block) - 1, 0, -1):
            j = draws.below(i + 1)
            block[i], block[j] = block[j], block[i]
        arms.extend(block)
    return arms


def generate(
    session: DbSession,
    protocol: Protocol,
    *,
    seed: str,
    block_sizes: Sequence[int] | None,
    user: User,
    password: str,
    now: dt.datetime,
) -> RandomizationSchedule:
    """A permuted-block schedule from the statistician's seed, signed by them."""
    require(user, Permission.MANAGE_RANDOMIZATION)
    counts = expected_counts(protocol)
    base = sum(ratio_of(protocol).values())
    sizes = list(block_sizes or [base * multiple for multiple in DEFAULT_BLOCK_MULTIPLES])
    errors: dict[str, list[str]] = {}
    if len(seed) < MIN_SEED_LENGTH or not seed.strip():
        errors["seed"] = [
            _(
                "A seed of at least %(count)s characters (a short one can be guessed); keep it"
                " in the trial master file: it is never shown again.",
                count=MIN_SEED_LENGTH,
            )
        ]
    bad = [size for size in sizes if size <= 0 or size % base]
    if not sizes or bad:
        errors["block_sizes"] = [
            _(
                "Each block size is a positive multiple of %(base)s, the ratio's total"
                " (%(ratio)s), e.g. %(base)s and %(double)s.",
                base=base,
                ratio=protocol.parameters["randomization"]["ratio"],
                double=2 * base,
            )
        ]
    if errors:
        raise InvalidInput(
            _(
                "The schedule was not made: %(problems)s",
                problems=" ".join(m for ms in errors.values() for m in ms),
            ),
            errors=errors,
        )
    arms = permuted_blocks(seed, ratio_of(protocol), sum(counts.values()), sorted(set(sizes)))
    rows = [(f"R-{number:03d}", arm) for number, arm in enumerate(arms, 1)]
    return _make(
        session,
        protocol,
        method=RandomizationMethod.PERMUTED_BLOCK,
        rows=rows,
        block_sizes=",".join(str(size) for size in sorted(set(sizes))),
        source_sha256=hashlib.sha256(seed.encode("utf-8")).hexdigest(),
        user=user,
        password=password,
        now=now,
    )


# --- imported lists -----------------------------------------------------------------------------


def parse_list(text: str) -> list[tuple[str, str]]:
    """The rows of a CSV list (randomization number, arm), a header line allowed."""
    rows: list[tuple[str, str]] = []
    problems: list[str] = []
    for line_no, cells in enumerate(csv.reader(io.StringIO(text)), 1):
        cells = [cell.strip() for cell in cells]
        if not any(cells):
            continue
        if line_no == 1 and cells[0].lower().replace(" ", "_") in {
            "randomization_number",
            "number",
        }:
            continue
        if len(cells) != 2:
            problems.append(
                _("line %(line)s: two values (randomization number, arm)", line=line_no)
            )
            continue
        rows.append((cells[0], cells[1].upper()))
    if problems:
        raise InvalidInput(
            _("The list was not imported: %(problems)s.", problems="; ".join(problems)),
            errors={"csv": problems},
        )
    return rows


def import_list(
    session: DbSession,
    protocol: Protocol,
    *,
    text: str,
    user: User,
    password: str,
    now: dt.datetime,
) -> RandomizationSchedule:
    """A randomization list made elsewhere, checked against the protocol, signed."""
    require(user, Permission.MANAGE_RANDOMIZATION)
    counts = expected_counts(protocol)
    rows = parse_list(text)
    problems: list[str] = []
    unknown = sorted({arm for _, arm in rows if arm not in counts})
    if unknown:
        problems.append(
            _(
                "unknown arm %(unknown)s (the protocol's arms: %(arms)s)",
                unknown=", ".join(unknown),
                arms=", ".join(counts),
            )
        )
    numbers = Counter(number for number, _ in rows)
    repeated = sorted(number for number, seen in numbers.items() if seen > 1)
    if repeated:
        problems.append(
            _("randomization number repeated: %(numbers)s", numbers=", ".join(repeated))
        )
    if any(not number or len(number) > NUMBER_MAX for number in numbers):
        problems.append(
            _("every randomization number has 1 to %(count)s characters", count=NUMBER_MAX)
        )
    planned = sum(counts.values())
    if len(rows) != planned:
        problems.append(
            _(
                "%(rows)s rows; the planned enrolment is %(planned)s",
                rows=len(rows),
                planned=planned,
            )
        )
    elif not unknown:
        found = Counter(arm for _, arm in rows)
        if dict(found) != {arm: n for arm, n in counts.items() if n}:
            expected = ", ".join(f"{n} {arm}" for arm, n in counts.items())
            seen = ", ".join(f"{found.get(arm, 0)} {arm}" for arm in counts)
            problems.append(
                _(
                    "the arms do not fit the ratio %(ratio)s: expected %(expected)s, found"
                    " %(found)s",
                    ratio=protocol.parameters["randomization"]["ratio"],
                    expected=expected,
                    found=seen,
                )
            )
    if problems:
        raise InvalidInput(
            _("The list was not imported: %(problems)s.", problems="; ".join(problems)),
            errors={"csv": problems},
        )
    canonical = "\n".join(f"{number},{arm}" for number, arm in rows)
    return _make(
        session,
        protocol,
        method=RandomizationMethod.IMPORTED,
        rows=rows,
        block_sizes=None,
        source_sha256=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        user=user,
        password=password,
        now=now,
    )


def _make(
    session: DbSession,
    protocol: Protocol,
    *,
    method: RandomizationMethod,
    rows: list[tuple[str, str]],
    block_sizes: str | None,
    source_sha256: str,
    user: User,
    password: str,
    now: dt.datetime,
) -> RandomizationSchedule:
    """Supersede the unused active schedule (if any), store and sign the new one."""
    previous = _lock_active(session, protocol.code)  # an enrolment drawing waits, or is waited for
    if previous is not None:
        used = used_slots(session, previous)
        if used:
            raise Conflict(
                _(
                    "The randomization schedule of %(protocol)s cannot be replaced: %(used)s of"
                    " its %(planned)s slots are used by enrolled patients.",
                    protocol=protocol.code,
                    used=used,
                    planned=previous.planned_enrolment,
                ),
                title=_("Randomization in use"),
            )
        if not update_if(
            session,
            previous,
            RandomizationSchedule.status == ScheduleStatus.ACTIVE.value,
            status=ScheduleStatus.SUPERSEDED.value,
        ):
            raise Conflict(_("The randomization schedule was replaced a moment ago; reload."))
        audit.record(
            session,
            actor=user,
            at=now,
            action="randomization.superseded",
            entity_type="randomization_schedule",
            entity_id=previous.id,
            changes={"status": (ScheduleStatus.ACTIVE.value, ScheduleStatus.SUPERSEDED.value)},
        )
        session.flush()
    schedule = RandomizationSchedule(
        protocol_code=protocol.code,
        protocol_id=protocol.id,
        method=method.value,
        ratio=str(protocol.parameters["randomization"]["ratio"]),
        planned_enrolment=len(rows),
        block_sizes=block_sizes,
        source_sha256=source_sha256,
        status=ScheduleStatus.ACTIVE.value,
        created_at=now,
        created_by_id=user.id,
    )
    session.add(schedule)
    session.flush()
    for sequence, (number, arm) in enumerate(rows, 1):
        session.add(
            RandomizationSlot(
                schedule_id=schedule.id,
                sequence=sequence,
                randomization_number=number,
                allocation=f"{arm}:{secrets.token_hex(16)}",
            )
        )
    session.flush()
    session.refresh(schedule, ["slots"])
    signatures.sign(
        session,
        record=schedule,
        meaning=SIGNATURE_MEANING,
        user=user,
        password=password,
        now=now,
        permission=Permission.MANAGE_RANDOMIZATION,
    )
    audit.record(
        session,
        actor=user,
        at=now,
        action="randomization.signed",
        entity_type="randomization_schedule",
        entity_id=schedule.id,
        changes={
            "protocol": (None, f"{protocol.code} v{protocol.version}"),
            "method": (None, method.value),
            "ratio": (None, schedule.ratio),
            "planned_enrolment": (None, schedule.planned_enrolment),
            "block_sizes": (None, block_sizes),
            "source_sha256": (None, source_sha256),
        },
    )
    return schedule


# --- enrolment ----------------------------------------------------------------------------------


def ready_for(session: DbSession, protocol: Protocol) -> RandomizationSchedule:
    """The schedule an enrolment will draw from, or the refusal: none signed, or full."""
    schedule = active_schedule(session, protocol.code)
    if schedule is None:
        raise Conflict(
            _(
                "No randomization schedule is signed for %(protocol)s: the trial statistician"
                " generates or imports one (Randomization page) before the first patient is"
                " enrolled. Nothing was saved.",
                protocol=protocol.code,
            ),
            title=_("No randomization schedule"),
        )
    if used_slots(session, schedule) >= schedule.planned_enrolment:
        raise _full(schedule)
    return schedule


def _lock_active(session: DbSession, protocol_code: str) -> RandomizationSchedule | None:
    """The trial's active schedule, its row locked until the transaction ends (PostgreSQL
    ``SELECT … FOR UPDATE``; SQLite lets one writer at a time anyway): an enrolment drawing
    and a statistician replacing the schedule take it in turn, so no patient is drawn from a
    schedule superseded meanwhile and no schedule is superseded once a slot is drawn."""
    return session.execute(
        select(RandomizationSchedule)
        .where(
            RandomizationSchedule.protocol_code == protocol_code,
            RandomizationSchedule.status == ScheduleStatus.ACTIVE.value,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def refuse_who_knows_the_schedule(user: User | None) -> None:
    """Refuse ``user`` if they hold a role that manages the randomization: they have seen the
    unused slots' arms and never enrol nor draw (allocation concealment; the account service
    refuses the combination, this stops an account changed in the database)."""
    if user is not None and knows_the_schedule(user.roles):
        raise PermissionDenied(
            _(
                "%(who)s manages the randomization and has seen the unused slots' arms: they"
                " never enrol a patient (allocation concealment). Nothing was saved.",
                who=user.full_name,
            ),
            title=_("Randomization and enrolment are never combined"),
        )


def draw(
    session: DbSession, schedule: RandomizationSchedule, patient: Patient, *, now: dt.datetime
) -> RandomizationSlot:
    """Give ``patient`` the next unused slot, in sequence, of the trial's active schedule.

    The active schedule's row is locked first (``_lock_active``), so a replacement signed
    meanwhile is either seen here (the patient is drawn from the new schedule, ``schedule``
    being the one read before) or waits and then finds a used slot (``_make`` refuses).
    Each claim is a guarded update that also requires the schedule still active: of two
    enrolments at once, one gets the slot and the other the next one."""
    refuse_who_knows_the_schedule(session.get(User, patient.enrolled_by_id))
    # a second look: on PostgreSQL a schedule that replaced the one waited for is seen only
    # by a statement started after the replacement was committed
    active = _lock_active(session, schedule.protocol_code) or _lock_active(
        session, schedule.protocol_code
    )
    if active is None:
        raise Conflict(
            _(
                "The randomization schedule of %(protocol)s was replaced or withdrawn while the"
                " patient was being enrolled. Nothing was saved; enrol again.",
                protocol=schedule.protocol_code,
            ),
            title=_("No randomization schedule"),
        )
    schedule = active
    still_active = (
        select(RandomizationSchedule.id)
        .where(
            RandomizationSchedule.id == RandomizationSlot.schedule_id,
            RandomizationSchedule.status == ScheduleStatus.ACTIVE.value,
        )
        .exists()
    )
    for _attempt in range(_CLAIM_ATTEMPTS):
        slot = session.execute(
            select(RandomizationSlot)
            .where(
                RandomizationSlot.schedule_id == schedule.id,
                RandomizationSlot.patient_id.is_(None),
            )
            .order_by(RandomizationSlot.sequence)
            .limit(1)
        ).scalar_one_or_none()
        if slot is None:
            raise _full(schedule)
        if update_if(
            session,
            slot,
            RandomizationSlot.patient_id.is_(None),
            still_active,
            patient_id=patient.id,
            allocated_at=now,
        ):
            return slot
        session.expire(slot)
    raise Conflict(_("Other enrolments took the next randomization slots meanwhile; try again."))


def _full(schedule: RandomizationSchedule) -> Conflict:
    return Conflict(
        _(
            "The planned enrolment of %(protocol)s is reached: all %(planned)s randomization"
            " slots are used, so no further patient can be randomized. Nothing was saved.",
            protocol=schedule.protocol_code,
            planned=schedule.planned_enrolment,
        ),
        title=_("Planned enrolment reached"),
    )


def may_see_arms(roles: frozenset[Role] | set[Role]) -> bool:
    """Whether ``roles`` see an enrolled patient's arm (single blind: the patient's own
    wristband and bedside screen never show it)."""
    return has_permission(roles, Permission.SEE_ARMS)
