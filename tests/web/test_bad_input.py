"""Bad input is a 4xx, never a 5xx (issue 18), on SQLite and PostgreSQL: ids beyond the
database's integer range, JSON nested 1,000 deep, lone surrogates, a decompression bomb in
the photo scan, a body over ``MAX_CONTENT_LENGTH``; and input schemas require their fields
and whole numbers."""

from __future__ import annotations

import io
import re
import struct
import zlib
from typing import Any

import marshmallow as ma
import pytest
from flask import Flask
from werkzeug.routing import IntegerConverter, MapAdapter

from cellchain.core.roles import Role, has_permission
from cellchain.core.schemas import DB_INT_MAX

PROBLEM_JSON = "application/problem+json"
#: beyond PostgreSQL's INTEGER, and beyond every 64-bit integer
TOO_LARGE = (2**31, 2**63)
#: every role one account may hold together but administration and the statistician's (who
#: never holds a role that enrols): each has an account of its own
#: every role that may write (the read-only monitor is held with no other role, issue 22)
SIGNING_ROLES = [role for role in Role if role not in {Role.ADMIN, Role.STATISTICIAN, Role.MONITOR}]


@pytest.fixture
def api_clients(make_user, clients):
    """A client for every permission: one account with every signing role, one admin."""
    return {
        "signer": (frozenset(SIGNING_ROLES), clients.api(make_user("all", *SIGNING_ROLES))),
        "admin": (frozenset({Role.ADMIN}), clients.api(make_user("ada", Role.ADMIN))),
        "statistician": (
            frozenset({Role.STATISTICIAN}),
            clients.api(make_user("stat", Role.STATISTICIAN)),
        ),
    }


@pytest.fixture
def web_clients(make_user, clients):
    return {
        "signer": (frozenset(SIGNING_ROLES), clients.web(make_user("wall", *SIGNING_ROLES))),
        "admin": (frozenset({Role.ADMIN}), clients.web(make_user("wada", Role.ADMIN))),
        "statistician": (
            frozenset({Role.STATISTICIAN}),
            clients.web(make_user("wstat", Role.STATISTICIAN)),
        ),
    }


def int_routes(app: Flask) -> list[tuple[str, str, list[str], str]]:
    """(rule, endpoint, int arguments, method) of every route with an ``int`` in its URL."""
    found = []
    for rule in app.url_map.iter_rules():
        ints = [
            name
            for name, converter in rule._converters.items()
            if isinstance(converter, IntegerConverter)
        ]
        if ints:
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found.append((rule.rule, rule.endpoint, ints, method))
    return found


def client_for(app: Flask, endpoint: str, pool: dict[str, Any]) -> Any:
    permission = getattr(app.view_functions[endpoint], "required_permission", None)
    for roles, client in pool.values():
        if permission is None or has_permission(roles, permission):
            return client
    raise AssertionError(f"no test account may use {endpoint}")


def fill(rule: str, ints: list[str], value: int) -> str:
    """The rule's URL with ``value`` for every int and ``1`` for any other argument."""

    def argument(match: re.Match[str]) -> str:
        return str(value) if match.group(1) in ints else "1"

    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", argument, rule)


def status_beyond_the_database(adapter: MapAdapter, url: str, method: str) -> int:
    """404; a 405 only where a rule that takes the number as text, not as an id, owns the
    path for other methods, which is HTTP's answer (``GET /steps/2147483648``: ``POST
    /steps/<kind_name>``, a step kind named "2147483648")."""
    allowed = set(adapter.allowed_methods(url)) - {"HEAD", "OPTIONS"}
    if not allowed or method in allowed:
        return 404
    _endpoint, arguments = adapter.match(url, method=sorted(allowed)[0])
    assert not any(isinstance(value, int) for value in arguments.values()), (url, arguments)
    return 405


def test_every_route_with_an_int_id_answers_4xx_to_an_id_beyond_the_database(
    app, api_clients, web_clients
):
    routes = int_routes(app)
    assert len(routes) > 60
    adapter = app.url_map.bind("localhost")
    failures = []
    for rule, endpoint, ints, method in routes:
        api = rule.startswith("/api/")
        client = client_for(app, endpoint, api_clients if api else web_clients)
        for value in TOO_LARGE:
            url = fill(rule, ints, value)
            response = client.open(url, method=method, json={} if method != "GET" else None)
            # a 404 even where another id rule has the same path for other methods: the
            # converter refuses the id by its pattern, so no id rule matches it (0dd5d76)
            expected = status_beyond_the_database(adapter, url, method)
            ok = response.status_code == expected and (not api or response.mimetype == PROBLEM_JSON)
            if not ok:
                failures.append((method, url, response.status_code, response.mimetype))
    assert failures == []


def test_the_largest_id_the_database_holds_is_still_looked_up(app, api_clients):
    _roles, client = api_clients["signer"]
    response = client.get(f"/api/v1/units/{DB_INT_MAX}")
    assert response.status_code == 404
    assert "There is no unit" in response.get_json()["detail"]  # the service's 404


def test_openapi_documents_the_range_of_path_ids(app, api_clients):
    _roles, client = api_clients["signer"]
    spec = client.get("/api/v1/openapi.json").get_json()
    parameter = next(
        p for p in spec["paths"]["/api/v1/units/{unit_id}"]["parameters"] if p["name"] == "unit_id"
    )
    assert parameter["schema"] == {"type": "integer", "minimum": 0, "maximum": DB_INT_MAX}


@pytest.mark.parametrize(
    ("url", "query"),
    [
        ("/api/v1/donations", {"page": 2**31}),
        ("/api/v1/donations", {"page": 2**63}),
        ("/api/v1/audit", {"offset": 2**63}),
        ("/api/v1/audit", {"offset": 1.5}),
    ],
)
def test_query_numbers_beyond_the_database_are_refused(api_clients, url, query):
    _roles, client = api_clients["signer" if "donations" in url else "admin"]
    response = client.get(url, query_string=query)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    assert set(response.get_json()["errors"]) == set(query)


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/storage/units/1", {"tank_id": 2**63}, "tank_id"),
        ("/api/v1/deviations", {"lot_id": 2**63, "donation_id": 2**40}, "lot_id"),
        ("/api/v1/recalls", {"target_id": 2**31}, "target_id"),
    ],
)
def test_body_ids_beyond_the_database_are_refused_by_the_schema(api_clients, url, body, field):
    _roles, client = api_clients["signer"]
    response = client.post(url, json=body)
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    if response.status_code == 422:
        assert field in response.get_json()["errors"]


def test_json_nested_1000_deep_is_a_400(api_clients):
    _roles, client = api_clients["signer"]
    for body in ("[" * 1000 + "]" * 1000, '{"name": ' + "[" * 1000 + "]" * 1000 + "}"):
        response = client.post("/api/v1/tokens", data=body, content_type="application/json")
        assert response.status_code == 400, response.get_data(as_text=True)
        assert response.mimetype == PROBLEM_JSON
        assert "nested too deeply" in response.get_json()["detail"]


def test_json_nested_a_little_too_deep_is_a_400(api_clients):
    _roles, client = api_clients["signer"]
    nested: list[Any] = []
    for _ in range(40):
        nested = [nested]
    response = client.post("/api/v1/tokens", json={"name": nested})
    assert response.status_code == 400
    assert "nested too deeply" in response.get_json()["detail"]


def test_a_lone_surrogate_in_json_is_refused_before_it_is_stored(app, api_clients):
    _roles, client = api_clients["signer"]
    for body, where in (('{"name": "scanner \\ud800"}', "name"), ('{"\\udfff": 1}', "_request")):
        response = client.post("/api/v1/tokens", data=body, content_type="application/json")
        assert response.status_code == 400, response.get_data(as_text=True)
        assert response.mimetype == PROBLEM_JSON
        problem = response.get_json()
        assert "surrogate" in problem["detail"]
        assert list(problem["errors"]) == [where]
    tokens = client.get("/api/v1/tokens").get_json()
    assert all(token["name"] == "tests" for token in tokens)


def test_a_lone_surrogate_in_a_form_field_never_reaches_the_database(web_clients):
    """Werkzeug decodes a form's percent-escapes as UTF-8 and keeps an undecodable one as
    typed (``%ED%A0%80``), so a form field never holds a surrogate: the page answers below 500."""
    _roles, client = web_clients["admin"]
    response = client.post(
        "/admin/users/new",
        data=b"username=surr&full_name=%ED%A0%80&password=x&roles=qa",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code < 500


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` × ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [9_000, 20_000, 100_000])
def test_a_png_decompression_bomb_in_the_photo_scan_is_a_422(api_clients, side):
    _roles, client = api_clients["signer"]
    response = client.post(
        "/api/v1/scan/photo",
        data={"photo": (io.BytesIO(png_claiming(side, side)), "bomb.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    assert "megapixels" in response.get_json()["detail"]


def test_a_png_decompression_bomb_on_the_photo_page_is_refused_in_words(web_clients):
    _roles, client = web_clients["signer"]
    response = client.post(
        "/scan/photo",
        data={"photo": (io.BytesIO(png_claiming(100_000, 100_000)), "bomb.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code < 500
    assert "megapixels" in response.get_data(as_text=True)


def test_max_content_length_is_configured_and_fits_a_photo(app):
    from cellchain.labels.photo import MAX_PHOTO_BYTES

    assert app.config["MAX_CONTENT_LENGTH"] > MAX_PHOTO_BYTES


def test_a_body_over_the_limit_is_a_413_before_authentication(app):
    too_big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    anonymous = app.test_client()
    response = anonymous.post("/api/v1/tokens", data=too_big, content_type="application/json")
    assert response.status_code == 413  # not 401: refused before anyone is looked up
    assert response.mimetype == PROBLEM_JSON
    assert "MB" in response.get_json()["detail"]


def test_a_body_over_the_limit_on_a_form_is_a_413_page(app):
    too_big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    response = app.test_client().post(
        "/login", data=too_big, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert "smaller" in response.get_data(as_text=True)


def test_reserving_dins_needs_a_count(api_clients):
    _roles, client = api_clients["signer"]
    for body in ({}, {"count": 1.5}, {"count": "1.5"}, {"count": True}):
        response = client.post("/api/v1/identifiers/din", json=body)
        assert response.status_code == 422, (body, response.get_data(as_text=True))
        assert response.mimetype == PROBLEM_JSON
        assert "count" in response.get_json()["errors"]
    assert client.post("/api/v1/identifiers/din", json={"count": 2}).status_code == 201


def test_reserving_dins_without_a_body_is_a_422(api_clients):
    _roles, client = api_clients["signer"]
    response = client.post("/api/v1/identifiers/din")
    assert 400 <= response.status_code < 500
    assert response.status_code != 201


def input_schemas() -> list[type[ma.Schema]]:
    """Every schema a route loads input with (by the naming rule: ``…In``); the app, built
    by the ``app`` fixture, has imported every schema module."""

    def walk(cls: type) -> list[type]:
        return [sub for child in cls.__subclasses__() for sub in (child, *walk(child))]

    return sorted(
        {
            cls
            for cls in walk(ma.Schema)
            if cls.__module__.startswith("cellchain") and cls.__name__.endswith("In")
        },
        key=lambda cls: (cls.__module__, cls.__name__),
    )


def test_every_integer_of_an_input_schema_refuses_fractions_and_huge_values(app):
    checked = 0
    holes = []
    for schema_class in input_schemas():
        schema = schema_class()
        for name, field in schema.fields.items():
            if not isinstance(field, ma.fields.Integer) or field.dump_only:
                continue
            for value in (1.5, 2.0, 2**31, 2**63):
                checked += 1
                try:
                    schema.load({name: value}, partial=True)
                except ma.ValidationError as error:
                    if name in error.messages:
                        continue
                holes.append((schema_class.__name__, name, value))
    assert checked > 40
    assert holes == []
