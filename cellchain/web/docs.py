"""The API's documentation: Swagger UI's files served from the swagger-ui-bundle package (so
the browsable docs work on a site without internet access; flask-smorest would otherwise load
them from a CDN), and the error answers of every operation in the OpenAPI document."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from apispec import APISpec, BasePlugin
from flask import Blueprint, Flask, send_from_directory
from flask.typing import ResponseReturnValue
from swagger_ui_bundle import swagger_ui_path

from cellchain.core.roles import Permission
from cellchain.http import requires
from cellchain.web.errors import PROBLEM_JSON, ProblemSchema

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


#: What each error status means on this API, as the OpenAPI document says it.
PROBLEM_STATUSES: dict[int, str] = {
    400: "Malformed request: the body is not JSON, is nested too deeply or holds text that is "
    "not text (a lone surrogate); or a change made with a session cookie lacks its CSRF token",
    401: "Not authenticated: no session and no bearer token, or a token that is unknown, "
    "expired or revoked, or of a deactivated or locked account; or a signature's password "
    "is wrong",
    403: "Not allowed: the account's roles do not grant this, a read-only token tried a "
    "change, or the account must change its password first",
    404: "A record named in the path, the query or the body does not exist",
    409: "A rule or the record's state refuses the change (the detail says which)",
    413: "The body is larger than the site accepts (MAX_CONTENT_LENGTH)",
    422: "Input has the wrong shape or a value is not acceptable; ``errors`` names the fields",
    429: "Too many wrong passwords in a row: the signer waits the back-off the "
    "``Retry-After`` header gives",
    500: "An unexpected error; the body holds no internals",
}
#: Headers of some problem answers, documented with them.
PROBLEM_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "``Bearer``: how to authenticate",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before signing again",
            "schema": {"type": "integer"},
        }
    },
}
#: The methods that only read (no CSRF check, no body, no state to conflict with).
READ_METHODS = frozenset({"get", "head", "options"})
#: Body fields that carry a password re-entered to sign (a second signer's too), at any
#: depth (a dose's override holds the investigator's).
PASSWORD_FIELDS = frozenset({"password", "second_password"})
#: Input schemas whose password is a new account's, checked by no one: no back-off.
NEW_PASSWORD_SCHEMAS = frozenset({"UserCreateIn"})


def problem_statuses(
    path: str,
    method: str,
    operation: dict[str, Any],
    *,
    text_in_path: bool = False,
    asks_password: bool = False,
) -> list[int]:
    """The error statuses ``operation`` may answer with, each a problem+json body.

    Every operation needs authentication and a permission (401, 403) and may fail (500);
    one that names records (path, query or body) may name one that is missing (404); a
    query, a body or a text in the path (a code, a kind of record; ``text_in_path``) may be
    refused by its schema or a service's check (422); a change may be malformed or lack its
    CSRF token (400), be too large (413) or conflict with a rule or a state (409); one
    whose body holds a password (``asks_password``) may make a signer wait (429).
    """
    statuses = {401, 403, 500}
    query = any(
        isinstance(p, dict) and p.get("in") == "query" for p in operation.get("parameters", [])
    )
    if "{" in path or query or "requestBody" in operation:
        statuses.add(404)
    if query or text_in_path:
        statuses.add(422)
    if method not in READ_METHODS:
        statuses |= {400, 409, 413, 422}
    if asks_password:
        statuses.add(429)
    return sorted(statuses)


class ProblemResponses(BasePlugin):
    """Documents the ``application/problem+json`` answers of every API operation in one
    place, instead of per route: a response component per status (``Problem404``, …) with
    the ``Problem`` schema, referenced by each operation for the statuses it may answer with
    (``problem_statuses``). It replaces flask-smorest's catch-all ``default`` response (which
    said ``application/json`` and let any status pass as documented) and the error
    responses a route documents itself (every API error has the one shape)."""

    spec: APISpec
    #: whether the path being documented has a parameter that is not an integer id
    _text_in_path = False

    def init_spec(self, spec: APISpec) -> None:
        self.spec = spec
        spec.components.schema("Problem", schema=ProblemSchema)
        for status, description in PROBLEM_STATUSES.items():
            response: dict[str, Any] = {
                "description": f"{HTTPStatus(status).phrase}. {description}.",
                "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
            if status in PROBLEM_HEADERS:
                response["headers"] = PROBLEM_HEADERS[status]
            spec.components.response(problem_response_name(status), response)

    def path_helper(
        self,
        path: str | None = None,
        operations: dict[Any, Any] | None = None,
        parameters: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        # called just before ``operation_helper`` for the same path, after flask-smorest's
        # plugin has added the path's parameters
        self._text_in_path = any(
            p.get("in") == "path" and p.get("schema", {}).get("type") != "integer"
            for p in parameters or []
        )

    def operation_helper(
        self,
        path: str | None = None,
        operations: dict[Any, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        for method, operation in (operations or {}).items():
            if not isinstance(operation, dict) or method.startswith("x-"):
                continue
            responses = {
                str(code): response
                for code, response in operation.get("responses", {}).items()
                if str(code) != "default" and not str(code).startswith(("4", "5"))
            }
            statuses = problem_statuses(
                path or "",
                method,
                operation,
                text_in_path=self._text_in_path,
                asks_password=self._asks_password(operation),
            )
            for status in statuses:
                responses[str(status)] = problem_response_name(status)
            operation["responses"] = responses

    def _asks_password(self, operation: dict[str, Any]) -> bool:
        """Whether the operation's JSON body holds a password to check, at any depth."""
        content = operation.get("requestBody", {}).get("content", {})
        pending = [content.get("application/json", {}).get("schema", {})]
        seen: set[str] = set()
        while pending:
            schema = pending.pop()
            if not isinstance(schema, dict):
                continue
            if "$ref" in schema:
                name = schema["$ref"].rsplit("/", 1)[-1]
                if name in seen or name in NEW_PASSWORD_SCHEMAS:
                    continue
                seen.add(name)
                pending.append(self.spec.components.schemas.get(name, {}))
                continue
            properties = schema.get("properties", {})
            if PASSWORD_FIELDS & set(properties):
                return True
            pending.extend(properties.values())
            pending.append(schema.get("items"))
            for key in ("allOf", "anyOf", "oneOf"):
                pending.extend(schema.get(key) or [])
        return False


def problem_response_name(status: int) -> str:
    """The name of the response component of a problem with ``status``."""
    return f"Problem{status}"
