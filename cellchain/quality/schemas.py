"""Marshmallow schemas of the quality package."""

from __future__ import annotations

from cellchain.core.schemas import VersionedDocumentOut


class SpecificationOut(VersionedDocumentOut):
    """A version of a release specification: its tests and acceptance criteria."""
