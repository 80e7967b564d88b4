"""cellchain: cell-therapy manufacturing and chain-of-identity tracker."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from cellchain.resources import resource_path


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: configuration, extensions, blueprints, error handlers."""
    from cellchain.config import load_config
    from cellchain.wiring import wire

    app = Flask(
        __name__,
        template_folder=str(resource_path("templates")),
        instance_path=os.environ.get("CELLCHAIN_INSTANCE_PATH") or None,
        instance_relative_config=True,
    )
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(load_config(app.instance_path, config))
    wire(app)
    return app
