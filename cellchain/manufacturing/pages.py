"""The HTML blueprint ``storage``, shared by the tank pages (``storage/views.py``) and the
deviation pages (``deviations/views.py``): each adds its routes to it, so that their endpoint
names (``storage.tank``, ``storage.deviation``, …) stay one set. ``wiring`` imports both page
modules, then registers this blueprint once."""

from __future__ import annotations

from flask import Blueprint

storage_pages = Blueprint("storage", __name__)
