"""Tables of recalls and lookback (21 CFR 1271.290, DOMAIN.md §1).

A *recall* names what is suspect (a donation, a drug product lot or a material lot), why, and
who opened it with an e-signature. Opening it records every unit made from the suspect thing
(``recall_units``) and what became of each: blocked for good if it was still usable, already
out of use, or already infused. Every patient who received an infused one is a *lookback*
row (``recall_notifications``) until the site records that the patient was notified. A recall
closes only when every patient is notified, with a second QA e-signature.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship

from cellchain.core.i18n import LazyText, lazy
from cellchain.core.models import User
from cellchain.core.types import LabelledEnum, UTCDateTime, sql_values
from cellchain.extensions import Model, Recorded

if TYPE_CHECKING:
    from cellchain.chain.models import Unit
    from cellchain.donors.models import DonorTestResult
    from cellchain.dosing.models import DoseOrder, Patient


def _utc(value: dt.datetime | None) -> str | None:
    """A time as signed content holds it: UTC, whatever zone the value was set in."""
    return value.astimezone(dt.UTC).isoformat() if value else None


class _RecallEnum(LabelledEnum):
    """A recall's value a person reads, in the language of the moment (``RECALL_LABELS``)."""

    @property
    def label(self) -> str:
        known = RECALL_LABELS.get(self.value)
        return str(known) if known is not None else self.value.replace("_", " ")


class RecallTarget(_RecallEnum):
    """What a recall can name: everything made from it is affected."""

    DONATION = "donation"  #: a late positive donor test, a consent problem
    LOT = "lot"  #: a drug product lot (its bags, and the doses made from them)
    MATERIAL_LOT = "material_lot"  #: a reagent lot recalled by its supplier


class RecallStatus(_RecallEnum):
    OPEN = "open"  #: affected units blocked; patients being notified
    CLOSED = "closed"  #: every exposed patient notified; closed with a QA signature (final)


class AffectedOutcome(_RecallEnum):
    """What the recall found a unit to be when it was opened."""

    BLOCKED = "blocked"  #: still in the lab or at the clinic: blocked by the recall
    OUT_OF_USE = "out_of_use"  #: already consumed, discarded, rejected or blocked
    INFUSED = "infused"  #: already given to a patient: lookback


class Recall(Recorded, Model):
    """A recall of a donation, lot or material lot, opened and closed by QA's signatures."""

    __tablename__ = "recalls"
    __table_args__ = (
        CheckConstraint(f"target_type IN ({sql_values(RecallTarget)})", name="target_known"),
        CheckConstraint(f"status IN ({sql_values(RecallStatus)})", name="status_known"),
        # one open recall per suspect thing: a second one is refused, even when two QA people
        # open it at the same moment
        Index(
            "uq_recalls_open_target",
            "target_type",
            "target_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )
    signature_entity_type: ClassVar[str] = "recall"
    #: new opening signatures sign the units by a digest (``signed_manifest``, issue 20);
    #: those made before signed them row by row (``signed_content``) and are checked so
    signature_manifest: ClassVar[int] = 2

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the site's recall number, e.g. RC-2026-0001
    number: Mapped[str] = mapped_column(String(20), unique=True)
    target_type: Mapped[str] = mapped_column(String(20))
    target_id: Mapped[int]
    #: the target as people name it, as it was at opening (DIN with K, lot number, material lot)
    target_label: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    opened_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: what QA concluded when closing (investigation, disposal of the blocked units)
    closing_note: Mapped[str | None] = mapped_column(Text)
    #: a lookback opened by the system: the donor test result, recorded or corrected after
    #: the eligibility determination, that opened it (null for a recall QA opened and signed)
    cause_result_id: Mapped[int | None] = mapped_column(ForeignKey("donor_test_results.id"))

    opened_by: Mapped[User] = relationship(foreign_keys=[opened_by_id])
    closed_by: Mapped[User | None] = relationship(foreign_keys=[closed_by_id])
    cause_result: Mapped[DonorTestResult | None] = relationship()
    units: Mapped[list[RecallUnit]] = relationship(
        back_populates="recall", order_by="RecallUnit.unit_id"
    )
    notifications: Mapped[list[RecallNotification]] = relationship(
        back_populates="recall", order_by="RecallNotification.id"
    )
    doses: Mapped[list[RecallDose]] = relationship(
        back_populates="recall", order_by="RecallDose.dose_order_id"
    )

    @property
    def target_type_label(self) -> str:
        return RecallTarget(self.target_type).label

    @property
    def status_label(self) -> str:
        return RecallStatus(self.status).label

    @property
    def is_open(self) -> bool:
        return self.status == RecallStatus.OPEN.value

    @property
    def automatic(self) -> bool:
        """Opened by the system on a late donor result (a lookback), not signed by QA."""
        return self.cause_result_id is not None

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    def signed_content(self) -> dict[str, Any]:
        """What opening signs: the recall, its reason, every unit found and its fate, the
        doses it withdrew and the patients it lists for notification (manifest 1, the
        opening signatures made before issue 20)."""
        content = self._opening()
        content["units"] = [[row.unit.code, row.status_before, row.outcome] for row in self.units]
        return content

    def signed_manifest(self, version: int) -> dict[str, Any]:
        """What opening signs under manifest 2 (``core/signatures.py``): the same as
        ``signed_content`` except the units, named by ``units_manifest`` (a count and a
        digest of their rows) instead of row by row."""
        if version != 2:
            raise ValueError(f"A recall has no signature manifest {version}.")
        content = self._opening()
        content["units"] = self.units_manifest()
        return content

    def _opening(self) -> dict[str, Any]:
        """What every opening signature covers besides the units."""
        return {
            "number": self.number,
            "target": [self.target_type, self.target_label],
            "reason": self.reason,
            "opened_at": _utc(self.opened_at),
            "doses_withdrawn": [
                [row.dose_order_id, row.dose_order.patient.study_id, row.status_before]
                for row in self.doses
            ],
            "patients": sorted(row.patient.study_id for row in self.notifications),
        }

    def units_manifest(self) -> dict[str, Any]:
        """Every unit the recall recorded, as ``rows`` and the SHA-256 of their lines
        ``<unit code> TAB <status before> TAB <outcome> LF`` in the order of the units' ids:
        the same facts ``signed_content`` lists, read as plain rows in one statement (a
        recall of a reagent lot records tens of thousands)."""
        from cellchain.chain.models import Unit

        session = object_session(self)
        assert session is not None, "a recall's units are read from its session"
        rows = session.execute(
            select(Unit.code, RecallUnit.status_before, RecallUnit.outcome)
            .join(Unit, Unit.id == RecallUnit.unit_id)
            .where(RecallUnit.recall_id == self.id)
            .order_by(RecallUnit.unit_id)
        )
        digest = hashlib.sha256()
        count = 0
        for code, status_before, outcome in rows:
            digest.update(f"{code}\t{status_before}\t{outcome}\n".encode())
            count += 1
        return {
            "rows": count,
            "sha256": digest.hexdigest(),
            "of": "unit code TAB status before TAB outcome LF, by unit id",
        }


class RecallClosure:
    """The closing of a recall as a signable record: what the closing signature covers.

    Opening and closing are signed separately, so closing (which sets the recall's closing
    fields) leaves the opening signature valid.
    """

    signature_entity_type: ClassVar[str] = "recall_closure"

    def __init__(self, recall: Recall) -> None:
        self.recall = recall

    @property
    def signature_entity_id(self) -> str:
        return str(self.recall.id)

    def signed_content(self) -> dict[str, Any]:
        recall = self.recall
        return {
            "number": recall.number,
            "closed_at": _utc(recall.closed_at),
            "closing_note": recall.closing_note,
            "notified": [
                [row.patient.study_id, _utc(row.notified_at)] for row in recall.notifications
            ],
        }


class RecallUnit(Recorded, Model):
    """A unit affected by a recall and what the recall found it to be. Written once."""

    __tablename__ = "recall_units"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({sql_values(AffectedOutcome)})", name="outcome_known"),
        Index("ix_recall_units_unit", "unit_id"),
    )

    recall_id: Mapped[int] = mapped_column(ForeignKey("recalls.id"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    #: the unit's status when the recall was opened
    status_before: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))

    recall: Mapped[Recall] = relationship(back_populates="units")
    unit: Mapped[Unit] = relationship()

    @property
    def outcome_label(self) -> str:
        return AffectedOutcome(self.outcome).label


class RecallDose(Recorded, Model):
    """A dose order not yet infused whose units the recall blocked: withdrawn (cancelled) by
    the recall, so that the patient can be given another dose for the visit."""

    __tablename__ = "recall_doses"

    recall_id: Mapped[int] = mapped_column(ForeignKey("recalls.id"), primary_key=True)
    dose_order_id: Mapped[int] = mapped_column(ForeignKey("dose_orders.id"), primary_key=True)
    #: the order's status when it was withdrawn (allocated or prepared)
    status_before: Mapped[str] = mapped_column(String(20))

    recall: Mapped[Recall] = relationship(back_populates="doses")
    dose_order: Mapped[DoseOrder] = relationship()


class RecallNotification(Recorded, Model):
    """A patient who received affected product, and when and how they were notified."""

    __tablename__ = "recall_notifications"
    __table_args__ = (UniqueConstraint("recall_id", "patient_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recall_id: Mapped[int] = mapped_column(ForeignKey("recalls.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    #: when the patient (or their investigator for them) was told; null until recorded
    notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: how: phone, letter, in person, via the investigator
    method: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    recall: Mapped[Recall] = relationship(back_populates="notifications")
    patient: Mapped[Patient] = relationship()
    recorded_by: Mapped[User | None] = relationship()

    @property
    def notified(self) -> bool:
        return self.notified_at is not None


#: the recall values people read, by stored value
RECALL_LABELS: dict[str, LazyText] = {
    "donation": lazy("donation"),
    "lot": lazy("lot"),
    "material_lot": lazy("material lot"),
    "open": lazy("open"),
    "closed": lazy("closed"),
    "blocked": lazy("blocked"),
    "out_of_use": lazy("out of use"),
    "infused": lazy("infused"),
}
