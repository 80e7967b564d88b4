"""REST routes of the label template (a controlled document): every version, one version,
QA's approval and the rest of ``documents.api.document_api``'s routes, under
``/api/v1/label_templates``."""

from __future__ import annotations

from cellchain.documents.api import document_api
from cellchain.labels.template_documents import LABEL_TEMPLATES
from cellchain.labels.template_documents.schemas import LabelTemplateOut

label_templates_api = document_api(
    LABEL_TEMPLATES,
    LabelTemplateOut,
    name="label_template",
    noun="label template",
    description="Label templates (QA-approved versions)",
    one_summary="One version of a label template with its text (TOML) and signatures.",
)
blueprints = (label_templates_api,)
