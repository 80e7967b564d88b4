"""Tables of the manufacturing package."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import CheckConstraint, UniqueConstraint

from cellchain.core.versioning import STATUS_CHECK, VersionedDocument
from cellchain.extensions import db


class ProductDefinition(VersionedDocument, db.Model):
    """One version of a product's parameters, approved by QA's signature.

    ``code`` names the product (e.g. UC-MSC). The parameters hold the donor test panel, the
    specimen window and the limits every donation and lot of the product is held to
    (DOMAIN.md §3–4); a donation records the version in force when it was registered.
    """

    __tablename__ = "product_definitions"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint(STATUS_CHECK, name="status_known"),
    )
    signature_entity_type: ClassVar[str] = "product_definition"
    document_label: ClassVar[str] = "Product definition"
