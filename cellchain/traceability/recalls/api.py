"""API of recalls. Load → call the command or the service → dump. No rules here."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from cellchain.core.listing import PageRequest
from cellchain.core.roles import Permission
from cellchain.extensions import db
from cellchain.http import AuditedRefusal, requires, unit_of_work
from cellchain.traceability.models import RecallStatus
from cellchain.traceability.recalls import recalls
from cellchain.traceability.recalls.commands import close_as_user, notify_as_user, open_as_user
from cellchain.traceability.recalls.schemas import (
    NotificationIn,
    RecallCloseIn,
    RecallDetailOut,
    RecallOpenIn,
    RecallOut,
    RecallQueryIn,
)
from cellchain.web.listing import PAGINATION_HEADERS, paged

recalls_api = Blueprint(
    "recalls_api", __name__, url_prefix="/api/v1/recalls", description="Recalls and lookback"
)
blueprints = (recalls_api,)


@recalls_api.get("")
@requires(Permission.READ_RECORDS)
@recalls_api.arguments(RecallQueryIn, location="query")
@recalls_api.response(200, RecallOut(many=True), headers=PAGINATION_HEADERS)
def recall_list(args: dict[str, Any]) -> Any:
    """Recalls, open ones first, then newest first, a page at a time (the ``X-Pagination``
    header); ``status`` to filter, ``q`` to search the number, target and reason."""
    status = RecallStatus(args["status"]) if "status" in args else None
    return paged(recalls.recalls_page(db.session, PageRequest.of(args), status=status))


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
