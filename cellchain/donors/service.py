"""Rules of the donors package: registration, receipt, donor tests and eligibility.

Rules: DOMAIN.md §1–3; 21 CFR 1271.45–1271.90 (donor eligibility), 1271.60 (quarantine),
1271.265(a) (receipt). Every use case flushes only; the caller commits once.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, func, or_, select, update
from sqlalchemy.orm import selectinload

from cellchain.chain import service as chain
from cellchain.chain.models import EventType, UnitKind, UnitStatus
from cellchain.core import actions, audit, listing, numbering, record_state, signatures
from cellchain.core.guarded import update_if
from cellchain.core.i18n import _, document_text, lazy
from cellchain.core.models import IssuedIdentifier, User
from cellchain.core.payload import read_scan
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, require
from cellchain.documents import versioning
from cellchain.donors.inputs import DEFAULT_RECEIPT_LOCATION as DEFAULT_RECEIPT_LOCATION
from cellchain.donors.inputs import DonationRegistration as DonationRegistration
from cellchain.donors.inputs import NewDonor as NewDonor
from cellchain.donors.inputs import Receipt as Receipt
from cellchain.donors.inputs import ResultEntry as ResultEntry
from cellchain.donors.models import (
    DONATION_TRANSITIONS,
    ContainerCondition,
    Donation,
    DonationStatus,
    Donor,
    DonorTestResult,
    Eligibility,
    EligibilityDetermination,
    InfectiousResult,
    ScreeningOutcome,
)
from cellchain.donors.panels import PanelTest as PanelTest
from cellchain.donors.panels import panel_for_registration
from cellchain.donors.panels import panel_of as panel_of
from cellchain.errors import Conflict, InvalidInput, NotFound, ReasonRequired
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import ProductDefinition
from cellchain.manufacturing.service import PRODUCTS
from cellchain.manufacturing.terms import term
from cellchain.notifications import service as notifications

#: The meaning printed with QA's signature on a determination.
DETERMINATION_MEANING = "responsibility: donor eligibility determination"


# --- registration -----------------------------------------------------------------------------


def products_for_registration(session: DbSession, *, at: dt.datetime) -> list[ProductDefinition]:
    """The product definitions a donation registered at ``at`` may be held to: one version per
    code, those in force then (``documents.versioning.in_force_ids``), by code. The
    registration form offers these; ``register_donation`` refuses any other code."""
    ids = versioning.in_force_ids(session, ProductDefinition, at=at)
    if not ids:
        return []
    query = select(ProductDefinition).where(ProductDefinition.id.in_(ids))
    return list(session.execute(query.order_by(ProductDefinition.code)).scalars())


def register_donation(
    session: DbSession,
    registration: DonationRegistration,
    *,
    facility_code: str,
    site_zone: ZoneInfo,
    actor: User,
    now: dt.datetime,
) -> Donation:
    """Register a consented donation: its donor, its DIN and one labelled container per tissue.

    The donation starts in quarantine (eligibility pending, 1271.60) and is held to the
    product definition in force now. Refused: no tissue, not the tissue the product is made
    from (its ``source``), a future birth or collection, collection before birth, consent
    after collection, and a donor given both ways or neither.
    """
    errors = _registration_errors(registration, site_zone=site_zone, now=now)
    if errors:
        raise InvalidInput(_first_message(errors), errors=errors)
    product = PRODUCTS.in_force(session, registration.product_code, at=now)
    _check_source_collected(product, registration)
    panel = panel_for_registration(session, product, at=now)
    donor = _donor_for(session, registration, actor=actor, now=now)
    issued = _din_for(session, registration, facility_code=facility_code, actor=actor, now=now)
    donation = Donation(
        din=issued.code,
        donor_id=donor.id,
        product_definition_id=product.id,
        donor_test_panel_id=panel.id,
        umbilical_cord=registration.umbilical_cord,
        placenta=registration.placenta,
        delivery_at=registration.delivery_at,
        collected_at=registration.collected_at,
        collection_site=registration.collection_site.strip(),
        collector=registration.collector.strip(),
        transport_conditions=registration.transport_conditions.strip(),
        registered_at=now,
        registered_by_id=actor.id,
        status=DonationStatus.REGISTERED.value,
        eligibility=Eligibility.PENDING.value,
    )
    session.add(donation)
    session.flush()
    numbering.attach(
        session, issued, entity_type="donation", entity_id=donation.id, actor=actor, now=now
    )
    audit.record(
        session,
        actor=actor,
        at=now,
        action="donation.registered",
        entity_type="donation",
        entity_id=donation.id,
        changes={
            "din": (None, donation.din),
            "donor": (None, donor.code),
            "product": (None, f"{product.code} v{product.version}"),
            "donor_test_panel": (None, f"{panel.code} v{panel.version}"),
            "tissues": (None, donation.tissues),
            "delivery_at": (None, donation.delivery_at),
            "collected_at": (None, donation.collected_at),
            "collection_site": (None, donation.collection_site),
            "collector": (None, donation.collector),
            "transport_conditions": (None, donation.transport_conditions),
            "status": (None, donation.status),
            "eligibility": (None, donation.eligibility),
        },
    )
    for _tissue in donation.tissues:
        chain.create_unit(
            session,
            donation_id=donation.id,
            din=donation.din[:-1],
            kind=UnitKind.DONATION_CONTAINER,
            location=donation.collection_site,
            actor=actor,
            now=now,
            at=donation.collected_at,
        )
    return donation


#: A product definition's ``source`` (the tissue it is made from), as a refusal names it.
_SOURCE_TISSUES = {"placenta": lazy("placenta"), "umbilical_cord": lazy("umbilical cord")}


def _check_source_collected(product: ProductDefinition, registration: DonationRegistration) -> None:
    """Refuse a donation for a product made from a tissue the registration does not collect
    (review 2 item 11: a placenta product, PL-MSC, registered with umbilical cord only)."""
    source = str(product.parameters.get("source") or "").strip().lower().replace(" ", "_")
    collected = {"umbilical_cord": registration.umbilical_cord, "placenta": registration.placenta}
    if source not in collected or collected[source]:
        return
    message = _(
        "%(product)s is made from the %(tissue)s: tick %(tissue)s among the tissues collected, "
        "or choose the product made from the tissue collected.",
        product=product.code,
        tissue=str(_SOURCE_TISSUES[source]),
    )
    raise InvalidInput(message, errors={"tissues": [message]})


def _registration_errors(
    registration: DonationRegistration, *, site_zone: ZoneInfo, now: dt.datetime
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def add(field_name: str, message: str) -> None:
        errors.setdefault(field_name, []).append(message)

    if not (registration.umbilical_cord or registration.placenta):
        add(
            "tissues",
            _("Tick umbilical cord, placenta or both: a donation collects some tissue."),
        )
    if registration.delivery_at > now:
        add("delivery_at", _("The birth cannot be in the future."))
    if registration.collected_at > now:
        add("collected_at", _("The collection cannot be in the future."))
    if registration.collected_at < registration.delivery_at:
        add("collected_at", _("The tissue is collected at or after the birth, not before."))
    for name in ("collection_site", "collector", "transport_conditions"):
        if not getattr(registration, name).strip():
            add(name, _("Required."))
    if (registration.new_donor is None) == (registration.donor_code is None):
        add("donor_code", _("Give either an existing donor code or the new donor's consent."))
    new_donor = registration.new_donor
    if new_donor is not None:
        collected_day = registration.collected_at.astimezone(site_zone).date()
        today = now.astimezone(site_zone).date()
        if new_donor.consent_date > collected_day:
            add("consent_date", _("Consent must be given on or before the day of collection."))
        if new_donor.screening_date > today:
            add("screening_date", _("The screening date cannot be in the future."))
        if not new_donor.consent_form_version.strip():
            add("consent_form_version", _("Required."))
    return errors


def _first_message(errors: dict[str, list[str]]) -> str:
    """The first problem as the headline; the rest are shown at their fields."""
    first = next(iter(errors.values()))[0]
    others = sum(len(messages) for messages in errors.values()) - 1
    if not others:
        return first
    return _("%(first)s (and %(others)s more below)", first=first, others=others)


def _donor_for(
    session: DbSession, registration: DonationRegistration, *, actor: User, now: dt.datetime
) -> Donor:
    if registration.donor_code is not None:
        code = registration.donor_code.strip().upper()
        donor = session.execute(select(Donor).where(Donor.code == code)).scalar_one_or_none()
        if donor is None:
            raise NotFound(
                _("There is no donor %(code)s.", code=code),
                errors={"donor_code": [_("Unknown donor code.")]},
            )
        return donor
    assert registration.new_donor is not None  # checked by _registration_errors
    return register_donor(session, registration.new_donor, actor=actor, now=now)


def register_donor(session: DbSession, new: NewDonor, *, actor: User, now: dt.datetime) -> Donor:
    """Record a birth mother under the next pseudonymous donor code (``DNR26-00001``)."""
    year = now.year % 100
    sequence = numbering.next_in_sequence(session, f"DONOR:{year:02d}", maximum=99_999)
    donor = Donor(
        code=f"DNR{year:02d}-{sequence:05d}",
        consent_date=new.consent_date,
        consent_form_version=new.consent_form_version.strip(),
        consent_recorded_by_id=actor.id,
        consent_recorded_at=now,
        screening_outcome=new.screening_outcome.value,
        screening_date=new.screening_date,
        screening_recorded_by_id=actor.id,
        screening_notes=(new.screening_notes or "").strip() or None,
        created_at=now,
    )
    session.add(donor)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="donor.registered",
        entity_type="donor",
        entity_id=donor.id,
        changes={
            "code": (None, donor.code),
            "consent_date": (None, donor.consent_date),
            "consent_form_version": (None, donor.consent_form_version),
            "screening_outcome": (None, donor.screening_outcome),
            "screening_date": (None, donor.screening_date),
        },
    )
    return donor


def _din_for(
    session: DbSession,
    registration: DonationRegistration,
    *,
    facility_code: str,
    actor: User,
    now: dt.datetime,
) -> IssuedIdentifier:
    if registration.reserved_din is None:
        return numbering.allocate_din(
            session,
            facility_code=facility_code,
            actor=actor,
            now=now,
            purpose="donation registration",
        )
    issued = numbering.lookup(session, registration.reserved_din)
    if issued.kind != "DIN":
        raise InvalidInput(
            _("%(code)s is not a DIN.", code=issued.code),
            errors={"reserved_din": [_("Not a DIN.")]},
        )
    if issued.entity_type is not None:
        raise Conflict(
            _(
                "DIN %(code)s already identifies another record; use a fresh label.",
                code=issued.code,
            ),
            errors={"reserved_din": [_("Already used.")]},
        )
    return issued


def correct_screening(
    session: DbSession,
    donor: Donor,
    *,
    outcome: ScreeningOutcome,
    screening_date: dt.date,
    notes: str | None,
    reason: str,
    actor: User,
    now: dt.datetime,
) -> None:
    """Correct a donor's screening outcome: a reason is required and the old value stays in
    the audit trail. Refused once any of the donor's donations has been determined."""
    if not reason.strip():
        raise ReasonRequired(_("Correcting a screening outcome"))
    determined = [d.din for d in donor.donations if d.determination is not None]
    if determined:
        raise Conflict(
            _(
                "Eligibility has already been determined for %(dins)s; the screening outcome it "
                "rests on can no longer be changed here.",
                dins=", ".join(determined),
            ),
        )
    changes = {
        "screening_outcome": (donor.screening_outcome, outcome.value),
        "screening_date": (donor.screening_date, screening_date),
        "screening_notes": (donor.screening_notes, (notes or "").strip() or None),
    }
    donor.screening_outcome = outcome.value
    donor.screening_date = screening_date
    donor.screening_notes = (notes or "").strip() or None
    donor.screening_recorded_by_id = actor.id
    audit.record(
        session,
        actor=actor,
        at=now,
        action="donor.screening_corrected",
        entity_type="donor",
        entity_id=donor.id,
        changes=changes,
        reason=reason.strip(),
    )


# --- receipt and the start of processing --------------------------------------------------------


def receive_donation(
    session: DbSession, donation: Donation, receipt: Receipt, *, actor: User, now: dt.datetime
) -> None:
    """Accept or reject a donation on arrival; every container gets a receipt event.

    Refused: receipt before collection or in the future, a second receipt. A rejection needs a
    reason and rejects the containers for good; accepting a container that is not intact needs
    a note saying why it is still acceptable.
    """
    errors: dict[str, list[str]] = {}
    if receipt.received_at > now:
        errors["received_at"] = [_("The receipt time cannot be in the future.")]
    elif receipt.received_at < donation.collected_at:
        errors["received_at"] = [
            _(
                "The donation cannot be received before it was collected (see the collection "
                "time above)."
            )
        ]
    if not -273.15 <= receipt.temperature_c <= 100:
        errors["temperature_c"] = [_("Must be between −273.15 and 100 °C.")]
    note = (receipt.note or "").strip() or None
    if not receipt.accept and note is None:
        errors["note"] = [_("Say why the donation is rejected.")]
    if receipt.accept and receipt.condition != ContainerCondition.INTACT and note is None:
        errors["note"] = [
            _(
                "The container is %(condition)s; say why it is still acceptable.",
                condition=document_text(receipt.condition.label),
            )
        ]
    if errors:
        raise InvalidInput(_first_message(errors), errors=errors)
    target = DonationStatus.RECEIVED if receipt.accept else DonationStatus.REJECTED
    _transition(donation, target)
    donation.received_at = receipt.received_at
    donation.received_recorded_at = now
    donation.received_by_id = actor.id
    donation.arrival_temperature_c = receipt.temperature_c
    donation.container_condition = receipt.condition.value
    donation.receipt_note = note
    for unit in donation.units:
        chain.record_custody(
            session,
            unit,
            chain.CustodyInput(
                event_type=EventType.RECEIVED,
                at=receipt.received_at,
                location=receipt.location,
                temperature_c=receipt.temperature_c,
                note=f"{'accepted' if receipt.accept else 'rejected'}; container "
                f"{receipt.condition.label}" + (f"; {note}" if note else ""),
            ),
            actor=actor,
            now=now,
        )
        if not receipt.accept:
            chain.change_status(
                session,
                unit,
                UnitStatus.REJECTED,
                actor=actor,
                now=now,
                reason=f"donation rejected at receipt: {note}",
            )
    audit.record(
        session,
        actor=actor,
        at=now,
        action="donation.received" if receipt.accept else "donation.rejected",
        entity_type="donation",
        entity_id=donation.id,
        changes={
            "status": (DonationStatus.REGISTERED.value, target.value),
            "received_at": (None, receipt.received_at),
            "arrival_temperature_c": (None, receipt.temperature_c),
            "container_condition": (None, receipt.condition.value),
        },
        reason=note,
    )


class DonationAction(enum.StrEnum):
    """What may be done with a donation at the lab."""

    RECEIVE = "receive"  #: the receipt: accepted, or rejected
    START_PROCESSING = "start_processing"  #: processing starts (an accepted donation)


#: The statuses each act starts from, from the transition table.
DONATION_ACTIONS: dict[DonationAction, frozenset[DonationStatus]] = {
    DonationAction.RECEIVE: actions.leading_to(
        DONATION_TRANSITIONS, DonationStatus.RECEIVED, DonationStatus.REJECTED
    ),
    DonationAction.START_PROCESSING: actions.leading_to(
        DONATION_TRANSITIONS, DonationStatus.PROCESSING
    ),
}


def donation_actions(donation: Donation) -> frozenset[DonationAction]:
    """The acts the donation's status allows; the page offers these (permissions apart).

    A donor determined ineligible is never processed (``start_processing``). The
    birth-to-processing limit is checked when processing starts; the page shows its clock.
    """
    acts = actions.allowed(donation.status, DONATION_ACTIONS)
    if donation.eligibility == Eligibility.INELIGIBLE.value:
        return acts - {DonationAction.START_PROCESSING}
    return acts


@dataclass(frozen=True)
class ProcessingClock:
    """Time from birth to processing against the product's limit (DOMAIN.md §3)."""

    hours_elapsed: float
    limit_hours: float
    started: bool

    @property
    def exceeded(self) -> bool:
        return self.hours_elapsed > self.limit_hours

    @property
    def hours_left(self) -> float:
        return self.limit_hours - self.hours_elapsed


def processing_clock(donation: Donation, now: dt.datetime) -> ProcessingClock:
    """Hours from birth until processing started, or until ``now`` while it has not."""
    end = donation.processing_started_at or now
    return ProcessingClock(
        hours_elapsed=(end - donation.delivery_at).total_seconds() / 3600,
        limit_hours=float(donation.product_definition.parameters["max_hours_birth_to_processing"]),
        started=donation.processing_started_at is not None,
    )


def start_processing(
    session: DbSession,
    donation: Donation,
    *,
    actor: User,
    now: dt.datetime,
    started_at: dt.datetime | None = None,
) -> None:
    """Record that processing of a received donation starts (now, or at ``started_at`` when
    the first step is written up after the fact).

    Refused for a donation not (or not yet) accepted at receipt, a donor determined
    ineligible, and when the product's birth-to-processing limit has passed. Processing under
    quarantine, before the determination, is allowed (1271.60(a)); release is not.
    """
    started_at = started_at or now
    if started_at > now or (donation.received_at and started_at < donation.received_at):
        raise InvalidInput(
            _("Processing starts after the receipt and not in the future."),
            errors={"performed_at": [_("Before the receipt or in the future.")]},
        )
    if donation.eligibility == Eligibility.INELIGIBLE.value:
        raise Conflict(
            _(
                "Donation %(din)s: the donor was determined ineligible; it may not be processed.",
                din=donation.din,
            ),
            title=_("Donor ineligible"),
        )
    clock = processing_clock(donation, started_at)
    if DonationStatus(donation.status) == DonationStatus.RECEIVED and clock.exceeded:
        product = donation.product_definition
        hours, limit = f"{clock.hours_elapsed:.1f}", f"{clock.limit_hours:g}"
        raise Conflict(
            _(
                "Donation %(din)s: %(hours)s h have passed since birth; %(product)s "
                "v%(version)s allows at most %(limit)s h from birth to processing.",
                din=donation.din,
                hours=hours,
                product=product.code,
                version=product.version,
                limit=limit,
            ),
            title=_("Birth-to-processing limit exceeded"),
        )
    _transition(donation, DonationStatus.PROCESSING)
    donation.processing_started_at = started_at
    donation.processing_started_by_id = actor.id
    audit.record(
        session,
        actor=actor,
        at=now,
        action="donation.processing_started",
        entity_type="donation",
        entity_id=donation.id,
        changes={
            "status": (DonationStatus.RECEIVED.value, DonationStatus.PROCESSING.value),
            "hours_since_birth": (None, round(clock.hours_elapsed, 2)),
        },
    )


def _transition(donation: Donation, target: DonationStatus) -> None:
    current = DonationStatus(donation.status)
    actions.require_transition(
        DONATION_TRANSITIONS, current, target, _("Donation %(din)s", din=donation.din)
    )
    donation.status = target.value


# --- infectious-disease tests ---------------------------------------------------------------------


def _check_result_input(
    donation: Donation, entry: ResultEntry, *, site_zone: ZoneInfo, now: dt.datetime
) -> tuple[str, dict[str, list[str]]]:
    code = entry.test_code.strip().upper()
    errors: dict[str, list[str]] = {}
    panel = {test.code for test in panel_of(donation)}
    if code not in panel:
        version = donation.donor_test_panel
        errors["test_code"] = [
            _(
                "%(code)s is not on the panel of %(product)s v%(version)s (%(panel)s).",
                code=code,
                product=version.code,
                version=version.version,
                panel=", ".join(sorted(panel)),
            )
            if code
            else _(
                "An empty code is not on the panel of %(product)s v%(version)s (%(panel)s).",
                product=version.code,
                version=version.version,
                panel=", ".join(sorted(panel)),
            )
        ]
    window = int(donation.product_definition.parameters["specimen_window_days"])
    recovery_day = donation.collected_at.astimezone(site_zone).date()
    if entry.specimen_date > now.astimezone(site_zone).date():
        errors["specimen_date"] = [_("The specimen date cannot be in the future.")]
    elif abs((entry.specimen_date - recovery_day).days) > window:
        errors["specimen_date"] = [
            _(
                "The specimen must be taken within %(window)s days before or after recovery "
                "(%(recovery)s); %(specimen)s is %(days)s days away (21 CFR 1271.80).",
                window=window,
                recovery=recovery_day.isoformat(),
                specimen=entry.specimen_date.isoformat(),
                days=abs((entry.specimen_date - recovery_day).days),
            )
        ]
    return code, errors


def record_test_result(
    session: DbSession,
    donation: Donation,
    entry: ResultEntry,
    *,
    site_zone: ZoneInfo,
    actor: User,
    now: dt.datetime,
) -> DonorTestResult:
    """Record one result of the mother's specimen.

    Refused: a test not on the donation's panel, a specimen outside ± the window of recovery,
    a second result for a test that already has one (a correction is the way to change it).
    Writes the result only: pages, API and CLI record results through
    ``traceability.lookback.record_result``, which re-opens a determination the result
    contradicts and opens the lookback in the same transaction.
    """
    code, errors = _check_result_input(donation, entry, site_zone=site_zone, now=now)
    if errors:
        raise InvalidInput(_first_message(errors), errors=errors)
    existing = _current_result(session, donation, code)
    if existing is not None:
        raise Conflict(
            _(
                "%(test)s already has a result for donation %(din)s (%(result)s); correct that "
                "result, with a reason, to change it.",
                test=code,
                din=donation.din,
                result=document_text(existing.result_label),
            ),
            errors={"test_code": [_("Already recorded.")]},
            title=_("Duplicate result"),
        )
    result = DonorTestResult(
        donation_id=donation.id,
        test_code=code,
        specimen_date=entry.specimen_date,
        result=entry.result.value,
        method=(entry.method or "").strip() or None,
        recorded_at=now,
        recorded_by_id=actor.id,
    )
    session.add(result)
    session.flush()
    session.refresh(donation, ["results"])
    audit.record(
        session,
        actor=actor,
        at=now,
        action="donor_test.recorded",
        entity_type="donation",
        entity_id=donation.id,
        changes={
            "test": (None, code),
            "result": (None, result.result),
            "specimen_date": (None, result.specimen_date),
            "result_id": (None, result.id),
        },
    )
    if (
        donation.eligibility == Eligibility.PENDING.value
        and donation.status != DonationStatus.REJECTED.value
        and review_eligibility(donation).complete
    ):
        notifications.notify(  # the last test of the panel: QA's determination can be signed
            session,
            "eligibility_to_sign",
            entity_type="donation",
            entity_id=donation.id,
            params={"donation_id": donation.id, "din": donation.din},
            actor=actor,
            now=now,
        )
    return result


def correct_test_result(
    session: DbSession,
    original: DonorTestResult,
    entry: ResultEntry,
    *,
    reason: str,
    site_zone: ZoneInfo,
    actor: User,
    now: dt.datetime,
) -> DonorTestResult:
    """Replace a result with a corrected one; the original stays visible, marked superseded.

    A correction after the eligibility determination leaves the determination's signature
    shown as no longer valid: what was signed has changed. Writes the correction only: pages,
    API and CLI correct results through ``traceability.lookback.correct_result``, which
    re-opens a determination the correction contradicts, blocks every unit of the donation,
    withdraws its doses not yet infused and opens the lookback, all in this transaction.
    """
    if not reason.strip():
        raise ReasonRequired(_("Correcting a test result"))
    if original.superseded_at is not None:
        raise Conflict(
            _(
                "Result #%(id)s has already been corrected; correct the current result.",
                id=original.id,
            ),
            title=_("Result already corrected"),
        )
    donation = original.donation
    if entry.test_code.strip().upper() != original.test_code:
        raise InvalidInput(
            _(
                "A correction keeps the test (%(test)s); record another test as a new result.",
                test=original.test_code,
            ),
            errors={"test_code": [_("Must stay the same.")]},
        )
    code, errors = _check_result_input(donation, entry, site_zone=site_zone, now=now)
    if errors:
        raise InvalidInput(_first_message(errors), errors=errors)
    original.superseded_at = now
    session.flush()
    corrected = DonorTestResult(
        donation_id=donation.id,
        test_code=code,
        specimen_date=entry.specimen_date,
        result=entry.result.value,
        method=(entry.method or "").strip() or original.method,
        recorded_at=now,
        recorded_by_id=actor.id,
        corrects_id=original.id,
        correction_reason=reason.strip(),
    )
    session.add(corrected)
    session.flush()
    original.superseded_by_id = corrected.id
    session.flush()
    session.refresh(donation, ["results"])
    audit.record(
        session,
        actor=actor,
        at=now,
        action="donor_test.corrected",
        entity_type="donation",
        entity_id=donation.id,
        changes={
            "test": (code, code),
            "result": (original.result, corrected.result),
            "specimen_date": (original.specimen_date, corrected.specimen_date),
            "result_id": (original.id, corrected.id),
        },
        reason=reason.strip(),
    )
    return corrected


def _current_result(session: DbSession, donation: Donation, code: str) -> DonorTestResult | None:
    return session.execute(
        select(DonorTestResult).where(
            DonorTestResult.donation_id == donation.id,
            DonorTestResult.test_code == code,
            DonorTestResult.superseded_at.is_(None),
        )
    ).scalar_one_or_none()


def get_result(session: DbSession, result_id: int) -> DonorTestResult:
    return get_or_404(session, DonorTestResult, result_id, "donor test result")


# --- eligibility ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One precondition of an eligible determination, met or not, and why."""

    label: str
    ok: bool
    detail: str
    #: not decided yet (a panel test without a result): reads NOT YET, never as met
    pending: bool = False

    @property
    def passed(self) -> bool:
        return self.ok

    @property
    def state(self) -> str:
        """PASSED, FAILED or NOT YET: how the check reads wherever it is listed (issue 16)."""
        if self.ok:
            return "PASSED"
        return "NOT YET" if self.pending else "FAILED"


@dataclass(frozen=True)
class EligibilityReview:
    """Everything a determination rests on, checked (the determination page shows it)."""

    checks: list[Check]
    missing_tests: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every test on the panel has a result: a determination may be made."""
        return not self.missing_tests

    @property
    def eligible_possible(self) -> bool:
        """Every check passes: the donor may be determined eligible."""
        return all(check.ok for check in self.checks)


def review_eligibility(donation: Donation) -> EligibilityReview:
    """Check screening and every panel test for an eligibility determination."""
    donor = donation.donor
    screening_ok = donor.screening_outcome == ScreeningOutcome.ACCEPTABLE.value
    checks = [
        Check(
            label=_("Donor screening"),
            ok=screening_ok,
            detail=_(
                "%(outcome)s (%(date)s)",
                outcome=term(donor.screening_outcome),
                date=donor.screening_date.isoformat(),
            ),
        )
    ]
    current = {result.test_code: result for result in donation.current_results}
    missing: list[str] = []
    for test in panel_of(donation):
        result = current.get(test.code)
        if result is None:
            missing.append(test.code)
            checks.append(Check(label=test.name, ok=False, detail=_("no result yet"), pending=True))
            continue
        checks.append(
            Check(
                label=test.name,
                ok=result.result == InfectiousResult.NON_REACTIVE.value,
                detail=_(
                    "%(result)s (specimen %(date)s)",
                    result=term(result.result),
                    date=result.specimen_date.isoformat(),
                ),
            )
        )
    return EligibilityReview(checks=checks, missing_tests=missing)


def determine_eligibility(
    session: DbSession,
    donation: Donation,
    *,
    eligible: bool,
    reason: str | None,
    user: User,
    password: str,
    now: dt.datetime,
) -> EligibilityDetermination:
    """QA determines the donor eligible or ineligible and signs it with their password.

    Refused: a second determination; any panel test without a result; "eligible" unless every
    test is non-reactive and screening is acceptable; "ineligible" without a reason. An
    ineligible determination blocks every unit of the donation for good (1271.65).
    """
    require(user, Permission.DETERMINE_ELIGIBILITY)
    review = review_eligibility(donation)
    if donation.eligibility != Eligibility.PENDING.value or donation.determination is not None:
        raise Conflict(
            _(
                "Donation %(din)s has already been determined %(outcome)s; a determination is "
                "made once.",
                din=donation.din,
                outcome=term(donation.eligibility),
            ),
            title=_("Already determined"),
        )
    if not review.complete:
        raise Conflict(
            _(
                "Donation %(din)s cannot be determined yet: no result for %(tests)s.",
                din=donation.din,
                tests=", ".join(review.missing_tests),
            ),
            title=_("Tests missing"),
        )
    if eligible and not review.eligible_possible:
        failed = "; ".join(f"{c.label}: {c.detail}" for c in review.checks if not c.ok)
        raise Conflict(
            _(
                "Donation %(din)s cannot be determined eligible: %(failed)s.",
                din=donation.din,
                failed=failed,
            ),
            title=_("Not eligible"),
        )
    reason = (reason or "").strip() or None
    if not eligible and reason is None:
        raise ReasonRequired(_("An ineligible determination"))
    outcome = Eligibility.ELIGIBLE if eligible else Eligibility.INELIGIBLE
    claimed = session.execute(
        record_state.marked(
            update(Donation)
            .where(Donation.id == donation.id, Donation.eligibility == Eligibility.PENDING.value)
            .values(eligibility=outcome.value)
            .execution_options(synchronize_session=False)
        )
    )
    # Session.execute is typed to return a Result; an UPDATE's is a CursorResult, with rowcount
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            _("Donation %(din)s was determined by someone else a moment ago.", din=donation.din),
            title=_("Already determined"),
        )
    record_state.touched(session, Donation, [donation.id])
    session.refresh(donation, ["eligibility"])
    determination = EligibilityDetermination(
        donation_id=donation.id,
        outcome=outcome.value,
        reason=reason,
        determined_at=now,
        determined_by_id=user.id,
    )
    session.add(determination)
    session.flush()
    session.refresh(donation, ["determination", "determinations"])
    signatures.sign(
        session,
        record=determination,
        meaning=f"{DETERMINATION_MEANING}: {outcome.value}",
        user=user,
        password=password,
        now=now,
        permission=Permission.DETERMINE_ELIGIBILITY,
    )
    audit.record(
        session,
        actor=user,
        at=now,
        action="donation.eligibility_determined",
        entity_type="donation",
        entity_id=donation.id,
        changes={"eligibility": (Eligibility.PENDING.value, outcome.value)},
        reason=reason,
    )
    if outcome == Eligibility.INELIGIBLE:
        block_donation_units(session, donation, actor=user, now=now)
    return determination


def determination_contradicted(donation: Donation) -> bool:
    """Whether the determination in force says eligible while the current evidence no longer
    allows it (a result recorded or corrected afterwards is reactive or indeterminate).

    Only this direction re-opens a determination. The other (an ineligible donor whose result
    is corrected to non-reactive) changes nothing: blocking for ineligibility is for good
    (1271.65), so nothing is unblocked and the determination stays in force.
    """
    determination = donation.determination
    return (
        determination is not None
        and determination.outcome == Eligibility.ELIGIBLE.value
        and not review_eligibility(donation).eligible_possible
    )


def reopen_determination(
    session: DbSession,
    donation: Donation,
    *,
    cause: DonorTestResult,
    actor: User,
    now: dt.datetime,
) -> EligibilityDetermination:
    """Re-open the eligible determination that ``cause`` contradicts: it stays, signed and
    visible, marked re-opened by that result; the donation is back in quarantine (pending)
    until QA determines again, which can now only be "ineligible" while the result stands.

    Guarded: of two results re-opening it at once, the second finds it re-opened already.
    The caller blocks the units and opens the lookback in the same transaction
    (``traceability.lookback``).
    """
    determination = donation.determination
    if determination is None or determination.outcome != Eligibility.ELIGIBLE.value:
        raise Conflict(
            _(
                "Donation %(din)s has no eligible determination in force to re-open.",
                din=donation.din,
            ),
            title=_("Nothing to re-open"),
        )
    reason = (
        f"{cause.test_code} {'corrected' if cause.corrects_id else 'recorded'} as "
        f"{cause.result_label} (result #{cause.id}) after the donor was determined eligible"
    )
    reopened = update_if(
        session,
        determination,
        EligibilityDetermination.reopened_at.is_(None),
        reopened_at=now,
        reopened_by_result_id=cause.id,
        reopened_reason=reason,
    ) and update_if(
        session,
        donation,
        Donation.eligibility == Eligibility.ELIGIBLE.value,
        eligibility=Eligibility.PENDING.value,
    )
    if not reopened:
        raise Conflict(
            _(
                "The determination of donation %(din)s was changed a moment ago; reload and "
                "try again.",
                din=donation.din,
            ),
            title=_("Changed concurrently"),
        )
    session.flush()
    session.refresh(donation, ["determination", "determinations"])
    audit.record(
        session,
        actor=actor,
        at=now,
        action="donation.eligibility_reopened",
        entity_type="donation",
        entity_id=donation.id,
        changes={
            "eligibility": (Eligibility.ELIGIBLE.value, Eligibility.PENDING.value),
            "determination_id": (determination.id, None),
            "result_id": (None, cause.id),
        },
        reason=reason,
    )
    return determination


def block_donation_units(
    session: DbSession, donation: Donation, *, actor: User, now: dt.datetime
) -> int:
    """Block every unit of an ineligible donation that is not already final; the count blocked.

    Every unit carries its donation (pooling is refused), so this is every unit ever derived.
    """
    units = [
        unit
        for unit in chain.units_of_donation(session, donation.id)
        if not UnitStatus(unit.status).final
    ]
    chain.change_status_many(
        session,
        units,
        UnitStatus.BLOCKED,
        actor=actor,
        now=now,
        reason=f"donor of {donation.din} determined ineligible",
    )
    return len(units)


# --- finding donations ----------------------------------------------------------------------------


def get_donation(session: DbSession, donation_id: int) -> Donation:
    return get_or_404(session, Donation, donation_id, "donation")


def find_donation(session: DbSession, din: str) -> Donation:
    """The donation with this DIN, typed or scanned in any accepted form (with its check
    character or as the label payload: ``read_scan``)."""
    identifier = read_scan(din, kinds=("DIN", "UNIT"))
    if identifier.kind == "UNIT":  # a unit's code leads to its donation
        return chain.resolve_unit(session, din).donation
    donation = session.execute(
        select(Donation).where(Donation.din == identifier.canonical)
    ).scalar_one_or_none()
    if donation is None:
        raise NotFound(_("No donation has DIN %(din)s.", din=identifier.display))
    return donation


def get_donor(session: DbSession, donor_id: int) -> Donor:
    return get_or_404(session, Donor, donor_id, "donor")


_Item = TypeVar("_Item")


@dataclass(frozen=True)
class Page(Generic[_Item]):
    """One page of a list, and how to reach the others."""

    items: list[_Item]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def list_donations(
    session: DbSession,
    *,
    status: DonationStatus | None = None,
    eligibility: Eligibility | None = None,
    page: int = 1,
    per_page: int = 25,
) -> Page[Donation]:
    """Donations, newest first, filtered by status and/or eligibility."""
    query = _donations_query(status, eligibility)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    page = max(1, page)
    items = list(
        session.execute(
            query.order_by(Donation.id.desc()).limit(per_page).offset((page - 1) * per_page)
        ).scalars()
    )
    return Page(items=items, page=page, per_page=per_page, total=total)


def _donations_query(
    status: DonationStatus | None, eligibility: Eligibility | None
) -> Select[Donation]:
    """The donations ``list_donations`` and ``count_donations`` select."""
    query = select(Donation)
    if status is not None:
        query = query.where(Donation.status == status.value)
    if eligibility is not None:
        query = query.where(Donation.eligibility == eligibility.value)
    return query


def count_donations(
    session: DbSession,
    *,
    status: DonationStatus | None = None,
    eligibility: Eligibility | None = None,
) -> int:
    """How many donations ``list_donations`` would list in all (one statement)."""
    query = _donations_query(status, eligibility)
    return session.execute(select(func.count()).select_from(query.subquery())).scalar_one()


def _awaiting_eligibility() -> tuple[ColumnElement[bool], ...]:
    """The condition of the eligibility queue: awaiting QA's determination, not rejected."""
    return (
        Donation.eligibility == Eligibility.PENDING.value,
        Donation.status != DonationStatus.REJECTED.value,
    )


def eligibility_queue(session: DbSession) -> list[tuple[Donation, EligibilityReview]]:
    """Donations awaiting QA's determination (not rejected), oldest first, each reviewed."""
    donations = session.execute(
        select(Donation).where(*_awaiting_eligibility()).order_by(Donation.id)
    ).scalars()
    return [(donation, review_eligibility(donation)) for donation in donations]


def count_eligibility_queue(session: DbSession) -> int:
    """How many donations ``eligibility_queue`` lists (one statement)."""
    return session.execute(
        select(func.count()).select_from(Donation).where(*_awaiting_eligibility())
    ).scalar_one()


# --- lists that scale (issue 21) --------------------------------------------------------------


def _donation_search(text: str) -> ColumnElement[bool]:
    """A donation matches a search text in its DIN or its donor's code."""
    pattern = "%" + listing.like_escaped(text.replace(" ", "")) + "%"
    return or_(
        Donation.din.ilike(pattern, escape="\\"),
        Donation.donor.has(Donor.code.ilike(pattern, escape="\\")),
    )


#: The donations list: newest registered first; searched in the DIN and the donor's code.
DONATION_LIST = listing.ListSpec(
    sorts={
        "registered": Donation.id,
        "din": Donation.din,
        "birth": Donation.delivery_at,
        "collected": Donation.collected_at,
        "status": Donation.status,
        "eligibility": Donation.eligibility,
    },
    default_sort="registered",
    tiebreaker=Donation.id,
    search=_donation_search,
    default_page_size=25,
    max_page_size=100,
)

#: The eligibility queue: a work queue, so the longest waiting (collected first) come first.
ELIGIBILITY_QUEUE = listing.ListSpec(
    sorts=DONATION_LIST.sorts,
    default_sort="collected",
    default_direction=listing.Direction.ASC,
    tiebreaker=Donation.id,
    search=_donation_search,
    default_page_size=25,
    max_page_size=100,
)


def donations_list(
    session: DbSession,
    request: listing.PageRequest,
    *,
    status: DonationStatus | None = None,
    eligibility: Eligibility | None = None,
) -> listing.Page[Donation]:
    """A page of the donations, filtered by status and eligibility, searched, sorted (two
    statements, and one for the donors shown)."""
    query = _donations_query(status, eligibility).options(selectinload(Donation.donor))
    return listing.fetch_page(session, query, DONATION_LIST, request)


def eligibility_queue_page(
    session: DbSession, request: listing.PageRequest, *, status: DonationStatus | None = None
) -> listing.Page[tuple[Donation, EligibilityReview]]:
    """A page of the eligibility queue, each donation reviewed: its donors, results and
    product definitions read once for the page, never per donation."""
    query = (
        select(Donation)
        .where(*_awaiting_eligibility())
        .options(
            selectinload(Donation.donor),
            selectinload(Donation.results),
            selectinload(Donation.product_definition),
        )
    )
    if status is not None:
        query = query.where(Donation.status == status.value)
    page = listing.fetch_page(session, query, ELIGIBILITY_QUEUE, request)
    return page.with_items([(donation, review_eligibility(donation)) for donation in page.items])
