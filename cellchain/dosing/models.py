"""Tables of the dosing package."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import CheckConstraint, UniqueConstraint

from cellchain.core.versioning import STATUS_CHECK, VersionedDocument
from cellchain.extensions import db


class Protocol(VersionedDocument, db.Model):
    """One version of a trial protocol's parameters (DOMAIN.md §7), approved by QA's signature.

    ``code`` is the registry identifier of the trial (e.g. NCT01420432); the parameters hold
    the arms, age range, checklist, dose, schedule and limits.
    """

    __tablename__ = "protocols"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint(STATUS_CHECK, name="status_known"),
    )
    signature_entity_type: ClassVar[str] = "protocol"
    document_label: ClassVar[str] = "Protocol"
