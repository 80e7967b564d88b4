"""Pages of the dosing package: protocols."""

from __future__ import annotations

from flask import Blueprint

from cellchain.documents.views import add_document_pages
from cellchain.dosing.service import PROTOCOLS

blueprint = Blueprint("dosing", __name__)

add_document_pages(
    blueprint,
    PROTOCOLS,
    name="protocol",
    heading="Trial protocols",
    what="protocol",
    template="dosing/protocol.html",
)
