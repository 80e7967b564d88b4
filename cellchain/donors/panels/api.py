"""REST routes of the donor test panel (a controlled document): every version, one version,
QA's approval and the rest of ``documents.api.document_api``'s routes, under
``/api/v1/panels``."""

from __future__ import annotations

from cellchain.documents.api import document_api
from cellchain.donors.panels import DONOR_TEST_PANELS
from cellchain.donors.panels.schemas import DonorTestPanelOut

panels_api = document_api(
    DONOR_TEST_PANELS,
    DonorTestPanelOut,
    name="panel",
    noun="donor test panel",
    description="Donor test panels (QA-approved versions)",
    one_summary="One version of a donor test panel with its tests and signatures.",
)
blueprints = (panels_api,)
