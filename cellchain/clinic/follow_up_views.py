"""Pages of follow-up visits and adverse events."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("follow_up", __name__)
