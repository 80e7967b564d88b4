"""API of follow-up visits and adverse events."""

from __future__ import annotations

from flask_smorest import Blueprint

follow_up_api = Blueprint(
    "follow_up_api", __name__, url_prefix="/api/v1", description="Follow-up and adverse events"
)
blueprints = (follow_up_api,)
