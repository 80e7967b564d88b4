"""Demo site: one user per role, the NCT01420432 protocol in force, a few reserved DINs.

Used by ``cellchain demo`` and by the browser tests, so what a newcomer sees is what the
tests click through.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from cellchain.core import accounts, numbering
from cellchain.core.accounts import AccountPolicy
from cellchain.core.models import IssuedIdentifier, User
from cellchain.core.roles import Role
from cellchain.dosing import service as dosing


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


def seed_demo(
    session: Session, *, now: dt.datetime, facility_code: str, policy: AccountPolicy
) -> DemoSite:
    """Create the demo users, approve the default protocol as QA, reserve three DINs."""
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
    return DemoSite(users=users, reserved_dins=dins)
