"""Tables of the quality package: release specifications, QC samples and results, and the
QA disposition of a lot (DOMAIN.md §5)."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship

from cellchain.chain.models import Unit
from cellchain.core.models import User
from cellchain.core.types import UTCDateTime, sql_values
from cellchain.documents.versioning import STATUS_CHECK, VersionedDocument
from cellchain.extensions import Model, Recorded
from cellchain.manufacturing.models import Lot


class Specification(VersionedDocument, Recorded, Model):
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


class QcSample(Recorded, Model):
    """A QC sample tube taken from a bag of a lot (lineage operation ``sample``).

    The tube is a unit of its own, with its own label; results name the tube they were
    measured on, so each result traces back through the bag to the donation.
    """

    __tablename__ = "qc_samples"

    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    #: the bag the sample was drawn from
    taken_from_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    taken_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    taken_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: what the sample is for, e.g. "sterility, endotoxin"
    purpose: Mapped[str | None] = mapped_column(String(200))

    unit: Mapped[Unit] = relationship(foreign_keys=[unit_id])
    lot: Mapped[Lot] = relationship()
    taken_from: Mapped[Unit] = relationship(foreign_keys=[taken_from_id])
    taken_by: Mapped[User] = relationship()


class ResultStatus(enum.StrEnum):
    VALID = "valid"  #: counts toward release
    INVALIDATED = "invalidated"  #: set aside by QA with a reason and signature; kept visible


class QcResult(Recorded, Model):
    """One release-test result on a lot. Never overwritten (DOMAIN.md §5).

    The specification version in force when it was recorded, the criterion as it read then and
    the verdict are stored with the value. At most one result per lot and test is valid at a
    time (a partial unique index): a retest is recorded only after QA has invalidated the
    earlier result with a reason and a signature, and both stay on file.
    """

    __tablename__ = "qc_results"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_values(ResultStatus)})", name="status_known"),
        CheckConstraint("(value_number IS NULL) <> (value_text IS NULL)", name="one_value"),
        Index(
            "uq_qc_results_one_valid_per_test",
            "lot_id",
            "test_code",
            unique=True,
            sqlite_where=text("status = 'valid'"),
            postgresql_where=text("status = 'valid'"),
        ),
    )
    signature_entity_type: ClassVar[str] = "qc_result"

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    #: the QC sample tube measured
    sample_id: Mapped[int] = mapped_column(ForeignKey("qc_samples.unit_id"))
    #: the specification version in force when the result was recorded
    specification_id: Mapped[int] = mapped_column(ForeignKey("specifications.id"))
    test_code: Mapped[str] = mapped_column(String(30))
    test_name: Mapped[str] = mapped_column(String(120))
    method: Mapped[str] = mapped_column(String(120))
    #: numeric results: the number, in ``unit``; other results: the category as text
    value_number: Mapped[float | None] = mapped_column(Float)
    value_text: Mapped[str | None] = mapped_column(String(40))
    unit: Mapped[str | None] = mapped_column(String(20))
    #: for a criterion relative to the label (viable cells per bag): the bag's labelled viable
    #: cells, total cells × viability at fill
    labelled_value: Mapped[float | None] = mapped_column(Float)
    #: the acceptance criterion in words, as the specification version said it
    criterion: Mapped[str] = mapped_column(String(200))
    passes: Mapped[bool] = mapped_column(Boolean)
    instrument: Mapped[str] = mapped_column(String(60))
    #: the registered equipment whose code the instrument names, if any (issue 22)
    equipment_id: Mapped[int | None] = mapped_column(ForeignKey("equipment.id"))
    tested_on: Mapped[dt.date] = mapped_column(Date)
    analyst_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(12), default=ResultStatus.VALID.value)
    invalidated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    invalidated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    invalidation_reason: Mapped[str | None] = mapped_column(Text)

    lot: Mapped[Lot] = relationship()
    sample: Mapped[QcSample] = relationship()
    specification: Mapped[Specification] = relationship()
    analyst: Mapped[User] = relationship(foreign_keys=[analyst_id])
    invalidated_by: Mapped[User | None] = relationship(foreign_keys=[invalidated_by_id])

    @property
    def value(self) -> float | str:
        return self.value_number if self.value_number is not None else str(self.value_text)

    @property
    def valid(self) -> bool:
        return self.status == ResultStatus.VALID.value

    @property
    def out_of_specification(self) -> bool:
        return not self.passes

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """QA's invalidation signature covers the result as recorded and the reason."""
        return {
            **self.recorded_content(),
            "status": self.status,
            "invalidation_reason": self.invalidation_reason,
        }

    def recorded_content(self) -> dict[str, Any]:
        """What was measured and how it was judged: the part no one may ever change."""
        return {
            "id": self.id,
            "lot_id": self.lot_id,
            "sample_id": self.sample_id,
            "specification_id": self.specification_id,
            "test_code": self.test_code,
            "value": self.value,
            "unit": self.unit,
            "labelled_value": self.labelled_value,
            "criterion": self.criterion,
            "passes": self.passes,
            "instrument": self.instrument,
            "tested_on": self.tested_on.isoformat(),
            "analyst_id": self.analyst_id,
        }


class Decision(enum.StrEnum):
    RELEASED = "released"  #: released for clinical use; the bags become available
    REJECTED = "rejected"  #: rejected for good; the bags become rejected


class LotDisposition(Recorded, Model):
    """QA's release or rejection of a lot, e-signed. One per lot, ever (unique ``lot_id``)."""

    __tablename__ = "lot_dispositions"
    __table_args__ = (
        CheckConstraint(f"decision IN ({sql_values(Decision)})", name="decision_known"),
    )
    signature_entity_type: ClassVar[str] = "lot_disposition"

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), unique=True)
    decision: Mapped[str] = mapped_column(String(10))
    #: required for a rejection; an optional comment on a release
    reason: Mapped[str | None] = mapped_column(Text)
    #: the specification version the results were reviewed against
    specification_id: Mapped[int | None] = mapped_column(ForeignKey("specifications.id"))
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    decided_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    lot: Mapped[Lot] = relationship()
    specification: Mapped[Specification | None] = relationship()
    decided_by: Mapped[User] = relationship()

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """The decision, the lot, and every result on file as it was reviewed.

        The results are read afresh, so a later change to any recorded value shows the
        disposition signature as no longer valid. (Invalidating a result later changes only
        its status, which the disposition does not cover.)
        """
        session = object_session(self)
        results: Iterable[QcResult] = (
            session.execute(
                select(QcResult).where(QcResult.lot_id == self.lot_id).order_by(QcResult.id)
            ).scalars()
            if session is not None
            else []
        )
        return {
            "lot_id": self.lot_id,
            "lot_number": self.lot.lot_number,
            "decision": self.decision,
            "reason": self.reason,
            "specification_id": self.specification_id,
            "results": [result.recorded_content() for result in results],
        }
