"""Pages of the chain core: the unit page (identity, lineage, history, traces) and custody."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from cellchain.chain import service, unit_list
from cellchain.chain.commands import record_custody_as_user
from cellchain.chain.models import (
    CUSTODY_EVENTS,
    EVENT_NAMES,
    OPERATION_NAMES,
    UNIT_KIND_NAMES,
    UNIT_STATUS_NAMES,
    Unit,
    UnitKind,
    UnitStatus,
)
from cellchain.chain.schemas import CustodyIn, UnitQueryIn
from cellchain.core.i18n import _
from cellchain.core.identifiers import parse_identifier
from cellchain.core.roles import Permission
from cellchain.errors import DomainError, NotFound
from cellchain.extensions import db
from cellchain.http import requires, unit_of_work
from cellchain.traceability.notices import recalls_naming
from cellchain.web.forms import load_form
from cellchain.web.listing import page_request
from cellchain.web.resolve import register_record_page

blueprint = Blueprint("chain", __name__)

register_record_page("unit", lambda entity_id: url_for("chain.unit", unit_id=entity_id))


def _unit_page(unit: Unit, error: DomainError | None = None) -> str:
    session = db.session
    return render_template(
        "chain/unit.html",
        unit=unit,
        actions=service.unit_actions(unit),
        display=parse_identifier(unit.code).display,
        parents=service.parents_of(session, unit),
        children=service.children_of(session, unit),
        history=service.history(session, unit),
        back=service.trace_back(session, unit),
        forward=service.trace_forward(session, unit),
        recalls=recalls_naming(session, units=[unit.id]).unit(unit.id),
        custody_events=[
            {"value": ev.value, "label": str(EVENT_NAMES[ev])} for ev in CUSTODY_EVENTS
        ],
        operation_names=OPERATION_NAMES,
        form={k: v for k, v in request.form.items() if k != "csrf_token"} if error else {},
        error=error.detail if error else None,
        errors=error.errors if error else {},
    )


@blueprint.get("/units")
@requires(Permission.READ_RECORDS)
def units() -> ResponseReturnValue:
    """Every unit of the site, newest first, searched by code, DIN or lot, filtered by kind
    and status (``core.listing``: a bad value is dropped with a note)."""
    query, page_asked, notes = page_request(UnitQueryIn(), request.args)
    page = unit_list.units_page(
        db.session,
        page_asked,
        kind=UnitKind(query["kind"]) if "kind" in query else None,
        status=UnitStatus(query["status"]) if "status" in query else None,
    )
    return render_template(
        "chain/units.html",
        units=page.items,
        page=page,
        notes=notes,
        kind_options=[(kind.value, str(UNIT_KIND_NAMES[kind])) for kind in UnitKind],
        status_options=[(status.value, str(UNIT_STATUS_NAMES[status])) for status in UnitStatus],
    )


@blueprint.get("/units/<int:unit_id>")
@requires(Permission.READ_RECORDS)
def unit(unit_id: int) -> ResponseReturnValue:
    return _unit_page(service.get_unit(db.session, unit_id))


@blueprint.post("/units/<int:unit_id>/events")
@requires(Permission.RECORD_CUSTODY)
def record_event(unit_id: int) -> ResponseReturnValue:
    service.get_unit(db.session, unit_id)  # 404 before anything else
    try:
        data: dict[str, Any] = load_form(CustodyIn(), request.form)
        with unit_of_work() as session:
            record_custody_as_user(session, service.get_unit(session, unit_id), data)
    except NotFound:
        raise
    except DomainError as error:
        db.session.rollback()
        return _unit_page(service.get_unit(db.session, unit_id), error), error.status
    flash(_("Recorded: %(event)s.", event=str(EVENT_NAMES[data["event_type"]])), "success")
    return redirect(url_for("chain.unit", unit_id=unit_id))
