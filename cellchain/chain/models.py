"""Tables of the chain-of-identity core: units, their lineage and their custody events.

A *unit* is any labelled physical thing (DOMAIN.md §1). Every unit belongs to exactly one
donation (chain of identity) and every hand-off, move, receipt and scan is an event on it
(chain of custody). Lineage edges record which units were made from which, by what operation.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cellchain.core.i18n import LazyText, lazy
from cellchain.core.models import User
from cellchain.core.types import LabelledEnum, UTCDateTime, sql_values
from cellchain.extensions import Model, Recorded

if TYPE_CHECKING:
    from cellchain.donors.models import Donation


class UnitKind(LabelledEnum):
    """What kind of physical thing a unit is; the letter goes into its code."""

    DONATION_CONTAINER = "donation_container"
    CULTURE_VESSEL = "culture_vessel"
    BANK_VIAL = "bank_vial"
    CRYOBAG = "cryobag"
    SAMPLE_TUBE = "sample_tube"
    PREPARED_DOSE = "prepared_dose"

    @property
    def letter(self) -> str:
        return UNIT_KIND_LETTER[self]


UNIT_KIND_LETTER: dict[UnitKind, str] = {
    UnitKind.DONATION_CONTAINER: "D",
    UnitKind.CULTURE_VESSEL: "V",
    UnitKind.BANK_VIAL: "B",
    UnitKind.CRYOBAG: "C",
    UnitKind.SAMPLE_TUBE: "S",
    UnitKind.PREPARED_DOSE: "P",
}


#: Largest number of units one call may create (a fill of many bags is still far below it).
#: Here, not in the service, because the schemas check it too.
MAX_UNITS_PER_STEP = 200


class UnitStatus(enum.StrEnum):
    """Where a unit is in its life. Quarantine is where every unit starts (1271.60)."""

    QUARANTINE = "quarantine"  #: not released for use; may be processed, never given to anyone
    AVAILABLE = "available"  #: released by QA; may be allocated to a dose
    ALLOCATED = "allocated"  #: reserved for one dose order
    DISPENSED = "dispensed"  #: left the lab for a patient
    INFUSED = "infused"  #: given to a patient (final)
    CONSUMED = "consumed"  #: used up making other units (final)
    DISCARDED = "discarded"  #: destroyed (final)
    REJECTED = "rejected"  #: refused at receipt or by QA disposition (final)
    BLOCKED = "blocked"  #: donor ineligible: may never be released (final, 1271.65)

    @property
    def final(self) -> bool:
        return not UNIT_TRANSITIONS[self]


#: Allowed status changes (DESIGN.md rule 2); any other is refused with a StateConflict.
UNIT_TRANSITIONS: dict[UnitStatus, frozenset[UnitStatus]] = {
    UnitStatus.QUARANTINE: frozenset(
        {
            UnitStatus.AVAILABLE,
            UnitStatus.CONSUMED,
            UnitStatus.DISCARDED,
            UnitStatus.REJECTED,
            UnitStatus.BLOCKED,
        }
    ),
    UnitStatus.AVAILABLE: frozenset(
        {
            UnitStatus.ALLOCATED,
            UnitStatus.QUARANTINE,
            UnitStatus.CONSUMED,
            UnitStatus.DISCARDED,
            UnitStatus.BLOCKED,
        }
    ),
    UnitStatus.ALLOCATED: frozenset(
        {UnitStatus.AVAILABLE, UnitStatus.DISPENSED, UnitStatus.QUARANTINE, UnitStatus.BLOCKED}
    ),
    UnitStatus.DISPENSED: frozenset(
        {UnitStatus.INFUSED, UnitStatus.QUARANTINE, UnitStatus.DISCARDED, UnitStatus.BLOCKED}
    ),
    UnitStatus.INFUSED: frozenset(),
    UnitStatus.CONSUMED: frozenset(),
    UnitStatus.DISCARDED: frozenset(),
    UnitStatus.REJECTED: frozenset(),
    UnitStatus.BLOCKED: frozenset(),
}

#: Units in these states may be the parents of new units.
USABLE_AS_PARENT: frozenset[UnitStatus] = frozenset({UnitStatus.QUARANTINE, UnitStatus.AVAILABLE})

#: Units in these states are physically gone: only scans may still be recorded on them.
GONE: frozenset[UnitStatus] = frozenset(
    {UnitStatus.INFUSED, UnitStatus.CONSUMED, UnitStatus.DISCARDED}
)


class LineageOperation(enum.StrEnum):
    """The manipulation that made a child unit from its parents."""

    ISOLATE = "isolate"
    PASSAGE = "passage"
    SPLIT = "split"
    HARVEST = "harvest"
    FILL = "fill"
    SAMPLE = "sample"
    THAW = "thaw"
    PREPARE_DOSE = "prepare_dose"


#: Operations whose parents must be in other states: a dose is prepared only from bags
#: already allocated to it.
USABLE_FOR: dict[LineageOperation, frozenset[UnitStatus]] = {
    LineageOperation.PREPARE_DOSE: frozenset({UnitStatus.ALLOCATED}),
}


class EventType(LabelledEnum):
    """Custody and scan events (DOMAIN.md §1: who, where, when, temperature)."""

    CREATED = "created"  #: the unit was labelled and came into existence
    RECEIVED = "received"  #: taken in at a location (lab receipt, clinic receipt)
    MOVED = "moved"  #: moved from one location to another by the same custodian
    HANDED_OFF = "handed_off"  #: custody passed to another person or party
    SCANNED = "scanned"  #: its label was scanned (seen), nothing else changed
    STATUS_CHANGED = "status_changed"  #: its status changed (the note says from and to)


#: The events a person records directly; the others are written by the services.
CUSTODY_EVENTS: tuple[EventType, ...] = (
    EventType.RECEIVED,
    EventType.MOVED,
    EventType.HANDED_OFF,
    EventType.SCANNED,
)


class Unit(Recorded, Model):
    """One labelled physical thing. Its code embeds its donation's DIN."""

    __tablename__ = "units"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_values(UnitKind)})", name="kind_known"),
        CheckConstraint(f"status IN ({sql_values(UnitStatus)})", name="status_known"),
        Index("ix_units_donation_status", "donation_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: canonical unit code with check character, e.g. X999926000001V0007J
    code: Mapped[str] = mapped_column(String(24), unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(20))
    donation_id: Mapped[int] = mapped_column(ForeignKey("donations.id"))
    #: where it is now (free text until storage positions exist); moves are events
    location: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    donation: Mapped[Donation] = relationship(back_populates="units")
    created_by: Mapped[User | None] = relationship()

    @property
    def kind_label(self) -> str:
        return UnitKind(self.kind).label

    @property
    def kind_name(self) -> str:
        """The kind in the reader's language (``kind_label`` stays English: labels, FHIR)."""
        return str(UNIT_KIND_NAMES.get(self.kind, self.kind_label))

    @property
    def status_name(self) -> str:
        """The status in the reader's language."""
        return str(UNIT_STATUS_NAMES.get(self.status, self.status))

    def __repr__(self) -> str:
        return f"<Unit {self.code} {self.status}>"


class LineageEdge(Recorded, Model):
    """``child`` was made from ``parent`` by ``operation`` (many parents, many children)."""

    __tablename__ = "lineage_edges"
    __table_args__ = (
        CheckConstraint(f"operation IN ({sql_values(LineageOperation)})", name="operation_known"),
        CheckConstraint("parent_id <> child_id", name="not_own_parent"),
        Index("ix_lineage_edges_child", "child_id"),
    )

    parent_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    operation: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    parent: Mapped[Unit] = relationship(foreign_keys=[parent_id])
    child: Mapped[Unit] = relationship(foreign_keys=[child_id])


class UnitEvent(Recorded, Model):
    """Something that happened to a unit: custody, a scan, a status change. Append-only."""

    __tablename__ = "unit_events"
    __table_args__ = (
        CheckConstraint(f"event_type IN ({sql_values(EventType)})", name="event_type_known"),
        Index("ix_unit_events_unit_at", "unit_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    event_type: Mapped[str] = mapped_column(String(20))
    #: when it happened (may be earlier than when it was recorded)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    #: where it happened; for a move, the destination
    location: Mapped[str | None] = mapped_column(String(120))
    #: for a move, where it came from
    from_location: Mapped[str | None] = mapped_column(String(120))
    #: for a hand-off, who took custody (a person or party, e.g. "courier: J. Doe")
    counterparty: Mapped[str | None] = mapped_column(String(120))
    #: temperature in °C when one was taken (on arrival, at hand-off)
    temperature_c: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)

    unit: Mapped[Unit] = relationship()
    actor: Mapped[User | None] = relationship()

    @property
    def event_label(self) -> str:
        return EventType(self.event_type).label

    @property
    def event_name(self) -> str:
        """The event in the reader's language."""
        return str(EVENT_NAMES.get(self.event_type, self.event_label))


#: what people read for a unit's kind, status and events, in the language of the moment; the
#: enums' ``label`` stays English for what is printed on labels and exported
UNIT_KIND_NAMES: dict[str, LazyText] = {
    UnitKind.DONATION_CONTAINER: lazy("donation container"),
    UnitKind.CULTURE_VESSEL: lazy("culture vessel"),
    UnitKind.BANK_VIAL: lazy("bank vial"),
    UnitKind.CRYOBAG: lazy("cryobag"),
    UnitKind.SAMPLE_TUBE: lazy("sample tube"),
    UnitKind.PREPARED_DOSE: lazy("prepared dose"),
}
UNIT_STATUS_NAMES: dict[str, LazyText] = {
    UnitStatus.QUARANTINE: lazy("quarantine"),
    UnitStatus.AVAILABLE: lazy("available"),
    UnitStatus.ALLOCATED: lazy("allocated"),
    UnitStatus.DISPENSED: lazy("dispensed"),
    UnitStatus.INFUSED: lazy("infused"),
    UnitStatus.CONSUMED: lazy("consumed"),
    UnitStatus.DISCARDED: lazy("discarded"),
    UnitStatus.REJECTED: lazy("rejected"),
    UnitStatus.BLOCKED: lazy("blocked"),
}
EVENT_NAMES: dict[str, LazyText] = {
    EventType.CREATED: lazy("created"),
    EventType.RECEIVED: lazy("received"),
    EventType.MOVED: lazy("moved"),
    EventType.HANDED_OFF: lazy("handed off"),
    EventType.SCANNED: lazy("scanned"),
    EventType.STATUS_CHANGED: lazy("status changed"),
}
#: the lineage operations as people read them ("passage of …", "by harvest")
OPERATION_NAMES: dict[str, LazyText] = {
    LineageOperation.ISOLATE: lazy("isolate"),
    LineageOperation.PASSAGE: lazy("passage"),
    LineageOperation.SPLIT: lazy("split"),
    LineageOperation.HARVEST: lazy("harvest"),
    LineageOperation.FILL: lazy("fill"),
    LineageOperation.SAMPLE: lazy("sample"),
    LineageOperation.THAW: lazy("thaw"),
    LineageOperation.PREPARE_DOSE: lazy("prepare dose"),
}
