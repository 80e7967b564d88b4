"""Tables of the dosing package."""

from __future__ import annotations

import datetime as dt
import enum
import json
from typing import Any, ClassVar

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cellchain.core.models import User
from cellchain.core.types import UTCDateTime
from cellchain.extensions import db


class ProtocolStatus(enum.StrEnum):
    DRAFT = "draft"  #: written, not yet approved: nothing uses it
    EFFECTIVE = "effective"  #: approved by QA's signature; the version in force
    SUPERSEDED = "superseded"  #: a later version became effective


#: Allowed status changes (DESIGN.md rule 2).
PROTOCOL_TRANSITIONS: dict[ProtocolStatus, frozenset[ProtocolStatus]] = {
    ProtocolStatus.DRAFT: frozenset({ProtocolStatus.EFFECTIVE}),
    ProtocolStatus.EFFECTIVE: frozenset({ProtocolStatus.SUPERSEDED}),
    ProtocolStatus.SUPERSEDED: frozenset(),
}


class Protocol(db.Model):
    """One version of a trial protocol's parameters (DOMAIN.md §7), approved by QA's signature."""

    __tablename__ = "protocols"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint("status IN ('draft', 'effective', 'superseded')", name="status_known"),
    )
    signature_entity_type: ClassVar[str] = "protocol"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: registry identifier of the trial, e.g. NCT01420432
    code: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    #: canonical JSON of the parameters (arms, age range, checklist, dose, schedule, limits)
    parameters_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    effective_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    created_by: Mapped[User | None] = relationship()

    @property
    def parameters(self) -> dict[str, Any]:
        return json.loads(self.parameters_json)

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """A signature on a protocol covers its identity and every parameter."""
        return {
            "code": self.code,
            "version": self.version,
            "title": self.title,
            "parameters": self.parameters,
        }
