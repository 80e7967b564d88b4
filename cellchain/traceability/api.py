"""API of traces and recalls. Load → call the service → dump. No rules here."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core.roles import Permission
from cellchain.extensions import DbSession, db
from cellchain.http import AuditedRefusal, acting_user, now, requires, unit_of_work
from cellchain.traceability import recalls, trace
from cellchain.traceability.models import RecallNotification, RecallTarget
from cellchain.traceability.schemas import (
    BackTraceOut,
    ForwardTraceOut,
    NotificationIn,
    RecallCloseIn,
    RecallDetailOut,
    RecallOpenIn,
    RecallOut,
)

trace_api = Blueprint(
    "trace_api", __name__, url_prefix="/api/v1/trace", description="Trace forward and back"
)
recalls_api = Blueprint(
    "recalls_api", __name__, url_prefix="/api/v1/recalls", description="Recalls and lookback"
)
blueprints = (trace_api, recalls_api)


@trace_api.get("/forward/<string:kind>/<int:record_id>")
@requires(Permission.READ_RECORDS)
@trace_api.response(200, ForwardTraceOut)
def forward(kind: str, record_id: int) -> Any:
    """Every unit made from a donation, lot, unit, material lot or piece of equipment (``kind``),
    with status and location, every dose order and infusion of them, and every patient."""
    return trace.trace_forward(db.session, kind, record_id)


@trace_api.get("/back/<string:kind>/<int:record_id>")
@requires(Permission.READ_RECORDS)
@trace_api.response(200, BackTraceOut)
def back(kind: str, record_id: int) -> Any:
    """The path from a unit, dose or infusion (``kind``) back to the donation and the donor's
    eligibility: steps, materials, equipment, release, custody, bedside checks, signatures."""
    return trace.trace_back(db.session, kind, record_id)


@recalls_api.get("")
@requires(Permission.READ_RECORDS)
@recalls_api.response(200, RecallOut(many=True))
def recall_list() -> Any:
    """Every recall, open ones first."""
    return recalls.list_recalls(db.session)


def open_as_user(session: DbSession, data: dict[str, Any]) -> recalls.OpenedRecall:
    """Open a recall from loaded ``RecallOpenIn`` data (the page and the API)."""
    return recalls.open_recall(
        session,
        target=RecallTarget(data["target_type"]),
        target_id=data["target_id"],
        reason=data["reason"],
        user=acting_user(),
        password=data["password"],
        now=now(),
    )


def notify_as_user(
    session: DbSession, recall_id: int, patient_id: int, data: dict[str, Any]
) -> RecallNotification:
    """Record a notification from loaded ``NotificationIn`` data (the page and the API)."""
    recall = recalls.get_recall(session, recall_id)
    return recalls.record_notification(
        session,
        recalls.get_notification(session, recall, patient_id),
        notified_at=data["notified_at"],
        method=data["method"],
        note=data["note"],
        actor=acting_user(),
        now=now(),
    )


def close_as_user(session: DbSession, recall_id: int, data: dict[str, Any]) -> Any:
    """Close a recall from loaded ``RecallCloseIn`` data (the page and the API)."""
    return recalls.close_recall(
        session,
        recalls.get_recall(session, recall_id),
        note=data["note"],
        user=acting_user(),
        password=data["password"],
        now=now(),
    )


@recalls_api.post("")
@requires(Permission.MANAGE_RECALLS)
@recalls_api.arguments(RecallOpenIn)
@recalls_api.response(201, RecallDetailOut)
def open_recall(data: dict[str, Any]) -> Any:
    """Open a recall (QA, e-signed): every affected unit not yet infused is blocked at once and
    the patients who received affected product are listed for notification. 404 for an
    unknown target, 409 when it is already under an open recall."""
    refusal = AuditedRefusal("recall.open_refused", data["target_type"], data["target_id"])
    with unit_of_work(refusal) as session:
        opened = open_as_user(session, data)
        view = recalls.recall_view(session, opened.recall)
    return view


@recalls_api.get("/<int:recall_id>")
@requires(Permission.READ_RECORDS)
@recalls_api.response(200, RecallDetailOut)
def recall_detail(recall_id: int) -> Any:
    """A recall with its units by outcome, the lookback and both signatures."""
    return recalls.recall_view(db.session, recalls.get_recall(db.session, recall_id))


@recalls_api.post("/<int:recall_id>/notifications/<int:patient_id>")
@requires(Permission.NOTIFY_PATIENTS)
@recalls_api.arguments(NotificationIn)
@recalls_api.response(200, RecallDetailOut)
def notify(data: dict[str, Any], recall_id: int, patient_id: int) -> Any:
    """Record that an exposed patient was notified (once; 409 the second time)."""
    with unit_of_work(AuditedRefusal("recall.notification_refused", "recall", recall_id)) as s:
        notify_as_user(s, recall_id, patient_id, data)
    return recalls.recall_view(db.session, recalls.get_recall(db.session, recall_id))


@recalls_api.post("/<int:recall_id>/close")
@requires(Permission.MANAGE_RECALLS)
@recalls_api.arguments(RecallCloseIn)
@recalls_api.response(200, RecallDetailOut)
def close(data: dict[str, Any], recall_id: int) -> Any:
    """Close a recall (QA, e-signed); 409 while a patient is not yet recorded as notified."""
    with unit_of_work(AuditedRefusal("recall.close_refused", "recall", recall_id)) as session:
        close_as_user(session, recall_id, data)
    return recalls.recall_view(db.session, recalls.get_recall(db.session, recall_id))
