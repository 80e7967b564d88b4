"""The ordinary scan by a bearer token is answered ahead of Flask's request
(``chain/api.ScanAhead``, issue 20): the same status, headers and body as the view behind every
request hook, byte for byte, and anything a hook would look at is left to Flask.

``flask.request_started`` tells which path answered: Flask sends it for every request it
handles, and ``ScanAhead`` answers without one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import request_started
from sqlalchemy import select

from cellchain.chain import api as chain_api
from cellchain.chain import scanning
from cellchain.core.accounts import AccountPolicy
from cellchain.core.identifiers import make_din, parse_identifier
from cellchain.core.models import IssuedIdentifier
from cellchain.extensions import db
from tests.conftest import issue_din, user_maker
from tests.support.chain import build_tree
from tests.support.lab import make_lab
from tests.support.statements import counting_statements
from tests.support.tokens import mint

SCAN = chain_api.SCAN_PATH


@contextmanager
def flask_requests(app: Any) -> Iterator[list[str]]:
    """The paths of the requests Flask itself handled while the block ran."""
    seen: list[str] = []

    def started(sender: Any, **_: Any) -> None:
        from flask import request

        seen.append(request.path)

    request_started.connect(started, app)
    try:
        yield seen
    finally:
        request_started.disconnect(started, app)


Answer = tuple[str, list[tuple[str, str]], bytes]


def get(app: Any, token: str | None, query: Any = None, **options: Any) -> Answer:
    client = app.test_client()
    for name, value in options.pop("cookies", {}).items():
        client.set_cookie(name, value)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    headers.update(options.pop("headers", {}))
    db.session.remove()
    response = client.get(SCAN, query_string=query, headers=headers, **options)
    return response.status, list(response.headers.items()), response.get_data()


def ordinary(
    app: Any, monkeypatch: pytest.MonkeyPatch, token: str | None, query: Any = None, **options: Any
) -> Answer:
    """The same request answered by Flask, every hook and the view (``ScanAhead`` off)."""
    with monkeypatch.context() as patch:
        patch.setattr(chain_api.ScanAhead, "ENABLED", False)
        with flask_requests(app) as seen:
            answer = get(app, token, query, **options)
        assert seen == [SCAN]
        return answer


def ahead(app: Any, token: str | None, query: Any = None, **options: Any) -> tuple[Answer, bool]:
    """The request as sent, and whether ``ScanAhead`` answered it (Flask handled none)."""
    with flask_requests(app) as seen:
        answer = get(app, token, query, **options)
    return answer, not seen


@pytest.fixture
def unit_code(lab) -> str:
    return parse_identifier(build_tree(lab).b1.code).display


def test_every_code_is_answered_ahead_as_flask_answers_it(app, lab, monkeypatch):
    build_tree(lab)
    issue_din(app)  # no record yet: the identifier's page
    token = mint(lab.qc)
    codes = list(db.session.execute(select(IssuedIdentifier.code)).scalars())
    assert len(codes) > 3
    for code in codes:
        before = ordinary(app, monkeypatch, token, {"code": code})
        assert before[0] == "200 OK", before
        # the first answer builds the code's page in a request context; the next one keeps it
        for _ in range(2):
            answer, taken = ahead(app, token, {"code": code})
            assert taken, code
            assert answer == before, code


def test_the_headers_and_json_are_the_apps_configured_ones(make_app, monkeypatch):
    app = make_app(HSTS_SECONDS=600)
    with app.app_context():
        lab = make_lab(app, user_maker(AccountPolicy.from_config(app.config)))
        code = parse_identifier(build_tree(lab).b1.code).display
        token = mint(lab.qc)
        before = ordinary(app, monkeypatch, token, {"code": code})
        answer, taken = ahead(app, token, {"code": code})
        assert taken and answer == before
        assert ("Strict-Transport-Security", "max-age=600") in answer[1]
        # the JSON as the app's provider writes it, indented when it is set so
        app.json.compact = False  # type: ignore[attr-defined]
        before = ordinary(app, monkeypatch, token, {"code": code})
        answer, taken = ahead(app, token, {"code": code})
        assert taken and answer == before and b'\n  "code": ' in answer[2]


def test_a_mounted_app_answers_with_its_pages_under_its_path(app, lab, unit_code, monkeypatch):
    token = mint(lab.qc)
    mounted = {"environ_overrides": {"SCRIPT_NAME": "/site"}}
    before = ordinary(app, monkeypatch, token, {"code": unit_code}, **mounted)
    answer, taken = ahead(app, token, {"code": unit_code}, **mounted)
    assert taken and answer == before
    assert b'"url":"/site/units/' in answer[2]
    # the same record's page at the root is not the mounted one
    answer, taken = ahead(app, token, {"code": unit_code})
    assert taken and b'"url":"/units/' in answer[2]


@pytest.mark.parametrize(
    "query, options",
    [
        ({"code": "X", "note": "a\x00b"}, {}),  # a NUL elsewhere: refuse_nul_characters
        ("code=X&no%00te=1", {}),
        (None, {"data": b"{}", "content_type": "application/json"}),  # a body
        (None, {"cookies": {"session": "x"}}),  # a browser's session
        (None, {"method": "HEAD"}),
        (None, {"headers": {"Authorization": "Basic eDp5"}}),
        (None, {"headers": {"Accept-Language": "zh-CN,zh;q=0.9"}}),  # the language hook
    ],
)
def test_what_a_hook_would_look_at_is_left_to_flask(
    app, lab, unit_code, monkeypatch, query, options
):
    token = mint(lab.qc)
    if query is None:
        query = {"code": unit_code}
    elif isinstance(query, dict):
        query = {**query, "code": unit_code}
    else:
        query = query.replace("X", unit_code)
    method = options.pop("method", "GET")
    if method == "HEAD":
        client = app.test_client()
        with flask_requests(app) as seen:
            response = client.head(
                SCAN, query_string=query, headers={"Authorization": f"Bearer {token}"}
            )
        assert seen == [SCAN] and response.status_code == 200
        return
    before = ordinary(app, monkeypatch, token, query, **options)
    answer, taken = ahead(app, token, query, **options)
    assert not taken
    assert answer == before


def test_refusals_are_left_to_flask(app, lab, unit_code, monkeypatch):
    token = mint(lab.qc)
    never = make_din(app.config["FACILITY_CODE"], 2026, 99999).display  # well formed, not issued
    # who, what, and whether the one statement is sent (not for a code refused unread)
    for who, query, sent in (
        ("ccpat_not-a-token", {"code": unit_code}, 1),
        (token, {"code": never}, 1),
        (token, {"code": "X9999"}, 0),
        (token, {}, 0),
        (token, {"code": unit_code[:-1]}, 0),
    ):
        before = ordinary(app, monkeypatch, who, query)
        with counting_statements() as statements:
            answer, taken = ahead(app, who, query)
        assert not taken and answer == before and not before[0].startswith("200"), query
        # the one statement is sent once: the view does not send it again after ScanAhead
        joined = [s for s in statements if "api_tokens" in s and "issued_identifiers" in s]
        assert len(joined) == sent, (query, statements)


def test_an_error_ahead_leaves_the_scan_to_flask(app, lab, unit_code, monkeypatch, caplog):
    token = mint(lab.qc)
    before = ordinary(app, monkeypatch, token, {"code": unit_code})

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("broken ahead")

    with monkeypatch.context() as patch:
        patch.setattr(chain_api.ScanAhead, "_answer", broken)
        answer, taken = ahead(app, token, {"code": unit_code})
    assert not taken and answer == before
    assert "broken ahead" in caplog.text


def test_the_hooks_a_scan_ahead_skips_are_the_reviewed_ones(app):
    """``ScanAhead`` answers without Flask's request, so without the app's request hooks: each
    was checked to let an ordinary scan by a bearer token through unchanged, or to add only
    the headers ``ScanAhead`` takes from Flask's first answer. A new hook, or a new WSGI
    layer between ``ScanAhead`` and Flask, must be checked too (and added here): does the
    scan need it? Then leave such requests to Flask in ``ScanAhead.__call__``."""

    def names(functions: Any) -> dict[Any, list[str]]:
        return {key: [f.__qualname__ for f in fs] for key, fs in functions.items() if fs}

    assert names(app.before_request_funcs) == {
        None: [
            # the language, first of all (a refusal before any other hook reads in it): a
            # scan asking for another than English is left to Flask
            "init_language.<locals>.speak_the_request_language",
            "refuse_unreadable_request",
            "CSRFProtect.init_app.<locals>.csrf_protect",  # not for a GET
            "refuse_nul_characters",
            "authenticate_bearer",
            "enforce_csrf",
            "enforce_idle_timeout",
            "require_password_change",
            # the sites: a clinic user of some sites and the monitor are left to Flask
            # (scanning.scan_as_bearer); for everyone else it restricts nothing
            "apply_sites.<locals>.restrict_to_sites",
            "pass_site_zone_to_schemas.<locals>.set_site_zone",
        ]
    }
    assert names(app.after_request_funcs) == {
        None: [
            "LoginManager._update_remember_cookie",
            "set_security_headers",
            "apply_sites.<locals>.hide_names",  # the monitor's only: left to Flask
        ]
    }
    assert names(app.teardown_request_funcs) == {
        None: [
            "init_language.<locals>.forget_the_request_language",
            "apply_sites.<locals>.reset_sites",
            "pass_site_zone_to_schemas.<locals>.reset_site_zone",
        ]
    }
    assert not names(app.url_value_preprocessors) and not names(app.url_default_functions)
    assert isinstance(app.wsgi_app, chain_api.ScanAhead)
    assert app.wsgi_app.wsgi_app == app.__class__.wsgi_app.__get__(app)
    assert app.url_map.bind("localhost").build("scan_api.scan") == SCAN
    assert scanning.scan_as_bearer is chain_api.scanning.scan_as_bearer


def test_behind_trusted_proxies_the_scan_ahead_sees_what_the_proxy_forwarded(make_app, monkeypatch):
    """With ``TRUSTED_PROXIES`` the app's ``ProxyFix`` (the client's address and scheme) is the
    outer layer and ``ScanAhead`` sits under it, right on Flask's application, so a scan
    answered ahead sees the request as Flask does: an https request forwarded over http is
    answered as Flask answers it."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    app = make_app(TRUSTED_PROXIES=1)
    assert isinstance(app.wsgi_app, ProxyFix)
    assert isinstance(app.wsgi_app.app, chain_api.ScanAhead)
    assert app.wsgi_app.app.wsgi_app == app.__class__.wsgi_app.__get__(app)
    with app.app_context():
        lab = make_lab(app, user_maker(AccountPolicy.from_config(app.config)))
        code = parse_identifier(build_tree(lab).b1.code).display
        token = mint(lab.qc)
        forwarded = {"headers": {"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.1.2.3"}}
        ahead(app, token, {"code": code})  # the headers of a first answer kept
        before = ordinary(app, monkeypatch, token, {"code": code}, **forwarded)
        answer, taken = ahead(app, token, {"code": code}, **forwarded)
    assert taken and answer == before


def test_a_token_expired_by_the_request_clock_is_refused_ahead_as_by_flask(
    app, lab, unit_code, monkeypatch, clock
):
    """The scan answered ahead judges the token's expiry by the app's request clock
    (``http.utcnow``, which the tests move), as every other request does (review R2)."""
    token = mint(lab.qc, days=1)
    clock.advance(days=2)
    before = ordinary(app, monkeypatch, token, {"code": unit_code})
    answer, _ = ahead(app, token, {"code": unit_code})
    assert before[0] == "401 UNAUTHORIZED"
    assert answer == before
