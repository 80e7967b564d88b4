"""Demo site: one user per role, the NCT01420432 protocol, the UC-MSC product and its release
specification in force, donations at several stages (one eligible whose lot awaits release
testing, one in quarantine with tests still coming in, one awaiting receipt), three older lots
through release testing (one released with its certificate of analysis, one with an
out-of-specification result awaiting investigation, one rejected) and a few reserved DINs.
Beside them (issue 22) a second protocol and product: the open-label PL-MSC-OL-01 and the
placenta-derived PL-MSC with its own panel and specification, a released placenta lot, and
PL-001 of PL-MSC-OL-01 dosed from it (``_seed_second_protocol``).

Used by ``cellchain demo`` and by the browser tests, so what a newcomer sees is what the
tests click through.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from cellchain.clinic.bedside import bedside, infusions, thaw
from cellchain.clinic.endpoints import endpoints
from cellchain.clinic.follow_up import adverse_events, scheduling
from cellchain.clinic.models import Outcome, SeriousCriterion, Seriousness, Shipment
from cellchain.clinic.shipments import shipments as clinic_shipments
from cellchain.core import accounts, numbering
from cellchain.core.accounts import AccountPolicy
from cellchain.core.models import IssuedIdentifier, User
from cellchain.core.roles import Role
from cellchain.donors import panels
from cellchain.donors import service as donors
from cellchain.donors.models import (
    ContainerCondition,
    Donation,
    InfectiousResult,
    ScreeningOutcome,
)
from cellchain.dosing import orders, patients, randomization
from cellchain.dosing import service as dosing
from cellchain.dosing.models import DoseOrder, Patient
from cellchain.extensions import DbSession
from cellchain.labels import service as labels
from cellchain.labels import template_documents
from cellchain.labels.content import IsbtSettings
from cellchain.manufacturing import service as products
from cellchain.manufacturing.defaults import UC_MSC_CODE
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.equipment import service as equipment_service
from cellchain.manufacturing.models import (
    EquipmentEventKind,
    EquipmentKind,
    Lot,
    MaterialCategory,
    StockAdjustmentKind,
    StockUnit,
)
from cellchain.manufacturing.processing import processing, resources
from cellchain.manufacturing.processing.processing import Fill, Harvest, StepContext, Vessel
from cellchain.manufacturing.stock import service as stock
from cellchain.manufacturing.storage import storage
from cellchain.quality import disposition, results
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


#: the demo site's time zone (``cellchain demo``): the first site is a hospital in Shandong
DEMO_TIMEZONE = "Asia/Shanghai"

DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("tech", "Tomas Tech (demo)", Role.TECHNICIAN),
    DemoUser("qc", "Quinn Analyst (demo)", Role.QC_ANALYST),
    DemoUser("qa", "Alex Quality (demo)", Role.QA),
    DemoUser("clinician", "Casey Clinician (demo)", Role.CLINICIAN),
    DemoUser("nurse", "Nico Nurse (demo)", Role.CLINICIAN),  # the bedside's second clinician
    DemoUser("investigator", "Ivy Investigator (demo)", Role.INVESTIGATOR),
    DemoUser("statistician", "Stella Statistician (demo)", Role.STATISTICIAN),
    DemoUser("admin", "Ada Admin (demo)", Role.ADMIN),
    # the second clinical site's clinician, and the sponsor's read-only monitor (issue 22)
    DemoUser("berlin", "Bea Berlin (demo)", Role.CLINICIAN),
    DemoUser("monitor", "Mona Monitor (demo)", Role.MONITOR),
)

#: the demo's second clinical site (docs/sites.md): a sponsor-run site in another time zone
#: (+01:00 in winter against Shandong's +08:00), so that offsets are seen to work
DEMO_SECOND_SITE = ("BER", "Berlin sponsor-run site (demo)", "Europe/Berlin")
#: demo username → the codes of the sites they belong to (SITE-1 is the first clinical site)
DEMO_MEMBERSHIPS = {
    "clinician": ("SITE-1",),
    "nurse": ("SITE-1",),
    "investigator": ("SITE-1", "BER"),
    "berlin": ("BER",),
}


@dataclass(frozen=True)
class DemoSite:
    users: dict[str, User]
    reserved_dins: list[IssuedIdentifier]
    #: "eligible", "quarantine", "awaiting_receipt" → the demo donation at that stage
    donations: dict[str, Donation] = field(default_factory=dict)
    #: "awaiting_testing", "released", "out_of_specification", "rejected" → that demo lot
    lots: dict[str, Lot] = field(default_factory=dict)
    #: the trial's patients by study ID
    patients: dict[str, Patient] = field(default_factory=dict)
    #: "in_transit", "held", "infused" → the demo shipment at that stage
    shipments: dict[str, Shipment] = field(default_factory=dict)


def seed_demo(
    session: DbSession,
    *,
    now: dt.datetime,
    facility_code: str,
    policy: AccountPolicy,
    site_zone: ZoneInfo,
) -> DemoSite:
    """Create the demo users, approve the default protocol and product as QA, register
    donations at three stages through the same services a person would use, reserve DINs."""
    timeline = _Timeline.today(now, site_zone)
    setup = timeline.at(160)  # the accounts and the lab's records come before this morning
    users: dict[str, User] = {}
    for demo in DEMO_USERS:
        users[demo.username] = accounts.create_user(
            session,
            actor=None,
            now=setup,
            username=demo.username,
            full_name=demo.full_name,
            password=demo.password,
            roles=[demo.role],
            policy=policy,
        )
        # the demo's e-mail addresses (a reserved domain: never delivered); with no SMTP
        # server configured, the outbox page shows what they would be sent
        users[demo.username].email = f"{demo.username}@demo.invalid"
    _seed_sites(session, users, now=setup, facility_code=facility_code, site_zone=site_zone)
    qa = next(d for d in DEMO_USERS if d.role is Role.QA)
    protocol = dosing.PROTOCOLS.load_default(session, actor=users[qa.username], now=setup)
    dosing.PROTOCOLS.approve(
        session, protocol, user=users[qa.username], password=qa.password, now=setup
    )
    product = products.PRODUCTS.load_default(session, actor=users[qa.username], now=setup)
    products.PRODUCTS.approve(
        session, product, user=users[qa.username], password=qa.password, now=setup
    )
    specification = quality.SPECIFICATIONS.load_default(
        session, actor=users[qa.username], now=setup
    )
    quality.SPECIFICATIONS.approve(
        session,
        specification,
        user=users[qa.username],
        password=qa.password,
        now=setup,
    )
    # the donor test panel and the label templates: controlled documents too (issue 22)
    panel = panels.load_default(session, actor=users[qa.username], now=setup)
    panels.DONOR_TEST_PANELS.approve(
        session, panel, user=users[qa.username], password=qa.password, now=setup
    )
    for template in template_documents.load_defaults(session, actor=users[qa.username], now=setup):
        template_documents.LABEL_TEMPLATES.approve(
            session, template, user=users[qa.username], password=qa.password, now=setup
        )
    qc = next(d for d in DEMO_USERS if d.role is Role.QC_ANALYST)
    site_donations, site_lots = _seed_donations(
        session,
        now=setup,
        facility_code=facility_code,
        site_zone=site_zone,
        tech=users["tech"],
        qc=users[qc.username],
        qa=(users[qa.username], qa.password),
    )
    passwords = {demo.username: demo.password for demo in DEMO_USERS}
    trial = _seed_patients(
        session,
        now=now,
        facility_code=facility_code,
        site_zone=site_zone,
        users=users,
        passwords=passwords,
        prepared_at=timeline.at(150),
        checked_at=timeline.at(149),
    )
    clinic = _seed_clinic(
        session, trial, timeline=timeline, site_zone=site_zone, users=users, passwords=passwords
    )
    clinic["missed_thaw"] = _seed_trial_paths(
        session, trial, timeline=timeline, site_zone=site_zone, users=users
    )
    _seed_rescheduled_day0(
        session, trial["AS-010"], timeline=timeline, site_zone=site_zone, users=users
    )
    # the second protocol and product (issue 22): PL-001, of PL-MSC-OL-01, dosed from the
    # placenta lot, at the second clinical site (``site``; enrolled by its clinician)
    placenta_donation, placenta_lot, second = _seed_second_protocol(
        session,
        now=now,
        setup=setup,
        facility_code=facility_code,
        site_zone=site_zone,
        users=users,
        passwords=passwords,
        prepared_at=timeline.at(148),
        checked_at=timeline.at(147),
        # the code of PL-001's clinical site: the second site's (None would be the first)
        site=DEMO_SECOND_SITE[0],
    )
    site_donations["placenta"] = placenta_donation
    site_lots["placenta_released"] = placenta_lot
    trial[second.study_id] = second
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
    return DemoSite(
        users=users,
        reserved_dins=dins,
        donations=site_donations,
        lots=site_lots,
        patients=trial,
        shipments=clinic,
    )


@dataclass(frozen=True)
class _LabKit:
    """Released material lots and registered equipment, by key and code (their ids)."""

    materials: dict[str, int]
    equipment: dict[str, int]


#: The lab's materials were received and released this many days before the demo starts,
#: before the first step of its oldest expansion (75 days back) uses them.
_MATERIALS_RECEIVED_DAYS_AGO = 90
#: What one expansion uses of the materials its steps record no figure for (issue 22): medium
#: per new vessel, dissociation enzyme per vessel harvested (mL, by format); the fill's DMSO and
#: albumin come from the fill's own figures (``stock.default_use``)
_MEDIUM_ML = {"T175": 30.0, "CS5": 650.0}
_TRYPSIN_ML = {"T175": 5.0, "CS5": 100.0}


def _seed_lab(session: DbSession, *, now: dt.datetime, tech: User, qa: User) -> _LabKit:
    """The materials (received with their quantities and released by QA before the oldest
    expansion) and equipment every expansion uses; the five expansions use (mL) 14 800 of the
    α-MEM, 1 480 of the lysate, 2 300 of the TrypLE, 100 of the DMSO, 900 of the albumin and
    0.5 g of the collagenase, which then runs below its reorder level. Besides: a spillage of
    α-MEM, a second TrypLE lot expiring within 30 days, an old lysate lot expired in stock."""
    received = now - dt.timedelta(days=_MATERIALS_RECEIVED_DAYS_AGO)
    expiry = (now + dt.timedelta(days=365)).date()
    lots = {}
    ml, g, excipient = StockUnit.ML, StockUnit.G, MaterialCategory.EXCIPIENT
    for key, name, category, supplier, quantity, unit in (
        ("medium", "α-MEM", MaterialCategory.MEDIUM, "MediaCo (demo)", 20000, ml),
        ("hpl", "Human platelet lysate", MaterialCategory.SUPPLEMENT, "LysateBio (demo)", 2000, ml),
        ("enzyme", "Collagenase NB6", MaterialCategory.ENZYME, "EnzymeWorks (demo)", 1, g),
        ("trypsin", "TrypLE Select", MaterialCategory.ENZYME, "EnzymeWorks (demo)", 2500, ml),
        ("dmso", "DMSO (Ph. Eur.)", MaterialCategory.CRYOPROTECTANT, "CryoChem (demo)", 250, ml),
        ("albumin", "Human albumin 20 %", excipient, "PlasmaPharm (demo)", 1e3, ml),
    ):
        entry = resources.MaterialLotInput(
            name, category, supplier, f"{key.upper()}-24117", expiry, float(quantity), unit
        )
        lot = resources.receive_material_lot(session, entry, actor=tech, now=received)
        resources.release_material_lot(session, lot, actor=qa, now=received)
        lots[key] = lot.id
    _seed_stock(session, lots, now=now, tech=tech, qa=qa)
    kit = {
        code: _seed_equipment(session, code, kind, f"{name} (demo)", now=now, tech=tech, qa=qa)
        for code, kind, name in (
            ("BSC-01", EquipmentKind.BIOSAFETY_CABINET, "Class II biosafety cabinet"),
            ("INC-01", EquipmentKind.INCUBATOR, "CO2 incubator"),
            ("CNT-01", EquipmentKind.CELL_COUNTER, "Automated cell counter"),
            ("CRF-01", EquipmentKind.CONTROLLED_RATE_FREEZER, "Controlled-rate freezer"),
            ("LN2-01", EquipmentKind.LN2_TANK, "LN2 vapour-phase tank"),
        )
    }
    return _LabKit(materials=lots, equipment=kit)


def _seed_stock(
    session: DbSession, lots: dict[str, int], *, now: dt.datetime, tech: User, qa: User
) -> None:
    """The stock's warnings in the technician's queue: a lot expiring soon, an expired lot
    still in stock, reorder levels (the collagenase's is reached by the expansions), and a
    spillage on the α-MEM lot's record."""
    soon = resources.MaterialLotInput(
        "TrypLE Select",
        MaterialCategory.ENZYME,
        "EnzymeWorks (demo)",
        "TRYPSIN-24230",
        (now + dt.timedelta(days=20)).date(),
        500.0,
        StockUnit.ML,
    )
    lot = resources.receive_material_lot(session, soon, actor=tech, now=now)
    resources.release_material_lot(session, lot, actor=qa, now=now)
    long_ago = now - dt.timedelta(days=200)
    old = resources.MaterialLotInput(
        "Human platelet lysate",
        MaterialCategory.SUPPLEMENT,
        "LysateBio (demo)",
        "HPL-23310",
        (now - dt.timedelta(days=10)).date(),
        300.0,
        StockUnit.ML,
    )
    lot = resources.receive_material_lot(session, old, actor=tech, now=long_ago)
    resources.release_material_lot(session, lot, actor=qa, now=long_ago)
    for material, unit, level in (
        ("α-MEM", StockUnit.ML, 2000.0),
        ("Collagenase NB6", StockUnit.G, 1.0),
        ("DMSO (Ph. Eur.)", StockUnit.ML, 50.0),
    ):
        stock.set_reorder_level(
            session, material=material, unit=unit, level=level, actor=tech, now=now
        )
    stock.adjust_stock(
        session,
        resources.get_material_lot(session, lots["medium"]),
        stock.AdjustmentInput(
            StockAdjustmentKind.SPILLAGE, 500.0, "Bottle dropped in the cold room (demo)"
        ),
        actor=tech,
        now=now,
    )


#: The demo's calibrations were done this many days before it starts (a year's interval): they
#: cover every past date of its story (at most ~60 days back) and the weeks after it.
_CALIBRATED_DAYS_AGO = 120
#: A tiny PDF standing for a calibration certificate (the certificate's file is in the database).
_DEMO_CERTIFICATE = b"%PDF-1.4\n% demo calibration certificate\n%%EOF\n"


def _seed_equipment(
    session: DbSession,
    code: str,
    kind: EquipmentKind,
    name: str,
    *,
    now: dt.datetime,
    tech: User,
    qa: User,
) -> int:
    """Equipment registered by QA with a yearly calibration (and a half-yearly maintenance),
    calibrated and maintained by a provider in date over the demo's whole story."""
    item = equipment_service.register_equipment(
        session,
        equipment_service.EquipmentInput(
            code=code,
            kind=kind,
            name=name,
            calibration_interval_days=365,
            maintenance_interval_days=180,
        ),
        actor=qa,
        now=now,
    )
    done = now.date() - dt.timedelta(days=_CALIBRATED_DAYS_AGO)
    for event_kind in (EquipmentEventKind.CALIBRATION, EquipmentEventKind.MAINTENANCE):
        equipment_service.record_event(
            session,
            item,
            equipment_service.EventInput(
                kind=event_kind,
                performed_on=done,
                performed_by="MetroCal Services (demo)",
                passed=True,
                certificate_ref=f"MC-{code}-{done.year}",
                certificate=(
                    equipment_service.CertificateFile(f"{code}-calibration.pdf", _DEMO_CERTIFICATE)
                    if event_kind == EquipmentEventKind.CALIBRATION
                    else None
                ),
            ),
            actor=tech,
            now=now,
            today=now.date(),
        )
    return item.id


def _seed_expansion(
    session: DbSession,
    donation: Donation,
    kit: _LabKit,
    *,
    box: int,
    now: dt.datetime,
    tech: User,
    site_zone: ZoneInfo,
) -> Lot:
    """The batch record of a lot: isolation, three passages, fill of 10 bags, freezing and LN2
    storage in rack 1, ``box``, with released materials and the equipment used, at the times a
    real expansion takes."""
    lots, kit_ids = kit.materials, kit.equipment

    def day(n: float) -> dt.datetime:
        return donation.delivery_at + dt.timedelta(days=n)

    def context(
        at: dt.datetime,
        *materials: str,
        freezer: bool = False,
        used_ml: dict[str, float] | None = None,
    ) -> StepContext:
        used = ("BSC-01", "CRF-01") if freezer else ("BSC-01", "INC-01", "CNT-01")
        return StepContext(
            performed_at=at,
            material_lot_ids=tuple(lots[key] for key in materials),
            equipment_ids=tuple(kit_ids[code] for code in used),
            # what the steps record no figure for (the fill's DMSO and albumin are its own)
            material_quantities={lots[key]: value for key, value in (used_ml or {}).items()},
            zone=site_zone,
        )

    def culture(vessels: int, fmt: str) -> dict[str, float]:
        """The medium (with 10 % lysate) of ``vessels`` new vessels of ``fmt``."""
        medium = vessels * _MEDIUM_ML[fmt]
        return {"medium": medium, "hpl": medium / 10}

    step = processing.isolate(
        session,
        donation,
        tissue=donation.units[:1],
        method="enzymatic",
        vessels=[Vessel("T175", 1.0e6)] * 2,
        context=context(
            day(0.8), "enzyme", "medium", "hpl", used_ml={"enzyme": 0.1, **culture(2, "T175")}
        ),
        actor=tech,
        now=now,
    )
    plan = (
        (8, 1.6e7, 4, "T175", 1.0e6),
        (15, 2.4e7, 6, "T175", 1.0e6),
        (22, 9.0e7, 4, "CS5", 2.0e7),
    )
    harvested_from = (2, "T175")
    for when, harvested, count, fmt, seeded in plan:
        trypsin = harvested_from[0] * _TRYPSIN_ML[harvested_from[1]]
        step = processing.passage(
            session,
            vessels_in=[row.unit for row in step.units if row.role == "output"],
            harvest=Harvest(cells=harvested, viability_percent=96.0),
            vessels_out=[Vessel(fmt, seeded)] * count,
            context=context(
                day(when),
                "trypsin",
                "medium",
                "hpl",
                used_ml={"trypsin": trypsin, **culture(count, fmt)},
            ),
            actor=tech,
            now=now,
        )
        harvested_from = (count, fmt)
    lot = processing.fill_lot(
        session,
        vessels_in=[row.unit for row in step.units if row.role == "output"],
        harvest=Harvest(cells=1.1e9, viability_percent=94.0),
        # 5.0e6 TOTAL cells/mL (9.4e8 of the 1.0e9 filled are viable at 94 %); a dose applies
        # the release viability to it once: AS-001, 72.4 kg, draws 15.7 mL (+0.19 %)
        fill=Fill(bag_count=10, volume_ml=20.0, total_cells_per_ml=5.0e6, dmso_percent=10.0),
        context=context(
            day(29),
            "trypsin",
            "dmso",
            "albumin",
            used_ml={"trypsin": harvested_from[0] * _TRYPSIN_ML[harvested_from[1]]},
        ),
        actor=tech,
        now=now,
    )
    processing.freeze_lot(
        session, lot, context=context(day(29.1), freezer=True), actor=tech, now=now
    )
    tank = resources.get_equipment(session, kit_ids["LN2-01"])
    for slot, bag in enumerate(processing.bags_of(session, lot), start=1):
        storage.store_unit(
            session,
            bag,
            tank=tank,
            rack="1",
            box=str(box),
            slot=str(slot),
            actor=tech,
            now=now,
            at=day(29.2),
            zone=site_zone,
        )
    storage.record_tank_reading(
        session, tank, temperature_c=-182.0, at=day(30), actor=tech, now=now, zone=site_zone
    )
    return lot


@dataclass(frozen=True)
class _DonationDesk:
    """Registers, receives and tests the demo's donations as the lab does: one wording of
    each act for every donation the demo seeds (the UC-MSC ones and the placenta one)."""

    session: DbSession
    facility_code: str
    site_zone: ZoneInfo
    tech: User
    qc: User
    qa: tuple[User, str]
    now: dt.datetime

    def register(
        self,
        delivery: dt.datetime,
        site: str,
        *,
        cord: bool = True,
        product_code: str = UC_MSC_CODE,
    ) -> Donation:
        """A donation delivered at ``delivery`` (cord and placenta unless not ``cord``)."""
        return donors.register_donation(
            self.session,
            donors.DonationRegistration(
                umbilical_cord=cord,
                placenta=True,
                delivery_at=delivery,
                collected_at=delivery + dt.timedelta(minutes=30),
                collection_site=site,
                collector="Midwife on duty (demo)",
                transport_conditions="2–8 °C validated shipper",
                product_code=product_code,
                new_donor=donors.NewDonor(
                    consent_date=(delivery - dt.timedelta(days=20)).date(),
                    consent_form_version="ICF v3.1 (demo)",
                    screening_outcome=ScreeningOutcome.ACCEPTABLE,
                    screening_date=(delivery - dt.timedelta(days=1)).date(),
                ),
            ),
            facility_code=self.facility_code,
            site_zone=self.site_zone,
            actor=self.tech,
            now=self.now,
        )

    def receive(self, donation: Donation) -> None:
        """Received intact at 5.2 °C three hours after its collection."""
        donors.receive_donation(
            self.session,
            donation,
            donors.Receipt(
                received_at=donation.collected_at + dt.timedelta(hours=3),
                temperature_c=5.2,
                condition=ContainerCondition.INTACT,
                accept=True,
            ),
            actor=self.tech,
            now=self.now,
        )

    def record(self, donation: Donation, codes: list[str]) -> None:
        """Non-reactive results of the tests ``codes``."""
        for code in codes:
            donors.record_test_result(
                self.session,
                donation,
                donors.ResultEntry(
                    test_code=code,
                    specimen_date=donation.collected_at.astimezone(self.site_zone).date(),
                    result=InfectiousResult.NON_REACTIVE,
                    method="Central lab (demo)",
                ),
                site_zone=self.site_zone,
                actor=self.qc,
                now=self.now,
            )

    def eligible(self, donation: Donation) -> Donation:
        """Received, every test of its panel non-reactive, determined eligible by QA."""
        self.receive(donation)
        self.record(donation, [test.code for test in donors.panel_of(donation)])
        user, password = self.qa
        donors.determine_eligibility(
            self.session,
            donation,
            eligible=True,
            reason=None,
            user=user,
            password=password,
            now=self.now,
        )
        return donation


def _seed_donations(
    session: DbSession,
    *,
    now: dt.datetime,
    facility_code: str,
    site_zone: ZoneInfo,
    tech: User,
    qc: User,
    qa: tuple[User, str],
) -> tuple[dict[str, Donation], dict[str, Lot]]:
    desk = _DonationDesk(session, facility_code, site_zone, tech, qc, qa, now)

    def register(born_hours_ago: float, site: str) -> Donation:
        return desk.register(now - dt.timedelta(hours=born_hours_ago), site)

    def eligible_donation(days_ago: int, site: str) -> Donation:
        return desk.eligible(register(days_ago * 24, site))

    kit = _seed_lab(session, now=now, tech=tech, qa=qa[0])
    eligible = eligible_donation(32, "Maternity ward A, City Hospital (demo)")
    lots = {
        "awaiting_testing": _seed_expansion(
            session, eligible, kit, box=1, now=now, tech=tech, site_zone=site_zone
        )
    }

    quarantine = register(8, "Maternity ward B, City Hospital (demo)")
    desk.receive(quarantine)
    desk.record(quarantine, [test.code for test in donors.panel_of(quarantine)][:5])

    awaiting = register(2, "Birth centre, Riverside (demo)")
    donations = {"eligible": eligible, "quarantine": quarantine, "awaiting_receipt": awaiting}
    # Three older donations whose lots went through release testing (see _seed_release).
    for box, (stage, days_ago) in enumerate(
        (("released", 75), ("out_of_specification", 60), ("rejected", 48)), start=2
    ):
        donations[stage] = eligible_donation(days_ago, "Maternity ward A, City Hospital (demo)")
        lots[stage] = _seed_expansion(
            session, donations[stage], kit, box=box, now=now, tech=tech, site_zone=site_zone
        )
    for lot in lots.values():
        _seed_labels(session, lot, site_zone=site_zone, tech=tech)
    _seed_release(session, lots, now=now, site_zone=site_zone, qc=qc, qa=qa)
    return donations, lots


#: Values inside every criterion of the default UC-MSC specification, and the instrument used.
_PASSING_PANEL: dict[str, tuple[float | str, str]] = {
    "STERILITY": ("no growth", "BACT-01"),
    "MYCOPLASMA": ("negative", "PCR-01"),
    "ENDOTOXIN": (0.08, "LAL-01"),
    "VIABILITY": (92.4, "FLOW-01"),
    # a bag of 1.00e8 total cells at 94 % viable at fill is labelled 9.4e7 viable cells
    "VIABLE-CELLS": (9.3e7, "CNT-01"),
    "CD73": (99.2, "FLOW-01"),
    "CD90": (98.9, "FLOW-01"),
    "CD105": (97.1, "FLOW-01"),
    "CD34": (0.3, "FLOW-01"),
    "CD45": (0.5, "FLOW-01"),
    "CD14": (0.4, "FLOW-01"),
    "CD19": (0.2, "FLOW-01"),
    "HLA-DR": (0.7, "FLOW-01"),
    "KARYOTYPE": ("normal", "CYTO-01"),
    "POTENCY": (38.5, "MLR-01"),
}

#: What went wrong with the lots that did not pass (DOMAIN.md §5).
_DEMO_OOS: dict[str, dict[str, float | str]] = {
    "out_of_specification": {"VIABILITY": 74.0},
    "rejected": {"STERILITY": "growth"},
}


#: The trial's ten patients (NCT01420432: 10 participants, 1:1) in the order they were
#: enrolled: study ID, arm, age, sex, weight in kg, days since enrolment. Every MSC-arm
#: patient's day 0 is today; AS-002 (control arm), enrolled first, is due for month 6.
_DEMO_PATIENTS: tuple[tuple[str, str, int, str, float, int], ...] = (
    ("AS-002", "CONTROL", 41, "male", 80.1, 190),
    ("AS-001", "MSC", 34, "male", 72.4, 12),
    ("AS-003", "MSC", 27, "female", 58.6, 10),
    ("AS-004", "CONTROL", 52, "female", 66.0, 9),
    ("AS-005", "MSC", 45, "male", 88.3, 8),
    ("AS-006", "CONTROL", 30, "male", 75.5, 7),
    ("AS-007", "MSC", 38, "female", 63.2, 5),
    ("AS-008", "CONTROL", 59, "male", 70.8, 4),
    ("AS-009", "MSC", 22, "male", 81.0, 3),
    ("AS-010", "CONTROL", 47, "female", 61.7, 2),
)
#: Day 0 of a patient whose day 0 is not today, in days before now: AS-002's DMARDs started
#: a week after enrolment, 183 days ago, so its month-6 window (day 182 ± 14) is open today.
_DEMO_DAY0_DAYS_AGO = {"AS-002": 183}


def _seed_patients(
    session: DbSession,
    *,
    now: dt.datetime,
    facility_code: str,
    site_zone: ZoneInfo,
    users: dict[str, User],
    passwords: dict[str, str],
    prepared_at: dt.datetime,
    checked_at: dt.datetime,
) -> dict[str, Patient]:
    """The trial's ten patients enrolled by the clinician over the last two weeks (AS-002 six
    months ago), weighed this morning; each MSC-arm patient's day-0 dose ordered by the
    technician from the released lot and second-checked by QA, so its arithmetic can be
    followed on its page."""
    protocol = patients.protocol_in_force(session, dosing.PROTOCOLS.default.code, at=now)
    every_item = [*protocol.parameters["inclusion"], *protocol.parameters["exclusion"]]
    inclusion = {item["code"] for item in protocol.parameters["inclusion"]}
    measured = {"ejection_fraction": 62.0, "creatinine": 74.0, "ecog": 1.0}
    answers = {
        item["code"]: patients.ChecklistAnswer(
            item["code"] in inclusion, measured.get(item["code"])
        )
        for item in every_item
    }
    # the statistician's signed list, in the order the patients were enrolled (1:1, 10)
    randomization.import_list(
        session,
        protocol,
        text="\n".join(f"R-{n:03d},{row[1]}" for n, row in enumerate(_DEMO_PATIENTS, 1)),
        user=users["statistician"],
        password=passwords["statistician"],
        now=now - dt.timedelta(days=max(row[5] for row in _DEMO_PATIENTS) + 1),
    )
    enrolled: dict[str, Patient] = {}
    for study_id, _arm, age, sex, weight, days_ago in _DEMO_PATIENTS:
        enrolled_at = now - dt.timedelta(days=days_ago)
        local = enrolled_at.astimezone(site_zone).date()
        patient = patients.enrol(
            session,
            protocol,
            patients.Enrolment(
                study_id=study_id,
                date_of_birth=dt.date(local.year - age, local.month, min(local.day, 28))
                - dt.timedelta(days=40),
                sex=sex,
                day0=(now - dt.timedelta(days=_DEMO_DAY0_DAYS_AGO.get(study_id, 0)))
                .astimezone(site_zone)
                .date(),
                answers=answers,
            ),
            facility_code=facility_code,
            actor=users["clinician"],
            now=enrolled_at,
            zone=site_zone,
        )
        patients.record_weight(
            session,
            patient,
            weight_kg=weight,
            measured_at=now - dt.timedelta(hours=3),
            source="calibrated clinic scale",
            actor=users["clinician"],
            now=now - dt.timedelta(hours=3),
            zone=site_zone,
        )
        if patients.receives_cells(patient):
            order = orders.order_dose(
                session, patient, "D0", actor=users["tech"], now=prepared_at, zone=site_zone
            )
            orders.second_check(
                session,
                order,
                checker=users["qa"],
                password=passwords["qa"],
                volume_ml=order.volume_ml,
                bag_codes=[bag.unit.code for bag in order.bags],
                # on the timeline, not 30 s later: just after midnight the morning is
                # squeezed into minutes, and the dose must exist before it is shipped
                now=checked_at,
            )
        enrolled[study_id] = patient
    return enrolled


@dataclass(frozen=True)
class _Timeline:
    """This morning's clinic, in minutes before now, squeezed into today (site calendar) when
    the demo is built just after midnight: day 0 is today, and every step happens on it."""

    now: dt.datetime
    span_minutes: float

    @classmethod
    def today(cls, now: dt.datetime, zone: ZoneInfo) -> _Timeline:
        local = now.astimezone(zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
        # subtracted in UTC: a wall-clock difference is wrong on a daylight-saving morning
        since = (now - midnight).total_seconds() / 60 - 1
        return cls(now=now, span_minutes=max(0.0, min(150.0, since)))

    def at(self, minutes_ago: float) -> dt.datetime:
        return self.now - dt.timedelta(minutes=self.span_minutes * minutes_ago / 150)


def _seed_clinic(
    session: DbSession,
    trial: dict[str, Patient],
    *,
    timeline: _Timeline,
    site_zone: ZoneInfo,
    users: dict[str, User],
    passwords: dict[str, str],
) -> dict[str, Shipment]:
    """This morning at the clinic: AS-003's dose was shipped, received, thawed, checked at the
    bedside (after a wrong wristband was stopped) and infused; AS-005's shipment arrived with
    a logger excursion and waits for QA; AS-001's is on its way, for a clinician to take
    through receipt, thaw, bedside check and infusion. AS-007's and AS-009's are in the lab,
    their dose labels not printed yet and their bags still carrying the quarantine label: a
    dose leaves the lab only with the labels its units' status requires."""

    def dose_of(study_id: str) -> DoseOrder:
        (order,) = orders.orders_of(session, trial[study_id])
        return order

    def ship(study_id: str, shipper: str, minutes_ago: float) -> Shipment:
        order = dose_of(study_id)
        _label_dose(
            session,
            order,
            site_zone=site_zone,
            tech=users["tech"],
            printed_at=timeline.at(minutes_ago + 4),
            applied_at=timeline.at(minutes_ago + 2),
        )
        return clinic_shipments.dispatch(
            session,
            clinic_shipments.Dispatch(
                shipper_id=shipper,
                logger_id=f"TL-{shipper[-3:]}",
                destination="Clinic — infusion room 1",
                courier="courier: R. Runner (demo)",
                # a prepared order (shipped, labelled, infused) has its dose unit
                dose_scans=[order.dose_unit.code],  # type: ignore[union-attr]
                site_id=order.patient.site_id,  # the patient's clinical site
            ),
            actor=users["tech"],
            now=timeline.at(minutes_ago),
        )

    def receive(shipment: Shipment, minutes_ago: float, **changes: object) -> None:
        values: dict[str, Any] = {
            "scan": shipment.shipper_id,
            "temperature_c": -182.0,
            "condition": "intact",
            "logger_excursion": False,
        }
        values.update(changes)
        clinic_shipments.receive(
            session,
            shipment,
            clinic_shipments.Receipt(**values),
            actor=users["clinician"],
            now=timeline.at(minutes_ago),
        )

    infused = ship("AS-003", "DS-101", 140)
    receive(infused, 100)
    order = dose_of("AS-003")
    # a prepared order (shipped, labelled, infused) has its dose unit
    label = order.dose_unit.code  # type: ignore[union-attr]
    # A bag takes the product's minimum to thaw and an infusion runs for minutes: just after
    # midnight, when the morning is squeezed, those steps keep their durations and end a few
    # minutes after the demo was built rather than record times that cannot be true.
    thaw_started = timeline.at(45)
    thawed = max(
        timeline.at(40),
        thaw_started + dt.timedelta(minutes=thaw.min_thaw_minutes(session, order)),
    )

    def after_thaw(minutes_ago: float) -> dt.datetime:
        return max(timeline.at(minutes_ago), thawed + dt.timedelta(seconds=40 - minutes_ago))

    for scanned_at in (thaw_started, thawed):
        thaw.scan_thaw(session, label, actor=users["clinician"], now=scanned_at)
    wristband = trial["AS-003"].coi
    bedside.verify(  # the wrong wristband first: a stop on record
        session,
        trial["AS-004"].coi,
        label,
        actor=users["clinician"],
        now=after_thaw(37),
        zone=site_zone,
    )
    go = bedside.verify(
        session, wristband, label, actor=users["clinician"], now=after_thaw(36), zone=site_zone
    )
    bedside.sign_off(
        session,
        go,
        first=bedside.Signer(users["clinician"], passwords["clinician"]),
        second=bedside.Signer(users["nurse"], passwords["nurse"]),
        now=after_thaw(35),
    )
    started_at = after_thaw(34)
    started = infusions.start(session, go, actor=users["clinician"], now=started_at, zone=site_zone)
    assert started.infusion is not None, started.stop and started.stop.failed
    ended_at = max(timeline.at(10), started_at + dt.timedelta(minutes=5))
    minutes = (ended_at - started_at).total_seconds() / 60
    infusions.end(
        session,
        started.infusion,
        infusions.InfusionEnd(
            volume_infused_ml=order.volume_ml,
            rate_ml_per_h=round(order.volume_ml / minutes * 60, 1),
        ),
        actor=users["nurse"],
        now=ended_at,
    )
    assert started.infusion.time_flag is None, started.infusion.time_flag
    held = ship("AS-005", "DS-102", 130)
    receive(held, 90, logger_excursion=True, note="Logger alarm light on at arrival.")
    in_transit = ship("AS-001", "DS-103", 60)
    clinic_shipments.hand_off(
        session,
        in_transit,
        clinic_shipments.HandOff(
            scan=in_transit.shipper_id,
            counterparty="clinic porter: P. Porter (demo)",
            location="Hospital loading bay",
            temperature_c=-184.0,
        ),
        actor=users["clinician"],
        now=timeline.at(20),
    )
    return {"in_transit": in_transit, "held": held, "infused": infused}


def _label_dose(
    session: DbSession,
    order: DoseOrder,
    *,
    site_zone: ZoneInfo,
    tech: User,
    printed_at: dt.datetime,
    applied_at: dt.datetime,
) -> None:
    """Before dispatch the technician prints the dose label and replaces its bags' quarantine
    labels with the released ones (a reprint, with the reason), puts each on and scans it."""
    settings = _label_settings(session, site_zone, printed_at)
    units = [order.dose_unit, *(bag.unit for bag in order.bags)]
    printed = labels.print_labels(
        session,
        # the order is prepared: its dose unit is there
        units,  # type: ignore[arg-type]
        output_format="pdf",
        copies=1,
        reason=labels.RELEASE_REPRINT_REASON,  # the bags' reprint; the dose label is new
        settings=settings,
        actor=tech,
        now=printed_at,
        name=f"dose-{order.id}",
    )
    for record in printed.prints:
        labels.record_applied(
            session,
            None,
            record.payload,
            actor=tech,
            now=applied_at,
            unit=record.unit,
        )


def _label_settings(
    session: DbSession, site_zone: ZoneInfo, at: dt.datetime
) -> labels.LabelSettings:
    """The label templates in force at ``at``, or at their signing when ``at`` is before it:
    QA signs them at set-up, and the demo's history of the days before is made after it."""
    versions = template_documents.LABEL_TEMPLATES.versions(session)
    when = max([at, *(t.effective_at for t in versions if t.effective_at is not None)])
    return labels.LabelSettings(
        template_documents.templates_in_force(session, at=when), site_zone, IsbtSettings({})
    )


def _seed_labels(session: DbSession, lot: Lot, *, site_zone: ZoneInfo, tech: User) -> None:
    """At fill the technician prints each bag's label (in quarantine: it says so), puts it on
    the bag and scans it there; a spare printed for the first bag is destroyed unused."""
    printed_at = lot.made_at + dt.timedelta(minutes=20)
    settings = _label_settings(session, site_zone, printed_at)
    bags = processing.bags_of(session, lot)
    printed = labels.print_labels(
        session,
        bags,
        output_format="pdf",
        copies=1,
        reason=None,
        settings=settings,
        actor=tech,
        now=printed_at,
        name=lot.lot_number,
    )
    for record in printed.prints:
        labels.record_applied(
            session, lot, record.payload, actor=tech, now=printed_at + dt.timedelta(minutes=5)
        )
    spare = labels.print_labels(
        session,
        bags[:1],
        output_format="pdf",
        copies=1,
        reason="spare in case the first label does not stick to the frosted overwrap",
        settings=settings,
        actor=tech,
        now=printed_at,
        name=lot.lot_number,
    )
    labels.destroy_labels(
        session,
        spare.prints[0],
        1,
        "spare not needed",
        actor=tech,
        now=printed_at + dt.timedelta(minutes=10),
    )


def _seed_release(
    session: DbSession,
    lots: dict[str, Lot],
    *,
    now: dt.datetime,
    site_zone: ZoneInfo,
    qc: User,
    qa: tuple[User, str],
) -> None:
    """QC tests three lots on a QC bag each; QA releases the passing one, leaves the one with
    low viability awaiting its investigation, and rejects the one with sterility growth after
    the investigation confirmed it."""
    for stage in ("released", "out_of_specification", "rejected"):
        lot = lots[stage]
        drawn = lot.made_at + dt.timedelta(days=1)
        bag = processing.bags_of(session, lot)[-1]
        (sample,) = results.take_samples(
            session,
            lot,
            results.SampleRequest(bag.code, purpose="release panel (QC bag)", taken_at=drawn),
            actor=qc,
            now=now,
        )
        panel = {code: value for code, (value, _) in _PASSING_PANEL.items()}
        panel.update(_DEMO_OOS.get(stage, {}))
        drawn_on = drawn.astimezone(site_zone).date()
        results.record_results(
            session,
            lot,
            sample_code=sample.unit.code,
            entries=[
                results.ResultEntry(
                    test_code=code,
                    value=value,
                    instrument=_PASSING_PANEL[code][1],
                    tested_on=drawn_on + dt.timedelta(days=14 if code == "STERILITY" else 2),
                )
                for code, value in panel.items()
            ],
            actor=qc,
            now=now,
            site_zone=site_zone,
        )
    disposition.release_lot(
        session,
        lots["released"],
        user=qa[0],
        password=qa[1],
        comment="All release tests pass; batch record reviewed.",
        now=now,
        zone=site_zone,
    )
    rejected = lots["rejected"]
    for opened in deviations.open_deviations_of(session, rejected):
        deviations.close_deviation(
            session,
            opened,
            resolution="Laboratory investigation found no assay error: growth confirmed in "
            "both culture bottles (Staphylococcus epidermidis). The lot is rejected.",
            user=qa[0],
            password=qa[1],
            now=now,
            zone=site_zone,
        )
    disposition.reject_lot(
        session,
        rejected,
        reason="Sterility: growth confirmed (deviation closed after investigation).",
        user=qa[0],
        password=qa[1],
        now=now,
        zone=site_zone,
    )


def _seed_rescheduled_day0(
    session: DbSession,
    patient: Patient,
    *,
    timeline: _Timeline,
    site_zone: ZoneInfo,
    users: dict[str, User],
) -> None:
    """AS-010 (control arm) cannot come today: the clinician moved day 0, the start of its
    DMARDs and the anchor of its month-6 and month-12 evaluations, three weeks on, beyond the
    14 days the protocol allows; the investigator signed the protocol deviation."""
    moved_at = timeline.at(20)
    row = scheduling.reschedule_visit(
        session,
        patient,
        visit="D0",
        planned_on=moved_at.astimezone(site_zone).date() + dt.timedelta(days=21),
        reason="Patient abroad for a family emergency; back in three weeks (phone call).",
        actor=users["clinician"],
        now=moved_at,
        zone=site_zone,
    )
    investigator = next(d for d in DEMO_USERS if d.role is Role.INVESTIGATOR)
    scheduling.sign_deviation(
        session,
        row,
        investigator=users[investigator.username],
        password=investigator.password,
        now=timeline.at(15),
    )


def _seed_trial_paths(
    session: DbSession,
    trial: dict[str, Patient],
    *,
    timeline: _Timeline,
    site_zone: ZoneInfo,
    users: dict[str, User],
) -> Shipment:
    """The trial off its happy path (issue 19), for the investigator to take on.

    AS-009's day-0 dose was shipped (dry shipper DS-104), received and thawed at the clinic, but
    the infusion was not started within the thaw window: its bedside check is a red STOP (thaw
    window exceeded), and the dose waits on its page to be destroyed, witnessed, and replaced
    the same day. Just after midnight, when this morning is squeezed into minutes, the window
    has not closed yet when the demo is built: the check is then left to the first bedside
    scan an hour later, which stops it the same way.

    AS-004 (control arm) was admitted overnight with pneumonia: a serious adverse event, the
    site aware this morning, so its initial sponsor report is due 24 hours later; its causality
    is left for the investigator to assess. AS-003's and AS-002's baseline endpoints were
    recorded at enrolment, so their tables over time have a first row before month 6's; AS-002
    (control arm, day 0 183 days ago) is in its month-6 window today, for the investigator to
    record its month-6 endpoints."""
    (order,) = orders.orders_of(session, trial["AS-009"])
    _label_dose(
        session,
        order,
        site_zone=site_zone,
        tech=users["tech"],
        printed_at=timeline.at(129),
        applied_at=timeline.at(127),
    )
    # a prepared order (shipped, thawed) has its dose unit
    label = order.dose_unit.code  # type: ignore[union-attr]
    shipment = clinic_shipments.dispatch(
        session,
        clinic_shipments.Dispatch(
            shipper_id="DS-104",
            logger_id="TL-104",
            destination="Clinic — infusion room 2",
            courier="courier: R. Runner (demo)",
            dose_scans=[label],
            site_id=order.patient.site_id,  # the patient's clinical site
        ),
        actor=users["tech"],
        now=timeline.at(125),
    )
    clinic_shipments.receive(
        session,
        shipment,
        clinic_shipments.Receipt(
            scan=shipment.shipper_id,
            temperature_c=-181.0,
            condition="intact",
            logger_excursion=False,
        ),
        actor=users["clinician"],
        now=timeline.at(110),
    )
    thaw_started = timeline.at(100)
    thawed = max(
        timeline.at(96),
        thaw_started + dt.timedelta(minutes=thaw.min_thaw_minutes(session, order)),
    )
    for scanned_at in (thaw_started, thawed):
        thaw.scan_thaw(session, label, actor=users["clinician"], now=scanned_at)
    closed = thaw.thaw_state(session, order).expires_at
    assert closed is not None  # the thaw started
    stopped_at = max(timeline.at(15), closed + dt.timedelta(minutes=1))
    if stopped_at <= timeline.now:
        stop = bedside.verify(
            session,
            trial["AS-009"].coi,
            label,
            actor=users["clinician"],
            now=stopped_at,
            zone=site_zone,
        )
        assert [c["code"] for c in stop.failed] == ["thaw"], stop.failed
    aware_at = timeline.at(140)
    adverse_events.record_adverse_event(
        session,
        trial["AS-004"],
        adverse_events.AdverseEventReport(
            onset_at=aware_at - dt.timedelta(hours=9),
            description="Fever and productive cough from the evening; admitted overnight, "
            "right lower lobe pneumonia on the chest X-ray, on IV antibiotics.",
            grade=3,
            seriousness=Seriousness.SERIOUS.value,
            serious_criteria=frozenset({SeriousCriterion.HOSPITALISATION.value}),
            outcome=Outcome.NOT_RECOVERED.value,
            aware_at=aware_at,
            term="Pneumonia",
            term_code="10035664",
        ),
        actor=users["investigator"],
        now=timeline.at(135),
    )
    baseline = trial["AS-003"]
    endpoints.record_endpoints(
        session,
        baseline,
        visit=endpoints.BASELINE,
        assessed_on=baseline.enrolled_at.astimezone(site_zone).date(),
        values={
            **dict.fromkeys(endpoints.BASDAI_FIELDS, 6.0),
            **dict.fromkeys(endpoints.BASFI_FIELDS, 5.0),
            "patient_global": 6.5,
            "crp_mg_l": 18.0,
            "esr_mm_h": 32.0,
        },
        actor=users["investigator"],
        now=baseline.enrolled_at + dt.timedelta(hours=1),
        zone=site_zone,
    )
    month_6 = trial["AS-002"]
    endpoints.record_endpoints(
        session,
        month_6,
        visit=endpoints.BASELINE,
        assessed_on=month_6.enrolled_at.astimezone(site_zone).date(),
        values={
            **dict.fromkeys(endpoints.BASDAI_FIELDS, 5.5),
            **dict.fromkeys(endpoints.BASFI_FIELDS, 4.5),
            "patient_global": 6.0,
            "crp_mg_l": 14.0,
            "esr_mm_h": 28.0,
        },
        actor=users["investigator"],
        now=month_6.enrolled_at + dt.timedelta(hours=1),
        zone=site_zone,
    )
    return shipment


def _seed_sites(
    session: DbSession,
    users: dict[str, User],
    *,
    now: dt.datetime,
    facility_code: str,
    site_zone: ZoneInfo,
) -> None:
    """The manufacturing facility and the first clinical site from the configuration (as
    ``cellchain init`` makes them), the second clinical site, and who belongs where."""
    from cellchain.sites import service as sites

    admin = users["admin"]
    sites.ensure_configured_sites(
        session,
        name="cellchain demo site",
        zone=site_zone.key,
        facility_code=facility_code,
        now=now,
        actor=admin,
    )
    code, name, zone = DEMO_SECOND_SITE
    sites.create_site(
        session, sites.SiteForm(code=code, name=name, time_zone=zone), actor=admin, now=now
    )
    by_code = {site.code: site.id for site in sites.list_sites(session)}
    for username, codes in DEMO_MEMBERSHIPS.items():
        sites.set_memberships(
            session, users[username], [by_code[c] for c in codes], actor=admin, now=now
        )


#: The second protocol's patient (issue 22): PL-MSC-OL-01, open label, a single dose of the
#: placenta product at 2.0 × 10⁶ viable cells/kg: study ID, age, sex, weight (kg), days since
#: enrolment. 64.5 kg → 1.29 × 10⁸ viable cells, drawn from two bags of the placenta lot.
DEMO_SECOND_PROTOCOL_PATIENT = ("PL-001", 45, "female", 64.5, 6)


def _seed_second_protocol(
    session: DbSession,
    *,
    now: dt.datetime,
    setup: dt.datetime,
    facility_code: str,
    site_zone: ZoneInfo,
    users: dict[str, User],
    passwords: dict[str, str],
    prepared_at: dt.datetime,
    checked_at: dt.datetime,
    site: str | None = None,
) -> tuple[Donation, Lot, Patient]:
    """Several protocols and products at once (issue 22): QA signs the placenta product
    PL-MSC (its own donor test panel and limits), its release specification and the
    open-label protocol PL-MSC-OL-01; a placenta donation becomes a lot, tested and released;
    a clinician of the clinical site coded ``site`` (the first site's ``clinician`` when None)
    enrols PL-001 there under PL-MSC-OL-01, and their single day-0 dose of 2.0 × 10⁶ viable
    cells/kg is ordered from the placenta lot and second-checked."""
    from sqlalchemy import select

    from cellchain.dosing.defaults import (
        PL_MSC_OL_01_CODE,
        PL_MSC_OL_01_PARAMETERS,
        PL_MSC_OL_01_TITLE,
    )
    from cellchain.manufacturing.defaults import (
        PL_MSC_CODE,
        PL_MSC_DONOR_TEST_PANEL,
        PL_MSC_PARAMETERS,
        PL_MSC_TITLE,
    )
    from cellchain.manufacturing.models import Equipment, MaterialLot
    from cellchain.quality.defaults import (
        PL_MSC_SPEC_CODE,
        PL_MSC_SPEC_TITLE,
        PL_MSC_SPECIFICATION,
    )

    qa, tech, qc = users["qa"], users["tech"], users["qc"]

    def signed(kind: Any, code: str, title: str, parameters: dict[str, Any]) -> Any:
        document = kind.draft(
            session, actor=qa, now=setup, code=code, title=title, parameters=parameters
        )
        kind.approve(session, document, user=qa, password=passwords["qa"], now=setup)
        return document

    signed(
        panels.DONOR_TEST_PANELS,
        PL_MSC_CODE,
        "Infectious-disease tests of the birth mother, placenta product (demo)",
        {"tests": PL_MSC_DONOR_TEST_PANEL},
    )
    signed(products.PRODUCTS, PL_MSC_CODE, PL_MSC_TITLE, PL_MSC_PARAMETERS)
    signed(quality.SPECIFICATIONS, PL_MSC_SPEC_CODE, PL_MSC_SPEC_TITLE, PL_MSC_SPECIFICATION)
    protocol = signed(
        dosing.PROTOCOLS, PL_MSC_OL_01_CODE, PL_MSC_OL_01_TITLE, PL_MSC_OL_01_PARAMETERS
    )
    # a placenta donation 50 days ago (its lot filled 21 days ago, tested since), tested
    # against its own panel, eligible
    desk = _DonationDesk(
        session, facility_code, site_zone, tech, qc, (qa, passwords["qa"]), setup
    )
    donation = desk.eligible(
        desk.register(
            setup - dt.timedelta(days=50),
            "Maternity ward A, City Hospital (demo)",
            cord=False,
            product_code=PL_MSC_CODE,
        )
    )
    # the lab's kit as _seed_lab registered it
    received = select(MaterialLot).where(MaterialLot.lot_number.like("%-24117"))
    materials = {lot.lot_number.split("-")[0].lower(): lot.id for lot in session.scalars(received)}
    equipment = {item.code: item.id for item in session.scalars(select(Equipment))}
    lot = _seed_expansion(
        session,
        donation,
        _LabKit(materials=materials, equipment=equipment),
        box=6,
        now=setup,
        tech=tech,
        site_zone=site_zone,
    )
    _seed_labels(session, lot, site_zone=site_zone, tech=tech)
    drawn = lot.made_at + dt.timedelta(days=1)
    (sample,) = results.take_samples(
        session,
        lot,
        results.SampleRequest(
            processing.bags_of(session, lot)[-1].code,
            purpose="release panel (QC bag)",
            taken_at=drawn,
        ),
        actor=qc,
        now=setup,
    )
    drawn_on = drawn.astimezone(site_zone).date()
    results.record_results(
        session,
        lot,
        sample_code=sample.unit.code,
        entries=[
            results.ResultEntry(
                test_code=code,
                value=value,
                instrument=instrument,
                tested_on=drawn_on + dt.timedelta(days=14 if code == "STERILITY" else 2),
            )
            for code, (value, instrument) in _PASSING_PANEL.items()
        ],
        actor=qc,
        now=setup,
        site_zone=site_zone,
    )
    disposition.release_lot(
        session,
        lot,
        user=qa,
        password=passwords["qa"],
        comment="All release tests pass against the PL-MSC specification; batch record reviewed.",
        now=setup,
        zone=site_zone,
    )
    # PL-001, enrolled under PL-MSC-OL-01 (one arm: no randomization), weighed this morning,
    # by a clinician of the site it is enrolled at
    clinician, site_id = "clinician", None
    if site is not None:
        from cellchain.sites import service as sites

        site_id = next(s.id for s in sites.list_sites(session) if s.code == site)
        clinician = next(
            demo.username
            for demo in DEMO_USERS
            if demo.role is Role.CLINICIAN and site in DEMO_MEMBERSHIPS.get(demo.username, ())
        )
    study_id, age, sex, weight, days_ago = DEMO_SECOND_PROTOCOL_PATIENT
    enrolled_at = now - dt.timedelta(days=days_ago)
    local = enrolled_at.astimezone(site_zone).date()
    parameters = protocol.parameters
    measured = {"ecog": 1.0, "creatinine": 70.0}
    inclusion = {item["code"] for item in parameters["inclusion"]}
    patient = patients.enrol(
        session,
        protocol,
        patients.Enrolment(
            study_id=study_id,
            date_of_birth=dt.date(local.year - age, local.month, min(local.day, 28))
            - dt.timedelta(days=40),
            sex=sex,
            day0=now.astimezone(site_zone).date(),
            answers={
                item["code"]: patients.ChecklistAnswer(
                    item["code"] in inclusion, measured.get(item["code"])
                )
                for item in [*parameters["inclusion"], *parameters["exclusion"]]
            },
        ),
        facility_code=facility_code,
        actor=users[clinician],
        now=enrolled_at,
        zone=site_zone,
        site_id=site_id,
    )
    patients.record_weight(
        session,
        patient,
        weight_kg=weight,
        measured_at=now - dt.timedelta(hours=3),
        source="calibrated clinic scale",
        actor=users[clinician],
        now=now - dt.timedelta(hours=3),
        zone=site_zone,
    )
    order = orders.order_dose(
        session, patient, "D0", actor=tech, now=prepared_at, zone=site_zone
    )
    orders.second_check(
        session,
        order,
        checker=qa,
        password=passwords["qa"],
        volume_ml=order.volume_ml,
        bag_codes=[bag.unit.code for bag in order.bags],
        now=checked_at,
    )
    return donation, lot, patient
