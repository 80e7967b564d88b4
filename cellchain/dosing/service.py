"""Rules of the dosing package: protocol versions and their approval."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cellchain.core import versioning
from cellchain.core.models import Signature, User
from cellchain.core.roles import Permission
from cellchain.dosing.defaults import (
    NCT01420432_CODE,
    NCT01420432_PARAMETERS,
    NCT01420432_TITLE,
)
from cellchain.dosing.models import Protocol
from cellchain.extensions import DbSession

#: The meaning printed with QA's signature on a protocol version.
APPROVAL_MEANING = "approval: protocol version in force"


def draft_protocol(
    session: DbSession,
    *,
    actor: User | None,
    now: dt.datetime,
    code: str,
    title: str,
    parameters: dict[str, Any],
) -> Protocol:
    """Write a new draft version of a protocol; it takes effect only when QA signs it."""
    return versioning.draft(
        session, Protocol, actor=actor, now=now, code=code, title=title, parameters=parameters
    )


def load_default_protocol(session: DbSession, *, actor: User | None, now: dt.datetime) -> Protocol:
    """The NCT01420432 defaults as a draft, unless that protocol is already on file."""
    return versioning.first_or_draft(
        session,
        Protocol,
        actor=actor,
        now=now,
        code=NCT01420432_CODE,
        title=NCT01420432_TITLE,
        parameters=NCT01420432_PARAMETERS,
    )


def approve_protocol(
    session: DbSession, *, protocol: Protocol, user: User, password: str, now: dt.datetime
) -> Signature:
    """QA signs a draft; it becomes the version in force and the previous one is superseded."""
    return versioning.approve(
        session,
        protocol,
        meaning=APPROVAL_MEANING,
        user=user,
        password=password,
        now=now,
        permission=Permission.SIGN_PROTOCOL,
    )


def list_protocols(session: DbSession) -> list[Protocol]:
    return versioning.list_versions(session, Protocol)


def get_protocol(session: DbSession, protocol_id: int) -> Protocol:
    return versioning.get(session, Protocol, protocol_id)
