"""Tables of the donors package: birth mothers, donations, receipt, tests and eligibility.

Rules: DOMAIN.md §1–3 (21 CFR 1271 subpart C). The donor is the birth mother, known here only
by a pseudonymous donor code; no name or hospital number is stored or printed (1271.290(c)).
"""

from __future__ import annotations

import datetime as dt
import enum
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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cellchain.chain.models import Unit
from cellchain.core.models import User
from cellchain.core.types import LabelledEnum, UTCDateTime, sql_values
from cellchain.documents.versioning import STATUS_CHECK, VersionedDocument
from cellchain.extensions import Model, Recorded
from cellchain.manufacturing.models import ProductDefinition


class ScreeningOutcome(LabelledEnum):
    """Outcome of the donor screening questionnaire and medical history review (1271.75)."""

    ACCEPTABLE = "acceptable"
    NOT_ACCEPTABLE = "not_acceptable"


class DonationStatus(enum.StrEnum):
    """Where a donation is physically; eligibility is tracked separately."""

    REGISTERED = "registered"  #: collected and registered, not yet received at the lab
    RECEIVED = "received"  #: accepted at receipt (1271.265(a))
    REJECTED = "rejected"  #: refused at receipt (final)
    PROCESSING = "processing"  #: processing has started

    @property
    def label(self) -> str:
        return self.value


DONATION_TRANSITIONS: dict[DonationStatus, frozenset[DonationStatus]] = {
    DonationStatus.REGISTERED: frozenset({DonationStatus.RECEIVED, DonationStatus.REJECTED}),
    DonationStatus.RECEIVED: frozenset({DonationStatus.PROCESSING}),
    DonationStatus.REJECTED: frozenset(),
    DonationStatus.PROCESSING: frozenset(),
}


class Eligibility(enum.StrEnum):
    """The donor eligibility determination (1271.50); pending means quarantine (1271.60)."""

    PENDING = "pending"
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"


class ContainerCondition(LabelledEnum):
    """The state of the shipping container and primary containers on arrival."""

    INTACT = "intact"
    DAMAGED = "damaged"
    LEAKING = "leaking"
    SEAL_BROKEN = "seal_broken"


class InfectiousResult(enum.StrEnum):
    """A qualitative infectious-disease test result."""

    NON_REACTIVE = "non_reactive"
    REACTIVE = "reactive"
    INDETERMINATE = "indeterminate"

    @property
    def label(self) -> str:
        return self.value.replace("_", "-")


class DonorTestPanel(VersionedDocument, Recorded, Model):
    """One version of a donor test panel (DOMAIN.md §3; 21 CFR 1271.85), approved by QA.

    ``code`` names the panel (UC-MSC: by default a product's panel has the product's code; a
    product definition may name another with ``donor_test_panel_code``); the parameters hold
    ``tests``, each with its ``code`` and ``name``. A donation keeps the version in force at
    its registration (``cellchain/donors/panels.py``).
    """

    __tablename__ = "donor_test_panels"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint(STATUS_CHECK, name="status_known"),
    )
    signature_entity_type: ClassVar[str] = "donor_test_panel"
    document_label: ClassVar[str] = "Donor test panel"


class Donor(Recorded, Model):
    """A birth mother, under a pseudonymous code the system issues (never a name or MRN)."""

    __tablename__ = "donors"
    __table_args__ = (
        CheckConstraint(
            f"screening_outcome IN ({sql_values(ScreeningOutcome)})", name="screening_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: pseudonymous donor code, e.g. DNR26-00001; the key to the hospital's records stays there
    code: Mapped[str] = mapped_column(String(20), unique=True)
    consent_date: Mapped[dt.date] = mapped_column(Date)
    #: version of the consent form signed, e.g. "ICF v3.1"
    consent_form_version: Mapped[str] = mapped_column(String(40))
    consent_recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    consent_recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    screening_outcome: Mapped[str] = mapped_column(String(20))
    screening_date: Mapped[dt.date] = mapped_column(Date)
    screening_recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    screening_notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    consent_recorded_by: Mapped[User | None] = relationship(foreign_keys=[consent_recorded_by_id])
    screening_recorded_by: Mapped[User | None] = relationship(
        foreign_keys=[screening_recorded_by_id]
    )
    donations: Mapped[list[Donation]] = relationship(back_populates="donor", order_by="Donation.id")


class Donation(Recorded, Model):
    """Cord and/or placenta tissue from one birth, identified by its DIN."""

    __tablename__ = "donations"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_values(DonationStatus)})", name="status_known"),
        CheckConstraint(f"eligibility IN ({sql_values(Eligibility)})", name="eligibility_known"),
        CheckConstraint("umbilical_cord OR placenta", name="some_tissue"),
        CheckConstraint(
            f"container_condition IS NULL OR container_condition IN "
            f"({sql_values(ContainerCondition)})",
            name="condition_known",
        ),
        Index("ix_donations_status_eligibility", "status", "eligibility"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: canonical DIN with its check character, e.g. X999926000001K
    din: Mapped[str] = mapped_column(String(14), unique=True)
    donor_id: Mapped[int] = mapped_column(ForeignKey("donors.id"), index=True)
    #: the product definition version in force at registration: its panel and limits apply
    product_definition_id: Mapped[int] = mapped_column(ForeignKey("product_definitions.id"))
    #: the donor test panel version in force at registration: its tests are the ones required
    donor_test_panel_id: Mapped[int] = mapped_column(ForeignKey("donor_test_panels.id"))
    umbilical_cord: Mapped[bool] = mapped_column(Boolean)
    placenta: Mapped[bool] = mapped_column(Boolean)
    #: the birth: the clock for the birth-to-processing limit starts here
    delivery_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: recovery of the tissue: the mother's specimen must be within ± the window of this
    collected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    collection_site: Mapped[str] = mapped_column(String(120))
    #: the person who recovered the tissue (often hospital staff without an account here)
    collector: Mapped[str] = mapped_column(String(120))
    transport_conditions: Mapped[str] = mapped_column(String(200))
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    registered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(20))
    eligibility: Mapped[str] = mapped_column(String(20))

    # receipt at the lab (1271.265(a))
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    received_recorded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    received_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    arrival_temperature_c: Mapped[float | None] = mapped_column(Float)
    container_condition: Mapped[str | None] = mapped_column(String(20))
    #: why it was rejected at receipt, or a remark on an accepted one
    receipt_note: Mapped[str | None] = mapped_column(Text)

    processing_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    processing_started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    donor: Mapped[Donor] = relationship(back_populates="donations")
    product_definition: Mapped[ProductDefinition] = relationship()
    donor_test_panel: Mapped[DonorTestPanel] = relationship()
    registered_by: Mapped[User | None] = relationship(foreign_keys=[registered_by_id])
    received_by: Mapped[User | None] = relationship(foreign_keys=[received_by_id])
    processing_started_by: Mapped[User | None] = relationship(
        foreign_keys=[processing_started_by_id]
    )
    units: Mapped[list[Unit]] = relationship(back_populates="donation", order_by="Unit.id")
    results: Mapped[list[DonorTestResult]] = relationship(
        back_populates="donation", order_by="DonorTestResult.id"
    )
    #: every determination ever signed, the re-opened ones too, oldest first
    determinations: Mapped[list[EligibilityDetermination]] = relationship(
        back_populates="donation", order_by="EligibilityDetermination.id"
    )
    #: the determination in force: the latest one not re-opened by a later result
    determination: Mapped[EligibilityDetermination | None] = relationship(
        primaryjoin="and_(Donation.id == EligibilityDetermination.donation_id, "
        "EligibilityDetermination.reopened_at.is_(None))",
        viewonly=True,
        uselist=False,
    )

    @property
    def tissues(self) -> list[str]:
        return [
            name
            for name, present in (
                ("umbilical cord", self.umbilical_cord),
                ("placenta", self.placenta),
            )
            if present
        ]

    @property
    def current_results(self) -> list[DonorTestResult]:
        """The results that count: every result not replaced by a correction."""
        return [result for result in self.results if result.superseded_at is None]

    @property
    def in_quarantine(self) -> bool:
        """Quarantine (1271.60) lasts until the donor is determined eligible."""
        return self.eligibility != Eligibility.ELIGIBLE.value


class DonorTestResult(Recorded, Model):
    """One infectious-disease test result on the birth mother's specimen.

    Never overwritten: a correction is a new row naming the row it corrects and why; the old
    row stays, marked superseded. At most one current result per test and donation.
    """

    __tablename__ = "donor_test_results"
    __table_args__ = (
        CheckConstraint(f"result IN ({sql_values(InfectiousResult)})", name="result_known"),
        Index(
            "uq_donor_test_results_current",
            "donation_id",
            "test_code",
            unique=True,
            sqlite_where=text("superseded_at IS NULL"),
            postgresql_where=text("superseded_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    donation_id: Mapped[int] = mapped_column(ForeignKey("donations.id"), index=True)
    #: code of the test on the donation's panel, e.g. HIV1-NAT
    test_code: Mapped[str] = mapped_column(String(20))
    specimen_date: Mapped[dt.date] = mapped_column(Date)
    result: Mapped[str] = mapped_column(String(20))
    #: the testing laboratory and the kit or method, as reported
    method: Mapped[str | None] = mapped_column(String(200))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: the earlier result this one corrects, and why
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("donor_test_results.id"))
    correction_reason: Mapped[str | None] = mapped_column(Text)
    #: when a correction replaced this result (null while it counts)
    superseded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: the correction that replaced it
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("donor_test_results.id"))

    donation: Mapped[Donation] = relationship(back_populates="results")
    recorded_by: Mapped[User] = relationship()

    @property
    def result_label(self) -> str:
        return InfectiousResult(self.result).label


class EligibilityDetermination(Recorded, Model):
    """QA's e-signed donor eligibility determination for one donation (1271.50).

    One in force per donation. A later donor result that the determination no longer agrees
    with (a late reactive test) re-opens it: it stays, signed and visible, marked re-opened by
    that result, and the donation waits for a new determination (lookback, DOMAIN.md §7).
    """

    __tablename__ = "eligibility_determinations"
    __table_args__ = (
        CheckConstraint("outcome IN ('eligible', 'ineligible')", name="outcome_known"),
        # one determination in force per donation, even when two QA people sign at once
        Index(
            "uq_eligibility_determinations_current",
            "donation_id",
            unique=True,
            sqlite_where=text("reopened_at IS NULL"),
            postgresql_where=text("reopened_at IS NULL"),
        ),
    )
    signature_entity_type: ClassVar[str] = "eligibility_determination"

    id: Mapped[int] = mapped_column(primary_key=True)
    donation_id: Mapped[int] = mapped_column(ForeignKey("donations.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    #: why; required for an ineligible determination
    reason: Mapped[str | None] = mapped_column(Text)
    determined_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    determined_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: when a later donor result re-opened it (null while it is in force)
    reopened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: the result, recorded or corrected after the determination, that re-opened it
    reopened_by_result_id: Mapped[int | None] = mapped_column(ForeignKey("donor_test_results.id"))
    #: why it was re-opened, in words (the test, its new result, who recorded it)
    reopened_reason: Mapped[str | None] = mapped_column(Text)

    donation: Mapped[Donation] = relationship(back_populates="determinations")
    determined_by: Mapped[User] = relationship()
    reopened_by_result: Mapped[DonorTestResult | None] = relationship()

    @property
    def in_force(self) -> bool:
        return self.reopened_at is None

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """The signature covers the outcome and every piece of evidence it rests on."""
        donation = self.donation
        donor = donation.donor
        return {
            "din": donation.din,
            "donor_code": donor.code,
            "outcome": self.outcome,
            "reason": self.reason,
            "screening_outcome": donor.screening_outcome,
            "screening_date": donor.screening_date.isoformat(),
            "collected_at": donation.collected_at.isoformat(),
            "results": sorted(
                (
                    {
                        "test": result.test_code,
                        "result": result.result,
                        "specimen_date": result.specimen_date.isoformat(),
                    }
                    for result in donation.current_results
                ),
                key=lambda row: row["test"],
            ),
        }
