"""API of the FHIR export: an infusion as a FHIR R5 Bundle for a hospital system to import."""

from __future__ import annotations

import json

from flask import Response, request
from flask_smorest import Blueprint

from cellchain.clinic.bedside import infusions
from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import now, requires
from cellchain.traceability.fhir.fhir import FHIR_JSON, infusion_bundle

fhir_api = Blueprint(
    "fhir_api",
    __name__,
    url_prefix="/api/v1",
    description="FHIR R5 export (BiologicallyDerivedProduct and its dispense)",
)
blueprints = (fhir_api,)


@fhir_api.get("/infusions/<int:infusion_id>/fhir")
@requires(Permission.READ_RECORDS)
@fhir_api.doc(
    responses={
        "200": {"description": "A FHIR R5 collection Bundle", "content": {FHIR_JSON: {}}},
    }
)
def infusion_fhir(infusion_id: int) -> Response:
    """The infusion as a FHIR R5 collection Bundle: the patient by study ID and COI, a
    BiologicallyDerivedProduct per bag and for the dose, and the dispense to the patient."""
    infusion = infusions.get_infusion(db.session, infusion_id)  # NotFound → 404 problem+json
    bundle = infusion_bundle(db.session, infusion, base_url=request.host_url, now=now())
    return Response(json.dumps(bundle, ensure_ascii=False), mimetype=FHIR_JSON)
