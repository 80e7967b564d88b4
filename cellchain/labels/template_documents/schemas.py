"""Marshmallow schema of the label template: a version as the API shows it."""

from __future__ import annotations

from cellchain.documents.schemas import VersionedDocumentOut


class LabelTemplateOut(VersionedDocumentOut):
    """A version of a label type's template: its text (TOML) in ``parameters.toml``."""
