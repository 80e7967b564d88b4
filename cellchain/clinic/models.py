"""Tables of the clinic: shipments and their doses, thaws, bedside checks, infusions, adverse
events and follow-up visits (DOMAIN.md §7–8).

A prepared dose leaves the lab in a shipment; its receipt at the clinic either accepts it or
holds it for QA. Each bag is thawed by scan. At the bedside a *bedside check* compares the
patient's wristband with the dose's label and every rule behind them; only a check whose
verdict is "go", signed by two clinicians, can start an *infusion*.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import TYPE_CHECKING, Any, ClassVar

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
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cellchain.chain.models import Unit
from cellchain.clinic.wording import shown
from cellchain.core.i18n import LazyText, gettext, lazy
from cellchain.core.models import User
from cellchain.core.types import LabelledEnum, UTCDateTime, sql_values
from cellchain.dosing.models import DoseOrder, Patient
from cellchain.extensions import Model, Recorded
from cellchain.sites.models import Site

if TYPE_CHECKING:
    from cellchain.manufacturing.models import Equipment


class WordedEnum(LabelledEnum):
    """A clinic value a person reads in their language: its words are in ``CLINIC_WORDS``
    (marked for translation), the stored value stays the code."""

    @property
    def label(self) -> str:
        words = CLINIC_WORDS.get((type(self).__name__, self.value))
        return str(words) if words is not None else self.value.replace("_", " ")


class ShipmentStatus(WordedEnum):
    IN_TRANSIT = "in_transit"  #: dispatched from the lab, not yet received
    RECEIVED = "received"  #: received at the clinic and accepted: its doses may be used
    HELD = "held"  #: received with an excursion or damage: held until QA decides
    REJECTED = "rejected"  #: QA rejected the held shipment; its doses were discarded (final)


#: Allowed shipment status changes (DESIGN.md rule 2).
SHIPMENT_TRANSITIONS: dict[ShipmentStatus, frozenset[ShipmentStatus]] = {
    ShipmentStatus.IN_TRANSIT: frozenset({ShipmentStatus.RECEIVED, ShipmentStatus.HELD}),
    ShipmentStatus.HELD: frozenset({ShipmentStatus.RECEIVED, ShipmentStatus.REJECTED}),
    ShipmentStatus.RECEIVED: frozenset(),
    ShipmentStatus.REJECTED: frozenset(),
}


class Condition(WordedEnum):
    """The state of the shipper and its contents on arrival."""

    INTACT = "intact"
    DAMAGED = "damaged"


#: Why a receipt holds a shipment for QA: stored in English (``Shipment.hold_reason``), one
#: sentence each, read in the reader's language (``Shipment.hold_reason_shown``)
HOLD_TEMPERATURE = lazy("Arrived at %(temperature)s °C, above the storage limit of %(limit)s °C.")
HOLD_DAMAGED = lazy("The shipper or a bag arrived damaged.")
HOLD_LOGGER = lazy("The temperature logger shows an excursion in transit.")
_HOLD_TEMPERATURE_READ = re.compile(
    r"Arrived at (?P<temperature>\S+) °C, above the storage limit of (?P<limit>\S+) °C\."
)


def hold_reason_shown(stored: str | None) -> str:
    """A stored hold reason in the language of the moment (what is not one of the receipt's
    own sentences is shown as stored)."""
    if not stored:
        return ""
    rest = stored
    shown: list[str] = []
    for fixed in (HOLD_DAMAGED, HOLD_LOGGER):
        if fixed.message in rest:
            rest = rest.replace(fixed.message, "")
            shown.append(str(fixed))
    found = _HOLD_TEMPERATURE_READ.search(rest)
    if found:
        rest = rest.replace(found.group(0), "")
        shown.insert(0, gettext(HOLD_TEMPERATURE.message, **found.groupdict()))
    if rest.strip():
        return stored
    return " ".join(shown)


class Shipment(Recorded, Model):
    """Prepared doses travelling from the lab to the clinic in one dry shipper."""

    __tablename__ = "shipments"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_values(ShipmentStatus)})", name="status_known"),
        CheckConstraint(
            f"condition IS NULL OR condition IN ({sql_values(Condition)})", name="condition_known"
        ),
    )
    signature_entity_type: ClassVar[str] = "shipment"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the dry shipper's own ID (scanned at every hand-off)
    shipper_id: Mapped[str] = mapped_column(String(60))
    #: the temperature logger travelling in the shipper
    logger_id: Mapped[str] = mapped_column(String(60))
    #: where it is going: the clinical site's name as it was at dispatch
    destination: Mapped[str] = mapped_column(String(120))
    #: the clinical site it goes to (issue 22, migration 0045): only that site's users see it
    destination_site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    dispatched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    dispatched_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: when it arrived (may be written up a little later than that)
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    received_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: the temperature read inside the shipper on arrival, °C
    arrival_temperature_c: Mapped[float | None] = mapped_column(Float)
    condition: Mapped[str | None] = mapped_column(String(20))
    #: the logger showed a temperature above the limit at some point in transit
    logger_excursion: Mapped[bool | None] = mapped_column(Boolean)
    receipt_note: Mapped[str | None] = mapped_column(Text)
    #: why the shipment was held at receipt (excursion, damage), for QA
    hold_reason: Mapped[str | None] = mapped_column(Text)
    #: QA's decision on a held shipment: who, when, why (the signature carries the meaning)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision_reason: Mapped[str | None] = mapped_column(Text)

    dispatched_by: Mapped[User] = relationship(foreign_keys=[dispatched_by_id])
    received_by: Mapped[User | None] = relationship(foreign_keys=[received_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    destination_site: Mapped[Site] = relationship()
    items: Mapped[list[ShipmentItem]] = relationship(
        back_populates="shipment", order_by="ShipmentItem.dose_order_id"
    )

    @property
    def status_label(self) -> str:
        return ShipmentStatus(self.status).label

    @property
    def hold_reason_shown(self) -> str:
        return hold_reason_shown(self.hold_reason)

    @property
    def condition_label(self) -> str:
        return Condition(self.condition).label if self.condition else ""

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """What QA's decision on a held shipment signs: the shipment, its receipt and doses."""
        return {
            "shipper_id": self.shipper_id,
            "logger_id": self.logger_id,
            "received_at": self.received_at.isoformat() if self.received_at else None,
            "arrival_temperature_c": self.arrival_temperature_c,
            "condition": self.condition,
            "logger_excursion": self.logger_excursion,
            "hold_reason": self.hold_reason,
            # a shipped order is prepared: it has its dose unit
            "doses": [item.dose_order.dose_unit.code for item in self.items],  # type: ignore[union-attr]
            "decision_reason": self.decision_reason,
        }


class ShipmentItem(Recorded, Model):
    """A prepared dose (with its bags) in a shipment. A dose ships once."""

    __tablename__ = "shipment_items"

    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), primary_key=True)
    dose_order_id: Mapped[int] = mapped_column(
        ForeignKey("dose_orders.id"), primary_key=True, unique=True
    )

    shipment: Mapped[Shipment] = relationship(back_populates="items")
    dose_order: Mapped[DoseOrder] = relationship()


class Thaw(Recorded, Model):
    """One bag's thaw at the clinic, started and completed by scanning its label."""

    __tablename__ = "thaws"
    __table_args__ = (
        CheckConstraint(
            "completed_at IS NULL OR completed_at >= started_at", name="completed_after_start"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the bag; a bag is thawed once
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), unique=True)
    dose_order_id: Mapped[int] = mapped_column(ForeignKey("dose_orders.id"), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    started_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    unit: Mapped[Unit] = relationship()
    started_by: Mapped[User] = relationship(foreign_keys=[started_by_id])
    completed_by: Mapped[User | None] = relationship(foreign_keys=[completed_by_id])


class Verdict(LabelledEnum):
    GO = "go"  #: every check passed: two clinicians may sign and start the infusion
    STOP = "stop"  #: at least one check failed: nothing may be started from this check


class BedsideCheck(Recorded, Model):
    """A wristband and a label scanned together at the bedside, every check behind the
    verdict, and (for a "go") the two clinicians' signatures. Append-only: a stop is kept."""

    __tablename__ = "bedside_checks"
    __table_args__ = (
        CheckConstraint(f"verdict IN ({sql_values(Verdict)})", name="verdict_known"),
        Index("ix_bedside_checks_dose_order", "dose_order_id"),
        Index("ix_bedside_checks_patient", "patient_id"),
    )
    signature_entity_type: ClassVar[str] = "bedside_check"

    id: Mapped[int] = mapped_column(primary_key=True)
    checked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    checked_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: exactly what the scanner typed for the wristband and for the bag or dose label
    wristband_scan: Mapped[str] = mapped_column(String(120))
    label_scan: Mapped[str] = mapped_column(String(120))
    #: what the scans resolved to (none when a scan could not be read)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    dose_order_id: Mapped[int | None] = mapped_column(ForeignKey("dose_orders.id"))
    verdict: Mapped[str] = mapped_column(String(10))
    #: every check: [{"code", "title", "passed", "detail"}], in the order shown
    checks_json: Mapped[str] = mapped_column(Text)
    #: the check made again at the start of an infusion refers to the check it re-made
    recheck_of_id: Mapped[int | None] = mapped_column(ForeignKey("bedside_checks.id"))

    checked_by: Mapped[User] = relationship()
    patient: Mapped[Patient | None] = relationship()
    unit: Mapped[Unit | None] = relationship()
    dose_order: Mapped[DoseOrder | None] = relationship()

    @property
    def checks(self) -> list[dict[str, Any]]:
        return list(json.loads(self.checks_json))

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [check for check in self.checks if not check["passed"]]

    @property
    def checks_shown(self) -> list[dict[str, Any]]:
        """Every check as a person reads it: title and detail in the language of the moment
        (from the wording kept beside the stored English; a check stored before wordings
        were kept reads in English)."""
        shown_checks = []
        for check in self.checks:
            wording = check.get("wording") or {}
            shown_checks.append(
                {
                    **check,
                    "title": shown(check["title"], wording.get("title")),
                    "detail": shown(check["detail"], wording.get("detail")),
                }
            )
        return shown_checks

    @property
    def go(self) -> bool:
        return self.verdict == Verdict.GO.value

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """What the two clinicians sign: who, which dose, and every check as it was seen."""
        return {
            "patient": self.patient.study_id if self.patient else None,
            "coi": self.patient.coi if self.patient else None,
            "dose_unit": self.unit.code if self.unit else None,
            "dose_order": self.dose_order_id,
            "visit": self.dose_order.visit if self.dose_order else None,
            "checked_at": self.checked_at.isoformat(),
            "verdict": self.verdict,
            "checks": [[c["code"], c["passed"], c["detail"]] for c in self.checks],
        }


class InfusionStatus(WordedEnum):
    IN_PROGRESS = "in_progress"  #: started after a signed "go"; the bag is running
    COMPLETED = "completed"  #: ended as planned
    STOPPED = "stopped"  #: ended early (a reaction, a line problem); the volume says how much


#: Allowed infusion status changes (DESIGN.md rule 2).
INFUSION_TRANSITIONS: dict[InfusionStatus, frozenset[InfusionStatus]] = {
    InfusionStatus.IN_PROGRESS: frozenset({InfusionStatus.COMPLETED, InfusionStatus.STOPPED}),
    InfusionStatus.COMPLETED: frozenset(),
    InfusionStatus.STOPPED: frozenset(),
}


class Infusion(Recorded, Model):
    """A dose given to its patient: one per dose order, ever (a unique row, won by one)."""

    __tablename__ = "infusions"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_values(InfusionStatus)})", name="status_known"),
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="ended_after_start"),
        CheckConstraint(
            "volume_infused_ml IS NULL OR volume_infused_ml >= 0", name="volume_not_negative"
        ),
        CheckConstraint("rate_ml_per_h IS NULL OR rate_ml_per_h > 0", name="rate_positive"),
    )
    signature_entity_type: ClassVar[str] = "infusion"

    id: Mapped[int] = mapped_column(primary_key=True)
    dose_order_id: Mapped[int] = mapped_column(ForeignKey("dose_orders.id"), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    #: the signed "go" it was started from (re-checked at the start)
    bedside_check_id: Mapped[int] = mapped_column(ForeignKey("bedside_checks.id"))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: the clinician who administered it (started the infusion)
    administered_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    volume_infused_ml: Mapped[float | None] = mapped_column(Float)
    rate_ml_per_h: Mapped[float | None] = mapped_column(Float)
    #: any infusion reaction seen during the infusion, in words; none is recorded as null
    reaction: Mapped[str | None] = mapped_column(Text)
    ended_recorded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    ended_recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: why the recorded end, volume and rate cannot all be true as recorded (the rate they
    #: imply is far above the rate recorded), in words; null when they agree
    time_flag: Mapped[str | None] = mapped_column(Text)
    #: a second clinician's signed acknowledgement of the flag: who, when and what they say
    time_flag_acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    time_flag_acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    time_flag_note: Mapped[str | None] = mapped_column(Text)

    dose_order: Mapped[DoseOrder] = relationship()
    patient: Mapped[Patient] = relationship()
    bedside_check: Mapped[BedsideCheck] = relationship()
    administered_by: Mapped[User] = relationship(foreign_keys=[administered_by_id])
    ended_recorded_by: Mapped[User | None] = relationship(foreign_keys=[ended_recorded_by_id])
    time_flag_acknowledged_by: Mapped[User | None] = relationship(
        foreign_keys=[time_flag_acknowledged_by_id]
    )

    @property
    def status_label(self) -> str:
        return InfusionStatus(self.status).label

    @property
    def time_flag_open(self) -> bool:
        """Flagged and not yet acknowledged by a second clinician."""
        return self.time_flag is not None and self.time_flag_acknowledged_at is None

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """What acknowledging a time flag signs: the end as recorded and the flag."""
        return {
            "patient": self.patient.study_id,
            "dose_order": self.dose_order_id,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "volume_infused_ml": self.volume_infused_ml,
            "rate_ml_per_h": self.rate_ml_per_h,
            "time_flag": self.time_flag,
            "time_flag_note": self.time_flag_note,
        }


class Seriousness(WordedEnum):
    NON_SERIOUS = "non_serious"
    SERIOUS = "serious"  #: death, life-threatening, hospitalisation, disability, anomaly …


class Outcome(WordedEnum):
    """ICH E2B outcome of an adverse event."""

    RECOVERED = "recovered"
    RECOVERING = "recovering"
    NOT_RECOVERED = "not_recovered"
    RECOVERED_WITH_SEQUELAE = "recovered_with_sequelae"
    FATAL = "fatal"
    UNKNOWN = "unknown"


class SeriousCriterion(WordedEnum):
    """ICH E2A seriousness criteria: an event meeting any of them is serious."""

    DEATH = "death"
    LIFE_THREATENING = "life_threatening"
    HOSPITALISATION = "hospitalisation"  #: requires or prolongs hospitalisation
    DISABILITY = "disability"  #: persistent or significant disability or incapacity
    CONGENITAL_ANOMALY = "congenital_anomaly"
    OTHER_IMPORTANT = "other_important"  #: other important medical event


class Causality(WordedEnum):
    """The investigator's assessment of what caused an adverse event."""

    RELATED_MSC = "related_msc"  #: related to the MSC infusion
    RELATED_DMARD = "related_dmard"  #: related to the background DMARDs
    UNRELATED = "unrelated"


class ReportKind(WordedEnum):
    """A sponsor report of a serious adverse event."""

    INITIAL = "initial"
    FOLLOW_UP = "follow_up"


class AdverseEvent(Recorded, Model):
    """An adverse event of a patient, graded (CTCAE 1–5), with seriousness and outcome."""

    __tablename__ = "adverse_events"
    __table_args__ = (
        CheckConstraint("grade BETWEEN 1 AND 5", name="grade_known"),
        CheckConstraint(f"seriousness IN ({sql_values(Seriousness)})", name="seriousness_known"),
        CheckConstraint(f"outcome IN ({sql_values(Outcome)})", name="outcome_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    #: the infusion it followed, when it followed one
    infusion_id: Mapped[int | None] = mapped_column(ForeignKey("infusions.id"))
    onset_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    description: Mapped[str] = mapped_column(Text)
    grade: Mapped[int] = mapped_column(Integer)
    seriousness: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(30))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # Reporting to regulators (issue 19, ``follow_up/reporting.py``); empty on older events.
    #: ICH E2A seriousness criteria met, comma-separated codes (empty when non-serious)
    serious_criteria: Mapped[str | None] = mapped_column(String(200))
    #: when the site became aware of the event: the reporting clock starts here
    aware_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: MedDRA-style preferred term as typed, and its code if the site holds the dictionary
    term: Mapped[str | None] = mapped_column(String(200))
    term_code: Mapped[str | None] = mapped_column(String(20))
    #: the investigator's signed assessment: related_msc, related_dmard or unrelated
    causality: Mapped[str | None] = mapped_column(String(20))
    expected: Mapped[bool | None] = mapped_column(Boolean)
    assessed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    assessed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    initial_reported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    initial_report_ref: Mapped[str | None] = mapped_column(String(100))
    follow_up_reported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    follow_up_report_ref: Mapped[str | None] = mapped_column(String(100))

    patient: Mapped[Patient] = relationship()
    infusion: Mapped[Infusion | None] = relationship()
    recorded_by: Mapped[User] = relationship(foreign_keys=[recorded_by_id])
    assessed_by: Mapped[User | None] = relationship(foreign_keys=[assessed_by_id])

    signature_entity_type: ClassVar[str] = "adverse_event"

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """What the investigator's causality assessment signs."""
        return {
            "patient_id": self.patient_id,
            "onset_at": self.onset_at.isoformat(),
            "description": self.description,
            "term": self.term,
            "grade": self.grade,
            "seriousness": self.seriousness,
            "serious_criteria": self.serious_criteria,
            "causality": self.causality,
            "expected": self.expected,
        }

    @property
    def outcome_label(self) -> str:
        return Outcome(self.outcome).label

    @property
    def seriousness_label(self) -> str:
        return Seriousness(self.seriousness).label

    @property
    def causality_label(self) -> str | None:
        return Causality(self.causality).label if self.causality else None


class FollowUpVisit(Recorded, Model):
    """A follow-up evaluation done (months 6 and 12): the visit code and the day it was done.
    Infusion visits are done by their infusion."""

    __tablename__ = "follow_up_visits"
    __table_args__ = (UniqueConstraint("patient_id", "visit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    #: the follow-up's code in the protocol (M6, M12)
    visit: Mapped[str] = mapped_column(String(10))
    done_on: Mapped[dt.date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    patient: Mapped[Patient] = relationship()
    recorded_by: Mapped[User] = relationship()


class VisitReschedule(Recorded, Model):
    """A visit of a patient moved to another day, with the reason (``follow_up/scheduling.py``).

    Day 0 moves the patient's scheduled day 0 (``patients.day0``, the day its own row holds
    too); a later visit's day is the latest of its rows. A day outside the protocol window of
    the visit as first planned is a protocol deviation: the visit cannot be used on that day
    until an investigator signs the deviation (``deviation_signed_at``)."""

    __tablename__ = "visit_reschedules"
    signature_entity_type: ClassVar[str] = "visit_reschedule"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    #: the visit's code in the protocol (D0, M3, M6, M12)
    visit: Mapped[str] = mapped_column(String(10))
    previous_on: Mapped[dt.date] = mapped_column(Date)
    planned_on: Mapped[dt.date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    #: the protocol window of the visit as first planned, as judged when it was moved
    protocol_earliest: Mapped[dt.date] = mapped_column(Date)
    protocol_latest: Mapped[dt.date] = mapped_column(Date)
    #: the new day lies outside that window: a protocol deviation for the investigator to sign
    outside_protocol: Mapped[bool] = mapped_column(Boolean)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    deviation_signed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    deviation_signed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    patient: Mapped[Patient] = relationship()
    recorded_by: Mapped[User] = relationship(foreign_keys=[recorded_by_id])
    deviation_signed_by: Mapped[User | None] = relationship(foreign_keys=[deviation_signed_by_id])

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    @property
    def deviation_pending(self) -> bool:
        return self.outside_protocol and self.deviation_signed_at is None

    def signed_content(self) -> dict[str, Any]:
        """What the investigator's signature on the protocol deviation covers."""
        return {
            "patient": self.patient.study_id,
            "visit": self.visit,
            "previous_on": self.previous_on.isoformat(),
            "planned_on": self.planned_on.isoformat(),
            "protocol_window": [
                self.protocol_earliest.isoformat(),
                self.protocol_latest.isoformat(),
            ],
            "reason": self.reason,
        }


class MissedVisit(Recorded, Model):
    """A visit whose window closed without it being done, recorded as missed (once), with the
    reason: it is no longer due, and no dose is ordered or given for it."""

    __tablename__ = "missed_visits"
    __table_args__ = (UniqueConstraint("patient_id", "visit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    visit: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    patient: Mapped[Patient] = relationship()
    recorded_by: Mapped[User] = relationship()


class EfficacyEndpoints(Recorded, Model):
    """Efficacy endpoints at an evaluation visit (baseline BL, months M6 and M12), once each:
    the items of BASDAI and BASFI, the patient's global assessment (0–10), CRP (mg/L) and ESR
    (mm/h). The scores (BASDAI, BASFI, ASDAS-CRP) are computed from the items
    (``clinic/endpoints/scores.py``), never stored."""

    __tablename__ = "efficacy_endpoints"
    __table_args__ = (UniqueConstraint("patient_id", "visit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    #: BL (baseline), M6 or M12
    visit: Mapped[str] = mapped_column(String(10))
    assessed_on: Mapped[dt.date] = mapped_column(Date)
    basdai_q1: Mapped[float] = mapped_column(Float)
    basdai_q2: Mapped[float] = mapped_column(Float)
    basdai_q3: Mapped[float] = mapped_column(Float)
    basdai_q4: Mapped[float] = mapped_column(Float)
    basdai_q5: Mapped[float] = mapped_column(Float)
    basdai_q6: Mapped[float] = mapped_column(Float)
    basfi_q1: Mapped[float] = mapped_column(Float)
    basfi_q2: Mapped[float] = mapped_column(Float)
    basfi_q3: Mapped[float] = mapped_column(Float)
    basfi_q4: Mapped[float] = mapped_column(Float)
    basfi_q5: Mapped[float] = mapped_column(Float)
    basfi_q6: Mapped[float] = mapped_column(Float)
    basfi_q7: Mapped[float] = mapped_column(Float)
    basfi_q8: Mapped[float] = mapped_column(Float)
    basfi_q9: Mapped[float] = mapped_column(Float)
    basfi_q10: Mapped[float] = mapped_column(Float)
    patient_global: Mapped[float] = mapped_column(Float)
    crp_mg_l: Mapped[float] = mapped_column(Float)
    esr_mm_h: Mapped[float] = mapped_column(Float)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    patient: Mapped[Patient] = relationship()
    recorded_by: Mapped[User] = relationship()


class CountPlace(WordedEnum):
    """Where a post-thaw count was made."""

    BEDSIDE = "bedside"
    PHARMACY = "pharmacy"


class PostThawDecision(WordedEnum):
    """The investigator's signed decision on a dose whose post-thaw count puts it outside
    tolerance."""

    PROCEED = "proceed"  #: infuse it; a deviation is recorded
    DO_NOT_INFUSE = "do_not_infuse"  #: never infused; the dose is cancelled or destroyed


class PostThawCount(Recorded, Model):
    """A count of the thawed dose (DOMAIN.md §7 "post-thaw count when one was taken"): its
    TOTAL (nucleated) cells per mL and its viability, by whom, when, where and how, and what
    the dose delivers with it. The latest count of a dose replaces the release count at fill
    for that dose: viable cells per mL = total × this viability, applied once. A count outside
    tolerance needs the investigator's signed decision on this row. Append-only: a repeat count
    is a new row with a reason."""

    __tablename__ = "post_thaw_counts"
    __table_args__ = (
        CheckConstraint("total_cells_per_ml > 0", name="total_positive"),
        CheckConstraint(
            "viability_percent >= 0 AND viability_percent <= 100", name="viability_percent"
        ),
        CheckConstraint(f"place IN ({sql_values(CountPlace)})", name="place_known"),
        CheckConstraint(
            f"decision IS NULL OR decision IN ({sql_values(PostThawDecision)})",
            name="decision_known",
        ),
        # the n-th count of a dose: of two counts recorded at once, each seeing no earlier
        # one, the second is refused rather than recorded without the reason for a repeat
        UniqueConstraint("dose_order_id", "sequence"),
    )
    signature_entity_type: ClassVar[str] = "post_thaw_count"

    id: Mapped[int] = mapped_column(primary_key=True)
    dose_order_id: Mapped[int] = mapped_column(ForeignKey("dose_orders.id"), index=True)
    #: TOTAL (nucleated) cells per mL counted in the thawed product, live and dead
    total_cells_per_ml: Mapped[float] = mapped_column(Float)
    #: viability (%) of the same count: applied once to the total above
    viability_percent: Mapped[float] = mapped_column(Float)
    place: Mapped[str] = mapped_column(String(20))
    #: the method and instrument, in words (e.g. "NucleoCounter NC-200, AO/DAPI")
    method: Mapped[str] = mapped_column(Text)
    #: why the dose was counted again (a repeat count only)
    reason: Mapped[str | None] = mapped_column(Text)
    #: 1 for the dose's first count, 2 for its first repeat, …; null on a count recorded
    #: before migration 0032
    sequence: Mapped[int | None] = mapped_column(Integer)
    counted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    counted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: viable cells delivered with the dose's volume at this count, and against the target
    delivered_cells: Mapped[float] = mapped_column(Float)
    deviation_percent: Mapped[float] = mapped_column(Float)
    within_tolerance: Mapped[bool] = mapped_column(Boolean)
    #: the arithmetic step by step, naming this count
    working_json: Mapped[str] = mapped_column(Text)
    #: the investigator's signed decision when outside tolerance
    decision: Mapped[str | None] = mapped_column(String(20))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    deviation_id: Mapped[int | None] = mapped_column(ForeignKey("deviations.id"))
    #: the registered cell counter the count was made on (issue 22, migration 0048); null on
    #: a count recorded before it
    equipment_id: Mapped[int | None] = mapped_column(ForeignKey("equipment.id"))

    dose_order: Mapped[DoseOrder] = relationship()
    counted_by: Mapped[User] = relationship(foreign_keys=[counted_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    counter: Mapped[Equipment | None] = relationship(foreign_keys=[equipment_id])

    @property
    def viable_per_ml(self) -> float:
        """Viable cells per mL: the total × this count's viability, the one place it is applied."""
        return self.total_cells_per_ml * self.viability_percent / 100

    @property
    def working(self) -> list[str]:
        return list(json.loads(self.working_json))

    @property
    def place_label(self) -> str:
        return CountPlace(self.place).label

    @property
    def decision_label(self) -> str | None:
        return PostThawDecision(self.decision).label if self.decision else None

    @property
    def not_to_be_infused(self) -> bool:
        return self.decision == PostThawDecision.DO_NOT_INFUSE.value

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """What the investigator's decision signs: the dose, the count and its figures, and
        the decision with its reason."""
        return {
            "dose_order": self.dose_order_id,
            "patient": self.dose_order.patient.study_id,
            "visit": self.dose_order.visit,
            "total_cells_per_ml": self.total_cells_per_ml,
            "viability_percent": self.viability_percent,
            "place": self.place,
            "method": self.method,
            "counted_at": self.counted_at.isoformat(),
            "counted_by": self.counted_by_id,
            "volume_ml": self.dose_order.volume_ml,
            "delivered_cells": self.delivered_cells,
            "deviation_percent": self.deviation_percent,
            "decision": self.decision,
            "decision_reason": self.decision_reason,
        }


#: The words of each clinic value, by (enum, value), in the language of the moment.
CLINIC_WORDS: dict[tuple[str, str], LazyText] = {
    ("ShipmentStatus", "in_transit"): lazy("in transit"),
    ("ShipmentStatus", "received"): lazy("received"),
    ("ShipmentStatus", "held"): lazy("held"),
    ("ShipmentStatus", "rejected"): lazy("rejected"),
    ("Condition", "intact"): lazy("intact"),
    ("Condition", "damaged"): lazy("damaged"),
    ("InfusionStatus", "in_progress"): lazy("in progress"),
    ("InfusionStatus", "completed"): lazy("completed"),
    ("InfusionStatus", "stopped"): lazy("stopped"),
    ("Seriousness", "non_serious"): lazy("non serious"),
    ("Seriousness", "serious"): lazy("serious"),
    ("Outcome", "recovered"): lazy("recovered"),
    ("Outcome", "recovering"): lazy("recovering"),
    ("Outcome", "not_recovered"): lazy("not recovered"),
    ("Outcome", "recovered_with_sequelae"): lazy("recovered with sequelae"),
    ("Outcome", "fatal"): lazy("fatal"),
    ("Outcome", "unknown"): lazy("unknown"),
    ("SeriousCriterion", "death"): lazy("death"),
    ("SeriousCriterion", "life_threatening"): lazy("life threatening"),
    ("SeriousCriterion", "hospitalisation"): lazy("hospitalisation"),
    ("SeriousCriterion", "disability"): lazy("disability"),
    ("SeriousCriterion", "congenital_anomaly"): lazy("congenital anomaly"),
    ("SeriousCriterion", "other_important"): lazy("other important"),
    ("Causality", "related_msc"): lazy("related msc"),
    ("Causality", "related_dmard"): lazy("related dmard"),
    ("Causality", "unrelated"): lazy("unrelated"),
    ("ReportKind", "initial"): lazy("initial"),
    ("ReportKind", "follow_up"): lazy("follow up"),
    ("CountPlace", "bedside"): lazy("bedside"),
    ("CountPlace", "pharmacy"): lazy("pharmacy"),
    ("PostThawDecision", "proceed"): lazy("proceed"),
    ("PostThawDecision", "do_not_infuse"): lazy("do not infuse"),
    ("VisitStatus", "done"): lazy("done"),
    ("VisitStatus", "not_applicable"): lazy("not applicable"),
    ("VisitStatus", "missed"): lazy("missed"),
    ("VisitStatus", "planned"): lazy("planned"),
    ("VisitStatus", "due"): lazy("due"),
    ("VisitStatus", "overdue"): lazy("overdue"),
}
