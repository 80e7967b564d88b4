"""API of the chain core: units, custody events, lineage, traces and the scan resolver.

Load → call the command (or, for a read, the service) → dump. No rules here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Response, jsonify, request
from flask_smorest import Blueprint

from cellchain.chain import scanning, service
from cellchain.chain.commands import derive_as_user, record_custody_as_user
from cellchain.chain.models import Unit, UnitEvent
from cellchain.chain.schemas import (
    CustodyIn,
    DeriveIn,
    ScanOut,
    TraceOut,
    UnitDetailOut,
    UnitEventOut,
    UnitOut,
)
from cellchain.core import numbering
from cellchain.core.driver import kept_read
from cellchain.core.roles import Permission
from cellchain.core.schemas import ScanQueryIn
from cellchain.extensions import db
from cellchain.http import bearer_read, now, requires, unit_of_work
from cellchain.traceability.notices import recalls_naming
from cellchain.web.resolve import record_url

units_api = Blueprint(
    "units_api", __name__, url_prefix="/api/v1/units", description="Units, custody and lineage"
)
scan_api = Blueprint("scan_api", __name__, url_prefix="/api/v1", description="Scanning")
blueprints = (units_api, scan_api)


@dataclass(frozen=True)
class UnitDetail:
    """A unit with its relatives and history; reads through to the unit for its own fields."""

    unit: Unit
    parents: list[dict[str, Any]]
    children: list[dict[str, Any]]
    history: list[UnitEvent]
    #: the recalls that name the unit
    recalls: list[Any]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unit, name)


def unit_detail(unit: Unit) -> UnitDetail:
    """The unit with its parents, children and history in order."""
    session = db.session
    return UnitDetail(
        unit=unit,
        parents=[{"unit": u, "operation": op} for u, op in service.parents_of(session, unit)],
        children=[{"unit": u, "operation": op} for u, op in service.children_of(session, unit)],
        history=service.history(session, unit),
        recalls=recalls_naming(session, units=[unit.id]).unit(unit.id),
    )


def scan_by_bearer(token: str) -> Response | None:
    """The scan's answer to a bearer token, authenticated and read in one statement on the
    thread's kept connection in autocommit (``core/driver.kept_read``), no ORM session
    (``chain/scanning.scan_as_bearer``, issue 20); None leaves the request to ``scan`` behind
    the ordinary checks."""
    row = kept_read(
        db.engine,
        scanning.scan_as_bearer,
        token=token,
        code=request.args.get("code"),
        now=now(),
        method=request.method,
    )
    answer = scanning.answer_of(row, record_url(row)) if row is not None else None
    return jsonify(answer) if answer is not None else None


@scan_api.get("/scan")
@bearer_read(Permission.USE_APP, scan_by_bearer)
@scan_api.arguments(ScanQueryIn, location="query")
@scan_api.response(200, ScanOut)
def scan(args: dict[str, Any]) -> Any:
    """Resolve a scanned or typed code to exactly one record, or say what is wrong.

    A unit's code answers with the unit; a DIN with its donation; any code with the page a
    browser would open. A malformed code is 422, a well-formed one never issued here 404.
    """
    # the answer ScanOut would give, from one Core row (chain/scanning.py, issue 20); a code
    # this site never issued, or a unit code naming no unit, takes the ORM path and its error
    row = scanning.read_scanned(db.session, args["code"])
    answer = scanning.answer_of(row, record_url(row)) if row is not None else None
    if answer is not None:
        return jsonify(answer)
    return scan_result(numbering.lookup(db.session, args["code"], options=numbering.with_issuer()))


def scan_result(issued: Any) -> dict[str, Any]:
    """What a scan answers: the issued code, the page it leads to and, for a unit, the unit
    (read once, with what the answer shows of it: issue 20)."""
    unit = (
        service.unit_of_issued(db.session, issued, options=service.shown_with_a_unit())
        if issued.kind == "UNIT"
        else None
    )
    return {**_issued_fields(issued), "url": record_url(issued), "unit": unit}


def _issued_fields(issued: Any) -> dict[str, Any]:
    names = ("code", "kind", "issued_at", "issued_by", "purpose", "entity_type", "entity_id")
    return {name: getattr(issued, name) for name in names}


@units_api.get("/<int:unit_id>")
@requires(Permission.READ_RECORDS)
@units_api.response(200, UnitDetailOut)
def get_unit(unit_id: int) -> Any:
    """One unit: identity, status, location, parents, children and its history in order."""
    return unit_detail(service.get_unit(db.session, unit_id))


@units_api.post("/<int:unit_id>/events")
@requires(Permission.RECORD_CUSTODY)
@units_api.arguments(CustodyIn)
@units_api.response(201, UnitEventOut)
def record_event(data: dict[str, Any], unit_id: int) -> Any:
    """Record a receipt, move, hand-off or scan on the unit (who, where, when, temperature)."""
    with unit_of_work() as session:
        event = record_custody_as_user(session, service.get_unit(session, unit_id), data)
    return event


@units_api.get("/<int:unit_id>/trace/back")
@requires(Permission.READ_RECORDS)
@units_api.response(200, TraceOut)
def trace_back(unit_id: int) -> Any:
    """Every ancestor of the unit back to the donation, nearest first (one recursive query)."""
    unit = service.get_unit(db.session, unit_id)
    return {"start": unit, "direction": "back", "units": service.trace_back(db.session, unit)}


@units_api.get("/<int:unit_id>/trace/forward")
@requires(Permission.READ_RECORDS)
@units_api.response(200, TraceOut)
def trace_forward(unit_id: int) -> Any:
    """Every descendant of the unit, nearest first (one recursive query)."""
    unit = service.get_unit(db.session, unit_id)
    return {"start": unit, "direction": "forward", "units": service.trace_forward(db.session, unit)}


@units_api.post("/derive")
@requires(Permission.PROCESS_UNITS)
@units_api.arguments(DeriveIn)
@units_api.response(201, UnitOut(many=True))
def derive(data: dict[str, Any]) -> Any:
    """Make new units from parents of one donation; refused across donations."""
    with unit_of_work() as session:
        children = derive_as_user(session, data)
    return children
