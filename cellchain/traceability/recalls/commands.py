"""Acting-user glue of recalls, shared by the API and the pages: the loaded input, the acting
user and the time from the request, then the service."""

from __future__ import annotations

from typing import Any

from cellchain.extensions import DbSession
from cellchain.http import acting_user, now, site_zone
from cellchain.traceability.models import RecallNotification, RecallTarget
from cellchain.traceability.recalls import recalls


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
        zone=site_zone(),
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
        zone=site_zone(),
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
        zone=site_zone(),
    )
