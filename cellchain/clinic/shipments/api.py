"""API of shipments to the clinic, for clinic systems: dispatch, hand-offs, receipt, QA's
decision on a held shipment."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.clinic.models import ShipmentStatus
from cellchain.clinic.shipments import shipments
from cellchain.clinic.shipments.commands import (
    decide_as_user,
    dispatch_as_user,
    hand_off_as_user,
    receive_as_user,
)
from cellchain.clinic.shipments.schemas import (
    DecisionIn,
    DispatchIn,
    HandOffIn,
    ShipmentDetailOut,
    ShipmentOut,
    ShipmentQueryIn,
    ShipmentReceiptIn,
)
from cellchain.core.listing import PageRequest
from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import AuditedRefusal, requires, unit_of_work
from cellchain.traceability.notices import WithRecalls, recalls_naming
from cellchain.web.listing import PAGINATION_HEADERS, paged

shipments_api = Blueprint(
    "shipments_api", __name__, url_prefix="/api/v1", description="Shipments to the clinic"
)
blueprints = (shipments_api,)


@shipments_api.get("/shipments")
@requires(Permission.READ_RECORDS)
@shipments_api.arguments(ShipmentQueryIn, location="query")
@shipments_api.response(200, ShipmentOut(many=True), headers=PAGINATION_HEADERS)
def list_shipments(args: dict[str, Any]) -> Any:
    """Shipments, newest first, a page at a time (100 by default; the ``X-Pagination``
    header), ``status`` to filter, ``q`` to search the shipper and logger IDs, destination
    and study IDs; each with the recalls that name its doses."""
    status = ShipmentStatus(args["status"]) if "status" in args else None
    page = shipments.shipments_page(db.session, PageRequest.of(args), status=status)
    found = page.items
    named = recalls_naming(db.session, doses=[i.dose_order_id for s in found for i in s.items])
    return paged(
        page, [WithRecalls(s, named.of_doses(i.dose_order_id for i in s.items)) for s in found]
    )


@shipments_api.post("/shipments")
@requires(Permission.SHIP_DOSES)
@shipments_api.arguments(DispatchIn)
@shipments_api.response(201, ShipmentOut)
def dispatch(data: dict[str, Any]) -> Any:
    """Dispatch prepared doses (scanned dose labels) in a dry shipper, handed to the courier."""
    with unit_of_work(AuditedRefusal("shipment.dispatch_refused", "shipment", "new")) as session:
        shipment = dispatch_as_user(session, data)
    return shipment


@shipments_api.get("/shipments/<int:shipment_id>")
@requires(Permission.READ_RECORDS)
@shipments_api.response(200, ShipmentDetailOut)
def get_shipment(shipment_id: int) -> Any:
    """One shipment, with the recalls that name its doses."""
    shipment = shipments.get_shipment(db.session, shipment_id)
    doses = [item.dose_order_id for item in shipment.items]
    return WithRecalls(shipment, recalls_naming(db.session, doses=doses).all())


@shipments_api.post("/shipments/<int:shipment_id>/hand-offs")
@requires(Permission.RECORD_CUSTODY)
@shipments_api.arguments(HandOffIn)
@shipments_api.response(201, ShipmentOut)
def hand_off(data: dict[str, Any], shipment_id: int) -> Any:
    """A hand-off on the way: the shipper (or a dose label) scanned, who took custody."""
    with unit_of_work(
        AuditedRefusal("shipment.hand_off_refused", "shipment", shipment_id)
    ) as session:
        shipment = hand_off_as_user(session, shipment_id, data)
    return shipment


@shipments_api.post("/shipments/<int:shipment_id>/receipt")
@requires(Permission.RECEIVE_SHIPMENTS)
@shipments_api.arguments(ShipmentReceiptIn)
@shipments_api.response(200, ShipmentOut)
def receive(data: dict[str, Any], shipment_id: int) -> Any:
    """Receive at the clinic; an excursion, damage or logger alarm holds it for QA (409 if it
    was already received)."""
    with unit_of_work(
        AuditedRefusal("shipment.receipt_refused", "shipment", shipment_id)
    ) as session:
        shipment = receive_as_user(session, shipment_id, data)
    return shipment


@shipments_api.post("/shipments/<int:shipment_id>/decision")
@requires(Permission.DECIDE_HOLDS)
@shipments_api.arguments(DecisionIn)
@shipments_api.response(200, ShipmentOut)
def decide(data: dict[str, Any], shipment_id: int) -> Any:
    """QA accepts or rejects a held shipment with an e-signature and a reason."""
    with unit_of_work(
        AuditedRefusal("shipment.decision_refused", "shipment", shipment_id)
    ) as session:
        shipment = decide_as_user(session, shipment_id, data)
    return shipment
