"""Acting-user glue of the chain core, shared by the API and the unit page: the loaded input,
the units it names (by id or by scanned code), the acting user and the time from the request,
then the service. No rules here."""

from __future__ import annotations

from typing import Any

from cellchain.chain import service
from cellchain.chain.models import EventType, LineageOperation, Unit, UnitEvent, UnitKind
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now


def custody_input(data: dict[str, Any]) -> service.CustodyInput:
    """Loaded ``CustodyIn`` data as the service's custody event."""
    return service.CustodyInput(**{**data, "event_type": EventType(data["event_type"])})


def record_custody_as_user(session: DbSession, unit: Unit, data: dict[str, Any]) -> UnitEvent:
    """Record a receipt, move, hand-off or scan on ``unit`` from loaded ``CustodyIn`` data."""
    return service.record_custody(
        session, unit, custody_input(data), actor=acting_user(), now=now()
    )


def derive_as_user(session: DbSession, data: dict[str, Any]) -> list[Unit]:
    """Make new units from the parents scanned in loaded ``DeriveIn`` data."""
    return service.derive_units(
        session,
        parents=[service.resolve_unit(session, code) for code in data["parents"]],
        kind=UnitKind(data["kind"]),
        operation=LineageOperation(data["operation"]),
        count=data["count"],
        location=data["location"],
        consume_parents=data["consume_parents"],
        actor=acting_user(),
        now=now(),
    )
