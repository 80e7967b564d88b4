"""The app that ``site_scale.py`` serves with gunicorn: cellchain, plus two bare endpoints
and a statement counter, for the benchmark only.

    gunicorn --pythonpath benchmarks 'site_scale_app:create()'

Configuration comes from the ``CELLCHAIN_*`` variables, as for ``wsgi.py``. Added to the app:

- ``GET /_bench/bare``: a route of the cellchain app answering a constant ``ok``. It goes
  through every before/after-request hook of the app (site zone, body checks, the session
  and CSRF hooks, the security headers) but is called without a token, so it reads nothing
  from the database: what a request costs in Flask and our hooks before any work. The scan's
  throughput is compared with this one (the issue's "bare Flask endpoint, same gunicorn").
- ``GET /_flask/bare``: a separate, empty Flask app mounted beside cellchain (werkzeug's
  ``DispatcherMiddleware``): Flask alone, none of our hooks.
- Every response carries ``X-Bench-Statements``, the SQL statements the worker sent for the
  request until its headers were sent (SQLAlchemy ``before_cursor_execute``, one per
  execute or executemany, as ``tests/support/statements.py`` counts), and ``X-Bench-Pid``.
  Statements of teardown hooks (none read or write today) are not in the header.
- ``GET /_bench/stats``: this worker's pid and its totals (requests, statements).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, jsonify
from sqlalchemy import event
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from cellchain import create_app

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class StatementCounter:
    """Counts the statements each request sends, per thread (gthread workers run several)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.requests = 0
        self.statements = 0

    def before_cursor_execute(self, *_: Any) -> None:
        self.local.count = getattr(self.local, "count", 0) + 1

    def middleware(self, app: WsgiApp) -> WsgiApp:
        def counted(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            self.local.count = 0

            def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
                headers.append(("X-Bench-Statements", str(self.local.count)))
                headers.append(("X-Bench-Pid", str(os.getpid())))
                return start_response(status, headers, *rest)

            try:
                return app(environ, start)
            finally:
                with self.lock:
                    self.requests += 1
                    self.statements += self.local.count

        return counted


def create() -> Any:
    """The cellchain app with the benchmark's endpoints and counter (a gunicorn factory)."""
    app = create_app()
    counter = StatementCounter()

    @app.get("/_bench/bare")
    def bench_bare() -> tuple[str, int, dict[str, str]]:
        return "ok", 200, {"Content-Type": "text/plain"}

    @app.get("/_bench/stats")
    def bench_stats() -> Any:
        return jsonify(pid=os.getpid(), requests=counter.requests, statements=counter.statements)

    with app.app_context():
        from cellchain.extensions import db

        event.listen(db.engine, "before_cursor_execute", counter.before_cursor_execute)

    bare = Flask("bench_bare")

    @bare.get("/bare")
    def flask_bare() -> tuple[str, int, dict[str, str]]:
        return "ok", 200, {"Content-Type": "text/plain"}

    app.wsgi_app = counter.middleware(  # type: ignore[method-assign]
        DispatcherMiddleware(app.wsgi_app, {"/_flask": bare.wsgi_app})
    )
    return app
