"""API of LN2 storage, tank readings and deviations, and the schemas their bodies and the
pages' forms are loaded with.

Load → call the service → dump. No rules here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint
from marshmallow import validate

from cellchain.chain import service as chain
from cellchain.chain.schemas import UnitOut
from cellchain.core import signatures
from cellchain.core.roles import Permission
from cellchain.core.schemas import SignatureOut, SiteDateTime
from cellchain.core.signatures import SignatureManifest
from cellchain.donors import service as donors
from cellchain.extensions import db
from cellchain.http import acting_user, now, requires, unit_of_work
from cellchain.manufacturing import deviations, processing, resources, storage
from cellchain.manufacturing.deviations import DeviationStatus
from cellchain.manufacturing.models import Deviation, DeviationCategory, Equipment

storage_api = Blueprint(
    "storage_api", __name__, url_prefix="/api/v1/storage", description="LN2 storage"
)
deviations_api = Blueprint(
    "deviations_api", __name__, url_prefix="/api/v1/deviations", description="Deviations"
)
blueprints = (storage_api, deviations_api)

CATEGORY_CHOICES = [category.value for category in DeviationCategory]
STATUS_CHOICES = [status.value for status in DeviationStatus]


# --- input schemas (the API's bodies and the pages' forms) -------------------------------------


class PlacementIn(ma.Schema):
    """Where in the tank: rack, box and slot as printed on them, and when (now if absent)."""

    rack = ma.fields.String(required=True, validate=validate.Length(min=1, max=20))
    box = ma.fields.String(required=True, validate=validate.Length(min=1, max=20))
    slot = ma.fields.String(required=True, validate=validate.Length(min=1, max=20))
    at = SiteDateTime(
        metadata={"description": "When it was put there; now if absent. No offset: site time."}
    )


class StoreIn(PlacementIn):
    """Store the unit of the URL in a slot of a tank (moving it if it is stored elsewhere)."""

    tank_id = ma.fields.Integer(required=True, strict=True)


class StoreScanIn(PlacementIn):
    """The page's form: the unit is scanned (its code typed by the scanner)."""

    code = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "The unit's code as scanned"},
    )


class ReadingIn(ma.Schema):
    temperature_c = ma.fields.Float(required=True, allow_nan=False)
    at = SiteDateTime(
        metadata={"description": "When the tank was read; now if absent. No offset: site time."}
    )


class DeviationBaseIn(ma.Schema):
    category = ma.fields.String(required=True, validate=validate.OneOf(CATEGORY_CHOICES))
    description = ma.fields.String(
        required=True, validate=validate.Length(min=1, max=deviations.MAX_TEXT)
    )


class DeviationOpenIn(DeviationBaseIn):
    lot_id = ma.fields.Integer(
        strict=True, allow_none=True, metadata={"description": "The lot concerned, if any"}
    )
    donation_id = ma.fields.Integer(
        strict=True,
        allow_none=True,
        metadata={
            "description": "The donation concerned, when there is no lot yet (required for a "
            "limit excursion without a lot)"
        },
    )


class DeviationFormIn(DeviationBaseIn):
    """The page's form names the lot by its number, or the donation by its DIN (optional)."""

    lot_number = ma.fields.String(validate=validate.Length(max=40))
    din = ma.fields.String(validate=validate.Length(max=40))


class ExcursionAuthoriseIn(ma.Schema):
    """QA authorises a limit excursion: up to which passage and/or CPD, and why."""

    max_passage = ma.fields.Integer(
        allow_none=True, metadata={"description": "Highest passage allowed (P number)"}
    )
    max_cumulative_pd = ma.fields.Float(
        allow_none=True, allow_nan=False, metadata={"description": "Highest CPD allowed"}
    )
    justification = ma.fields.String(
        required=True, validate=validate.Length(min=1, max=deviations.MAX_TEXT)
    )
    password = ma.fields.String(required=True, load_only=True)


class DeviationCloseIn(ma.Schema):
    resolution = ma.fields.String(
        required=True, validate=validate.Length(min=1, max=deviations.MAX_TEXT)
    )
    password = ma.fields.String(required=True, load_only=True)


class DeviationQueryIn(ma.Schema):
    status = ma.fields.String(validate=validate.OneOf(STATUS_CHOICES))


# --- output schemas -----------------------------------------------------------------------------

#: How the OpenAPI document describes a computed text field that may be null.
NULLABLE_TEXT = {"type": "string", "nullable": True}


class ReadingOut(ma.Schema):
    id = ma.fields.Integer()
    tank_id = ma.fields.Integer()
    at = ma.fields.AwareDateTime()
    temperature_c = ma.fields.Float()
    recorded_at = ma.fields.AwareDateTime()
    recorded_by_id = ma.fields.Integer(allow_none=True)


class TankOut(ma.Schema):
    id = ma.fields.Integer()
    code = ma.fields.String()
    name = ma.fields.String()
    active = ma.fields.Boolean()
    occupied = ma.fields.Integer(metadata={"description": "Slots holding a unit"})
    last_reading = ma.fields.Nested(ReadingOut, allow_none=True)


class PositionOut(ma.Schema):
    id = ma.fields.Integer()
    tank_id = ma.fields.Integer()
    tank = ma.fields.String(attribute="tank.code")
    rack = ma.fields.String()
    box = ma.fields.String()
    slot = ma.fields.String()
    label = ma.fields.String()
    since = ma.fields.AwareDateTime(allow_none=True)
    unit = ma.fields.Nested(UnitOut, allow_none=True)
    lot_number = ma.fields.String(allow_none=True)


class TankDetailOut(TankOut):
    positions = ma.fields.List(ma.fields.Nested(PositionOut))
    readings = ma.fields.List(
        ma.fields.Nested(ReadingOut), metadata={"description": "Latest first"}
    )


class DeviationOut(ma.Schema):
    id = ma.fields.Integer()
    lot_id = ma.fields.Integer(allow_none=True)
    lot_number = ma.fields.Function(
        lambda d: d.lot.lot_number if d.lot else None, metadata=NULLABLE_TEXT
    )
    donation_id = ma.fields.Integer(allow_none=True)
    category = ma.fields.String()
    description = ma.fields.String()
    status = ma.fields.String()
    opened_at = ma.fields.AwareDateTime()
    opened_by = ma.fields.Function(
        lambda d: d.opened_by.username if d.opened_by else None, metadata=NULLABLE_TEXT
    )
    closed_at = ma.fields.AwareDateTime(allow_none=True)
    closed_by = ma.fields.Function(
        lambda d: d.closed_by.username if d.closed_by else None, metadata=NULLABLE_TEXT
    )
    resolution = ma.fields.String(allow_none=True)


class ExcursionAuthorisationOut(ma.Schema):
    id = ma.fields.Integer()
    max_passage = ma.fields.Integer(allow_none=True)
    max_cumulative_pd = ma.fields.Float(allow_none=True)
    justification = ma.fields.String()
    authorised_at = ma.fields.AwareDateTime()
    authorised_by = ma.fields.String(attribute="authorised_by.username")
    signatures = ma.fields.List(ma.fields.Nested(SignatureOut))


class DeviationDetailOut(DeviationOut):
    signatures = ma.fields.List(ma.fields.Nested(SignatureOut))
    authorisation = ma.fields.Nested(
        ExcursionAuthorisationOut,
        allow_none=True,
        metadata={"description": "QA's signed authorisation of a limit excursion, if any"},
    )


class ReadingResultOut(ma.Schema):
    reading = ma.fields.Nested(ReadingOut)
    deviations = ma.fields.List(
        ma.fields.Nested(DeviationOut), metadata={"description": "Opened by this reading"}
    )


# --- what the endpoints return ------------------------------------------------------------------


def position_out(position: Any, lot_number: str | None = None) -> dict[str, Any]:
    return {
        **{name: getattr(position, name) for name in ("id", "tank_id", "rack", "box", "slot")},
        "tank": position.tank,
        "label": position.label,
        "since": position.since,
        "unit": position.unit,
        "lot_number": lot_number,
    }


def tank_out(summary: storage.TankSummary) -> dict[str, Any]:
    tank = summary.tank
    return {
        **{name: getattr(tank, name) for name in ("id", "code", "name", "active")},
        "occupied": summary.occupied,
        "last_reading": summary.last_reading,
    }


def tank_detail(tank: Equipment) -> dict[str, Any]:
    session = db.session
    positions = storage.tank_contents(session, tank)
    lots = storage.lots_of_units(session, [p.unit for p in positions if p.unit])
    readings = storage.readings_of(session, tank)
    return {
        **{name: getattr(tank, name) for name in ("id", "code", "name", "active")},
        "occupied": len(positions),
        "last_reading": readings[0] if readings else None,
        "positions": [
            position_out(p, lots[p.unit_id].lot_number if p.unit_id in lots else None)
            for p in positions
        ],
        "readings": readings,
    }


@dataclass(frozen=True)
class DeviationDetail:
    """A deviation with its signatures (and those of its authorisation, if any); reads
    through to the deviation for its own fields."""

    deviation: Deviation
    signatures: list[SignatureManifest]
    authorisation: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.deviation, name)


def deviation_detail(deviation: Deviation) -> DeviationDetail:
    found = deviation.authorisation
    authorisation = (
        {
            **{
                name: getattr(found, name)
                for name in ("id", "max_passage", "max_cumulative_pd", "justification")
            },
            "authorised_at": found.authorised_at,
            "authorised_by": found.authorised_by,
            "signatures": signatures.manifest(db.session, found),
        }
        if found is not None
        else None
    )
    return DeviationDetail(deviation, signatures.manifest(db.session, deviation), authorisation)


# --- storage ------------------------------------------------------------------------------------


@storage_api.get("/tanks")
@requires(Permission.READ_RECORDS)
@storage_api.response(200, TankOut(many=True))
def list_tanks() -> Any:
    """Every LN2 tank with the number of occupied slots and its latest reading."""
    return [tank_out(summary) for summary in storage.list_tanks(db.session)]


@storage_api.get("/tanks/<int:tank_id>")
@requires(Permission.READ_RECORDS)
@storage_api.response(200, TankDetailOut)
def get_tank(tank_id: int) -> Any:
    """One tank: its occupied positions with their units and lots, and its latest readings."""
    return tank_detail(storage.get_tank(db.session, tank_id))


@storage_api.post("/units/<int:unit_id>")
@requires(Permission.RECORD_STORAGE)
@storage_api.arguments(StoreIn)
@storage_api.response(201, PositionOut)
def store_unit(data: dict[str, Any], unit_id: int) -> Any:
    """Put a cryobag or cell-bank vial into a slot (moving it if it is stored elsewhere).

    An occupied slot is 409, naming the unit in it. The placement is a custody event
    (``moved``) on the unit.
    """
    with unit_of_work() as session:
        unit = chain.get_unit(session, unit_id)
        position = storage.store_unit(
            session,
            unit,
            tank=resources.get_equipment(session, data["tank_id"]),
            rack=data["rack"],
            box=data["box"],
            slot=data["slot"],
            at=data.get("at"),
            actor=acting_user(),
            now=now(),
        )
        lot = storage.lots_of_units(session, [unit]).get(unit.id)
        body = position_out(position, lot.lot_number if lot else None)
    return body


@storage_api.post("/tanks/<int:tank_id>/readings")
@requires(Permission.RECORD_STORAGE)
@storage_api.arguments(ReadingIn)
@storage_api.response(201, ReadingResultOut)
def record_reading(data: dict[str, Any], tank_id: int) -> Any:
    """Record a temperature reading. Above the storage limit, a storage-excursion deviation is
    opened on every lot with a bag in the tank at that time; they are returned."""
    with unit_of_work() as session:
        outcome = storage.record_tank_reading(
            session,
            storage.get_tank(session, tank_id),
            temperature_c=data["temperature_c"],
            at=data.get("at"),
            actor=acting_user(),
            now=now(),
        )
    return outcome


# --- deviations ---------------------------------------------------------------------------------


@deviations_api.get("")
@requires(Permission.READ_RECORDS)
@deviations_api.arguments(DeviationQueryIn, location="query")
@deviations_api.response(200, DeviationOut(many=True))
def list_deviations(args: dict[str, Any]) -> Any:
    """Deviations, newest first; ``status=open`` or ``closed`` to filter."""
    return deviations.list_deviations(db.session, args.get("status"))


@deviations_api.post("")
@requires(Permission.OPEN_DEVIATIONS)
@deviations_api.arguments(DeviationOpenIn)
@deviations_api.response(201, DeviationDetailOut)
def open_deviation(data: dict[str, Any]) -> Any:
    """Open a deviation, against a lot or none; an open deviation blocks the lot's release."""
    with unit_of_work() as session:
        lot_id, donation_id = data.get("lot_id"), data.get("donation_id")
        deviation = deviations.open_deviation(
            session,
            lot=processing.get_lot(session, lot_id) if lot_id is not None else None,
            donation=(
                donors.get_donation(session, donation_id) if donation_id is not None else None
            ),
            category=data["category"],
            description=data["description"],
            actor=acting_user(),
            now=now(),
        )
    return deviation_detail(deviation)


@deviations_api.get("/<int:deviation_id>")
@requires(Permission.READ_RECORDS)
@deviations_api.response(200, DeviationDetailOut)
def get_deviation(deviation_id: int) -> Any:
    """One deviation with its closing signature, checked against the deviation as it is now."""
    return deviation_detail(deviations.get_deviation(db.session, deviation_id))


@deviations_api.post("/<int:deviation_id>/close")
@requires(Permission.CLOSE_DEVIATIONS)
@deviations_api.arguments(DeviationCloseIn)
@deviations_api.response(200, DeviationDetailOut)
def close_deviation(data: dict[str, Any], deviation_id: int) -> Any:
    """QA closes the deviation with a resolution, signing with their password."""
    with unit_of_work() as session:
        deviation = deviations.get_deviation(session, deviation_id)
        deviations.close_deviation(
            session,
            deviation,
            resolution=data["resolution"],
            user=acting_user(),
            password=data["password"],
            now=now(),
        )
    return deviation_detail(deviation)


@deviations_api.post("/<int:deviation_id>/authorise")
@requires(Permission.CLOSE_DEVIATIONS)
@deviations_api.arguments(ExcursionAuthoriseIn)
@deviations_api.response(200, DeviationDetailOut)
def authorise_excursion(data: dict[str, Any], deviation_id: int) -> Any:
    """QA authorises a limit excursion (up to ``max_passage`` and/or ``max_cumulative_pd``,
    with a justification), signing with their password. Steps beyond the product's limits
    name this deviation; the lot's release stays blocked by its limit flags."""
    with unit_of_work() as session:
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
    return deviation_detail(deviation)
