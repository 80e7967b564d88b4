"""Acting-user glue of shipments, shared by the API and the pages: the loaded input, the acting
user, the time and the site's zone from the request, then the service."""

from __future__ import annotations

from typing import Any

from cellchain.clinic.models import Shipment
from cellchain.clinic.shipments import shipments
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone


def dispatch_as_user(session: DbSession, data: dict[str, Any]) -> Shipment:
    return shipments.dispatch(
        session,
        shipments.Dispatch(
            shipper_id=data["shipper_id"],
            logger_id=data["logger_id"],
            destination=data.get("destination") or "",
            courier=data["courier"],
            dose_scans=data["doses"],
            site_id=data.get("site_id"),
        ),
        actor=acting_user(),
        now=now(),
    )


def hand_off_as_user(session: DbSession, shipment_id: int, data: dict[str, Any]) -> Shipment:
    shipment = shipments.get_shipment(session, shipment_id)
    shipments.hand_off(session, shipment, shipments.HandOff(**data), actor=acting_user(), now=now())
    return shipment


def receive_as_user(session: DbSession, shipment_id: int, data: dict[str, Any]) -> Shipment:
    shipment = shipments.get_shipment(session, shipment_id)
    return shipments.receive(
        session,
        shipment,
        shipments.Receipt(**data),
        actor=acting_user(),
        now=now(),
        zone=site_zone(),
    )


def decide_as_user(session: DbSession, shipment_id: int, data: dict[str, Any]) -> Shipment:
    return shipments.decide_hold(
        session,
        shipments.get_shipment(session, shipment_id),
        accept=data["accept"],
        reason=data["reason"],
        user=acting_user(),
        password=data["password"],
        now=now(),
    )
