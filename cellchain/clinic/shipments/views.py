"""Pages of shipments: dispatch from the lab, hand-offs, receipt at the clinic, QA's decision
on a held shipment."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from cellchain.chain import service as chain
from cellchain.clinic.bedside.doses import units_of_dose
from cellchain.clinic.models import Condition, Shipment, ShipmentStatus
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
    ShipmentQueryIn,
    ShipmentReceiptIn,
)
from cellchain.core import signatures
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.roles import Permission
from cellchain.errors import DomainError
from cellchain.extensions import db
from cellchain.http import AuditedRefusal, requires, unit_of_work
from cellchain.sites.service import active_clinical_sites
from cellchain.traceability.notices import recalls_naming
from cellchain.web.forms import load_form, refusal_context
from cellchain.web.listing import page_request
from cellchain.web.resolve import register_record_page

blueprint = Blueprint("shipments", __name__)

register_record_page(
    "shipment", lambda entity_id: url_for("shipments.shipment", shipment_id=entity_id)
)


@blueprint.get("/shipments")
@requires(Permission.READ_RECORDS)
def shipment_list() -> ResponseReturnValue:
    return _list_page()


@blueprint.post("/shipments")
@requires(Permission.SHIP_DOSES)
def dispatch() -> ResponseReturnValue:
    form = MultiDict(request.form)
    form.setlist("doses", [line for line in form.get("doses", "").splitlines() if line.strip()])
    try:
        data = load_form(DispatchIn(), form, lists=("doses",))
        with unit_of_work(
            AuditedRefusal("shipment.dispatch_refused", "shipment", "new")
        ) as session:
            shipment = dispatch_as_user(session, data)
            shipment_id = shipment.id
    except DomainError as error:
        return _list_page(error)
    flash(
        _(
            "Shipment %(shipment)s dispatched: the doses are with the courier.",
            shipment=shipment_id,
        ),
        "success",
    )
    return redirect(url_for("shipments.shipment", shipment_id=shipment_id))


@blueprint.get("/shipments/<int:shipment_id>")
@requires(Permission.READ_RECORDS)
def shipment(shipment_id: int) -> ResponseReturnValue:
    return _shipment_page(shipments.get_shipment(db.session, shipment_id))


@blueprint.post("/shipments/<int:shipment_id>/hand-offs")
@requires(Permission.RECORD_CUSTODY)
def hand_off(shipment_id: int) -> ResponseReturnValue:
    return _act(
        shipment_id,
        "hand_off",
        HandOffIn(),
        hand_off_as_user,
        lazy("Hand-off recorded."),
        "shipment.hand_off_refused",
    )


@blueprint.post("/shipments/<int:shipment_id>/receipt")
@requires(Permission.RECEIVE_SHIPMENTS)
def receive(shipment_id: int) -> ResponseReturnValue:
    form = MultiDict(request.form)
    form["logger_excursion"] = "true" if form.get("logger_excursion") else "false"
    return _act(
        shipment_id,
        "receipt",
        ShipmentReceiptIn(),
        receive_as_user,
        None,
        "shipment.receipt_refused",
        form=form,
    )


@blueprint.post("/shipments/<int:shipment_id>/decision")
@requires(Permission.DECIDE_HOLDS)
def decide(shipment_id: int) -> ResponseReturnValue:
    return _act(
        shipment_id,
        "decision",
        DecisionIn(),
        decide_as_user,
        lazy("Decision signed."),
        "shipment.decision_refused",
    )


def _destroyed_note(shipment: Any) -> str:
    """Names the doses of the shipment destroyed before it arrived: their bags are not stock."""
    gone = [
        item.dose_order.dose_unit.code
        for item in shipment.items
        if item.dose_order.status == "cancelled" and item.dose_order.dose_unit is not None
    ]
    if not gone or shipment.status not in ("received", "held"):
        return ""
    return " " + _(
        "Destroyed before arrival, not received: %(units)s; return them for disposal.",
        units=", ".join(gone),
    )


def _act(
    shipment_id: int,
    which: str,
    schema: Any,
    use_case: Any,
    message: LazyText | None,
    refusal: str,
    *,
    form: MultiDict[str, str] | None = None,
) -> ResponseReturnValue:
    shipments.get_shipment(db.session, shipment_id)
    try:
        data = load_form(schema, form if form is not None else request.form)
        with unit_of_work(AuditedRefusal(refusal, "shipment", shipment_id)) as session:
            done = use_case(session, shipment_id, data)
            text = (
                str(message)
                if message is not None
                else _(
                    "Shipment %(shipment)s received and HELD for QA: %(reason)s",
                    shipment=shipment_id,
                    reason=done.hold_reason_shown,
                )
                if done.status == "held"
                else _(
                    "Shipment %(shipment)s received at %(destination)s.",
                    shipment=shipment_id,
                    destination=done.destination,
                )
            ) + _destroyed_note(done)
            category = "error" if done.status == "held" else "success"
    except DomainError as error:
        return _shipment_page(shipments.get_shipment(db.session, shipment_id), error, which)
    flash(text, category)
    return redirect(url_for("shipments.shipment", shipment_id=shipment_id))


def _list_page(error: DomainError | None = None) -> ResponseReturnValue:
    ready = shipments.ready_to_ship(db.session)
    query, page_asked, notes = page_request(ShipmentQueryIn(), request.args)
    status = ShipmentStatus(query["status"]) if "status" in query else None
    page = shipments.shipments_page(db.session, page_asked, status=status)
    listed = page.items
    doses = [o.id for o in ready] + [i.dose_order_id for s in listed for i in s.items]
    return (
        render_template(
            "clinic/shipments/shipments.html",
            **refusal_context(
                error,
                shipments=listed,
                page=page,
                notes=notes,
                status_options=[(status.value, status.label) for status in ShipmentStatus],
                ready=ready,
                destinations=active_clinical_sites(db.session),
                labels_missing=shipments.labels_missing(db.session, ready),
                recalls=recalls_naming(db.session, doses=doses),
            ),
        ),
        error.status if error else 200,
    )


def _shipment_page(
    shipment: Shipment, error: DomainError | None = None, which: str | None = None
) -> ResponseReturnValue:
    units = [unit for item in shipment.items for unit in units_of_dose(item.dose_order)]
    events = sorted(
        (event for unit in units for event in chain.history(db.session, unit)),
        key=lambda event: (event.at, event.id),
    )
    return (
        render_template(
            "clinic/shipments/shipment.html",
            **refusal_context(
                error,
                shipment=shipment,
                actions=shipments.shipment_actions(shipment),
                which=which,
                units=units,
                events=events,
                conditions=[{"value": c.value, "label": c.label} for c in Condition],
                limit=shipments.storage_limit(db.session, shipment),
                manifests=signatures.manifest(db.session, shipment),
                recalls=recalls_naming(
                    db.session, doses=[item.dose_order_id for item in shipment.items]
                ),
            ),
        ),
        error.status if error else 200,
    )
