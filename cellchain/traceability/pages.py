"""The HTML blueprint ``traceability``, shared by the trace pages (``trace/views.py``) and the
recall pages (``recalls/views.py``): each adds its routes to it, so that their endpoint names
(``traceability.trace_forward``, ``traceability.recall``, …) stay one set. ``wiring`` imports
both page modules, then registers this blueprint once."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("traceability", __name__)
