"""Donor lookback: a donor result that contradicts the eligibility determination (DOMAIN.md §3,
§7; 21 CFR 1271.65, 1271.290).

Recording or correcting a donor test result is one use case whichever page, API call or
command does it, and it is this module's: the result is written (``donors.service``) and, if
the donor was determined eligible and the current results no longer allow it (a late reactive
or indeterminate test), in the same transaction:

1. the determination is re-opened: it stays, signed and visible, marked re-opened by the
   result; the donation is back in quarantine (pending) until QA determines again;
2. a lookback recall of the donation is opened by the system (``recalls.open_lookback``):
   every unit derived from the donation is blocked at once through the recall's bulk path,
   every dose not yet infused is withdrawn, and every patient already infused is listed for
   QA to notify.

The other direction changes nothing: a correction to non-reactive never unblocks anything
and never turns a determination to eligible (blocking for ineligibility is for good).

The donors package sits below traceability (traceability reads it), so the use case lives
here, above both, and every interface calls it instead of ``donors.service`` directly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.donors import service as donors
from cellchain.donors.models import Donation, DonorTestResult, EligibilityDetermination
from cellchain.extensions import DbSession
from cellchain.traceability.recalls import recalls


@dataclass(frozen=True)
class ResultOutcome:
    """A result written, and what it did to the donation's eligibility."""

    result: DonorTestResult
    #: the eligible determination the result re-opened, if it did
    reopened: EligibilityDetermination | None = None
    #: the lookback recall opened (or joined) because of it
    lookback: recalls.OpenedRecall | None = None

    def summary(self) -> str:
        """One sentence for the person who entered the result."""
        if self.lookback is None:
            return ""
        recall = self.lookback.recall
        return _(
            "The donor's eligible determination is re-opened; lookback recall %(number)s"
            " blocked %(blocked)s unit(s), withdrew %(withdrawn)s dose(s) not yet infused and"
            " lists %(patients)s patient(s) for QA to notify.",
            number=recall.number,
            blocked=self.lookback.blocked,
            withdrawn=self.lookback.withdrawn,
            patients=self.lookback.exposed_patients,
        )


def record_result(
    session: DbSession,
    donation: Donation,
    entry: donors.ResultEntry,
    *,
    site_zone: ZoneInfo,
    actor: User,
    now: dt.datetime,
) -> ResultOutcome:
    """Record a donor test result, and run the lookback if it contradicts the determination."""
    result = donors.record_test_result(
        session, donation, entry, site_zone=site_zone, actor=actor, now=now
    )
    return _after(session, donation, result, actor=actor, now=now)


def correct_result(
    session: DbSession,
    original: DonorTestResult,
    entry: donors.ResultEntry,
    *,
    reason: str,
    site_zone: ZoneInfo,
    actor: User,
    now: dt.datetime,
) -> ResultOutcome:
    """Correct a donor test result, and run the lookback if the correction contradicts the
    determination (a late positive, before or after release, allocation, dispatch or
    infusion)."""
    corrected = donors.correct_test_result(
        session, original, entry, reason=reason, site_zone=site_zone, actor=actor, now=now
    )
    return _after(session, original.donation, corrected, actor=actor, now=now)


def _after(
    session: DbSession,
    donation: Donation,
    result: DonorTestResult,
    *,
    actor: User,
    now: dt.datetime,
) -> ResultOutcome:
    if not donors.determination_contradicted(donation):
        return ResultOutcome(result=result)
    reopened = donors.reopen_determination(session, donation, cause=result, actor=actor, now=now)
    lookback = recalls.open_lookback(session, donation, cause=result, actor=actor, now=now)
    return ResultOutcome(result=result, reopened=reopened, lookback=lookback)
