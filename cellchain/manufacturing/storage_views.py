"""Pages of LN2 storage, tank readings and deviations (filled in by the storage work)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("storage", __name__)
