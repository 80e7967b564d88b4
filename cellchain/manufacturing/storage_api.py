"""API of LN2 storage, tank readings and deviations (filled in by the storage work)."""

from __future__ import annotations

from flask_smorest import Blueprint

storage_api = Blueprint(
    "storage_api", __name__, url_prefix="/api/v1/storage", description="LN2 storage"
)
deviations_api = Blueprint(
    "deviations_api", __name__, url_prefix="/api/v1/deviations", description="Deviations"
)
blueprints = (storage_api, deviations_api)
