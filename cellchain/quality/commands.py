"""Acting-user glue of quality, shared by the API and the pages: the loaded input, the lot or
result it is about, the acting user, the time and the site's zone from the request, then the
service (QC samples and results, QA's invalidation, release and rejection); what bars the
acting user from releasing a lot; and the certificate of analysis served over HTTP, generated
now by the acting user (the PDF itself is `certificate_pdf`). No rules here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response, current_app

from cellchain.core.i18n import lazy
from cellchain.core.models import Signature
from cellchain.core.roles import Permission, has_permission
from cellchain.extensions import DbSession, db
from cellchain.http import AuditedRefusal, acting_user, now, site_zone
from cellchain.manufacturing.models import Lot
from cellchain.quality import disposition, results
from cellchain.quality.certificate_pdf import render_certificate_pdf
from cellchain.quality.models import LotDisposition, QcResult, QcSample
from cellchain.quality.schemas import SampleIn
from cellchain.traceability.notices import recalls_naming

#: What the review says bars someone without QA's permission from releasing or rejecting a lot.
NO_DISPOSE_PERMISSION = lazy("you do not hold the QA permission to release or reject lots")


# --- refusals on record ---------------------------------------------------------------------------

#: The audit action of each refused act of release testing and disposition: what was refused
#: and why is on record (in English, ``http.unit_of_work``), as at the bedside.
SAMPLES_REFUSED = "qc.samples_refused"
RESULTS_REFUSED = "qc.results_refused"
INVALIDATION_REFUSED = "qc_result.invalidation_refused"
RELEASE_REFUSED = "lot.release_refused"
REJECTION_REFUSED = "lot.reject_refused"


def lot_act_refused(action: str, lot_id: int) -> AuditedRefusal:
    """A refused act on a lot (samples, results, release, rejection), on the record."""
    return AuditedRefusal(action=action, entity_type="lot", entity_id=lot_id)


def invalidation_refused(result_id: int) -> AuditedRefusal:
    """A refused invalidation of a result, on the record."""
    return AuditedRefusal(action=INVALIDATION_REFUSED, entity_type="qc_result", entity_id=result_id)


# --- release testing (QC) -------------------------------------------------------------------------


def take_samples_as_user(session: DbSession, lot: Lot, data: dict[str, Any]) -> list[QcSample]:
    """Draw labelled sample tubes from one bag of ``lot`` as asked in loaded ``SampleIn`` data."""
    return results.take_samples(
        session, lot, SampleIn.request(data), actor=acting_user(), now=now()
    )


def result_entries(data: dict[str, Any]) -> list[results.ResultEntry]:
    """The result lines of loaded ``ResultsIn`` data as the service's entries."""
    return [
        results.ResultEntry(
            test_code=line["test"],
            value=line["value"],
            unit=line["unit"],
            instrument=line["instrument"],
            tested_on=line["tested_on"],
        )
        for line in data["results"]
    ]


def record_results_as_user(
    session: DbSession, lot: Lot, sample_code: str, entries: Sequence[results.ResultEntry]
) -> list[QcResult]:
    """Record the results measured on the sample tube ``sample_code`` as the acting user."""
    return results.record_results(
        session,
        lot,
        sample_code=sample_code,
        entries=entries,
        actor=acting_user(),
        now=now(),
        site_zone=site_zone(),
    )


def invalidate_as_user(session: DbSession, result: QcResult, data: dict[str, Any]) -> Signature:
    """The acting user (QA) sets ``result`` aside from loaded ``InvalidateIn`` data, signing
    with their password."""
    return results.invalidate_result(
        session,
        result,
        reason=data["reason"],
        user=acting_user(),
        password=data["password"],
        now=now(),
    )


# --- release review and disposition (QA) ----------------------------------------------------------


def may_dispose() -> bool:
    """Whether the acting user's roles allow releasing and rejecting lots."""
    return has_permission(acting_user().roles, Permission.DISPOSE_LOTS)


def barred_from_disposing(session: DbSession, lot: Lot) -> list[str]:
    """What bars the acting user from releasing or rejecting ``lot``: the QA permission they
    lack, or their own part in making it (segregation of duties)."""
    if not may_dispose():
        return [str(NO_DISPOSE_PERMISSION)]
    return disposition.segregation_conflicts(session, lot, acting_user())


def release_as_user(session: DbSession, lot: Lot, data: dict[str, Any]) -> LotDisposition:
    """The acting user (QA) releases ``lot`` from loaded ``ReleaseIn`` data, signing with their
    password."""
    return disposition.release_lot(
        session,
        lot,
        user=acting_user(),
        password=data["password"],
        comment=data["comment"],
        now=now(),
        zone=site_zone(),
    )


def reject_as_user(session: DbSession, lot: Lot, data: dict[str, Any]) -> LotDisposition:
    """The acting user (QA) rejects ``lot`` for good from loaded ``RejectIn`` data, signing
    with their password."""
    return disposition.reject_lot(
        session,
        lot,
        reason=data["reason"],
        user=acting_user(),
        password=data["password"],
        now=now(),
        zone=site_zone(),
    )


# --- the certificate of analysis ------------------------------------------------------------------


def certificate_response(lot: Lot) -> Response:
    """The lot's certificate of analysis as an inline PDF, generated now by the acting user."""
    pdf = render_certificate_pdf(
        disposition.review(db.session, lot, now=now(), zone=site_zone()),
        site_name=current_app.config["SITE_NAME"],
        zone=site_zone(),
        generated_at=now(),
        generated_by=acting_user().full_name,
        recalls=recalls_naming(db.session, lots=[lot.id]).lot(lot.id),
    )
    filename = f"{lot.lot_number}-certificate-of-analysis.pdf"
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}"'},
    )
