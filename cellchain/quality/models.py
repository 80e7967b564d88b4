"""Tables of the quality package."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import CheckConstraint, UniqueConstraint

from cellchain.core.versioning import STATUS_CHECK, VersionedDocument
from cellchain.extensions import db


class Specification(VersionedDocument, db.Model):
    """One version of a product's release specification (DOMAIN.md §5), approved by QA.

    ``code`` is the product code (UC-MSC); the parameters hold the list of tests, each with its
    method, unit, result type and acceptance criterion. A result records the version in force
    when it was tested.
    """

    __tablename__ = "specifications"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint(STATUS_CHECK, name="status_known"),
    )
    signature_entity_type: ClassVar[str] = "specification"
    document_label: ClassVar[str] = "Specification"
