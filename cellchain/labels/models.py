"""Tables of the labels package: the print log and the reconciliation of printed labels.

Every print is a row of ``label_prints`` (who, when, how many copies, which template version
and file hash, in which format, the payload, whether it carried the quarantine marking and,
for a reprint, why). What became of the copies is counted on the same row: ``applied`` (the
label was put on its container and scanned there) and ``destroyed`` (spoiled, superseded, torn
up, with a reason in ``label_events``). A CHECK keeps applied + destroyed within the copies, so
the count can never claim more labels than were issued (DOMAIN.md §9).
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cellchain.chain.models import Unit
from cellchain.core.models import User
from cellchain.core.types import LabelledEnum, UTCDateTime, sql_values
from cellchain.documents.versioning import STATUS_CHECK, VersionedDocument
from cellchain.dosing.models import Patient
from cellchain.extensions import Model, Recorded

#: The most copies of one label one print may ask for.
MAX_COPIES = 50


class OutputFormat(LabelledEnum):
    PNG = "png"
    PDF = "pdf"
    ZPL = "zpl"


class LabelEventKind(LabelledEnum):
    APPLIED = "applied"  #: put on its container, confirmed by scanning it there
    DESTROYED = "destroyed"  #: spoiled, superseded or not used, and destroyed


class LabelTemplateDocument(VersionedDocument, Recorded, Model):
    """One version of a label type's template, approved by QA (DOMAIN.md §9; issue 22).

    ``code`` is the label type in capitals (CRYOBAG); the parameters hold ``toml``, the
    template's text as a file in ``labels/`` has it. A print records the version it was drawn
    from (``LabelPrint.template_id``) and the SHA-256 of that text
    (``cellchain/labels/template_documents.py``).
    """

    __tablename__ = "label_templates"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint(STATUS_CHECK, name="status_known"),
    )
    signature_entity_type: ClassVar[str] = "label_template"
    document_label: ClassVar[str] = "Label template"


class LabelPrint(Recorded, Model):
    """The copies of one unit's label printed at once, and what became of them."""

    __tablename__ = "label_prints"
    __table_args__ = (
        CheckConstraint(f"output_format IN ({sql_values(OutputFormat)})", name="format_known"),
        CheckConstraint(f"copies BETWEEN 1 AND {MAX_COPIES}", name="copies_range"),
        CheckConstraint(
            "applied >= 0 AND destroyed >= 0 AND applied + destroyed <= copies",
            name="accounted_within_copies",
        ),
        Index("ix_label_prints_unit", "unit_id", "id"),
        # a label is of a unit (container, bag, dose) or of a patient (wristband), never both
        CheckConstraint("(unit_id IS NULL) <> (patient_id IS NULL)", name="unit_or_patient"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    #: the patient of a wristband
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    #: the lot the unit belongs to (a bag, a QC sample), for the lot's reconciliation
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"), index=True)
    label_type: Mapped[str] = mapped_column(String(30))
    template_version: Mapped[int] = mapped_column(Integer)
    #: SHA-256 of the template file the label was drawn from
    template_hash: Mapped[str] = mapped_column(String(64))
    #: the label template version (controlled document) it was drawn from; None for a print
    #: made before issue 22 whose file matched no version migration 0043 loaded
    template_id: Mapped[int | None] = mapped_column(ForeignKey("label_templates.id"))
    output_format: Mapped[str] = mapped_column(String(4))
    copies: Mapped[int] = mapped_column(Integer)
    #: what the QR code holds
    payload: Mapped[str] = mapped_column(String(40))
    #: the label printed "QUARANTINE — NOT FOR CLINICAL USE"
    quarantine: Mapped[bool] = mapped_column(Boolean)
    #: the status marking the label printed ("" for none, as on a released bag or a dose):
    #: compared with the marking the unit's status requires now (``service.label_state``)
    marking: Mapped[str] = mapped_column(String(200), default="")
    #: the label carried the ISBT 128 Data Matrix
    isbt: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the unit's (or patient's) status when printed
    unit_status: Mapped[str] = mapped_column(String(20))
    #: why the unit's label was printed again; None for its first label
    reason: Mapped[str | None] = mapped_column(Text)
    printed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    printed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    applied: Mapped[int] = mapped_column(Integer, default=0)
    destroyed: Mapped[int] = mapped_column(Integer, default=0)

    unit: Mapped[Unit | None] = relationship()
    patient: Mapped[Patient | None] = relationship()
    printed_by: Mapped[User] = relationship()
    template: Mapped[LabelTemplateDocument | None] = relationship()
    events: Mapped[list[LabelEvent]] = relationship(
        back_populates="label_print", order_by="LabelEvent.id"
    )

    @property
    def subject_code(self) -> str:
        """The code the label identifies: the unit's, or the patient's COI identifier."""
        if self.unit is not None:
            return self.unit.code
        assert self.patient is not None
        return self.patient.coi

    @property
    def outstanding(self) -> int:
        """Copies neither applied nor destroyed yet."""
        return self.copies - self.applied - self.destroyed

    @property
    def reprint(self) -> bool:
        return self.reason is not None


class LabelEvent(Recorded, Model):
    """One accounting of printed copies: applied (scanned on the container) or destroyed."""

    __tablename__ = "label_events"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_values(LabelEventKind)})", name="kind_known"),
        CheckConstraint("count >= 1", name="count_positive"),
        CheckConstraint("kind = 'applied' OR reason IS NOT NULL", name="destroyed_has_reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    label_print_id: Mapped[int] = mapped_column(ForeignKey("label_prints.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    count: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    label_print: Mapped[LabelPrint] = relationship(back_populates="events")
    recorded_by: Mapped[User] = relationship()
