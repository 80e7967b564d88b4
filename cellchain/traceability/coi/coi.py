"""The chain-of-identity report of one patient (DOMAIN.md §1, §6, §8; issue 9).

For each infusion the patient received, in the order they were started, the report reads
from the bag at the bedside back to the donor: the prepared dose and its bags, the lot and
its release, the donation (DIN with its check character) and the donor's eligibility, the
dose arithmetic and its second check, the shipment, the thaw, the bedside verification and
the infusion record.

Every part of an infusion comes from :func:`cellchain.traceability.trace.trace.trace_back`, so
the report shows exactly what an inspector's trace shows. Every signature is *manifested*
(21 CFR 11.50): printed name, date and time in the site's zone, meaning, and whether it still
holds. A signature whose signed content changed after signing is shown ``INVALID — signed
content changed``; the report never hides or repairs it.

The report names the patient by study ID and chain-of-identity identifier only, never by a
name or a record number (1271.290(c)). Everything the pages, the PDF and the API print is
prepared here, so the three say the same thing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cellchain.clinic.models import BedsideCheck, Infusion, Shipment, Thaw
from cellchain.core.display import local_time, scientific
from cellchain.core.i18n import _, lazy, ngettext
from cellchain.core.identifiers import parse_identifier
from cellchain.core.models import User
from cellchain.core.roles import Permission, Role, has_permission
from cellchain.core.signatures import SignatureManifest
from cellchain.donors.models import EligibilityDetermination
from cellchain.dosing import patients
from cellchain.dosing.models import DoseOrder, Patient
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import Lot
from cellchain.quality.models import LotDisposition
from cellchain.traceability import notices
from cellchain.traceability.models import Recall
from cellchain.traceability.trace import trace
from cellchain.traceability.trace.trace import BackTrace, ClinicPath, Signed, TraceFrom

__all__ = [
    "ARM_NOT_SHOWN",
    "INVALID",
    "VALID",
    "BagLine",
    "CheckLine",
    "Code",
    "CoiInfusion",
    "CoiReport",
    "DonationPart",
    "DosePart",
    "InfusionPart",
    "LotPart",
    "ManifestedSignature",
    "Moment",
    "OtherCheck",
    "PatientPart",
    "RecallPart",
    "ShipmentPart",
    "ThawLine",
    "VerificationPart",
    "as_seen_by",
    "manifest_signature",
    "patient_report",
]

#: how a signature that still holds reads
VALID = "VALID"
#: how a signature reads once the content it signed has changed (DOMAIN.md §6)
INVALID = "INVALID — signed content changed"


# --- the parts of the report --------------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """A time as the report shows it: aware, in the site's zone, and in words with the zone."""

    at: dt.datetime
    text: str


@dataclass(frozen=True)
class Code:
    """An identifier as stored (with its check character) and in display form with K boxed."""

    code: str
    display: str


@dataclass(frozen=True)
class ManifestedSignature:
    """A signature as every copy of the report shows it: who, when, what it means, and
    whether the signed content is still what was signed."""

    printed_name: str
    username: str
    signed_at: Moment
    meaning: str
    valid: bool
    #: ``VALID`` or ``INVALID — signed content changed``
    status: str


@dataclass(frozen=True)
class PatientPart:
    """Who the report is about, by trial identifiers only."""

    id: int
    study_id: str
    coi: Code
    protocol: str
    #: None for a role that does not see arms (``as_seen_by``)
    arm: str | None
    arm_name: str
    status: str


@dataclass(frozen=True)
class BagLine:
    """A cryobag drawn into the dose: its code, lot, and what was drawn from it."""

    code: Code
    lot_number: str | None
    volume_ml: float
    cells: float
    cells_text: str
    whole_bag: bool


@dataclass(frozen=True)
class LotPart:
    """A lot on the path and QA's disposition of it, with its signature(s)."""

    lot_number: str
    status: str
    expires_at: Moment | None
    decision: str | None
    decided_at: Moment | None
    decided_by: str | None
    reason: str | None
    signatures: list[ManifestedSignature]


@dataclass(frozen=True)
class DonationPart:
    """The donation the dose came from and QA's eligibility determination of its donor."""

    din: Code
    donor_code: str
    collected_at: Moment
    eligibility: str
    determined_at: Moment | None
    determined_by: str | None
    eligibility_reason: str | None
    signatures: list[ManifestedSignature]
    #: when a later donor result re-opened the determination shown, and why (lookback)
    reopened_at: Moment | None = None
    reopened_reason: str | None = None


@dataclass(frozen=True)
class RecallPart:
    """A recall that names the patient or a unit of an infusion's path (issue 16): the report
    names it and links to it, whatever its signatures say."""

    id: int
    number: str
    status: str
    reason: str
    target: str
    opened_at: Moment
    #: opened by the system on a late donor result (a lookback), not by QA
    automatic: bool
    url: str

    @property
    def text(self) -> str:
        return f"{self.number} ({self.status}): {self.reason}"


@dataclass(frozen=True)
class DosePart:
    """The dose arithmetic as it was computed and second-checked."""

    visit: str
    order_id: int
    status: str
    weight_kg: float
    weight_measured_at: Moment
    target_cells: float
    target_cells_text: str
    delivered_cells: float
    delivered_cells_text: str
    volume_ml: float
    deviation_percent: float
    deviation_text: str
    dmso_g_per_kg: float
    override_reason: str | None
    #: the arithmetic step by step, as the dose order recorded it
    working: list[str]
    ordered_at: Moment
    ordered_by: str
    #: the independent second check (and an investigator's override, when there was one)
    signatures: list[ManifestedSignature]


@dataclass(frozen=True)
class ShipmentPart:
    """The dry shipper the dose travelled in, its receipt, and QA's decision if it was held."""

    id: int
    shipper_id: str
    logger_id: str
    destination: str
    status: str
    dispatched_at: Moment
    dispatched_by: str
    received_at: Moment | None
    received_by: str | None
    arrival_temperature_c: float | None
    condition: str | None
    logger_excursion: bool | None
    hold_reason: str | None
    decision_reason: str | None
    signatures: list[ManifestedSignature]


@dataclass(frozen=True)
class ThawLine:
    """One bag's thaw, started and completed by scan."""

    code: Code
    started_at: Moment
    started_by: str
    completed_at: Moment | None
    completed_by: str | None


@dataclass(frozen=True)
class CheckLine:
    """One rule behind a bedside verdict, as it was seen."""

    title: str
    passed: bool
    result: str  #: "pass" or "FAIL"
    detail: str


@dataclass(frozen=True)
class OtherCheck:
    """A bedside check of this dose other than the go it was started from: a stop (kept on
    record, DOMAIN.md §8.3) or the re-check made at the moment of starting."""

    kind: str  #: "stop" or "recheck"
    #: in words: "STOP", or "re-check at start: GO"
    label: str
    checked_at: Moment
    checked_by: str
    verdict: str
    #: the checks that failed, in words ("" for a re-check that passed)
    failed: str
    wristband: str | None


@dataclass(frozen=True)
class VerificationPart:
    """The signed go the infusion was started from, every check behind it, and the other
    checks recorded for the same dose."""

    checked_at: Moment
    checked_by: str
    verdict: str
    checks: list[CheckLine]
    signatures: list[ManifestedSignature]
    others: list[OtherCheck]


@dataclass(frozen=True)
class InfusionPart:
    """The infusion record: when, how much, how fast, who, and any reaction."""

    id: int
    status: str
    started_at: Moment
    ended_at: Moment | None
    volume_infused_ml: float | None
    rate_ml_per_h: float | None
    administered_by: str
    #: in words: "none" once ended without one, "not yet recorded" while it runs
    reaction: str


@dataclass(frozen=True)
class CoiInfusion:
    """One infusion of the patient, read from the bedside back to the donor."""

    number: int
    visit: str
    dose_unit: Code | None
    bags: list[BagLine]
    lots: list[LotPart]
    donation: DonationPart
    dose: DosePart
    shipment: ShipmentPart | None
    thaws: list[ThawLine]
    verification: VerificationPart | None
    infusion: InfusionPart
    #: the recalls that name a unit of this infusion's path
    recalls: list[RecallPart] = field(default_factory=list)

    @property
    def signatures(self) -> list[ManifestedSignature]:
        """Every signature shown for this infusion, in the order the report reads."""
        found = [sig for lot in self.lots for sig in lot.signatures]
        found += self.donation.signatures + self.dose.signatures
        if self.shipment is not None:
            found += self.shipment.signatures
        if self.verification is not None:
            found += self.verification.signatures
        return found


@dataclass(frozen=True)
class CoiReport:
    """A patient's chain-of-identity report: every infusion, in the order given."""

    patient: PatientPart
    zone: str
    infusions: list[CoiInfusion] = field(default_factory=list)
    #: every recall naming the patient or a unit of their infusions' paths, oldest first
    recalls: list[RecallPart] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.infusions

    @property
    def signature_count(self) -> int:
        return sum(len(part.signatures) for part in self.infusions)

    @property
    def invalid_count(self) -> int:
        return sum(1 for part in self.infusions for sig in part.signatures if not sig.valid)

    @property
    def alert(self) -> bool:
        """Whether the head must be read as a warning: a signature no longer valid, or a
        recall naming the patient or their product."""
        return bool(self.invalid_count or self.recalls)

    @property
    def recall_text(self) -> str:
        """The recalls in one sentence, or nothing when none names the path."""
        if not self.recalls:
            return ""
        return _(
            "UNDER RECALL: %(recalls)s.", recalls="; ".join(recall.text for recall in self.recalls)
        )

    @property
    def summary(self) -> str:
        """One sentence on the whole report, printed at its head. Valid signatures are never
        the whole story when a recall names the path: the recalls come first."""
        head = self.summary_head
        return f"{self.recall_text} {head}" if self.recalls else head

    @property
    def summary_head(self) -> str:
        """The summary without its recalls (the page shows those with their stored reasons
        marked as stored text)."""
        if self.empty:
            return _("No infusion is recorded for %(study_id)s.", study_id=self.patient.study_id)
        infusions = ngettext("%(num)d infusion", "%(num)d infusions", len(self.infusions))
        if self.invalid_count:
            head = _(
                "%(infusions)s, %(signatures)s signatures: %(invalid)s no longer valid, the"
                " content they signed changed after signing.",
                infusions=infusions,
                signatures=self.signature_count,
                invalid=self.invalid_count,
            )
        else:
            head = _(
                "%(infusions)s, %(signatures)s signatures: all valid.",
                infusions=infusions,
                signatures=self.signature_count,
            )
        return head


#: what the report says for the arm to a role that does not see arms (single blind, issue 19)
ARM_NOT_SHOWN = lazy("not shown to your role")


def as_seen_by(report: CoiReport, roles: frozenset[Role] | set[Role]) -> CoiReport:
    """``report`` as ``roles`` may see it: without the patient's arm unless they hold
    ``SEE_ARMS`` (the page, the PDF and the API alike)."""
    if has_permission(roles, Permission.SEE_ARMS):
        return report
    return replace(report, patient=replace(report.patient, arm=None, arm_name=str(ARM_NOT_SHOWN)))


# --- building it --------------------------------------------------------------------------------


def patient_report(session: DbSession, patient: Patient, *, zone: ZoneInfo) -> CoiReport:
    """The chain-of-identity report of ``patient``, times shown in ``zone``.

    Each infusion is built from its trace back (nothing re-queried by hand); infusions are
    read in the order they were started. A patient with no infusion gets an empty report.
    """
    infusions = list(
        session.execute(
            select(Infusion)
            .where(Infusion.patient_id == patient.id)
            .order_by(Infusion.started_at, Infusion.id)
        ).scalars()
    )
    backs = [trace.trace_back(session, TraceFrom.INFUSION, infusion.id) for infusion in infusions]
    return CoiReport(
        patient=PatientPart(
            id=patient.id,
            study_id=patient.study_id,
            coi=_code(patient.coi),
            protocol=f"{patient.protocol.code} v{patient.protocol.version}",
            arm=patient.arm,
            arm_name=patients.arm_name(patient),
            status=patient.status_label,
        ),
        zone=zone.key,
        infusions=[_infusion(number, back, zone) for number, back in enumerate(backs, start=1)],
        recalls=[
            _recall(recall, zone)
            for recall in sorted(
                {
                    recall.id: recall
                    for recall in [
                        *notices.recalls_naming(session, patients=[patient.id]).patient(patient.id),
                        *(recall for back in backs for recall in back.recalls),
                    ]
                }.values(),
                key=lambda recall: recall.id,
            )
        ],
    )


def _infusion(number: int, back: BackTrace, zone: ZoneInfo) -> CoiInfusion:
    [path] = back.clinic  # a trace back from an infusion has its one dose order
    infusion = path.infusion
    assert infusion is not None, "traced from an infusion"
    order = path.order.record
    assert isinstance(order, DoseOrder)
    lot_of = {traced.unit.id: traced.lot_number for traced in back.units}
    return CoiInfusion(
        number=number,
        visit=order.visit,
        dose_unit=_code(order.dose_unit.code) if order.dose_unit else None,
        bags=[
            BagLine(
                code=_code(bag.unit.code),
                lot_number=lot_of.get(bag.unit_id),
                volume_ml=bag.volume_ml,
                cells=bag.cells,
                cells_text=_count(bag.cells),
                whole_bag=bag.whole_bag,
            )
            for bag in order.bags
        ],
        lots=[_lot(release.lot, release.disposition, zone) for release in back.lots],
        donation=_donation(back, zone),
        dose=_dose(order, path.order, zone),
        shipment=_shipment(path.shipment, zone) if path.shipment else None,
        thaws=[_thaw(thaw, zone) for thaw in path.thaws],
        verification=_verification(path, infusion, zone),
        infusion=InfusionPart(
            id=infusion.id,
            status=infusion.status_label,
            started_at=_moment(infusion.started_at, zone),
            ended_at=_maybe(infusion.ended_at, zone),
            volume_infused_ml=infusion.volume_infused_ml,
            rate_ml_per_h=infusion.rate_ml_per_h,
            administered_by=_person(infusion.administered_by),
            reaction=_reaction(infusion),
        ),
        recalls=[_recall(recall, zone) for recall in back.recalls],
    )


def _recall(recall: Recall, zone: ZoneInfo) -> RecallPart:
    return RecallPart(
        id=recall.id,
        number=recall.number,
        status=recall.status,
        reason=recall.reason,
        target=f"{recall.target_type_label} {recall.target_label}",
        opened_at=_moment(recall.opened_at, zone),
        automatic=recall.automatic,
        url=f"/recalls/{recall.id}",
    )


def _lot(lot: Lot, disposition: Signed | None, zone: ZoneInfo) -> LotPart:
    decided = disposition.record if disposition else None
    assert decided is None or isinstance(decided, LotDisposition)
    return LotPart(
        lot_number=lot.lot_number,
        status=lot.status,
        expires_at=_maybe(lot.expires_at, zone),
        decision=decided.decision if decided else None,
        decided_at=_moment(decided.decided_at, zone) if decided else None,
        decided_by=_person(decided.decided_by) if decided else None,
        reason=decided.reason if decided else None,
        signatures=_signatures(disposition, zone),
    )


def _donation(back: BackTrace, zone: ZoneInfo) -> DonationPart:
    donation = back.donation
    determination = back.eligibility.record if back.eligibility else None
    assert determination is None or isinstance(determination, EligibilityDetermination)
    return DonationPart(
        din=_code(donation.din),
        donor_code=donation.donor.code,
        collected_at=_moment(donation.collected_at, zone),
        eligibility=(
            f"{determination.outcome}, RE-OPENED (now {donation.eligibility})"
            if determination and determination.reopened_at
            else determination.outcome
            if determination
            else donation.eligibility
        ),
        determined_at=_moment(determination.determined_at, zone) if determination else None,
        determined_by=_person(determination.determined_by) if determination else None,
        eligibility_reason=determination.reason if determination else None,
        signatures=_signatures(back.eligibility, zone),
        reopened_at=_maybe(determination.reopened_at, zone) if determination else None,
        reopened_reason=determination.reopened_reason if determination else None,
    )


def _dose(order: DoseOrder, signed: Signed, zone: ZoneInfo) -> DosePart:
    return DosePart(
        visit=order.visit,
        order_id=order.id,
        status=order.status,
        weight_kg=order.weight.weight_kg,
        weight_measured_at=_moment(order.weight.measured_at, zone),
        target_cells=order.target_cells,
        target_cells_text=_count(order.target_cells),
        delivered_cells=order.delivered_cells,
        delivered_cells_text=_count(order.delivered_cells),
        volume_ml=order.volume_ml,
        deviation_percent=order.deviation_percent,
        deviation_text=f"{order.deviation_percent:+.2f} %",
        dmso_g_per_kg=order.dmso_g_per_kg,
        override_reason=order.override_reason,
        working=order.working,
        ordered_at=_moment(order.ordered_at, zone),
        ordered_by=_person(order.prepared_by),
        signatures=_signatures(signed, zone),
    )


def _shipment(signed: Signed, zone: ZoneInfo) -> ShipmentPart:
    shipment = signed.record
    assert isinstance(shipment, Shipment)
    return ShipmentPart(
        id=shipment.id,
        shipper_id=shipment.shipper_id,
        logger_id=shipment.logger_id,
        destination=shipment.destination,
        status=shipment.status_label,
        dispatched_at=_moment(shipment.dispatched_at, zone),
        dispatched_by=_person(shipment.dispatched_by),
        received_at=_maybe(shipment.received_at, zone),
        received_by=_person(shipment.received_by) if shipment.received_by else None,
        arrival_temperature_c=shipment.arrival_temperature_c,
        condition=shipment.condition,
        logger_excursion=shipment.logger_excursion,
        hold_reason=shipment.hold_reason,
        decision_reason=shipment.decision_reason,
        signatures=_signatures(signed, zone),
    )


def _verdict(check: BedsideCheck) -> str:
    """A bedside check's verdict in the reader's words (the record keeps "go" or "stop")."""
    return _("GO") if check.go else _("STOP")


def _reaction(infusion: Infusion) -> str:
    """A reaction is recorded at the end, so a running infusion has none recorded yet."""
    if infusion.reaction:
        return infusion.reaction
    return _("none") if infusion.ended_at is not None else _("not yet recorded (infusion running)")


def _thaw(thaw: Thaw, zone: ZoneInfo) -> ThawLine:
    return ThawLine(
        code=_code(thaw.unit.code),
        started_at=_moment(thaw.started_at, zone),
        started_by=_person(thaw.started_by),
        completed_at=_maybe(thaw.completed_at, zone),
        completed_by=_person(thaw.completed_by) if thaw.completed_by else None,
    )


def _verification(path: ClinicPath, infusion: Infusion, zone: ZoneInfo) -> VerificationPart | None:
    """The go the infusion was started from (``infusion.bedside_check``) and, beside it, the
    other checks of the dose: stops are part of the record, and so is the re-check made at
    the start."""
    go: Signed | None = None
    others: list[OtherCheck] = []
    for signed in path.bedside_checks:
        check = signed.record
        assert isinstance(check, BedsideCheck)
        if check.id == infusion.bedside_check_id:
            go = signed
            continue
        recheck = check.recheck_of_id is not None and check.go
        wrong_patient = check.patient is not None and check.patient_id != infusion.patient_id
        others.append(
            OtherCheck(
                kind="recheck" if recheck else "stop",
                label=_("re-check at start: GO") if recheck else _verdict(check),
                checked_at=_moment(check.checked_at, zone),
                checked_by=_person(check.checked_by),
                verdict=check.verdict.upper(),
                failed="; ".join(
                    f"{c['title']}: {c['detail']}" for c in check.checks_shown if not c["passed"]
                ),
                wristband=check.patient.study_id if wrong_patient and check.patient else None,
            )
        )
    if go is None:
        return None
    check = go.record
    assert isinstance(check, BedsideCheck)
    return VerificationPart(
        checked_at=_moment(check.checked_at, zone),
        checked_by=_person(check.checked_by),
        verdict=check.verdict.upper(),
        checks=[
            CheckLine(
                title=c["title"],
                passed=bool(c["passed"]),
                result="pass" if c["passed"] else "FAIL",
                detail=c["detail"],
            )
            for c in check.checks_shown
        ],
        signatures=_signatures(go, zone),
        others=others,
    )


# --- formatting ---------------------------------------------------------------------------------


def manifest_signature(signature: SignatureManifest, zone: ZoneInfo) -> ManifestedSignature:
    """A signature as shown: the time in ``zone`` and its validity in words."""
    return ManifestedSignature(
        printed_name=signature.printed_name,
        username=signature.username,
        signed_at=_moment(signature.signed_at, zone, seconds=True),
        meaning=signature.meaning,
        valid=signature.valid,
        status=VALID if signature.valid else INVALID,
    )


def _signatures(signed: Signed | None, zone: ZoneInfo) -> list[ManifestedSignature]:
    found: Sequence[SignatureManifest] = signed.signatures if signed else []
    return [manifest_signature(signature, zone) for signature in found]


def _moment(value: dt.datetime, zone: ZoneInfo, *, seconds: bool = False) -> Moment:
    return Moment(value.astimezone(zone), local_time(value, zone, seconds=seconds))


def _maybe(value: dt.datetime | None, zone: ZoneInfo) -> Moment | None:
    return None if value is None else _moment(value, zone)


def _code(code: str) -> Code:
    return Code(code=code, display=parse_identifier(code).display)


def _person(user: User) -> str:
    return f"{user.full_name} ({user.username})"


def _count(value: float) -> str:
    """Cells to three significant figures: ``7.00 × 10⁷``."""
    return scientific(value)
