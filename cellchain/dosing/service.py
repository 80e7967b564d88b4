"""Rules of the dosing package: protocol versions and their approval."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cellchain.core import audit, signatures
from cellchain.core.models import Signature, User
from cellchain.core.types import canonical_json
from cellchain.dosing.defaults import (
    NCT01420432_CODE,
    NCT01420432_PARAMETERS,
    NCT01420432_TITLE,
)
from cellchain.dosing.models import PROTOCOL_TRANSITIONS, Protocol, ProtocolStatus
from cellchain.errors import InvalidInput, NotFound, StateConflict

#: The meaning printed with QA's signature on a protocol version.
APPROVAL_MEANING = "approval: protocol version in force"


def _transition(protocol: Protocol, target: ProtocolStatus) -> None:
    current = ProtocolStatus(protocol.status)
    if target not in PROTOCOL_TRANSITIONS[current]:
        raise StateConflict(f"Protocol {protocol.code} v{protocol.version}", current, target)
    protocol.status = target.value


def draft_protocol(
    session: Session,
    *,
    actor: User | None,
    now: dt.datetime,
    code: str,
    title: str,
    parameters: dict[str, Any],
) -> Protocol:
    """Write a new draft version of a protocol; it takes effect only when QA signs it."""
    code = code.strip().upper()
    if not code or not title.strip():
        raise InvalidInput("A protocol needs a code and a title.")
    latest = session.execute(
        select(func.max(Protocol.version)).where(Protocol.code == code)
    ).scalar_one()
    protocol = Protocol(
        code=code,
        version=(latest or 0) + 1,
        title=title.strip(),
        parameters_json=canonical_json(parameters),
        status=ProtocolStatus.DRAFT.value,
        created_at=now,
        created_by_id=actor.id if actor else None,
    )
    session.add(protocol)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="protocol.drafted",
        entity_type="protocol",
        entity_id=protocol.id,
        changes={"code": (None, code), "version": (None, protocol.version)},
    )
    return protocol


def load_default_protocol(session: Session, *, actor: User | None, now: dt.datetime) -> Protocol:
    """The NCT01420432 defaults as a draft, unless that protocol is already on file."""
    existing = (
        session.execute(
            select(Protocol).where(Protocol.code == NCT01420432_CODE).order_by(Protocol.version)
        )
        .scalars()
        .first()
    )
    if existing is not None:
        return existing
    return draft_protocol(
        session,
        actor=actor,
        now=now,
        code=NCT01420432_CODE,
        title=NCT01420432_TITLE,
        parameters=NCT01420432_PARAMETERS,
    )


def approve_protocol(
    session: Session, *, protocol: Protocol, user: User, password: str, now: dt.datetime
) -> Signature:
    """QA signs a draft; it becomes the version in force and the previous one is superseded."""
    _transition(protocol, ProtocolStatus.EFFECTIVE)
    signature = signatures.sign(
        session, record=protocol, meaning=APPROVAL_MEANING, user=user, password=password, now=now
    )
    previous = session.execute(
        select(Protocol).where(
            Protocol.code == protocol.code,
            Protocol.status == ProtocolStatus.EFFECTIVE.value,
            Protocol.id != protocol.id,
        )
    ).scalars()
    for old in previous:
        _transition(old, ProtocolStatus.SUPERSEDED)
        audit.record(
            session,
            actor=user,
            at=now,
            action="protocol.superseded",
            entity_type="protocol",
            entity_id=old.id,
            changes={"status": ("effective", "superseded")},
        )
    protocol.effective_at = now
    audit.record(
        session,
        actor=user,
        at=now,
        action="protocol.approved",
        entity_type="protocol",
        entity_id=protocol.id,
        changes={"status": ("draft", "effective")},
    )
    return signature


def list_protocols(session: Session) -> list[Protocol]:
    return list(
        session.execute(select(Protocol).order_by(Protocol.code, Protocol.version.desc())).scalars()
    )


def get_protocol(session: Session, protocol_id: int) -> Protocol:
    protocol = session.get(Protocol, protocol_id)
    if protocol is None:
        raise NotFound(f"There is no protocol #{protocol_id}.")
    return protocol
