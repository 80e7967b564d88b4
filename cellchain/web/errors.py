"""The one error shape: ``application/problem+json`` for the API, a plain page for people.

Domain errors, HTTP errors raised by Flask or webargs (malformed JSON, unknown fields),
CSRF failures and unexpected exceptions all end here, so no input produces a stack trace
or a 500 with internals.
"""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
from flask import Flask, Response, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from cellchain.core.i18n import LazyText, _, document_text, lazy
from cellchain.errors import DomainError, LoginRequired
from cellchain.extensions import db
from cellchain.http import is_api_request

log = logging.getLogger(__name__)

#: The title and sentence of an HTTP error's page, in the reader's language (the API's
#: problem bodies take the title from here too, and 422's from :data:`INVALID_TITLE`)
HTTP_PAGE_TEXTS: dict[int, tuple[LazyText, LazyText]] = {
    400: (lazy("Bad request"), lazy("The browser sent a request this server could not read.")),
    403: (lazy("Not allowed"), lazy("You do not have the permission to open this page.")),
    404: (
        lazy("Not found"),
        lazy("This page does not exist. Check the address, or go back to the home page."),
    ),
    405: (lazy("Method not allowed"), lazy("This page cannot be used this way.")),
    413: (lazy("Too large"), lazy("What was sent is too large to be accepted.")),
    429: (lazy("Too many requests"), lazy("Too many attempts: wait a moment and try again.")),
    500: (
        lazy("Something went wrong"),
        lazy(
            "The server could not finish this request; nothing was saved. Try again, and tell "
            "an administrator if it happens again."
        ),
    ),
}
#: The title of the API's 422 (a body of the wrong shape), as a domain ``InvalidInput`` reads
INVALID_TITLE = lazy("Invalid input")
PROBLEM_JSON = "application/problem+json"


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details, as every API error is returned."""

    type = ma.fields.String(
        required=True, metadata={"description": "URI naming the kind of problem"}
    )
    title = ma.fields.String(
        required=True, metadata={"description": "Short summary of the kind of problem"}
    )
    status = ma.fields.Integer(required=True, metadata={"description": "HTTP status code"})
    detail = ma.fields.String(required=True, metadata={"description": "What went wrong, in words"})
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={"description": "Field → messages, for invalid input"},
    )


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = body["status"]
    response.mimetype = PROBLEM_JSON
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs nests messages by location and field; the problem body keeps field → list."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = str(key) if key not in ("json", "query", "form", "files", "headers") else ""
            child = f"{prefix}.{name}" if prefix and name else (name or prefix)
            flat.update(_flatten_messages(value, child))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        # marshmallow's own messages (web/forms.py lists them) in the reader's language
        flat[prefix or "_request"] = [document_text(m) for m in messages]
    elif isinstance(messages, list):
        for index, value in enumerate(messages):
            flat.update(_flatten_messages(value, f"{prefix}[{index}]"))
    else:
        flat[prefix or "_request"] = [document_text(str(messages))]
    return flat


def _problem_title(status: int, error: HTTPException) -> str:
    """An HTTP problem's title in the reader's language (werkzeug's English name where
    cellchain has no words of its own for the status)."""
    if status == 422:
        return str(INVALID_TITLE)
    known = HTTP_PAGE_TEXTS.get(status)
    return str(known[0]) if known else error.name


def _http_problem(error: HTTPException) -> tuple[dict[str, Any], dict[str, str]]:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    errors = _flatten_messages(data.get("errors") or data.get("messages") or {})
    if status == 400 and errors.get("_request") == ["Invalid JSON body."]:
        detail = _("The request body is not valid JSON.")
    elif status == 422:
        detail = _("Some fields are missing or not valid; see errors.")
    else:
        detail = data.get("message") or error.description or error.name
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _problem_title(status, error),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return body, dict(data.get("headers") or {})


def _html_page(status: int, title: str, detail: str) -> tuple[str, int]:
    return render_template("web/error.html", status=status, title=title, detail=detail), status


def handle_domain_error(error: DomainError) -> Any:
    db.session.rollback()
    if is_api_request():
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
        if getattr(error, "retry_after", None) is not None:  # 429: accounts.TooManyAttempts
            headers["Retry-After"] = str(error.retry_after)  # type: ignore[attr-defined]
        return problem_response(error.to_problem(), headers)
    if isinstance(error, LoginRequired):
        return redirect(url_for("web.login", next=request.full_path))
    return _html_page(error.status, str(error.title), error.detail)


def handle_http_exception(error: HTTPException) -> Any:
    if is_api_request():
        body, headers = _http_problem(error)
        return problem_response(body, headers)
    if isinstance(error, CSRFError):
        return _html_page(
            400,
            _("Form expired"),
            _(
                "This form was missing its security token or the token expired. Go back, "
                "reload the page and submit again."
            ),
        )
    status = error.code or 500
    title, detail = HTTP_PAGE_TEXTS.get(status, (None, None))
    # a description of the raiser's own (the 413's limit) is kept; werkzeug's default is
    # replaced by the sentence in the reader's language
    default = error.description == type(error).description
    return _html_page(
        status,
        str(title) if title is not None else error.name,
        str(detail) if detail is not None and default else error.description or error.name,
    )


def handle_unexpected(error: Exception) -> Any:
    """Log the internals; show none of them."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    db.session.rollback()
    return handle_http_exception(InternalServerError())


def init_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, handle_domain_error)
    # Registered after flask-smorest's own handler, so this one wins.
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
