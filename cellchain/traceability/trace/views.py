"""Pages of traces: trace forward and back from any record. The routes are on the
``traceability`` blueprint, shared with the recall pages."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from cellchain.chain.models import UNIT_STATUS_NAMES
from cellchain.core.read_replica import reads
from cellchain.core.roles import Permission
from cellchain.http import requires
from cellchain.traceability.models import RECALL_LABELS, RecallTarget
from cellchain.traceability.pages import blueprint
from cellchain.traceability.trace import trace


@blueprint.get("/trace/forward/<string:kind>/<int:record_id>")
@requires(Permission.READ_RECORDS)
def trace_forward(kind: str, record_id: int) -> ResponseReturnValue:
    forward = trace.trace_forward(reads(), kind, record_id)
    return render_template(
        "traceability/trace/forward.html",
        forward=forward,
        counts=forward.count_by_status(),
        recall_target=kind if kind in {t.value for t in RecallTarget} else None,
        recalls=trace.recalls_of(reads(), forward),
        status_names=UNIT_STATUS_NAMES,
        recall_targets=RECALL_LABELS,
    )


@blueprint.get("/trace/back/<string:kind>/<int:record_id>")
@requires(Permission.READ_RECORDS)
def trace_back(kind: str, record_id: int) -> ResponseReturnValue:
    return render_template(
        "traceability/trace/back.html", back=trace.trace_back(reads(), kind, record_id)
    )
