"""Demo site: one user per role, the NCT01420432 protocol and the UC-MSC product in force,
donations at several stages (one eligible and in processing, one in quarantine with tests still
coming in, one awaiting receipt) and a few reserved DINs.

Used by ``cellchain demo`` and by the browser tests, so what a newcomer sees is what the
tests click through.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from cellchain.chain import service as chain
from cellchain.chain.models import LineageOperation, UnitKind
from cellchain.core import accounts, numbering
from cellchain.core.accounts import AccountPolicy
from cellchain.core.models import IssuedIdentifier, User
from cellchain.core.roles import Role
from cellchain.donors import service as donors
from cellchain.donors.models import ContainerCondition, Donation, InfectiousResult
from cellchain.dosing import service as dosing
from cellchain.manufacturing import service as products


@dataclass(frozen=True)
class DemoUser:
    username: str
    full_name: str
    role: Role

    @property
    def password(self) -> str:
        """Printed by ``cellchain demo``; a demo database is never a real site."""
        return f"{self.username}-demo-pass"


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("tech", "Tomas Tech (demo)", Role.TECHNICIAN),
    DemoUser("qc", "Quinn Analyst (demo)", Role.QC_ANALYST),
    DemoUser("qa", "Alex Quality (demo)", Role.QA),
    DemoUser("clinician", "Casey Clinician (demo)", Role.CLINICIAN),
    DemoUser("investigator", "Ivy Investigator (demo)", Role.INVESTIGATOR),
    DemoUser("admin", "Ada Admin (demo)", Role.ADMIN),
)


@dataclass(frozen=True)
class DemoSite:
    users: dict[str, User]
    reserved_dins: list[IssuedIdentifier]
    #: "eligible", "quarantine", "awaiting_receipt" → the demo donation at that stage
    donations: dict[str, Donation] = field(default_factory=dict)


def seed_demo(
    session: Session,
    *,
    now: dt.datetime,
    facility_code: str,
    policy: AccountPolicy,
    site_zone: ZoneInfo,
) -> DemoSite:
    """Create the demo users, approve the default protocol and product as QA, register
    donations at three stages through the same services a person would use, reserve DINs."""
    users: dict[str, User] = {}
    for demo in DEMO_USERS:
        users[demo.username] = accounts.create_user(
            session,
            actor=None,
            now=now,
            username=demo.username,
            full_name=demo.full_name,
            password=demo.password,
            roles=[demo.role],
            policy=policy,
        )
    qa = next(d for d in DEMO_USERS if d.role is Role.QA)
    protocol = dosing.load_default_protocol(session, actor=users[qa.username], now=now)
    dosing.approve_protocol(
        session, protocol=protocol, user=users[qa.username], password=qa.password, now=now
    )
    product = products.load_default_product(session, actor=users[qa.username], now=now)
    products.approve_product(
        session, product=product, user=users[qa.username], password=qa.password, now=now
    )
    qc = next(d for d in DEMO_USERS if d.role is Role.QC_ANALYST)
    site_donations = _seed_donations(
        session,
        now=now,
        facility_code=facility_code,
        site_zone=site_zone,
        tech=users["tech"],
        qc=users[qc.username],
        qa=(users[qa.username], qa.password),
    )
    dins = [
        numbering.allocate_din(
            session,
            facility_code=facility_code,
            actor=users["tech"],
            now=now,
            purpose="reserved for pre-printed label stock (demo)",
        )
        for _ in range(3)
    ]
    return DemoSite(users=users, reserved_dins=dins, donations=site_donations)


def _seed_donations(
    session: Session,
    *,
    now: dt.datetime,
    facility_code: str,
    site_zone: ZoneInfo,
    tech: User,
    qc: User,
    qa: tuple[User, str],
) -> dict[str, Donation]:
    hours = dt.timedelta(hours=1)

    def register(born_hours_ago: float, site: str) -> Donation:
        delivery = now - born_hours_ago * hours
        return donors.register_donation(
            session,
            donors.DonationRegistration(
                umbilical_cord=True,
                placenta=True,
                delivery_at=delivery,
                collected_at=delivery + 0.5 * hours,
                collection_site=site,
                collector="Midwife on duty (demo)",
                transport_conditions="2–8 °C validated shipper",
                new_donor=donors.NewDonor(
                    consent_date=(delivery - dt.timedelta(days=20)).date(),
                    consent_form_version="ICF v3.1 (demo)",
                    screening_outcome=donors.ScreeningOutcome.ACCEPTABLE,
                    screening_date=(delivery - dt.timedelta(days=1)).date(),
                ),
            ),
            facility_code=facility_code,
            site_zone=site_zone,
            actor=tech,
            now=now,
        )

    def receive(donation: Donation) -> None:
        donors.receive_donation(
            session,
            donation,
            donors.Receipt(
                received_at=donation.collected_at + 3 * hours,
                temperature_c=5.2,
                condition=ContainerCondition.INTACT,
                accept=True,
            ),
            actor=tech,
            now=now,
        )

    def record(donation: Donation, codes: list[str]) -> None:
        for code in codes:
            donors.record_test_result(
                session,
                donation,
                donors.ResultEntry(
                    test_code=code,
                    specimen_date=donation.collected_at.astimezone(site_zone).date(),
                    result=InfectiousResult.NON_REACTIVE,
                    method="Central lab (demo)",
                ),
                site_zone=site_zone,
                actor=qc,
                now=now,
            )

    eligible = register(30, "Maternity ward A, City Hospital (demo)")
    receive(eligible)
    panel = [test.code for test in donors.panel_of(eligible)]
    record(eligible, panel)
    donors.determine_eligibility(
        session, eligible, eligible=True, reason=None, user=qa[0], password=qa[1], now=now
    )
    donors.start_processing(session, eligible, actor=tech, now=now)
    chain.derive_units(
        session,
        parents=eligible.units[:1],
        kind=UnitKind.CULTURE_VESSEL,
        operation=LineageOperation.ISOLATE,
        count=2,
        location="Incubator INC-01 (demo)",
        actor=tech,
        now=now,
        consume_parents=True,
    )

    quarantine = register(8, "Maternity ward B, City Hospital (demo)")
    receive(quarantine)
    record(quarantine, panel[:5])

    awaiting = register(2, "Birth centre, Riverside (demo)")
    return {"eligible": eligible, "quarantine": quarantine, "awaiting_receipt": awaiting}
