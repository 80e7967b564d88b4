"""Pages of the label template (a controlled document): every version, one version with its
text and signatures, QA's approval and the rest of ``documents.views.add_document_pages``'s
pages, under ``/labels/templates``."""

from __future__ import annotations

from flask import Blueprint

from cellchain.core.i18n import lazy
from cellchain.documents.views import add_document_pages
from cellchain.labels.template_documents import LABEL_TEMPLATES

blueprint = Blueprint("label_templates", __name__, url_prefix="/labels")

add_document_pages(
    blueprint,
    LABEL_TEMPLATES,
    name="template",
    heading=lazy("Label templates"),
    what=lazy("label template"),
    template="labels/template_documents/template.html",
)
