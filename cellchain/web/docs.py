"""Serves Swagger UI's files from the swagger-ui-bundle package, so the browsable API docs
work on a site without internet access; flask-smorest would otherwise load them from a CDN."""

from __future__ import annotations

from flask import Blueprint, Flask, send_from_directory
from flask.typing import ResponseReturnValue
from swagger_ui_bundle import swagger_ui_path

from cellchain.core.roles import Permission
from cellchain.http import requires

docs_static = Blueprint("docs_static", __name__)

#: flask-smorest's own documentation routes, put behind login like every other route
SMOREST_DOC_ENDPOINTS = ("api-docs.openapi_json", "api-docs.openapi_swagger_ui")


@docs_static.get("/api/v1/docs-static/<path:filename>")
@requires(Permission.USE_APP)
def swagger_file(filename: str) -> ResponseReturnValue:
    return send_from_directory(swagger_ui_path, filename)


def protect_smorest_docs(app: Flask) -> None:
    """Wrap the OpenAPI document and Swagger UI views in the login and role check."""
    for endpoint in SMOREST_DOC_ENDPOINTS:
        app.view_functions[endpoint] = requires(Permission.USE_APP)(app.view_functions[endpoint])
