"""Pages of the donor test panel (a controlled document): every version, one version with its
tests and signatures, QA's approval and the rest of ``documents.views.add_document_pages``'s
pages, under ``/donors/panels``."""

from __future__ import annotations

from flask import Blueprint

from cellchain.core.i18n import lazy
from cellchain.documents.views import add_document_pages
from cellchain.donors.panels import DONOR_TEST_PANELS

blueprint = Blueprint("panels", __name__, url_prefix="/donors")

add_document_pages(
    blueprint,
    DONOR_TEST_PANELS,
    name="panel",
    heading=lazy("Donor test panels"),
    what=lazy("donor test panel"),
    template="donors/panels/panel.html",
)
