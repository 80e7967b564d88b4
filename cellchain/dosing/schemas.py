"""Marshmallow schemas of the dosing package."""

from __future__ import annotations

from cellchain.core.schemas import VersionedDocumentOut


class ProtocolOut(VersionedDocumentOut):
    """A version of a trial protocol."""
