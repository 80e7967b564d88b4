"""No input produces a server error (DESIGN.md rule 4): random scan codes, login fields and
JSON bodies always get an answer below 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cellchain.core.roles import Role
from cellchain.extensions import db

#: long tests: started first (tests/conftest.py, ``heavy``)
pytestmark = pytest.mark.heavy

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

#: characters that have broken parsers, URLs, templates or databases before
NASTY = "%/\\?#&=+[]*-_.:;'\"<>{}|`~ \t\r\n\x00\x01\x1b\x7f\u00a0\u200b\u202e\ufeffÖß名😀"

texts = st.one_of(
    st.text(),
    st.text(alphabet=NASTY, max_size=40),
    st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcz=*[] -", max_size=20),
    st.builds(
        lambda part, times: part * times, st.text(min_size=1, max_size=4), st.integers(1, 3000)
    ),
)

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    texts,
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
role_values = st.lists(st.sampled_from([r.value for r in Role]) | texts, max_size=3)


def user_bodies() -> st.SearchStrategy[object]:
    """Mostly the right keys with random values, so requests get past the schema to the
    service and the database; sometimes anything at all."""
    shaped = st.fixed_dictionaries(
        {},
        optional={
            "username": st.from_regex(r"[a-z][a-z0-9._-]{1,20}", fullmatch=True) | texts,
            "full_name": texts,
            "password": st.text(min_size=12, max_size=40) | texts,
            "roles": role_values | json_values,
            "extra": json_values,
        },
    )
    return st.one_of(shaped, shaped, json_values)


def token_bodies() -> st.SearchStrategy[object]:
    shaped = st.fixed_dictionaries({}, optional={"name": texts | json_values, "x": json_values})
    return st.one_of(shaped, shaped, json_values)


def encode(body: object) -> bytes:
    # allow_nan: Python's json writes NaN/Infinity, which strict parsers refuse; send them too
    return json.dumps(body).encode()


def assert_no_500(response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]


@pytest.fixture
def web(make_user, clients):
    return clients.web(make_user("tess", "technician"))


@pytest.fixture
def tech_api(make_user, clients):
    return clients.api(make_user("tom", "technician"))


@pytest.fixture
def admin_api(make_user, clients):
    return clients.api(make_user("ada", "admin"))


@SETTINGS
@given(code=texts)
@example(code="\x00")
@example(code="G1234\x0098654321")
@example(code="%")
@example(code="%00")
@example(code="/../../etc/passwd")
@example(code="=" + "9" * 5000)
def test_web_scan_never_500(web, code):
    assert_no_500(web.get("/scan", query_string={"code": code}))


@SETTINGS
@given(code=texts)
@example(code="\x00")
@example(code="%")
@example(code="=" * 200)
@example(code="A" * 10_000)
def test_api_scan_never_500(tech_api, code):
    assert_no_500(tech_api.get("/api/v1/scan", query_string={"code": code}))


@SETTINGS
@given(body=user_bodies())
@example(body={"username": "nul", "full_name": "A\x00B", "password": "x" * 12, "roles": ["qa"]})
@example(body={"username": "big", "full_name": "x" * 121, "password": "x" * 12, "roles": ["qa"]})
@example(body={"username": "pw", "full_name": "P W", "password": "\x00" * 12, "roles": ["qa"]})
@example(body={"username": "nan", "full_name": float("nan"), "password": "x", "roles": [1]})
def test_create_user_never_500(admin_api, body):
    assert_no_500(
        admin_api.post("/api/v1/users", data=encode(body), content_type="application/json")
    )


@SETTINGS
@given(body=token_bodies())
@example(body={"name": "scanner\x00"})
@example(body={"name": "😀" * 80})
@example(body={"name": None})
def test_create_token_never_500(tech_api, body):
    assert_no_500(
        tech_api.post("/api/v1/tokens", data=encode(body), content_type="application/json")
    )


@SETTINGS
@given(raw=st.binary(max_size=200))
@example(raw=b"")
@example(raw=b"\x00")
def test_raw_bytes_as_json_never_500(admin_api, raw):
    assert_no_500(admin_api.post("/api/v1/users", data=raw, content_type="application/json"))
    assert_no_500(admin_api.post("/api/v1/tokens", data=raw, content_type="application/json"))


@SETTINGS
@given(username=texts, password=texts)
@example(username="\x00", password="x")
@example(username="tess\x00", password="x")
def test_login_form_never_500(app, make_user, username, password):
    response = app.test_client().post("/login", data={"username": username, "password": password})
    assert_no_500(response)


@pytest.fixture
def demo_app(shared_app, demo_database_url):
    """The worker's shared app on a copy of the demo site as seeded once per worker for the
    other demo tests (this test seeded a demo of its own on PostgreSQL, the second of the
    worker, and built a database and an app for it)."""
    yield shared_app
    with shared_app.app_context():  # no connection left open to the live database
        db.session.remove()
        db.engine.dispose()


def test_every_code_of_the_demo_site_scans_without_a_500(demo_app):
    """The scans above run on an empty site, where every code is unknown; here every code the
    demo site issued (donations, units, patients, reserved DINs) is scanned as the label
    payload, with K, without K and with a wrong K, on the page and the API."""
    from sqlalchemy import select

    from cellchain.core import accounts
    from cellchain.core.identifiers import ALPHABET
    from cellchain.core.models import IssuedIdentifier, User
    from cellchain.core.types import utcnow

    app = demo_app
    with app.app_context():
        codes = list(db.session.scalars(select(IssuedIdentifier.code)))
        clinician = db.session.scalars(select(User).where(User.username == "clinician")).one()
        _row, token = accounts.create_token(db.session, user=clinician, now=utcnow(), name="x")
        db.session.commit()
        db.session.remove()
    web = app.test_client()
    login = {"username": "clinician", "password": "clinician-demo-pass"}
    assert web.post("/login", data=login).status_code == 302
    api = app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    assert len(codes) > 100
    for code in codes:
        wrong = code[:-1] + next(c for c in ALPHABET if c != code[-1])
        for typed in (f"CC1.{code}", code, code[:-1], wrong):
            assert_no_500(web.get("/scan", query_string={"code": typed}))
            assert_no_500(api.get("/api/v1/scan", query_string={"code": typed}))
        found = web.get("/scan", query_string={"code": code}, follow_redirects=True)
        assert_no_500(found)
