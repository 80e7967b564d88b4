"""Acting-user glue of donations and donors, shared by the API and the pages: the loaded input,
the records it names, the acting user, the time, the site's zone and facility code from the
request, then the service (a donor test result through the lookback, which may re-open the
determination). No rules here."""

from __future__ import annotations

from typing import Any

from cellchain.core import listing
from cellchain.core.i18n import _
from cellchain.donors import service
from cellchain.donors.models import (
    Donation,
    DonationStatus,
    Donor,
    DonorTestResult,
    Eligibility,
    EligibilityDetermination,
    ScreeningOutcome,
)
from cellchain.donors.schemas import correction_entry
from cellchain.errors import NotFound
from cellchain.extensions import DbSession
from cellchain.http import acting_user, facility_code, now, site_zone
from cellchain.traceability.recalls import lookback


def donations_page(
    session: DbSession, query: dict[str, Any], *, correct: bool = False
) -> listing.Page[Donation]:
    """The page of donations a loaded ``DonationQueryIn`` asks for (``correct``: a page
    replaces a bad value by its default and says so; the API refuses it)."""
    if "per_page" in query and "page_size" not in query:
        query = {**query, "page_size": query["per_page"]}
    return service.donations_list(
        session,
        listing.PageRequest.of(query, correct=correct),
        status=DonationStatus(query["status"]) if "status" in query else None,
        eligibility=Eligibility(query["eligibility"]) if "eligibility" in query else None,
    )


def eligibility_queue_page(
    session: DbSession, query: dict[str, Any], *, correct: bool = False
) -> listing.Page[tuple[Donation, service.EligibilityReview]]:
    """The page of the eligibility queue a loaded ``EligibilityQueueIn`` asks for."""
    return service.eligibility_queue_page(
        session,
        listing.PageRequest.of(query, correct=correct),
        status=DonationStatus(query["status"]) if "status" in query else None,
    )


def result_of(session: DbSession, donation_id: int, result_id: int) -> DonorTestResult:
    """The donation's result ``result_id``; a result of another donation is not found."""
    result = service.get_result(session, result_id)
    if result.donation_id != donation_id:
        raise NotFound(
            _(
                "Donation #%(donation)s has no result #%(result)s.",
                donation=donation_id,
                result=result_id,
            )
        )
    return result


def register_as_user(session: DbSession, registration: service.DonationRegistration) -> Donation:
    """Register a donation (and its new donor) at this facility, as the acting user."""
    return service.register_donation(
        session,
        registration,
        facility_code=facility_code(),
        site_zone=site_zone(),
        actor=acting_user(),
        now=now(),
    )


def receive_as_user(session: DbSession, donation: Donation, receipt: service.Receipt) -> None:
    """Accept or reject ``donation`` on arrival, as the acting user."""
    service.receive_donation(session, donation, receipt, actor=acting_user(), now=now())


def start_processing_as_user(session: DbSession, donation: Donation) -> None:
    """Processing of ``donation`` starts now, recorded by the acting user."""
    service.start_processing(session, donation, actor=acting_user(), now=now())


def record_result_as_user(
    session: DbSession, donation: Donation, entry: service.ResultEntry
) -> lookback.ResultOutcome:
    """Record a donor test result as the acting user, and run the lookback if it contradicts
    the determination."""
    return lookback.record_result(
        session, donation, entry, site_zone=site_zone(), actor=acting_user(), now=now()
    )


def correct_result_as_user(
    session: DbSession, original: DonorTestResult, data: dict[str, Any]
) -> lookback.ResultOutcome:
    """Correct ``original`` from loaded ``ResultCorrectionIn`` data as the acting user, and run
    the lookback if the correction contradicts the determination."""
    return lookback.correct_result(
        session,
        original,
        correction_entry(original.test_code, data),
        reason=data["reason"],
        site_zone=site_zone(),
        actor=acting_user(),
        now=now(),
    )


def determine_as_user(
    session: DbSession, donation: Donation, data: dict[str, Any]
) -> EligibilityDetermination:
    """The acting user (QA) determines the donor eligible or ineligible from loaded
    ``DeterminationIn`` data, signing with their password."""
    return service.determine_eligibility(
        session,
        donation,
        eligible=data["outcome"] == "eligible",
        reason=data.get("reason"),
        user=acting_user(),
        password=data["password"],
        now=now(),
    )


def correct_screening_as_user(session: DbSession, donor: Donor, data: dict[str, Any]) -> None:
    """Correct the donor's screening outcome from loaded ``ScreeningCorrectionIn`` data, as the
    acting user."""
    service.correct_screening(
        session,
        donor,
        outcome=ScreeningOutcome(data["screening_outcome"]),
        screening_date=data["screening_date"],
        notes=data.get("screening_notes"),
        reason=data["reason"],
        actor=acting_user(),
        now=now(),
    )
