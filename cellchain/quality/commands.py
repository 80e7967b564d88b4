"""Acting-user glue of quality, shared by the API and the pages: the certificate of analysis
served over HTTP, generated now by the acting user (the PDF itself is `certificate_pdf`)."""

from __future__ import annotations

from flask import Response, current_app

from cellchain.extensions import db
from cellchain.http import acting_user, now, site_zone
from cellchain.manufacturing.models import Lot
from cellchain.quality import disposition
from cellchain.quality.certificate_pdf import render_certificate_pdf
from cellchain.traceability.notices import recalls_naming


def certificate_response(lot: Lot) -> Response:
    """The lot's certificate of analysis as an inline PDF, generated now by the acting user."""
    pdf = render_certificate_pdf(
        disposition.review(db.session, lot, now=now()),
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
