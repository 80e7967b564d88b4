"""Acting-user glue of LN2 storage, shared by the API and the tank pages: the unit scanned at
the tank, the acting user and the time from the request, then the service (a reading above
the storage limit opens the storage-excursion deviations there). No rules here."""

from __future__ import annotations

from typing import Any

from cellchain.chain import service as chain
from cellchain.chain.models import Unit
from cellchain.core.i18n import _
from cellchain.errors import InvalidInput, NotFound
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone
from cellchain.manufacturing.models import Equipment, StoragePosition
from cellchain.manufacturing.storage import storage


def scanned_unit(session: DbSession, code: str) -> Unit:
    """The unit a scanned code names; a refusal is shown against the code field."""
    try:
        return chain.resolve_unit(session, code)
    except NotFound as error:
        raise NotFound(error.detail, errors={"code": [_("Unknown code.")]}) from error
    except InvalidInput as error:
        raise InvalidInput(error.detail, errors={"code": [_("Not a unit's code.")]}) from error


def store_unit_as_user(
    session: DbSession, unit: Unit, tank: Equipment, data: dict[str, Any]
) -> StoragePosition:
    """Put ``unit`` into the slot of ``tank`` named by a loaded ``StoreIn`` or ``StoreScanIn``."""
    return storage.store_unit(
        session,
        unit,
        tank=tank,
        rack=data["rack"],
        box=data["box"],
        slot=data["slot"],
        at=data.get("at"),
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
    )


def record_reading_as_user(
    session: DbSession, tank: Equipment, data: dict[str, Any]
) -> storage.ReadingOutcome:
    """Record the tank's temperature from a loaded ``ReadingIn``; above the storage limit the
    outcome holds the deviations opened on the lots stored in it."""
    return storage.record_tank_reading(
        session,
        tank,
        temperature_c=data["temperature_c"],
        at=data.get("at"),
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
    )
