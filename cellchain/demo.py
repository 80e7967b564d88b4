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

from cellchain.core import accounts, numbering
from cellchain.core.accounts import AccountPolicy
from cellchain.core.models import IssuedIdentifier, User
from cellchain.core.roles import Role
from cellchain.donors import service as donors
from cellchain.donors.models import ContainerCondition, Donation, InfectiousResult
from cellchain.dosing import service as dosing
from cellchain.manufacturing import processing, resources, storage
from cellchain.manufacturing import service as products
from cellchain.manufacturing.models import EquipmentKind, Lot, MaterialCategory
from cellchain.manufacturing.processing import Fill, Harvest, StepContext, Vessel
from cellchain.quality import service as quality


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
    specification = quality.load_default_specification(session, actor=users[qa.username], now=now)
    quality.approve_specification(
        session,
        specification=specification,
        user=users[qa.username],
        password=qa.password,
        now=now,
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


def _seed_expansion(
    session: Session, donation: Donation, *, now: dt.datetime, tech: User, qa: User
) -> Lot:
    """The batch record of a lot: isolation, three passages, fill of 10 bags, freezing, with
    released materials and the equipment used, at the times a real expansion takes."""
    expiry = (now + dt.timedelta(days=365)).date()
    lots = {}
    for key, name, category, supplier in (
        ("medium", "α-MEM", MaterialCategory.MEDIUM, "MediaCo (demo)"),
        ("hpl", "Human platelet lysate", MaterialCategory.SUPPLEMENT, "LysateBio (demo)"),
        ("enzyme", "Collagenase NB6", MaterialCategory.ENZYME, "EnzymeWorks (demo)"),
        ("trypsin", "TrypLE Select", MaterialCategory.ENZYME, "EnzymeWorks (demo)"),
        ("dmso", "DMSO (Ph. Eur.)", MaterialCategory.CRYOPROTECTANT, "CryoChem (demo)"),
        ("albumin", "Human albumin 20 %", MaterialCategory.EXCIPIENT, "PlasmaPharm (demo)"),
    ):
        lot = resources.receive_material_lot(
            session,
            resources.MaterialLotInput(name, category, supplier, f"{key.upper()}-24117", expiry),
            actor=tech,
            now=now,
        )
        resources.release_material_lot(session, lot, actor=qa, now=now)
        lots[key] = lot.id
    kit = {
        code: resources.register_equipment(
            session, code=code, kind=kind, name=f"{name} (demo)", actor=tech, now=now
        ).id
        for code, kind, name in (
            ("BSC-01", EquipmentKind.BIOSAFETY_CABINET, "Class II biosafety cabinet"),
            ("INC-01", EquipmentKind.INCUBATOR, "CO2 incubator"),
            ("CNT-01", EquipmentKind.CELL_COUNTER, "Automated cell counter"),
            ("CRF-01", EquipmentKind.CONTROLLED_RATE_FREEZER, "Controlled-rate freezer"),
            ("LN2-01", EquipmentKind.LN2_TANK, "LN2 vapour-phase tank"),
        )
    }

    def day(n: float) -> dt.datetime:
        return donation.delivery_at + dt.timedelta(days=n)

    def context(at: dt.datetime, *materials: str, freezer: bool = False) -> StepContext:
        used = ("BSC-01", "CRF-01") if freezer else ("BSC-01", "INC-01", "CNT-01")
        return StepContext(
            performed_at=at,
            material_lot_ids=tuple(lots[key] for key in materials),
            equipment_ids=tuple(kit[code] for code in used),
        )

    step = processing.isolate(
        session,
        donation,
        tissue=donation.units[:1],
        method="enzymatic",
        vessels=[Vessel("T175", 1.0e6)] * 2,
        context=context(day(0.8), "enzyme", "medium", "hpl"),
        actor=tech,
        now=now,
    )
    plan = (
        (8, 1.6e7, 4, "T175", 1.0e6),
        (15, 2.4e7, 6, "T175", 1.0e6),
        (22, 9.0e7, 4, "CS5", 2.0e7),
    )
    for when, harvested, count, fmt, seeded in plan:
        step = processing.passage(
            session,
            vessels_in=[row.unit for row in step.units if row.role == "output"],
            harvest=Harvest(cells=harvested, viability_percent=96.0),
            vessels_out=[Vessel(fmt, seeded)] * count,
            context=context(day(when), "trypsin", "medium", "hpl"),
            actor=tech,
            now=now,
        )
    lot = processing.fill_lot(
        session,
        vessels_in=[row.unit for row in step.units if row.role == "output"],
        harvest=Harvest(cells=1.1e9, viability_percent=94.0),
        fill=Fill(bag_count=10, volume_ml=20.0, concentration_per_ml=5.0e6, dmso_percent=10.0),
        context=context(day(29), "trypsin", "dmso", "albumin"),
        actor=tech,
        now=now,
    )
    processing.freeze_lot(
        session, lot, context=context(day(29.1), freezer=True), actor=tech, now=now
    )
    tank = resources.get_equipment(session, kit["LN2-01"])
    for slot, bag in enumerate(processing.bags_of(session, lot), start=1):
        storage.store_unit(
            session,
            bag,
            tank=tank,
            rack="1",
            box="1",
            slot=str(slot),
            actor=tech,
            now=now,
            at=day(29.2),
        )
    storage.record_tank_reading(
        session, tank, temperature_c=-182.0, at=day(30), actor=tech, now=now
    )
    return lot


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

    eligible = register(32 * 24, "Maternity ward A, City Hospital (demo)")
    receive(eligible)
    panel = [test.code for test in donors.panel_of(eligible)]
    record(eligible, panel)
    donors.determine_eligibility(
        session, eligible, eligible=True, reason=None, user=qa[0], password=qa[1], now=now
    )
    _seed_expansion(session, eligible, now=now, tech=tech, qa=qa[0])

    quarantine = register(8, "Maternity ward B, City Hospital (demo)")
    receive(quarantine)
    record(quarantine, panel[:5])

    awaiting = register(2, "Birth centre, Riverside (demo)")
    return {"eligible": eligible, "quarantine": quarantine, "awaiting_receipt": awaiting}
