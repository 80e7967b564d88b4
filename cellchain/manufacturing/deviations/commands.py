"""Acting-user glue of deviations, shared by the API and the pages: the lot and the donation
a deviation is opened against (by id from the API, by lot number and DIN from the form), the
acting user and the time from the request, then the service. No rules here."""

from __future__ import annotations

from typing import Any

from cellchain.core.i18n import _
from cellchain.donors import service as donors
from cellchain.donors.models import Donation
from cellchain.errors import DomainError, InvalidInput, NotFound
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone
from cellchain.manufacturing.deviations import deviations
from cellchain.manufacturing.models import Deviation, Lot
from cellchain.manufacturing.processing import processing


def open_deviation_as_user(
    session: DbSession, data: dict[str, Any], *, lot: Lot | None, donation: Donation | None
) -> Deviation:
    """Open a deviation against the loaded ``lot`` and/or ``donation`` (or neither)."""
    return deviations.open_deviation(
        session,
        lot=lot,
        donation=donation,
        category=data["category"],
        description=data["description"],
        actor=acting_user(),
        now=now(),
    )


def open_deviation_by_ids(session: DbSession, data: dict[str, Any]) -> Deviation:
    """Open a deviation from a loaded ``DeviationOpenIn``: the lot and donation by id (404)."""
    lot_id, donation_id = data.get("lot_id"), data.get("donation_id")
    return open_deviation_as_user(
        session,
        data,
        lot=processing.get_lot(session, lot_id) if lot_id is not None else None,
        donation=donors.get_donation(session, donation_id) if donation_id is not None else None,
    )


def open_deviation_by_codes(session: DbSession, data: dict[str, Any]) -> Deviation:
    """Open a deviation from a loaded ``DeviationFormIn``: the lot by its number and the
    donation by its DIN, each blank for none; an unknown one is refused against its field."""
    lot = donation = None
    if data.get("lot_number", "").strip():
        try:
            lot = processing.find_lot(session, data["lot_number"])
        except NotFound as error:
            raise NotFound(error.detail, errors={"lot_number": [_("Unknown lot.")]}) from None
    if data.get("din", "").strip():
        try:
            donation = donors.find_donation(session, data["din"])
        except DomainError as error:
            raise InvalidInput(error.detail, errors={"din": [error.detail]}) from None
    return open_deviation_as_user(session, data, lot=lot, donation=donation)


def close_deviation_as_user(
    session: DbSession, deviation_id: int, data: dict[str, Any]
) -> Deviation:
    """QA closes the deviation, signing as the acting user, from a loaded ``DeviationCloseIn``."""
    deviation = deviations.get_deviation(session, deviation_id)
    deviations.close_deviation(
        session,
        deviation,
        resolution=data["resolution"],
        user=acting_user(),
        password=data["password"],
        now=now(),
        zone=site_zone(),
    )
    return deviation


def authorise_excursion_as_user(
    session: DbSession, deviation_id: int, data: dict[str, Any]
) -> Deviation:
    """QA authorises the limit excursion, signing as the acting user, from a loaded
    ``ExcursionAuthoriseIn``."""
    deviation = deviations.get_deviation(session, deviation_id)
    deviations.authorise_excursion(
        session,
        deviation,
        max_passage=data.get("max_passage"),
        max_cumulative_pd=data.get("max_cumulative_pd"),
        justification=data["justification"],
        user=acting_user(),
        password=data["password"],
        now=now(),
    )
    return deviation
