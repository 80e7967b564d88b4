"""Tables of the manufacturing package: product definitions, materials, equipment, the
processing steps of the batch record, lots, deviations and LN2 storage."""

from __future__ import annotations

import datetime as dt
import enum
import json
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from cellchain.chain.models import Unit
from cellchain.core.models import User
from cellchain.core.types import LabelledEnum, UTCDateTime, sql_values
from cellchain.documents.versioning import STATUS_CHECK, VersionedDocument
from cellchain.extensions import Model, Recorded


class ProductDefinition(VersionedDocument, Recorded, Model):
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


class MaterialCategory(enum.StrEnum):
    MEDIUM = "medium"
    SUPPLEMENT = "supplement"  #: platelet lysate, serum
    ENZYME = "enzyme"  #: dissociation enzyme, collagenase
    CRYOPROTECTANT = "cryoprotectant"  #: DMSO
    EXCIPIENT = "excipient"  #: albumin, saline
    CONSUMABLE = "consumable"
    OTHER = "other"


class StockUnit(enum.StrEnum):
    """The unit a material lot is counted in (issue 22)."""

    ML = "mL"
    G = "g"
    UNITS = "units"  #: pieces: flasks, bags, vials, pipettes


class MaterialLot(Recorded, Model):
    """A lot of a reagent or consumable as received; usable only released and unexpired."""

    __tablename__ = "material_lots"
    __table_args__ = (
        UniqueConstraint("material", "supplier", "lot_number"),
        CheckConstraint(f"category IN ({sql_values(MaterialCategory)})", name="category_known"),
        CheckConstraint(f"unit IS NULL OR unit IN ({sql_values(StockUnit)})", name="unit_known"),
        CheckConstraint(
            "(quantity_received IS NULL) = (unit IS NULL) "
            "AND (quantity_received IS NULL OR quantity_received > 0)",
            name="quantity_with_unit",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: what it is, e.g. "α-MEM", "Human platelet lysate", "DMSO (Ph. Eur.)"
    material: Mapped[str] = mapped_column(String(120))
    category: Mapped[str] = mapped_column(String(20))
    supplier: Mapped[str] = mapped_column(String(120))
    lot_number: Mapped[str] = mapped_column(String(60))
    expiry_date: Mapped[dt.date] = mapped_column(Date)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: released for use by QA (incoming inspection passed); null while not
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    released_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: recalled (by its supplier or by QA): never usable again, whatever its release
    recalled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: the quantity received, in ``unit`` (issue 22); both null only for a lot on file before
    #: stock was kept (migration 0041): its uses are not counted. What remains is computed
    #: from the receipt, the uses and the adjustments (``manufacturing.stock.service``)
    quantity_received: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(10))

    released_by: Mapped[User | None] = relationship(foreign_keys=[released_by_id])

    @property
    def released(self) -> bool:
        return self.released_at is not None

    @property
    def label(self) -> str:
        return f"{self.material} lot {self.lot_number} ({self.supplier})"


class EquipmentKind(LabelledEnum):
    BIOSAFETY_CABINET = "biosafety_cabinet"
    INCUBATOR = "incubator"
    CENTRIFUGE = "centrifuge"
    CELL_COUNTER = "cell_counter"
    CONTROLLED_RATE_FREEZER = "controlled_rate_freezer"
    LN2_TANK = "ln2_tank"


class Equipment(Recorded, Model):
    """A piece of equipment by its site ID, recorded on every step that used it."""

    __tablename__ = "equipment"
    __table_args__ = (CheckConstraint(f"kind IN ({sql_values(EquipmentKind)})", name="kind_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the site's asset ID, e.g. BSC-01, INC-03, LN2-01
    code: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # calibration and maintenance (issue 22, manufacturing/equipment): the intervals, and the
    # due dates computed from the events on file (null: never calibrated, or the last failed)
    calibration_interval_days: Mapped[int | None] = mapped_column(Integer)
    #: why it is not subject to calibration; null: it is
    calibration_exempt_reason: Mapped[str | None] = mapped_column(Text)
    maintenance_interval_days: Mapped[int | None] = mapped_column(Integer)
    calibration_due_on: Mapped[dt.date | None] = mapped_column(Date)
    maintenance_due_on: Mapped[dt.date | None] = mapped_column(Date)


class EquipmentEventKind(LabelledEnum):
    CALIBRATION = "calibration"
    MAINTENANCE = "maintenance"


class EquipmentEvent(Recorded, Model):
    """A calibration or maintenance of a piece of equipment, on a date, with its result."""

    __tablename__ = "equipment_events"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_values(EquipmentEventKind)})", name="kind_known"),
        Index("ix_equipment_events_item", "equipment_id", "kind", "performed_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    equipment_id: Mapped[int] = mapped_column(ForeignKey("equipment.id"))
    kind: Mapped[str] = mapped_column(String(20))
    performed_on: Mapped[dt.date] = mapped_column(Date)
    #: who performed it: a person or a service provider, in words
    performed_by: Mapped[str] = mapped_column(String(120))
    passed: Mapped[bool] = mapped_column(Boolean)
    certificate_ref: Mapped[str | None] = mapped_column(String(80))
    notes: Mapped[str | None] = mapped_column(Text)
    #: the due date it set (performed on + the interval then); null when failed or no interval
    next_due_on: Mapped[dt.date | None] = mapped_column(Date)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    recorded_by: Mapped[User] = relationship()
    certificate: Mapped[EquipmentCertificate | None] = relationship(back_populates="event")


class EquipmentCertificate(Recorded, Model):
    """An event's certificate file, kept in the database (every app server serves it)."""

    __tablename__ = "equipment_certificates"

    event_id: Mapped[int] = mapped_column(ForeignKey("equipment_events.id"), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))

    event: Mapped[EquipmentEvent] = relationship(back_populates="certificate")


class StepKind(LabelledEnum):
    """A processing step of the batch record (DOMAIN.md §4)."""

    ISOLATION = "isolation"  #: tissue → P0 culture vessels
    PASSAGE = "passage"  #: harvest vessels → seed new vessels (next passage)
    BANK_FREEZE = "bank_freeze"  #: harvest vessels → cell-bank vials
    BANK_THAW = "bank_thaw"  #: a bank vial → culture vessels
    FILL = "fill"  #: final harvest, formulation, fill into the lot's cryobags
    FREEZING = "freezing"  #: controlled-rate freezing of the lot's bags
    STORAGE = "storage"  #: transfer of bags or vials into LN2 storage


class ProcessingStep(Recorded, Model):
    """One step of the batch record: who, when, what went in and out, counts, materials,
    equipment. Population doublings are computed from the counts, never typed."""

    __tablename__ = "processing_steps"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_values(StepKind)})", name="kind_known"),
        CheckConstraint(
            "viability_percent IS NULL OR (viability_percent >= 0 AND viability_percent <= 100)",
            name="viability_range",
        ),
        Index("ix_processing_steps_donation", "donation_id", "performed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    donation_id: Mapped[int] = mapped_column(ForeignKey("donations.id"))
    kind: Mapped[str] = mapped_column(String(20))
    #: when it was done (the bench time), and when it was recorded
    performed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    performed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: isolation: explant or enzymatic; bank freeze: master or working cell bank
    method: Mapped[str | None] = mapped_column(String(20))
    #: the passage number of the vessels this step seeded (P0 for isolation)
    passage: Mapped[int | None] = mapped_column(Integer)
    #: cells harvested from the input vessels, total (viable count)
    cells_harvested: Mapped[float | None] = mapped_column(Float)
    viability_percent: Mapped[float | None] = mapped_column(Float)
    #: cells that had been seeded into the input vessels, total (from their records)
    cells_seeded_before: Mapped[float | None] = mapped_column(Float)
    #: from the seeding of the input vessels to this harvest, in days
    days_in_culture: Mapped[float | None] = mapped_column(Float)
    #: log2(harvested / seeded) over the input vessels; computed
    population_doublings: Mapped[float | None] = mapped_column(Float)
    #: cumulative population doublings after this harvest; computed along the lineage
    cumulative_pd: Mapped[float | None] = mapped_column(Float)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"))
    notes: Mapped[str | None] = mapped_column(Text)
    #: the limit-excursion deviation, authorised by QA, this step relied on to go beyond the
    #: product's max passage or max CPD; null for a step within the limits
    deviation_id: Mapped[int | None] = mapped_column(ForeignKey("deviations.id"))

    performed_by: Mapped[User] = relationship()
    deviation: Mapped[Deviation | None] = relationship()
    units: Mapped[list[StepUnit]] = relationship(back_populates="step", order_by="StepUnit.unit_id")
    materials: Mapped[list[StepMaterial]] = relationship(back_populates="step")
    equipment: Mapped[list[StepEquipment]] = relationship(back_populates="step")

    @property
    def kind_label(self) -> str:
        return StepKind(self.kind).label


class StepUnit(Recorded, Model):
    """A unit that went into (``input``) or came out of (``output``) a step."""

    __tablename__ = "step_units"
    __table_args__ = (CheckConstraint("role IN ('input', 'output')", name="role_known"),)

    step_id: Mapped[int] = mapped_column(ForeignKey("processing_steps.id"), primary_key=True)
    #: indexed on its own: a trace back finds the steps of its units by it
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(10))

    step: Mapped[ProcessingStep] = relationship(back_populates="units")
    unit: Mapped[Unit] = relationship()


class StepMaterial(Recorded, Model):
    __tablename__ = "step_materials"
    __table_args__ = (
        CheckConstraint("quantity IS NULL OR quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "(quantity IS NULL AND quantity_source IS NULL) OR (quantity IS NOT NULL "
            "AND COALESCE(quantity_source, '') IN ('step', 'entered'))",
            name="quantity_source_known",
        ),
    )

    step_id: Mapped[int] = mapped_column(ForeignKey("processing_steps.id"), primary_key=True)
    #: indexed on its own: a trace forward from a material lot starts from it
    material_lot_id: Mapped[int] = mapped_column(
        ForeignKey("material_lots.id"), primary_key=True, index=True
    )

    #: how much of the lot the step used, in the lot's unit (issue 22): from the step's own
    #: figures (``quantity_source`` "step") or as entered ("entered"); null for a use of a lot
    #: not counted (on file before stock was kept) for which none was entered
    quantity: Mapped[float | None] = mapped_column(Float)
    quantity_source: Mapped[str | None] = mapped_column(String(10))

    step: Mapped[ProcessingStep] = relationship(back_populates="materials")
    material_lot: Mapped[MaterialLot] = relationship()


class StockAdjustmentKind(enum.StrEnum):
    """Why a material lot's stock changed other than by a step (issue 22)."""

    WRITE_OFF = "write_off"  #: taken out of stock: damaged, expired, failed inspection
    SPILLAGE = "spillage"  #: lost at the bench
    COUNT_CORRECTION = "count_correction"  #: a count found more or less than the record


class StockAdjustment(Recorded, Model):
    """A change to a material lot's stock other than a step's use, with its reason."""

    __tablename__ = "stock_adjustments"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_values(StockAdjustmentKind)})", name="kind_known"),
        CheckConstraint(
            "quantity <> 0 AND (kind = 'count_correction' OR quantity < 0)", name="quantity_sign"
        ),
        Index("ix_stock_adjustments_lot", "material_lot_id", "made_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    material_lot_id: Mapped[int] = mapped_column(ForeignKey("material_lots.id"))
    kind: Mapped[str] = mapped_column(String(20))
    #: the change, in the lot's unit: negative takes stock away (a write-off, a spillage, a
    #: count that found less), positive adds (a count that found more)
    quantity: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    made_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    made_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    made_by: Mapped[User] = relationship()


class ReorderLevel(Recorded, Model):
    """Below this much stock of a material (its released, unexpired lots together), the
    technician's queue says it runs low (issue 22). Set per material and unit."""

    __tablename__ = "reorder_levels"
    __table_args__ = (
        UniqueConstraint("material", "unit"),
        CheckConstraint(f"unit IN ({sql_values(StockUnit)})", name="unit_known"),
        CheckConstraint("level >= 0", name="level_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    material: Mapped[str] = mapped_column(String(120))
    unit: Mapped[str] = mapped_column(String(10))
    level: Mapped[float] = mapped_column(Float)
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    set_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class StepEquipment(Recorded, Model):
    __tablename__ = "step_equipment"

    step_id: Mapped[int] = mapped_column(ForeignKey("processing_steps.id"), primary_key=True)
    #: indexed on its own: a trace forward from a piece of equipment starts from it
    equipment_id: Mapped[int] = mapped_column(
        ForeignKey("equipment.id"), primary_key=True, index=True
    )

    step: Mapped[ProcessingStep] = relationship(back_populates="equipment")
    item: Mapped[Equipment] = relationship()


class CellRecord(Recorded, Model):
    """What a vessel, vial or bag holds: passage, cells, cumulative PD, and for bags the fill.

    One row per culture vessel, bank vial and cryobag, written by the step that made it.
    """

    __tablename__ = "cell_records"

    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    passage: Mapped[int] = mapped_column(Integer)
    #: vessels: viable cells seeded; bank vials: viable cells frozen per vial; cryobags: TOTAL
    #: cells filled (volume_ml × total_cells_per_ml; × viability_percent / 100 = viable)
    cells: Mapped[float | None] = mapped_column(Float)
    #: cumulative population doublings the cells had reached when this unit was made
    cumulative_pd: Mapped[float | None] = mapped_column(Float)
    made_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: culture vessels: the format (T175, CS2, …) and its growth area
    vessel_format: Mapped[str | None] = mapped_column(String(20))
    area_cm2: Mapped[float | None] = mapped_column(Float)
    #: vials and bags: the fill
    volume_ml: Mapped[float | None] = mapped_column(Float)
    #: cryobags: TOTAL (nucleated) cells per mL counted at fill, dead and alive; the dose
    #: arithmetic applies a viability to it exactly once (DOMAIN.md §7)
    total_cells_per_ml: Mapped[float | None] = mapped_column(Float)
    #: the viability of the harvest the unit was filled from (the count at fill), in %
    viability_percent: Mapped[float | None] = mapped_column(Float)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"), index=True)

    unit: Mapped[Unit] = relationship()

    @property
    def viable_cells_at_fill(self) -> float | None:
        """A cryobag's viable cells as counted at fill: total × the harvest's viability, the
        one place that product is taken. None for a vessel or vial (their counts are viable)."""
        if self.total_cells_per_ml is None or self.cells is None or self.viability_percent is None:
            return None
        return self.cells * self.viability_percent / 100


class LotStatus(enum.StrEnum):
    QUARANTINE = "quarantine"  #: made, not yet released by QA
    RELEASED = "released"
    REJECTED = "rejected"


class Lot(Recorded, Model):
    """The drug product lot: the cryobags of one fill of one donation."""

    __tablename__ = "lots"
    __table_args__ = (CheckConstraint(f"status IN ({sql_values(LotStatus)})", name="status_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the donation's DIN and the lot's number within it, e.g. X999926000001X-L01
    lot_number: Mapped[str] = mapped_column(String(30), unique=True)
    donation_id: Mapped[int] = mapped_column(ForeignKey("donations.id"), index=True)
    product_definition_id: Mapped[int] = mapped_column(ForeignKey("product_definitions.id"))
    status: Mapped[str] = mapped_column(String(20))
    made_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    made_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    final_passage: Mapped[int] = mapped_column(Integer)
    final_cumulative_pd: Mapped[float | None] = mapped_column(Float)
    dmso_percent: Mapped[float] = mapped_column(Float)
    #: made_at plus the product's shelf life; None when the product version sets none
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: canonical JSON list of the product limits exceeded; any blocks release
    limit_flags_json: Mapped[str] = mapped_column(Text, default="[]")

    product_definition: Mapped[ProductDefinition] = relationship()
    made_by: Mapped[User] = relationship()

    @property
    def limit_flags(self) -> list[str]:
        return list(json.loads(self.limit_flags_json))


class DeviationCategory(LabelledEnum):
    PROCESS = "process"
    EQUIPMENT = "equipment"
    MATERIAL = "material"
    STORAGE_EXCURSION = "storage_excursion"
    OUT_OF_SPECIFICATION = "out_of_specification"  #: an OOS release-test result
    #: cells taken beyond the product's max passage or max CPD; steps may go on only once QA
    #: has authorised it with a signed justification (``ExcursionAuthorisation``)
    LIMIT_EXCURSION = "limit_excursion"
    DOCUMENTATION = "documentation"
    OTHER = "other"


class Deviation(Recorded, Model):
    """A departure from procedure or specification; an open one blocks the lot's release."""

    __tablename__ = "deviations"
    __table_args__ = (
        CheckConstraint(f"category IN ({sql_values(DeviationCategory)})", name="category_known"),
        CheckConstraint("status IN ('open', 'closed')", name="status_known"),
        Index("ix_deviations_lot_status", "lot_id", "status"),
    )
    signature_entity_type: ClassVar[str] = "deviation"

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"))
    donation_id: Mapped[int | None] = mapped_column(ForeignKey("donations.id"))
    category: Mapped[str] = mapped_column(String(30))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolution: Mapped[str | None] = mapped_column(Text)

    lot: Mapped[Lot | None] = relationship()
    opened_by: Mapped[User | None] = relationship(foreign_keys=[opened_by_id])
    closed_by: Mapped[User | None] = relationship(foreign_keys=[closed_by_id])
    #: QA's authorisation of a limit excursion, if this is one and QA has signed it
    authorisation: Mapped[ExcursionAuthorisation | None] = relationship(
        viewonly=True, uselist=False
    )

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """QA's closing signature covers what happened and how it was resolved."""
        return {
            "id": self.id,
            "lot_id": self.lot_id,
            "category": self.category,
            "description": self.description,
            "resolution": self.resolution,
        }


class ExcursionAuthorisation(Recorded, Model):
    """QA's signed authorisation to take a donation's cells beyond the product's max passage
    or max CPD, up to the values it names, for the reason it gives (DOMAIN.md §7).

    One per limit-excursion deviation; a step beyond a limit names the deviation and is
    refused unless this authorisation covers it. It is a record of its own, so that its
    signature stays valid when the deviation is later closed.
    """

    __tablename__ = "excursion_authorisations"
    __table_args__ = (
        CheckConstraint(
            "max_passage IS NOT NULL OR max_cumulative_pd IS NOT NULL", name="names_a_limit"
        ),
    )
    signature_entity_type: ClassVar[str] = "excursion_authorisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    deviation_id: Mapped[int] = mapped_column(ForeignKey("deviations.id"), unique=True)
    #: the highest passage allowed under this authorisation (null: passage not authorised)
    max_passage: Mapped[int | None] = mapped_column(Integer)
    #: the highest cumulative PD allowed under it (null: CPD not authorised)
    max_cumulative_pd: Mapped[float | None] = mapped_column(Float)
    #: why QA accepts going beyond the limit
    justification: Mapped[str] = mapped_column(Text)
    authorised_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    authorised_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    deviation: Mapped[Deviation] = relationship()
    authorised_by: Mapped[User] = relationship()

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """The signature covers which deviation and donation, the limits and the reason."""
        return {
            "id": self.id,
            "deviation_id": self.deviation_id,
            "donation_id": self.deviation.donation_id,
            "description": self.deviation.description,
            "max_passage": None if self.max_passage is None else int(self.max_passage),
            "max_cumulative_pd": (
                None if self.max_cumulative_pd is None else float(self.max_cumulative_pd)
            ),
            "justification": self.justification,
        }

    @property
    def limits_text(self) -> str:
        """What it allows, in words: "up to P6", "up to CPD 45", or both."""
        parts = []
        if self.max_passage is not None:
            parts.append(f"up to P{self.max_passage}")
        if self.max_cumulative_pd is not None:
            parts.append(f"up to CPD {self.max_cumulative_pd:g}")
        return " and ".join(parts)


class StoragePosition(Recorded, Model):
    """A slot in an LN2 tank (tank / rack / box / slot) and the one unit it holds, if any."""

    __tablename__ = "storage_positions"
    __table_args__ = (
        UniqueConstraint("tank_id", "rack", "box", "slot"),
        UniqueConstraint("unit_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tank_id: Mapped[int] = mapped_column(ForeignKey("equipment.id"))
    rack: Mapped[str] = mapped_column(String(10))
    box: Mapped[str] = mapped_column(String(10))
    slot: Mapped[str] = mapped_column(String(10))
    #: the unit in the slot; null when empty
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    #: since when it holds that unit
    since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    tank: Mapped[Equipment] = relationship()
    unit: Mapped[Unit | None] = relationship()

    @property
    def label(self) -> str:
        return f"{self.tank.code} / rack {self.rack} / box {self.box} / slot {self.slot}"


class TankReading(Recorded, Model):
    """A temperature reading of an LN2 tank."""

    __tablename__ = "tank_readings"
    __table_args__ = (Index("ix_tank_readings_tank_at", "tank_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tank_id: Mapped[int] = mapped_column(ForeignKey("equipment.id"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    temperature_c: Mapped[float] = mapped_column(Float)
    #: the LN2 level in percent, when the monitoring system's export gives it (issue 22)
    level_percent: Mapped[float | None] = mapped_column(Float)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
