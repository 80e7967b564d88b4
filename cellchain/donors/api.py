"""API of the donors package: donations, receipt, donor tests, eligibility, donors.

Load → call the command (or, for a read, the service) → dump. No rules here.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core import signatures
from cellchain.core.roles import Permission
from cellchain.donors import service
from cellchain.donors.commands import (
    correct_result_as_user,
    correct_screening_as_user,
    determine_as_user,
    donations_page,
    eligibility_queue_page,
    receive_as_user,
    record_result_as_user,
    register_as_user,
    result_of,
    start_processing_as_user,
)
from cellchain.donors.models import Donation, EligibilityDetermination
from cellchain.donors.schemas import (
    DeterminationIn,
    DeterminationOut,
    DonationOut,
    DonationPageOut,
    DonationQueryIn,
    DonationRegisterIn,
    DonorDetailOut,
    EligibilityQueueIn,
    EligibilityReviewOut,
    ReceiptIn,
    ResultCorrectionIn,
    ResultIn,
    ResultOut,
    ResultRecordedOut,
    ScreeningCorrectionIn,
)
from cellchain.extensions import db
from cellchain.http import now, requires, unit_of_work
from cellchain.traceability.notices import WithRecalls, recalls_naming
from cellchain.traceability.recalls import lookback
from cellchain.web.listing import PAGINATION_HEADERS, paged

donations_api = Blueprint(
    "donations_api", __name__, url_prefix="/api/v1/donations", description="Donations"
)
donors_api = Blueprint("donors_api", __name__, url_prefix="/api/v1/donors", description="Donors")
blueprints = (donations_api, donors_api)


def donation_out(donation: Donation) -> dict[str, Any]:
    """Everything about a donation, its determination's signatures checked against now."""
    product = donation.product_definition
    determination = donation.determination
    notices = recalls_naming(db.session, donations=[donation.id])
    return {
        **{
            name: getattr(donation, name)
            for name in DonationOut().fields
            if hasattr(donation, name)
        },
        "product": f"{product.code} v{product.version}",
        "processing_clock": service.processing_clock(donation, now()),
        "donor_test_panel": {
            "id": donation.donor_test_panel.id,
            "code": donation.donor_test_panel.code,
            "version": donation.donor_test_panel.version,
        },
        "panel": [{"code": t.code, "name": t.name} for t in service.panel_of(donation)],
        "determination": None if determination is None else _determination_out(determination),
        "reopened_determinations": [
            _determination_out(earlier)
            for earlier in donation.determinations
            if earlier.reopened_at is not None
        ],
        "recalls": notices.donation(donation.id),
    }


def _determination_out(determination: EligibilityDetermination) -> dict[str, Any]:
    return {
        **{
            name: getattr(determination, name)
            for name in (
                "id",
                "outcome",
                "reason",
                "determined_at",
                "determined_by",
                "reopened_at",
                "reopened_by_result_id",
                "reopened_reason",
            )
        },
        "signatures": signatures.manifest(db.session, determination),
    }


def recorded_out(outcome: lookback.ResultOutcome, donation: Donation) -> dict[str, Any]:
    """A result just written, with what it did to the donation's eligibility."""
    result = outcome.result
    return {
        **{name: getattr(result, name) for name in ResultOut().fields if hasattr(result, name)},
        "recorded_by": result.recorded_by,
        "eligibility": donation.eligibility,
        "reopened_determination_id": outcome.reopened.id if outcome.reopened else None,
        "lookback": outcome.lookback.recall if outcome.lookback else None,
    }


def review_out(donation: Donation) -> dict[str, Any]:
    review = service.review_eligibility(donation)
    return {
        "donation_id": donation.id,
        "din": donation.din,
        "eligibility": donation.eligibility,
        "complete": review.complete,
        "eligible_possible": review.eligible_possible,
        "missing_tests": review.missing_tests,
        "checks": review.checks,
    }


@donations_api.get("")
@requires(Permission.READ_RECORDS)
@donations_api.arguments(DonationQueryIn, location="query")
@donations_api.response(200, DonationPageOut, headers=PAGINATION_HEADERS)
def list_donations(args: dict[str, Any]) -> Any:
    """Donations, newest first, filtered by status and eligibility, searched (``q``) in the
    DIN and the donor's code, one page at a time; each with the recalls that name it. The
    body keeps its page fields; the ``X-Pagination`` header says the same as every list's."""
    page = donations_page(db.session, args)
    found = recalls_naming(db.session, donations=[d.id for d in page.items])
    body = service.Page(
        items=[WithRecalls(d, found.donation(d.id)) for d in page.items],
        page=page.page,
        per_page=page.page_size,
        total=page.total,
    )
    return body, paged(page)[1]


@donations_api.post("")
@requires(Permission.REGISTER_DONATIONS)
@donations_api.arguments(DonationRegisterIn)
@donations_api.response(201, DonationOut)
def register_donation(registration: service.DonationRegistration) -> Any:
    """Register a donation (and its new donor): a DIN is allocated; it starts in quarantine."""
    with unit_of_work() as session:
        donation = register_as_user(session, registration)
    return donation_out(donation)


@donations_api.get("/<int:donation_id>")
@requires(Permission.READ_RECORDS)
@donations_api.response(200, DonationOut)
def get_donation(donation_id: int) -> Any:
    """One donation: donor, receipt, processing clock, tests, determination and units."""
    return donation_out(service.get_donation(db.session, donation_id))


@donations_api.post("/<int:donation_id>/receipt")
@requires(Permission.REGISTER_DONATIONS)
@donations_api.arguments(ReceiptIn)
@donations_api.response(200, DonationOut)
def receive(receipt: service.Receipt, donation_id: int) -> Any:
    """Accept or reject the donation on arrival at the lab (21 CFR 1271.265(a))."""
    with unit_of_work() as session:
        donation = service.get_donation(session, donation_id)
        receive_as_user(session, donation, receipt)
    return donation_out(donation)


@donations_api.post("/<int:donation_id>/processing")
@requires(Permission.REGISTER_DONATIONS)
@donations_api.response(200, DonationOut)
def start_processing(donation_id: int) -> Any:
    """Record that processing starts now; refused past the birth-to-processing limit."""
    with unit_of_work() as session:
        donation = service.get_donation(session, donation_id)
        start_processing_as_user(session, donation)
    return donation_out(donation)


@donations_api.post("/<int:donation_id>/results")
@requires(Permission.RECORD_DONOR_TESTS)
@donations_api.arguments(ResultIn)
@donations_api.response(201, ResultRecordedOut)
def record_result(entry: service.ResultEntry, donation_id: int) -> Any:
    """Record one infectious-disease result of the mother's specimen. One that contradicts an
    eligible determination re-opens it and opens a lookback recall (``lookback``)."""
    with unit_of_work() as session:
        donation = service.get_donation(session, donation_id)
        outcome = record_result_as_user(session, donation, entry)
    return recorded_out(outcome, donation)


@donations_api.post("/<int:donation_id>/results/<int:result_id>/correction")
@requires(Permission.RECORD_DONOR_TESTS)
@donations_api.arguments(ResultCorrectionIn)
@donations_api.response(201, ResultRecordedOut)
def correct_result(data: dict[str, Any], donation_id: int, result_id: int) -> Any:
    """Replace a result with a corrected one and a reason; the original stays visible. A
    correction that contradicts an eligible determination (a late positive) re-opens it,
    blocks every unit of the donation, withdraws its doses not yet infused and opens a
    lookback recall listing the patients already infused (``lookback``)."""
    with unit_of_work() as session:
        original = result_of(session, donation_id, result_id)
        outcome = correct_result_as_user(session, original, data)
    return recorded_out(outcome, original.donation)


@donations_api.get("/<int:donation_id>/eligibility")
@requires(Permission.READ_RECORDS)
@donations_api.response(200, EligibilityReviewOut)
def eligibility_review(donation_id: int) -> Any:
    """Every check an eligible determination needs, met or not, and why."""
    return review_out(service.get_donation(db.session, donation_id))


@donations_api.post("/<int:donation_id>/eligibility")
@requires(Permission.DETERMINE_ELIGIBILITY)
@donations_api.arguments(DeterminationIn)
@donations_api.response(201, DeterminationOut)
def determine(data: dict[str, Any], donation_id: int) -> Any:
    """QA determines the donor eligible or ineligible, signing with their password."""
    with unit_of_work() as session:
        determination = determine_as_user(session, service.get_donation(session, donation_id), data)
    return {
        **{
            name: getattr(determination, name)
            for name in ("id", "outcome", "reason", "determined_at", "determined_by")
        },
        "signatures": signatures.manifest(db.session, determination),
    }


@donations_api.get("/eligibility-queue")
@requires(Permission.READ_RECORDS)
@donations_api.arguments(EligibilityQueueIn, location="query")
@donations_api.response(200, EligibilityReviewOut(many=True), headers=PAGINATION_HEADERS)
def eligibility_queue(args: dict[str, Any]) -> Any:
    """Donations awaiting QA's determination, the longest waiting first, a page at a time
    (the ``X-Pagination`` header), searched (``q``) in the DIN and the donor's code, each with
    its checks and the recalls that name it."""
    page = eligibility_queue_page(db.session, args)
    found = recalls_naming(db.session, donations=[donation.id for donation, _review in page.items])
    return paged(
        page,
        [
            {**review_out(donation), "recalls": found.donation(donation.id)}
            for donation, _review in page.items
        ],
    )


@donors_api.get("/<int:donor_id>")
@requires(Permission.READ_RECORDS)
@donors_api.response(200, DonorDetailOut)
def get_donor(donor_id: int) -> Any:
    """A donor: pseudonymous code, consent, screening and donations."""
    return service.get_donor(db.session, donor_id)


@donors_api.post("/<int:donor_id>/screening")
@requires(Permission.REGISTER_DONATIONS)
@donors_api.arguments(ScreeningCorrectionIn)
@donors_api.response(200, DonorDetailOut)
def correct_screening(data: dict[str, Any], donor_id: int) -> Any:
    """Correct the screening outcome with a reason (before any determination)."""
    with unit_of_work() as session:
        donor = service.get_donor(session, donor_id)
        correct_screening_as_user(session, donor, data)
    return donor
