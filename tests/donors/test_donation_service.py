"""Donors and donations: registration, receipt, processing clock, tests, eligibility."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from cellchain.chain import service as chain
from cellchain.chain.models import UnitKind, UnitStatus
from cellchain.core import numbering, signatures
from cellchain.core.identifiers import parse_identifier
from cellchain.core.models import AuditEntry
from cellchain.core.types import utcnow
from cellchain.donors import service
from cellchain.donors.models import (
    ContainerCondition,
    DonorTestResult,
    InfectiousResult,
    ScreeningOutcome,
)
from cellchain.errors import Conflict, InvalidInput, NotFound, ReasonRequired, StateConflict
from cellchain.manufacturing.service import PRODUCTS
from tests.conftest import issue_din
from tests.support.lab import UTC, new_donor

HOURS = dt.timedelta(hours=1)
REACTIVE = InfectiousResult.REACTIVE


# --- registration ---------------------------------------------------------------------------


def test_registration_allocates_a_din_and_labels_one_container_per_tissue(lab):
    donation = lab.register()
    din = parse_identifier(donation.din)
    assert din.kind == "DIN" and din.facility_code == lab.app.config["FACILITY_CODE"]
    assert (donation.status, donation.eligibility) == ("registered", "pending")
    assert donation.in_quarantine
    assert donation.donor.code.startswith("DNR")
    assert donation.product_definition_id == lab.product.id
    containers = donation.units
    assert [u.kind for u in containers] == [UnitKind.DONATION_CONTAINER.value] * 2
    for unit in containers:
        code = parse_identifier(unit.code)
        assert code.kind == "UNIT" and code.din == din.body  # every unit embeds the DIN
        assert unit.status == UnitStatus.QUARANTINE.value
        assert unit.location == "Maternity ward, City Hospital"
    assert numbering.lookup(lab.session, donation.din).entity_type == "donation"
    actions = lab.session.execute(select(AuditEntry.action)).scalars().all()
    assert "donation.registered" in actions and "donor.registered" in actions


def test_only_cord_gives_one_container(lab):
    donation = lab.register(placenta=False)
    assert donation.tissues == ["umbilical cord"] and len(donation.units) == 1


def test_donor_code_carries_no_personal_data_and_a_second_birth_reuses_the_donor(lab):
    first = lab.register()
    second = lab.register(new_donor=None, donor_code=first.donor.code.lower())
    assert second.donor_id == first.donor_id
    assert [d.id for d in first.donor.donations] == [first.id, second.id]


def test_a_reserved_din_can_be_used_once(lab):
    reserved = issue_din(lab.app)
    donation = lab.register(reserved_din=parse_identifier(reserved).display)
    assert donation.din == reserved
    with pytest.raises(Conflict, match="already identifies"):
        lab.register(reserved_din=reserved)


@pytest.mark.parametrize(
    ("overrides", "field", "mentions"),
    [
        ({"umbilical_cord": False, "placenta": False}, "tissues", "some tissue"),
        (
            {"delivery_at": utcnow() + HOURS, "collected_at": utcnow() + 2 * HOURS},
            "delivery_at",
            "birth cannot be in the future",
        ),
        ({"collected_at": utcnow() + HOURS}, "collected_at", "collection cannot be in the future"),
        ({"collected_at": utcnow() - 10 * HOURS}, "collected_at", "not before"),
        ({"collector": "  "}, "collector", "Required"),
        ({"new_donor": None}, "donor_code", "either an existing donor code"),
        (
            {"new_donor": new_donor(consent_date=utcnow().date() + dt.timedelta(days=1))},
            "consent_date",
            "on or before the day of collection",
        ),
    ],
)
def test_bad_registrations_are_refused_and_nothing_is_saved(lab, overrides, field, mentions):
    before = lab.session.execute(select(AuditEntry.seq)).all()
    with pytest.raises(InvalidInput) as refused:
        lab.register(**overrides)
    lab.session.rollback()
    assert field in refused.value.errors
    assert mentions in " ".join(refused.value.errors[field])
    assert lab.session.execute(select(AuditEntry.seq)).all() == before


def test_registration_needs_a_product_in_force(app, make_user, session):
    from tests.support.lab import Lab

    qa = make_user("alex", "qa")
    draft = PRODUCTS.load_default(session, actor=qa, now=utcnow())
    session.commit()
    lab = Lab(app=app, tech=make_user("tina"), qc=qa, qa=qa, product=draft)
    with pytest.raises(Conflict, match="QA must approve"):
        lab.register()


def test_unknown_donor_code_is_refused(lab):
    with pytest.raises(NotFound, match="no donor DNR99-99999"):
        lab.register(new_donor=None, donor_code="DNR99-99999")


# --- receipt ------------------------------------------------------------------------------


def test_receipt_accepts_and_records_a_custody_event_per_container(lab):
    donation = lab.receive(lab.register(), temperature_c=6.0)
    assert donation.status == "received" and donation.received_by_id == lab.tech.id
    for unit in donation.units:
        events = chain.history(lab.session, unit)
        assert [e.event_type for e in events] == ["created", "received"]
        assert events[-1].temperature_c == 6.0 and unit.location == service.DEFAULT_RECEIPT_LOCATION


def test_rejection_needs_a_reason_and_rejects_the_containers_for_good(lab):
    donation = lab.register()
    with pytest.raises(InvalidInput, match="why the donation is rejected"):
        lab.receive(donation, accept=False)
    lab.session.rollback()
    lab.receive(
        donation, accept=False, note="container leaking", condition=ContainerCondition.LEAKING
    )
    assert donation.status == "rejected"
    assert {u.status for u in donation.units} == {"rejected"}
    with pytest.raises(StateConflict):
        lab.receive(donation)


def test_accepting_a_damaged_container_needs_a_note(lab):
    donation = lab.register()
    with pytest.raises(InvalidInput, match="damaged"):
        lab.receive(donation, condition=ContainerCondition.DAMAGED)
    lab.session.rollback()
    lab.receive(
        donation, condition=ContainerCondition.DAMAGED, note="outer box dented, bags intact"
    )
    assert donation.container_condition == "damaged"


@pytest.mark.parametrize(
    ("received_at", "mentions"),
    [
        (lambda d: d.collected_at - HOURS, "before it was collected"),
        (lambda d: utcnow() + HOURS, "future"),
    ],
)
def test_receipt_times_are_checked(lab, received_at, mentions):
    donation = lab.register()
    with pytest.raises(InvalidInput, match=mentions) as refused:
        lab.receive(donation, received_at=received_at(donation))
    assert "received_at" in refused.value.errors
    lab.session.rollback()
    assert donation.status == "registered"


# --- processing clock -------------------------------------------------------------------


def test_processing_starts_within_the_limit_and_records_the_hours(lab):
    donation = lab.receive(lab.register())
    clock = service.processing_clock(donation, utcnow())
    assert 5.9 < clock.hours_elapsed < 6.1 and clock.limit_hours == 72 and not clock.exceeded
    service.start_processing(lab.session, donation, actor=lab.tech, now=utcnow())
    lab.session.commit()
    assert donation.status == "processing" and service.processing_clock(donation, utcnow()).started


def test_processing_after_72_hours_from_birth_is_refused(lab):
    now = utcnow()
    donation = lab.receive(
        lab.register(delivery_at=now - 73 * HOURS, collected_at=now - 72 * HOURS),
        received_at=now - 2 * HOURS,
    )
    with pytest.raises(Conflict, match=r"73\.0 h have passed since birth.*at most 72 h"):
        service.start_processing(lab.session, donation, actor=lab.tech, now=now)
    lab.session.rollback()
    assert donation.status == "received"


def test_processing_needs_an_accepted_donation(lab):
    donation = lab.register()
    with pytest.raises(StateConflict, match="registered"):
        service.start_processing(lab.session, donation, actor=lab.tech, now=utcnow())


# --- infectious-disease tests -----------------------------------------------------------


def test_results_are_checked_against_the_panel_and_the_specimen_window(lab):
    donation = lab.register()
    with pytest.raises(InvalidInput, match="not on the panel") as refused:
        lab.record(donation, "HTLV-AB", InfectiousResult.NON_REACTIVE)
    assert "test_code" in refused.value.errors
    lab.session.rollback()
    collected = donation.collected_at.date()
    lab.record(
        donation,
        "HIV1-AB",
        InfectiousResult.NON_REACTIVE,
        specimen_date=collected - dt.timedelta(days=7),
    )
    with pytest.raises(InvalidInput, match="within 7 days before or after recovery"):
        lab.record(
            donation,
            "HIV1-NAT",
            InfectiousResult.NON_REACTIVE,
            specimen_date=collected - dt.timedelta(days=8),
        )
    lab.session.rollback()


def test_a_duplicate_result_is_refused(lab):
    donation = lab.register()
    lab.record(donation, "HBSAG", InfectiousResult.NON_REACTIVE)
    with pytest.raises(Conflict, match="already has a result"):
        lab.record(donation, "hbsag", InfectiousResult.REACTIVE)
    lab.session.rollback()
    assert len(donation.results) == 1


def test_a_correction_needs_a_reason_and_keeps_the_original(lab):
    donation = lab.register()
    original = lab.record(donation, "HCV-AB", InfectiousResult.INDETERMINATE)
    entry = service.ResultEntry("HCV-AB", original.specimen_date, InfectiousResult.NON_REACTIVE)
    with pytest.raises(ReasonRequired):
        service.correct_test_result(
            lab.session, original, entry, reason=" ", site_zone=UTC, actor=lab.qc, now=utcnow()
        )
    corrected = service.correct_test_result(
        lab.session,
        original,
        entry,
        reason="transcription error",
        site_zone=UTC,
        actor=lab.qc,
        now=utcnow(),
    )
    lab.session.commit()
    rows = lab.session.execute(select(DonorTestResult).order_by(DonorTestResult.id)).scalars().all()
    assert [(r.result, r.superseded_by_id) for r in rows] == [
        ("indeterminate", corrected.id),
        ("non_reactive", None),
    ]
    assert donation.current_results == [corrected] and corrected.corrects_id == original.id
    with pytest.raises(Conflict, match="already been corrected"):
        service.correct_test_result(
            lab.session, original, entry, reason="again", site_zone=UTC, actor=lab.qc, now=utcnow()
        )


# --- eligibility --------------------------------------------------------------------------


def test_eligible_determination_is_signed_and_lifts_the_hold(lab):
    donation = lab.receive(lab.register())
    lab.full_panel(donation)
    review = service.review_eligibility(donation)
    assert review.complete and review.eligible_possible
    determination = lab.determine(donation)
    assert donation.eligibility == "eligible" and not donation.in_quarantine
    [manifest] = signatures.manifest(lab.session, determination)
    assert manifest.valid and manifest.printed_name == lab.qa.full_name
    assert manifest.meaning.endswith("eligible")


def test_a_determination_while_a_test_is_missing_is_refused(lab):
    donation = lab.register()
    lab.full_panel(donation, skip=("SYPHILIS",))
    with pytest.raises(Conflict, match="no result for SYPHILIS"):
        lab.determine(donation)
    lab.session.rollback()
    assert donation.eligibility == "pending" and donation.determination is None


def test_reactive_or_unacceptable_screening_cannot_be_eligible(lab):
    donation = lab.register()
    lab.full_panel(donation, results={"HIV1-NAT": REACTIVE})
    with pytest.raises(Conflict, match="HIV-1 nucleic acid test: reactive"):
        lab.determine(donation)
    lab.session.rollback()
    other = lab.register(new_donor=new_donor(screening_outcome=ScreeningOutcome.NOT_ACCEPTABLE))
    lab.full_panel(other)
    with pytest.raises(Conflict, match="Donor screening: not acceptable"):
        lab.determine(other)


def test_ineligible_needs_a_reason_and_blocks_everything_derived(lab):
    donation = lab.receive(lab.register())
    vessels = chain.derive_units(
        lab.session,
        parents=donation.units[:1],
        kind=UnitKind.CULTURE_VESSEL,
        operation=chain.LineageOperation.ISOLATE,
        count=2,
        location="BSC-1",
        actor=lab.tech,
        now=utcnow(),
    )
    lab.session.commit()
    lab.full_panel(donation, results={"HBSAG": REACTIVE})
    with pytest.raises(ReasonRequired):
        lab.determine(donation, eligible=False)
    lab.session.rollback()
    lab.determine(donation, eligible=False, reason="HBsAg reactive")
    assert donation.eligibility == "ineligible"
    assert {u.status for u in chain.units_of_donation(lab.session, donation.id)} == {"blocked"}
    with pytest.raises(Conflict, match="blocked"):
        chain.derive_units(
            lab.session,
            parents=vessels[:1],
            kind=UnitKind.CULTURE_VESSEL,
            operation=chain.LineageOperation.PASSAGE,
            count=1,
            location="INC-1",
            actor=lab.tech,
            now=utcnow(),
        )
    with pytest.raises(Conflict, match="ineligible"):
        service.start_processing(lab.session, donation, actor=lab.tech, now=utcnow())


def test_a_second_determination_is_refused(lab):
    donation = lab.eligible_donation()
    with pytest.raises(Conflict, match="already been determined eligible"):
        lab.determine(donation, eligible=False, reason="second thoughts")


def test_a_wrong_password_signs_nothing(lab):
    donation = lab.register()
    lab.full_panel(donation)
    with pytest.raises(Exception, match="password"):
        service.determine_eligibility(
            lab.session,
            donation,
            eligible=True,
            reason=None,
            user=lab.qa,
            password="wrong",
            now=utcnow(),
        )
    lab.session.rollback()
    assert donation.eligibility == "pending" and donation.determination is None


def test_correcting_a_result_after_determination_invalidates_the_signature(lab):
    donation = lab.eligible_donation()
    result = donation.current_results[0]
    entry = service.ResultEntry(result.test_code, result.specimen_date, InfectiousResult.REACTIVE)
    service.correct_test_result(
        lab.session,
        result,
        entry,
        reason="late confirmatory result",
        site_zone=UTC,
        actor=lab.qc,
        now=utcnow(),
    )
    lab.session.commit()
    [manifest] = signatures.manifest(lab.session, donation.determination)
    assert not manifest.valid


# --- lists ------------------------------------------------------------------------------------


def test_lists_filter_and_page(lab):
    first = lab.register()
    second = lab.receive(lab.register())
    eligible = lab.eligible_donation()
    page = service.list_donations(lab.session, per_page=2)
    assert (
        page.total == 3
        and page.pages == 2
        and [d.id for d in page.items] == [eligible.id, second.id]
    )
    received = service.list_donations(lab.session, status=service.DonationStatus.RECEIVED)
    assert [d.id for d in received.items] == [eligible.id, second.id]
    queue = service.eligibility_queue(lab.session)
    assert [d.id for d, _review in queue] == [first.id, second.id]
    assert service.find_donation(lab.session, parse_identifier(eligible.din).display) is eligible
    assert service.find_donation(lab.session, eligible.units[0].code) is eligible
    with pytest.raises(NotFound, match="No donation has DIN"):
        service.find_donation(lab.session, issue_din(lab.app))
