"""Marshmallow schemas of the manufacturing package."""

from __future__ import annotations

from cellchain.core.schemas import VersionedDocumentOut


class ProductDefinitionOut(VersionedDocumentOut):
    """A version of a product definition: donor test panel, windows and limits."""
