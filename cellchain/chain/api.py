"""API of the chain core: units, custody events, lineage, traces and the scan resolver.

Load → call the command (or, for a read, the service) → dump. No rules here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Blueprint
from sqlalchemy.engine import Engine
from werkzeug.http import parse_accept_header
from werkzeug.middleware.proxy_fix import ProxyFix

from cellchain import http
from cellchain.chain import scanning, service, unit_list
from cellchain.chain.commands import derive_as_user, record_custody_as_user
from cellchain.chain.models import Unit, UnitEvent, UnitKind, UnitStatus
from cellchain.chain.schemas import (
    CustodyIn,
    DeriveIn,
    ScanOut,
    TraceOut,
    UnitDetailOut,
    UnitEventOut,
    UnitListOut,
    UnitOut,
    UnitQueryIn,
)
from cellchain.core import numbering
from cellchain.core.driver import kept_read
from cellchain.core.i18n import SOURCE_LANGUAGE, best_language
from cellchain.core.listing import PageRequest
from cellchain.core.roles import Permission
from cellchain.core.schemas import ScanQueryIn
from cellchain.extensions import db
from cellchain.http import (
    bearer_of,
    bearer_read,
    holds_nul,
    now,
    requires,
    unit_of_work,
    without_body,
)
from cellchain.traceability.notices import recalls_naming
from cellchain.web.listing import PAGINATION_HEADERS, paged
from cellchain.web.resolve import record_url

units_api = Blueprint(
    "units_api", __name__, url_prefix="/api/v1/units", description="Units, custody and lineage"
)
scan_api = Blueprint("scan_api", __name__, url_prefix="/api/v1", description="Scanning")
blueprints = (units_api, scan_api)


@dataclass(frozen=True)
class UnitDetail:
    """A unit with its relatives and history; reads through to the unit for its own fields."""

    unit: Unit
    parents: list[dict[str, Any]]
    children: list[dict[str, Any]]
    history: list[UnitEvent]
    #: the recalls that name the unit
    recalls: list[Any]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unit, name)


def unit_detail(unit: Unit) -> UnitDetail:
    """The unit with its parents, children and history in order."""
    session = db.session
    return UnitDetail(
        unit=unit,
        parents=[{"unit": u, "operation": op} for u, op in service.parents_of(session, unit)],
        children=[{"unit": u, "operation": op} for u, op in service.children_of(session, unit)],
        history=service.history(session, unit),
        recalls=recalls_naming(session, units=[unit.id]).unit(unit.id),
    )


def scan_by_bearer(token: str) -> Response | None:
    """The scan's answer to a bearer token, authenticated and read in one statement on the
    thread's kept connection in autocommit (``core/driver.kept_read``), no ORM session
    (``chain/scanning.scan_as_bearer``, issue 20); None leaves the request to ``scan`` behind
    the ordinary checks."""
    if request.environ.get(SCAN_READ_AHEAD):
        return None  # ``ScanAhead`` sent the statement, and it did not let the request through
    row = kept_read(
        db.engine,
        scanning.scan_as_bearer,
        token=token,
        code=request.args.get("code"),
        now=now(),
        method=request.method,
    )
    answer = scanning.answer_of(row, record_url(row)) if row is not None else None
    return jsonify(answer) if answer is not None else None


#: The scan's path (``scan_api``'s prefix and its route), which ``ScanAhead`` answers.
SCAN_PATH = "/api/v1/scan"
#: WSGI environ key: ``ScanAhead`` sent the scan's statement and left the request to Flask
#: (a refusal), so ``scan_by_bearer`` does not send it again
SCAN_READ_AHEAD = "cellchain.scan_read_ahead"

_log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ScanAhead:
    """The app's WSGI application with the ordinary scan by a bearer token answered before
    Flask makes a request of it (issue 20: the scan's CPU).

    A scan whose token, account and code pass (``scanning.scan_as_bearer``: one statement on
    the thread's kept connection, every rule of the token judged in it) is the same answer
    as the view's, byte for byte, headers included: the body is ``jsonify``'s, and the
    headers after the body's are the ones Flask's ``process_response`` gave the worker's
    first such answer (the security headers of ``web/security.set_security_headers`` and
    the session's ``Vary: Cookie``), which depend on the app's configuration only, not on
    the request. The code's page (``web/resolve.record_url``) is kept per worker once built
    in a request context of the first scan that needed it: a pure function of the path the
    app is mounted at and the record (``PAGES_KEPT``). No token and no answer is kept:
    every scan asks the database, so a revocation is seen at once.

    Taken only by a ``GET`` of ``SCAN_PATH`` with a bearer token, no cookie (a browser's
    session takes the ordinary path, whose session may set one) and no body, whose query
    holds no NUL character: what every request hook before the view would let through for
    such a request (``docs/security.md``, "The scan reads its own bearer token"). Anything
    else, any refusal, and any error here (logged) goes to ``wsgi_app``, Flask's request
    with every hook, which answers as it always did; after a refusal by the statement the
    view does not send it again (``SCAN_READ_AHEAD``), so a refused scan is that statement
    and the ordinary path, as before. ``ENABLED`` switches it off (tests compare the two
    paths)."""

    #: the record pages kept per worker (at most; then they are built again)
    PAGES_KEPT = 4096
    ENABLED = True

    def __init__(self, app: Flask, wsgi_app: WsgiApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self._engine: Engine | None = None
        #: the headers of an answer after Content-Type; Content-Length's place marked None
        self._headers: list[tuple[str, str | None]] | None = None
        self._pages: dict[tuple[Any, ...], str] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") == SCAN_PATH
            and environ.get("REQUEST_METHOD") == "GET"
            and "HTTP_COOKIE" not in environ
            and "HTTP_AUTHORIZATION" in environ
            and ScanAhead.ENABLED
            and without_body(environ)
            and self._answers_in_english(environ)
        ):
            try:
                answer = self._answer(environ)
            except Exception:  # the ordinary path answers, with its own error if any
                _log.warning("scan left to the ordinary path after an error", exc_info=True)
                answer = None
            if answer is not None:
                status, headers, body = answer
                start_response(status, headers)
                return [body]
        return self.wsgi_app(environ, start_response)

    def _answers_in_english(self, environ: dict[str, Any]) -> bool:
        """The fast answer speaks English, the source language, only: a scan whose
        Accept-Language (or, asking for none cellchain speaks, the site) chooses another is
        left to Flask, whose request hooks choose the language (``web/language.py``)."""
        asked = best_language(
            [tag for tag, _q in parse_accept_header(environ.get("HTTP_ACCEPT_LANGUAGE"))]
        )
        return (asked or self.app.config["SITE_LANGUAGE"]) == SOURCE_LANGUAGE

    def _answer(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes] | None:
        request = self.app.request_class(environ)
        token = bearer_of(request.headers.get("Authorization", ""))
        if token is None or holds_nul(request.args):
            return None
        row = kept_read(
            self._engine or self._first_engine(),
            scanning.scan_as_bearer,
            token=token,
            code=request.args.get("code"),
            now=http.utcnow(),  # the app's request clock, as ``http.now`` reads it
            method="GET",
        )
        environ[SCAN_READ_AHEAD] = True  # from here on, None is the statement's refusal
        if row is None:
            return None
        key = (
            environ.get("SCRIPT_NAME", ""),
            environ.get("HTTP_HOST"),
            environ.get("wsgi.url_scheme"),
            row.entity_type,
            row.entity_id,
            row.code,
        )
        if self._headers is None:
            return self._answer_in_context(environ, row, key)
        url = self._pages.get(key) or self._page_in_context(environ, row, key)
        answer = scanning.answer_of(row, url)
        if answer is None:
            return None
        body = self._body(answer)
        length = str(len(body))
        headers = [(name, length if value is None else value) for name, value in self._headers]
        return "200 OK", headers, body

    def _body(self, answer: dict[str, Any]) -> bytes:
        """``jsonify(answer)``'s body: with Flask's own JSON provider, the text its
        ``response`` writes (compact unless in debug mode or set otherwise) without the
        response object; with another provider, its response's body."""
        provider = self.app.json
        if type(provider) is not DefaultJSONProvider:
            return cast(Response, provider.response(answer)).get_data()
        if (provider.compact is None and self.app.debug) or provider.compact is False:
            text = provider.dumps(answer, indent=2)
        else:
            text = provider.dumps(answer, separators=(",", ":"))
        return f"{text}\n".encode()

    def _first_engine(self) -> Engine:
        with self.app.app_context():
            self._engine = db.engine
        return self._engine

    def _answer_in_context(
        self, environ: dict[str, Any], row: Any, key: tuple[Any, ...]
    ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """The answer built in a request context of ``environ`` (Flask's own, with its
        session), the code's page and the answer's headers kept from it."""
        with self.app.request_context(environ):
            url = record_url(row)
            answer = scanning.answer_of(row, url)
            if answer is None:
                return None
            response = self.app.process_response(jsonify(answer))
        self._keep_page(key, url)
        listed = list(response.headers.items())
        if self._headers is None:
            self._headers = [
                (name, None if name == "Content-Length" else value) for name, value in listed
            ]
        return response.status, listed, response.get_data()

    def _page_in_context(self, environ: dict[str, Any], row: Any, key: tuple[Any, ...]) -> str:
        """The code's page (``record_url``), built in a request context of ``environ``, kept."""
        with self.app.request_context(environ):
            url = record_url(row)
        self._keep_page(key, url)
        return url

    def _keep_page(self, key: tuple[Any, ...], url: str) -> None:
        with self._lock:
            if len(self._pages) >= self.PAGES_KEPT:
                self._pages.clear()
            self._pages[key] = url


def answer_scans_ahead(app: Flask) -> None:
    """Put ``ScanAhead`` in front of Flask's WSGI application, behind the app's ``ProxyFix``
    when it trusts proxies (``TRUSTED_PROXIES``): the scan answered ahead then sees the
    request as Flask would, with the client's address and scheme the proxy forwarded (a
    page's scheme and the security headers follow it)."""
    proxied = app.wsgi_app
    if isinstance(proxied, ProxyFix):
        proxied.app = ScanAhead(app, proxied.app)
    else:
        app.wsgi_app = ScanAhead(app, app.wsgi_app)  # type: ignore[method-assign]


scan_api.record_once(lambda state: answer_scans_ahead(cast(Flask, state.app)))


@scan_api.get("/scan")
@bearer_read(Permission.USE_APP, scan_by_bearer)
@scan_api.arguments(ScanQueryIn, location="query")
@scan_api.response(200, ScanOut)
def scan(args: dict[str, Any]) -> Any:
    """Resolve a scanned or typed code to exactly one record, or say what is wrong.

    A unit's code answers with the unit; a DIN with its donation; any code with the page a
    browser would open. A malformed code is 422, a well-formed one never issued here 404.
    """
    # the answer ScanOut would give, from one Core row (chain/scanning.py, issue 20); a code
    # this site never issued, or a unit code naming no unit, takes the ORM path and its error
    row = scanning.read_scanned(db.session, args["code"])
    answer = scanning.answer_of(row, record_url(row)) if row is not None else None
    if answer is not None:
        return jsonify(answer)
    return scan_result(numbering.lookup(db.session, args["code"], options=numbering.with_issuer()))


def scan_result(issued: Any) -> dict[str, Any]:
    """What a scan answers: the issued code, the page it leads to and, for a unit, the unit
    (read once, with what the answer shows of it: issue 20)."""
    unit = (
        service.unit_of_issued(db.session, issued, options=service.shown_with_a_unit())
        if issued.kind == "UNIT"
        else None
    )
    return {**_issued_fields(issued), "url": record_url(issued), "unit": unit}


def _issued_fields(issued: Any) -> dict[str, Any]:
    names = ("code", "kind", "issued_at", "issued_by", "purpose", "entity_type", "entity_id")
    return {name: getattr(issued, name) for name in names}


@units_api.get("")
@requires(Permission.READ_RECORDS)
@units_api.arguments(UnitQueryIn, location="query")
@units_api.response(200, UnitListOut(many=True), headers=PAGINATION_HEADERS)
def list_units(args: dict[str, Any]) -> Any:
    """Every unit of the site, newest first, a page at a time (the ``X-Pagination``
    header): ``kind`` and ``status`` to filter, ``q`` to search the unit code, the DIN and
    the lot number; ``sort`` by created, code, kind or status."""
    return paged(
        unit_list.units_page(
            db.session,
            PageRequest.of(args),
            kind=UnitKind(args["kind"]) if "kind" in args else None,
            status=UnitStatus(args["status"]) if "status" in args else None,
        )
    )


@units_api.get("/<int:unit_id>")
@requires(Permission.READ_RECORDS)
@units_api.response(200, UnitDetailOut)
def get_unit(unit_id: int) -> Any:
    """One unit: identity, status, location, parents, children and its history in order."""
    return unit_detail(service.get_unit(db.session, unit_id))


@units_api.post("/<int:unit_id>/events")
@requires(Permission.RECORD_CUSTODY)
@units_api.arguments(CustodyIn)
@units_api.response(201, UnitEventOut)
def record_event(data: dict[str, Any], unit_id: int) -> Any:
    """Record a receipt, move, hand-off or scan on the unit (who, where, when, temperature)."""
    with unit_of_work() as session:
        event = record_custody_as_user(session, service.get_unit(session, unit_id), data)
    return event


@units_api.get("/<int:unit_id>/trace/back")
@requires(Permission.READ_RECORDS)
@units_api.response(200, TraceOut)
def trace_back(unit_id: int) -> Any:
    """Every ancestor of the unit back to the donation, nearest first (one recursive query)."""
    unit = service.get_unit(db.session, unit_id)
    return {"start": unit, "direction": "back", "units": service.trace_back(db.session, unit)}


@units_api.get("/<int:unit_id>/trace/forward")
@requires(Permission.READ_RECORDS)
@units_api.response(200, TraceOut)
def trace_forward(unit_id: int) -> Any:
    """Every descendant of the unit, nearest first (one recursive query)."""
    unit = service.get_unit(db.session, unit_id)
    return {"start": unit, "direction": "forward", "units": service.trace_forward(db.session, unit)}


@units_api.post("/derive")
@requires(Permission.PROCESS_UNITS)
@units_api.arguments(DeriveIn)
@units_api.response(201, UnitOut(many=True))
def derive(data: dict[str, Any]) -> Any:
    """Make new units from parents of one donation; refused across donations."""
    with unit_of_work() as session:
        children = derive_as_user(session, data)
    return children
