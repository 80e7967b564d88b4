"""Tables of the dosing package: protocol versions, patients, weights, dose orders and the bags
allocated to them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import typing
from collections.abc import Sequence
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cellchain.chain.models import Unit
from cellchain.core.i18n import LazyText, lazy
from cellchain.core.models import User
from cellchain.core.types import LabelledEnum, UTCDateTime, sql_values
from cellchain.documents.versioning import STATUS_CHECK, VersionedDocument
from cellchain.extensions import Model, Recorded
from cellchain.sites.models import Site


class Protocol(VersionedDocument, Recorded, Model):
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


class _DosingEnum(LabelledEnum):
    """A dosing value a person reads, in the language of the moment (:data:`DOSING_LABELS`)."""

    @property
    def label(self) -> str:
        known = DOSING_LABELS.get(self.value)
        return str(known) if known is not None else self.value.replace("_", " ")


class Sex(_DosingEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


class ArmSource(_DosingEnum):
    TRIAL_RANDOMIZATION = "trial_randomization"  #: from the trial's own randomization list
    #: the protocol's only arm (open label: no randomization, issue 22)
    SINGLE_ARM = "single_arm"


class PatientStatus(_DosingEnum):
    ENROLLED = "enrolled"
    WITHDRAWN = "withdrawn"


class Patient(Recorded, Model):
    """A trial subject, by study ID and chain-of-identity identifier only: the clinic keeps
    names and record numbers out of this system (DOMAIN.md §9)."""

    __tablename__ = "patients"
    __table_args__ = (
        CheckConstraint(f"sex IN ({sql_values(Sex)})", name="sex_known"),
        CheckConstraint(f"arm_source IN ({sql_values(ArmSource)})", name="arm_source_known"),
        CheckConstraint(f"status IN ({sql_values(PatientStatus)})", name="status_known"),
    )
    signature_entity_type: ClassVar[str] = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the trial's subject ID, e.g. AS-007
    study_id: Mapped[str] = mapped_column(String(30), unique=True)
    #: the chain-of-identity identifier (ISBT 128 ST-028) allocated at enrolment, with K
    coi: Mapped[str] = mapped_column(String(16), unique=True)
    protocol_id: Mapped[int] = mapped_column(ForeignKey("protocols.id"))
    date_of_birth: Mapped[dt.date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(10))
    #: the arm's code in the protocol (MSC, CONTROL)
    arm: Mapped[str] = mapped_column(String(20))
    arm_source: Mapped[str] = mapped_column(String(30))
    randomization_number: Mapped[str | None] = mapped_column(String(30))
    #: the checklist as answered: code → {"answer": bool, "value": number or null}
    checklist_json: Mapped[str] = mapped_column(Text)
    #: the planned date of the first infusion; every visit is planned from it
    day0: Mapped[dt.date] = mapped_column(Date)
    enrolled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    enrolled_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(20))
    #: the clinical site that enrolled and treats the patient (issue 22, migration 0045)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)

    protocol: Mapped[Protocol] = relationship()
    enrolled_by: Mapped[User] = relationship()
    site: Mapped[Site] = relationship()
    weights: Mapped[list[Weight]] = relationship(
        back_populates="patient", order_by="Weight.measured_at.desc()"
    )

    @property
    def checklist(self) -> dict[str, Any]:
        return dict(json.loads(self.checklist_json))

    @property
    def status_label(self) -> str:
        return PatientStatus(self.status).label

    @property
    def sex_label(self) -> str:
        return Sex(self.sex).label

    @property
    def arm_source_label(self) -> str:
        return ArmSource(self.arm_source).label


class WeightConfirmation(_DosingEnum):
    """How a weight that changed by the protocol's flag was confirmed (DOMAIN.md §7)."""

    REWEIGHED = "reweighed"  #: a new weight within the flag of it was measured
    COUNTERSIGNED = "countersigned"  #: a second person signed it with their own password


class Weight(Recorded, Model):
    """A body weight: when it was measured, how, and who recorded it.

    A weight that differs by the protocol's flag (≥ 10 %) from the patient's previous
    confirmed weight or from the weight the last dose was computed from is *unconfirmed*
    until a re-weigh agrees with it or a second person countersigns it; no dose is computed
    from an unconfirmed weight.
    """

    __tablename__ = "weights"
    __table_args__ = (
        CheckConstraint("weight_kg > 0", name="weight_positive"),
        CheckConstraint(
            f"confirmation IS NULL OR confirmation IN ({sql_values(WeightConfirmation)})",
            name="confirmation_known",
        ),
        Index("ix_weights_patient_measured", "patient_id", "measured_at"),
    )
    signature_entity_type: ClassVar[str] = "weight"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    weight_kg: Mapped[float] = mapped_column(Float)
    measured_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: how it was measured, e.g. "calibrated clinic scale"
    source: Mapped[str] = mapped_column(String(120))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: the change (%) that needs confirming, from the weight named in ``change_reference``;
    #: null when the weight is within the protocol's flag of every weight it is compared with
    change_percent: Mapped[float | None] = mapped_column(Float)
    #: what the change was measured from, in words (the previous weight, the last dose's)
    change_reference: Mapped[str | None] = mapped_column(String(200))
    #: how the change was confirmed (WeightConfirmation); null while unconfirmed
    confirmation: Mapped[str | None] = mapped_column(String(20))
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: the re-weigh that agreed with this weight
    confirmed_by_weight_id: Mapped[int | None] = mapped_column(ForeignKey("weights.id"))

    patient: Mapped[Patient] = relationship(back_populates="weights")
    recorded_by: Mapped[User] = relationship(foreign_keys=[recorded_by_id])
    confirmed_by: Mapped[User | None] = relationship(foreign_keys=[confirmed_by_id])

    @property
    def needs_confirmation(self) -> bool:
        """Changed by the protocol's flag and not yet re-weighed or countersigned."""
        return needs_confirmation(self.change_percent, self.confirmation)

    @property
    def confirmation_label(self) -> str | None:
        return WeightConfirmation(self.confirmation).label if self.confirmation else None

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """What a countersignature confirms: the weight, when and how it was measured, and
        the change it was flagged for."""
        return {
            "patient": self.patient.study_id,
            "weight_kg": self.weight_kg,
            "measured_at": self.measured_at.isoformat(),
            "source": self.source,
            "change_percent": self.change_percent,
            "change_reference": self.change_reference,
        }


class DoseStatus(_DosingEnum):
    ALLOCATED = "allocated"  #: computed, bags allocated, awaiting the independent second check
    PREPARED = "prepared"  #: second-checked and signed: the dose exists and may be labelled
    INFUSED = "infused"  #: given to the patient (final): its infusion started after a signed go
    CANCELLED = "cancelled"  #: withdrawn before use (final); bags still in the lab went back


#: Allowed dose order status changes (DESIGN.md rule 2).
DOSE_TRANSITIONS: dict[DoseStatus, frozenset[DoseStatus]] = {
    DoseStatus.ALLOCATED: frozenset({DoseStatus.PREPARED, DoseStatus.CANCELLED}),
    DoseStatus.PREPARED: frozenset({DoseStatus.INFUSED, DoseStatus.CANCELLED}),
    DoseStatus.INFUSED: frozenset(),
    DoseStatus.CANCELLED: frozenset(),
}

#: A dose in these states holds its visit: no second order for the same visit.
ACTIVE_DOSE_STATUSES = (DoseStatus.ALLOCATED, DoseStatus.PREPARED, DoseStatus.INFUSED)


class DoseOrder(Recorded, Model):
    """One scheduled infusion's dose for one patient, computed from a fresh weight."""

    __tablename__ = "dose_orders"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_values(DoseStatus)})", name="status_known"),
        # one live dose per patient and visit
        Index(
            "uq_dose_orders_live_visit",
            "patient_id",
            "visit",
            unique=True,
            sqlite_where=text("status != 'cancelled'"),
            postgresql_where=text("status != 'cancelled'"),
        ),
    )
    signature_entity_type: ClassVar[str] = "dose_order"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    protocol_id: Mapped[int] = mapped_column(ForeignKey("protocols.id"))
    #: the infusion's code in the protocol (D0, M3)
    visit: Mapped[str] = mapped_column(String(10))
    planned_on: Mapped[dt.date] = mapped_column(Date)
    weight_id: Mapped[int] = mapped_column(ForeignKey("weights.id"))
    #: viable cells: dose per kg × weight
    target_cells: Mapped[float] = mapped_column(Float)
    volume_ml: Mapped[float] = mapped_column(Float)
    #: viable cells: rounded volume × the bags' total cells per mL × release viability (once)
    delivered_cells: Mapped[float] = mapped_column(Float)
    deviation_percent: Mapped[float] = mapped_column(Float)
    dmso_g_per_kg: Mapped[float] = mapped_column(Float)
    endotoxin_eu_per_kg: Mapped[float | None] = mapped_column(Float)
    #: the arithmetic step by step, as shown on the page
    working_json: Mapped[str] = mapped_column(Text)
    #: the weight changed by at least the protocol's flag since the weight of the last dose
    weight_change_percent: Mapped[float | None] = mapped_column(Float)
    weight_change_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    #: outside tolerance, accepted by an investigator's signature with a deviation recorded
    override_reason: Mapped[str | None] = mapped_column(Text)
    deviation_id: Mapped[int | None] = mapped_column(ForeignKey("deviations.id"))
    status: Mapped[str] = mapped_column(String(20))
    ordered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    prepared_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    checked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: the prepared dose as a unit (made at the second check), labelled for this patient
    dose_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))

    patient: Mapped[Patient] = relationship()
    protocol: Mapped[Protocol] = relationship()
    weight: Mapped[Weight] = relationship()
    prepared_by: Mapped[User] = relationship(foreign_keys=[prepared_by_id])
    checked_by: Mapped[User | None] = relationship(foreign_keys=[checked_by_id])
    dose_unit: Mapped[Unit | None] = relationship()
    bags: Mapped[list[DoseBag]] = relationship(back_populates="order", order_by="DoseBag.position")

    @property
    def status_label(self) -> str:
        return DoseStatus(self.status).label

    @property
    def working(self) -> list[str]:
        return list(json.loads(self.working_json))

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """What the second check (and an override) signs (``dose_signed_content``)."""
        return dose_signed_content(
            self,
            study_id=self.patient.study_id,
            coi=self.patient.coi,
            weight_kg=self.weight.weight_kg,
            weight_measured_at=self.weight.measured_at,
            bags=[(bag.unit.code, bag.volume_ml) for bag in self.bags],
        )


class DoseFigures(typing.Protocol):
    """The columns of a dose order that its signed content names: the ORM row, or a plain
    row of them (the bedside's ``doses.dose_reads``)."""

    @property
    def visit(self) -> str: ...
    @property
    def target_cells(self) -> float: ...
    @property
    def volume_ml(self) -> float: ...
    @property
    def delivered_cells(self) -> float: ...
    @property
    def deviation_percent(self) -> float: ...
    @property
    def dmso_g_per_kg(self) -> float: ...
    @property
    def endotoxin_eu_per_kg(self) -> float | None: ...
    @property
    def override_reason(self) -> str | None: ...


def dose_signed_content(
    order: DoseFigures,
    *,
    study_id: str,
    coi: str,
    weight_kg: float,
    weight_measured_at: dt.datetime,
    bags: Sequence[tuple[str, float]],
) -> dict[str, Any]:
    """What the second check (and an override) signs: who the dose is for and every figure
    of it, with the bags (unit code, volume drawn, in the order's bag order). The one rule of
    ``DoseOrder.signed_content``, from the facts alone: the bedside checks a signature's
    hash from plain rows with it."""
    return {
        "patient": study_id,
        "coi": coi,
        "visit": order.visit,
        "weight_kg": weight_kg,
        "weight_measured_at": weight_measured_at.isoformat(),
        "target_cells": order.target_cells,
        "volume_ml": order.volume_ml,
        "delivered_cells": order.delivered_cells,
        "deviation_percent": order.deviation_percent,
        "dmso_g_per_kg": order.dmso_g_per_kg,
        "endotoxin_eu_per_kg": order.endotoxin_eu_per_kg,
        "bags": [[code, volume_ml] for code, volume_ml in bags],
        "override_reason": order.override_reason,
    }


def needs_confirmation(change_percent: float | None, confirmation: str | None) -> bool:
    """A weight changed by the protocol's flag and not yet re-weighed or countersigned
    (``Weight.needs_confirmation``), from its two columns."""
    return change_percent is not None and confirmation is None


class DoseBag(Recorded, Model):
    """A bag allocated to a dose order and what is drawn from it. A bag is allocated to one
    live order only: its unit status moves available → allocated in a guarded update."""

    __tablename__ = "dose_bags"
    __table_args__ = (CheckConstraint("volume_ml > 0", name="volume_positive"),)

    order_id: Mapped[int] = mapped_column(ForeignKey("dose_orders.id"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    volume_ml: Mapped[float] = mapped_column(Float)
    #: viable cells drawn from this bag (volume × its total cells per mL × release viability)
    cells: Mapped[float] = mapped_column(Float)
    whole_bag: Mapped[bool] = mapped_column(Boolean)

    order: Mapped[DoseOrder] = relationship(back_populates="bags")
    unit: Mapped[Unit] = relationship()


class RandomizationMethod(_DosingEnum):
    PERMUTED_BLOCK = "permuted_block"  #: generated here from the statistician's seed
    IMPORTED = "imported"  #: a list made elsewhere, imported as CSV


class ScheduleStatus(_DosingEnum):
    ACTIVE = "active"  #: the schedule enrolment draws from
    SUPERSEDED = "superseded"  #: replaced before any slot was used


class RandomizationSchedule(Recorded, Model):
    """A trial's randomization schedule, signed by the statistician (``randomization.py``):
    one slot per planned patient, drawn in sequence at enrolment. One active schedule per
    trial; replaced only while no slot is used."""

    __tablename__ = "randomization_schedules"
    __table_args__ = (
        CheckConstraint(f"method IN ({sql_values(RandomizationMethod)})", name="method_known"),
        CheckConstraint(f"status IN ({sql_values(ScheduleStatus)})", name="status_known"),
        Index(
            "uq_randomization_schedules_active",
            "protocol_code",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )
    signature_entity_type: ClassVar[str] = "randomization_schedule"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the trial (protocol code); the schedule outlives a new version of its protocol
    protocol_code: Mapped[str] = mapped_column(String(40))
    #: the protocol version whose ratio and planned enrolment it was made for
    protocol_id: Mapped[int] = mapped_column(ForeignKey("protocols.id"))
    method: Mapped[str] = mapped_column(String(20))
    ratio: Mapped[str] = mapped_column(String(20))
    planned_enrolment: Mapped[int] = mapped_column(Integer)
    #: permuted blocks: the block sizes drawn from, e.g. "2,4"; null for an imported list
    block_sizes: Mapped[str | None] = mapped_column(String(40))
    #: SHA-256 of the seed (the seed itself is never stored) or of the imported list
    source_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    protocol: Mapped[Protocol] = relationship()
    created_by: Mapped[User] = relationship()
    slots: Mapped[list[RandomizationSlot]] = relationship(
        back_populates="schedule", order_by="RandomizationSlot.sequence"
    )

    @property
    def method_label(self) -> str:
        return RandomizationMethod(self.method).label

    @property
    def status_label(self) -> str:
        return ScheduleStatus(self.status).label

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """What the statistician signs: the method, its source and every slot in order. A
        slot is signed by the SHA-256 of its allocation (its arm and a random nonce), never
        by its arm: the signature's content is kept in the audit trail, which the enroller
        may read, so it binds every arm without showing any (allocation concealment)."""
        return {
            "protocol": self.protocol_code,
            "method": self.method,
            "ratio": self.ratio,
            "planned_enrolment": self.planned_enrolment,
            "block_sizes": self.block_sizes,
            "source_sha256": self.source_sha256,
            "slots": [
                [
                    s.sequence,
                    s.randomization_number,
                    hashlib.sha256(s.allocation.encode()).hexdigest(),
                ]
                for s in self.slots
            ],
        }


class RandomizationSlot(Recorded, Model):
    """One place of a schedule: its randomization number and arm, and the patient it went to.
    The arm is concealed until enrolment is complete: only the statistician's pages show an
    unused slot's arm, and the trail holds a digest of ``allocation`` (arm and a random nonce),
    not the arm."""

    __tablename__ = "randomization_slots"
    __table_args__ = (
        UniqueConstraint("schedule_id", "sequence", name="uq_randomization_slots_sequence"),
        UniqueConstraint(
            "schedule_id", "randomization_number", name="uq_randomization_slots_number"
        ),
        CheckConstraint("sequence > 0", name="sequence_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("randomization_schedules.id"))
    sequence: Mapped[int] = mapped_column(Integer)
    randomization_number: Mapped[str] = mapped_column(String(30))
    #: the arm's code, a colon and a random nonce ("MSC:9f…"): digested in the trail, so the
    #: trail never shows an unused slot's arm and a change in SQL is still named
    allocation: Mapped[str] = mapped_column(String(60))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), unique=True)
    allocated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    schedule: Mapped[RandomizationSchedule] = relationship(back_populates="slots")

    @property
    def arm(self) -> str:
        return self.allocation.split(":", 1)[0]


class PreInfusionRecheck(Recorded, Model):
    """A clinician's re-confirmation, before an infusion after the first (M3), of the
    eligibility items that can change since enrolment (the protocol's ``pre_infusion_recheck``:
    pregnancy test, active infection, another trial, organ function, ECOG score). Every item
    is answered; ``passed`` is false when any item is not met, and the patient is then not
    eligible for that infusion. The latest re-check of a visit is the one that counts, for
    the protocol's ``valid_days`` after it was recorded (``dosing/rechecks``)."""

    __tablename__ = "pre_infusion_rechecks"
    __table_args__ = (Index("ix_pre_infusion_rechecks_patient_visit", "patient_id", "visit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    #: the protocol version whose items were answered
    protocol_id: Mapped[int] = mapped_column(ForeignKey("protocols.id"))
    #: the infusion's code in the protocol (M3)
    visit: Mapped[str] = mapped_column(String(10))
    #: code → {"answer": bool or the option chosen, "value": number or null, "reason": text
    #: or null, "met": bool}, as answered
    answers_json: Mapped[str] = mapped_column(Text)
    passed: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    patient: Mapped[Patient] = relationship()
    protocol: Mapped[Protocol] = relationship()
    recorded_by: Mapped[User] = relationship()

    @property
    def answers(self) -> dict[str, Any]:
        return dict(json.loads(self.answers_json))


#: the dosing values people read (sex, statuses, sources), by stored value
DOSING_LABELS: dict[str, LazyText] = {
    "female": lazy("female"),
    "male": lazy("male"),
    "other": lazy("other"),
    "trial_randomization": lazy("trial randomization"),
    "single_arm": lazy("the protocol's only arm (open label)"),
    "enrolled": lazy("enrolled"),
    "withdrawn": lazy("withdrawn"),
    "reweighed": lazy("reweighed"),
    "countersigned": lazy("countersigned"),
    "allocated": lazy("allocated"),
    "prepared": lazy("prepared"),
    "infused": lazy("infused"),
    "cancelled": lazy("cancelled"),
    "permuted_block": lazy("permuted block"),
    "imported": lazy("imported"),
    "active": lazy("active"),
    "superseded": lazy("superseded"),
}
