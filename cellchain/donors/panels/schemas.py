"""Marshmallow schema of the donor test panel: a version as the API shows it."""

from __future__ import annotations

from cellchain.documents.schemas import VersionedDocumentOut


class DonorTestPanelOut(VersionedDocumentOut):
    """A version of a donor test panel: the tests (code and name) the birth mother's specimen
    needs for a donation registered while it is in force."""
