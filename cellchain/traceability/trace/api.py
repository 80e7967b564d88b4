"""API of traces. Load → call the service → dump. No rules here."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Response
from flask_smorest import Blueprint

from cellchain.core.read_replica import reads
from cellchain.core.roles import Permission
from cellchain.http import requires, return_freed_memory
from cellchain.traceability.trace import trace
from cellchain.traceability.trace.schemas import BackTraceOut, ForwardTraceOut, forward_answer

trace_api = Blueprint(
    "trace_api", __name__, url_prefix="/api/v1/trace", description="Trace forward and back"
)
blueprints = (trace_api,)

#: a forward answer of this many units or more gives the memory it freed back to the system
#: once sent (``http.return_freed_memory``)
RETURN_MEMORY_FROM_UNITS = 1_000


def _gc_paused(view: Callable[..., Any]) -> Callable[..., Any]:
    """The view, its answer's dump and its JSON made without garbage collection: a trace
    from a reagent lot dumps tens of thousands of units, and the collections their dicts set
    off took half the dump's time (issue 20; ``trace.gc_paused``)."""

    @functools.wraps(view)
    def paused(*args: Any, **kwargs: Any) -> Any:
        with trace.gc_paused():
            return view(*args, **kwargs)

    return paused


@trace_api.get("/forward/<string:kind>/<int:record_id>")
@requires(Permission.READ_RECORDS)
@_gc_paused
@trace_api.response(200, ForwardTraceOut)
def forward(kind: str, record_id: int) -> Any:
    """Every unit made from a donation, lot, unit, material lot or piece of equipment (``kind``),
    with status and location, every dose order and infusion of them, and every patient."""
    forward = trace.trace_forward(reads(), kind, record_id)
    # written as it is sent, what ``ForwardTraceOut`` dumps (``schemas.forward_answer``)
    answer = forward_answer(trace.with_recalls(forward, trace.recalls_of(reads(), forward)))
    if isinstance(answer, Response) and len(forward.units) >= RETURN_MEMORY_FROM_UNITS:
        answer.call_on_close(return_freed_memory)
    return answer


@trace_api.get("/back/<string:kind>/<int:record_id>")
@requires(Permission.READ_RECORDS)
@trace_api.response(200, BackTraceOut)
def back(kind: str, record_id: int) -> Any:
    """The path from a unit, dose or infusion (``kind``) back to the donation and the donor's
    eligibility: steps, materials, equipment, release, custody, bedside checks, signatures."""
    return trace.trace_back(reads(), kind, record_id)
