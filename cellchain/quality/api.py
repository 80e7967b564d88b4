"""API of the quality package: release specifications, QC samples and results, the release
review and QA disposition, the certificate of analysis and the QA queues.

Load → call the command (or, for a read, the service) → dump. No rules here.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core import signatures
from cellchain.core.roles import Permission
from cellchain.documents.api import document_api
from cellchain.extensions import db
from cellchain.http import now, requires, site_zone, unit_of_work
from cellchain.manufacturing.deviations.schemas import DeviationOut
from cellchain.manufacturing.processing import processing
from cellchain.quality import disposition, results
from cellchain.quality.commands import (
    REJECTION_REFUSED,
    RELEASE_REFUSED,
    RESULTS_REFUSED,
    SAMPLES_REFUSED,
    barred_from_disposing,
    certificate_response,
    invalidate_as_user,
    invalidation_refused,
    lot_act_refused,
    record_results_as_user,
    reject_as_user,
    release_as_user,
    result_entries,
    take_samples_as_user,
)
from cellchain.quality.schemas import (
    InvalidateIn,
    OutOfSpecificationOut,
    QcResultDetailOut,
    QcResultOut,
    RejectIn,
    ReleaseIn,
    ResultsIn,
    ReviewOut,
    SampleIn,
    SampleOut,
    SpecificationOut,
)
from cellchain.quality.service import SPECIFICATIONS
from cellchain.traceability.notices import RecallNotices, recalls_naming

specifications_api = document_api(
    SPECIFICATIONS,
    SpecificationOut,
    name="specification",
    noun="release specification",
    description="Release specifications (QA-approved versions)",
    one_summary="One version with its tests and signatures (each marked valid or not).",
)


# --- samples, results and disposition ------------------------------------------------------------

release_api = Blueprint(
    "release_api",
    __name__,
    url_prefix="/api/v1",
    description="Release testing and QA disposition of lots",
)
blueprints = (specifications_api, release_api)


def _lot(session: Any, lot_id: int) -> Any:
    return processing.get_lot(session, lot_id)


def review_out(
    lot: Any, found: disposition.Review | None = None, named: RecallNotices | None = None
) -> dict[str, Any]:
    """The review of ``lot`` (``found``, or made now) as the acting user sees it, including
    what bars them from releasing it and the recalls that name it (from ``named``, or asked
    now)."""
    found = found or disposition.review(db.session, lot, now=now(), zone=site_zone())
    named = named or recalls_naming(db.session, lots=[lot.id])
    barred = barred_from_disposing(db.session, lot)
    spec = found.specification
    return {
        **vars(found),
        "lot_id": lot.id,
        "lot_number": lot.lot_number,
        "status": lot.status,
        "din": found.donation.din,
        "expires_at": lot.expires_at,
        "specification": f"{spec.code} v{spec.version}" if spec else None,
        "ready": found.ready,
        "verdict": found.verdict,
        "summary": found.summary,
        "out_of_specification": any(not line.result.passes for line in found.tests if line.result),
        "barred": barred,
        "recalls": named.lot(lot.id),
    }


@release_api.get("/lots/<int:lot_id>/samples")
@requires(Permission.READ_RECORDS)
@release_api.response(200, SampleOut(many=True))
def list_samples(lot_id: int) -> Any:
    """The QC sample tubes drawn from the lot's bags."""
    return results.samples_of(db.session, _lot(db.session, lot_id))


@release_api.post("/lots/<int:lot_id>/samples")
@requires(Permission.TAKE_QC_SAMPLES)
@release_api.arguments(SampleIn)
@release_api.response(201, SampleOut(many=True))
def take_samples(data: dict[str, Any], lot_id: int) -> Any:
    """Draw labelled sample tubes from one bag of the lot (lineage operation ``sample``)."""
    with unit_of_work(lot_act_refused(SAMPLES_REFUSED, lot_id)) as session:
        taken = take_samples_as_user(session, _lot(session, lot_id), data)
    return taken


@release_api.get("/lots/<int:lot_id>/results")
@requires(Permission.READ_RECORDS)
@release_api.response(200, QcResultOut(many=True))
def list_results(lot_id: int) -> Any:
    """Every result of the lot, valid and invalidated, in the order recorded."""
    return results.results_of(db.session, _lot(db.session, lot_id))


@release_api.post("/lots/<int:lot_id>/results")
@requires(Permission.RECORD_QC_RESULTS)
@release_api.arguments(ResultsIn)
@release_api.response(201, QcResultOut(many=True))
def record_results(data: dict[str, Any], lot_id: int) -> Any:
    """Record results measured on one sample tube, judged against the specification in force.

    All are recorded or none; an OOS result opens an investigation on the lot."""
    with unit_of_work(lot_act_refused(RESULTS_REFUSED, lot_id)) as session:
        recorded = record_results_as_user(
            session, _lot(session, lot_id), data["sample"], result_entries(data)
        )
    return recorded


@release_api.get("/results/<int:result_id>")
@requires(Permission.READ_RECORDS)
@release_api.response(200, QcResultDetailOut)
def get_result(result_id: int) -> Any:
    """One result, with QA's invalidation signature if it was set aside."""
    found = results.get_result(db.session, result_id)
    return {**_fields(found, QcResultOut), "signatures": signatures.manifest(db.session, found)}


@release_api.post("/results/<int:result_id>/invalidate")
@requires(Permission.INVALIDATE_QC_RESULTS)
@release_api.arguments(InvalidateIn)
@release_api.response(200, QcResultDetailOut)
def invalidate_result(data: dict[str, Any], result_id: int) -> Any:
    """QA sets a result aside with a reason and an e-signature; a retest may then be recorded."""
    with unit_of_work(invalidation_refused(result_id)) as session:
        found = results.get_result(session, result_id)
        invalidate_as_user(session, found, data)
    return {**_fields(found, QcResultOut), "signatures": signatures.manifest(db.session, found)}


@release_api.get("/lots/<int:lot_id>/review")
@requires(Permission.READ_RECORDS)
@release_api.response(200, ReviewOut)
def review(lot_id: int) -> Any:
    """Every precondition of release with a tick or the reason, every test, the decision."""
    return review_out(_lot(db.session, lot_id))


@release_api.post("/lots/<int:lot_id>/release")
@requires(Permission.DISPOSE_LOTS)
@release_api.arguments(ReleaseIn)
@release_api.response(200, ReviewOut)
def release(data: dict[str, Any], lot_id: int) -> Any:
    """Release the lot for clinical use (e-signature); its bags become available."""
    with unit_of_work(lot_act_refused(RELEASE_REFUSED, lot_id)) as session:
        lot = _lot(session, lot_id)
        release_as_user(session, lot, data)
    return review_out(lot)


@release_api.post("/lots/<int:lot_id>/reject")
@requires(Permission.DISPOSE_LOTS)
@release_api.arguments(RejectIn)
@release_api.response(200, ReviewOut)
def reject(data: dict[str, Any], lot_id: int) -> Any:
    """Reject the lot for good, with a reason (e-signature); its bags become rejected."""
    with unit_of_work(lot_act_refused(REJECTION_REFUSED, lot_id)) as session:
        lot = _lot(session, lot_id)
        reject_as_user(session, lot, data)
    return review_out(lot)


@release_api.get("/lots/<int:lot_id>/certificate.pdf")
@requires(Permission.READ_RECORDS)
@release_api.doc(
    responses={"200": {"description": "The certificate", "content": {"application/pdf": {}}}}
)
def certificate(lot_id: int) -> Any:
    """The certificate of analysis (PDF)."""
    return certificate_response(_lot(db.session, lot_id))


@release_api.get("/qa/awaiting-review")
@requires(Permission.READ_RECORDS)
@release_api.response(200, ReviewOut(many=True))
def awaiting_review() -> Any:
    """QA queue: lots in quarantine, oldest first, each with its review."""
    waiting = disposition.awaiting_review(db.session, now=now(), zone=site_zone())
    named = recalls_naming(db.session, lots=[found.lot.id for found in waiting])
    return [review_out(found.lot, found, named) for found in waiting]


@release_api.get("/qa/out-of-specification")
@requires(Permission.READ_RECORDS)
@release_api.response(200, OutOfSpecificationOut(many=True))
def out_of_specification() -> Any:
    """QA queue: undecided lots holding a valid OOS result, with those results."""
    found = disposition.lots_with_oos(db.session)
    named = recalls_naming(db.session, lots=[lot.id for lot, _ in found])
    return [
        {
            "lot_id": lot.id,
            "lot_number": lot.lot_number,
            "results": oos,
            "recalls": named.lot(lot.id),
        }
        for lot, oos in found
    ]


@release_api.get("/qa/open-deviations")
@requires(Permission.READ_RECORDS)
@release_api.response(200, DeviationOut(many=True))
def open_deviations() -> Any:
    """QA queue: every open deviation, newest first."""
    return disposition.open_deviations(db.session)


def _fields(record: Any, schema: type) -> dict[str, Any]:
    return {name: getattr(record, name) for name in schema().fields if hasattr(record, name)}
