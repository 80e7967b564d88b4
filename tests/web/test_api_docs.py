"""The OpenAPI document says what the API answers (issue 18, what schemathesis found): every
operation documents its ``application/problem+json`` error answers (``web/docs.py``,
``ProblemResponses``) and no catch-all; an id beyond the database's range is a 404 whatever
other methods its path has (``http.IntegerConverter``), never a 405."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellchain.core.roles import Role
from cellchain.core.schemas import DB_INT_MAX
from cellchain.http import digits_up_to
from cellchain.web.docs import PROBLEM_STATUSES

PROBLEM_JSON = "application/problem+json"
#: every role one account may hold together (not the administrator; not the statistician, who
#: never holds a role that enrols)
#: every role that may write (the read-only monitor is held with no other role, issue 22)
SIGNER_ROLES = [role for role in Role if role not in {Role.ADMIN, Role.STATISTICIAN, Role.MONITOR}]


@pytest.fixture
def spec(make_user: Any, clients: Any) -> dict[str, Any]:
    client = clients.api(make_user("olga", Role.TECHNICIAN))
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.get_json()
    return doc


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_operation_documents_its_problem_answers_and_no_catch_all(spec):
    found = operations(spec)
    assert len(found) > 100
    for path, method, operation in found:
        responses = operation["responses"]
        assert "default" not in responses, (method, path)
        errors = {int(code) for code in responses if code[0] in "45"}
        assert {401, 403, 500} <= errors, (method, path)
        if method != "get":
            assert {400, 409, 413, 422} <= errors, (method, path)
        if "{" in path:
            assert 404 in errors, (method, path)
        for code in errors:
            assert responses[str(code)] == {"$ref": f"#/components/responses/Problem{code}"}


def test_the_problem_responses_say_problem_json_with_the_problem_schema(spec):
    components = spec["components"]
    for status in PROBLEM_STATUSES:
        response = components["responses"][f"Problem{status}"]
        assert response["description"]
        assert response["content"] == {
            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    assert set(components["schemas"]["Problem"]["required"]) == {
        "type",
        "title",
        "status",
        "detail",
    }
    assert "WWW-Authenticate" in components["responses"]["Problem401"]["headers"]
    assert "Retry-After" in components["responses"]["Problem429"]["headers"]


def test_every_response_has_a_description(spec):
    # OpenAPI requires one; the certificate's PDF answer had none
    for path, method, operation in operations(spec):
        for code, response in operation["responses"].items():
            assert "$ref" in response or response.get("description"), (method, path, code)


def test_a_text_in_the_path_documents_422_and_an_integer_id_does_not(spec, clients, make_user):
    paths = spec["paths"]
    assert "422" in paths["/api/v1/identifiers/{code}"]["get"]["responses"]
    assert "422" in paths["/api/v1/trace/back/{kind}/{record_id}"]["get"]["responses"]
    assert "422" not in paths["/api/v1/units/{unit_id}"]["get"]["responses"]
    # the answer schemathesis got, now documented
    response = clients.api(make_user("ivan", Role.TECHNICIAN)).get("/api/v1/identifiers/00")
    assert response.status_code == 422 and response.mimetype == PROBLEM_JSON


def test_only_operations_that_check_a_password_document_429(spec):
    paths = spec["paths"]
    with_429 = {
        (method, path)
        for path, method, operation in operations(spec)
        if "429" in operation["responses"]
    }
    assert ("post", "/api/v1/lots/{lot_id}/release") in with_429
    assert ("post", "/api/v1/bedside/checks/{check_id}/signatures") in with_429  # 2nd signer
    assert ("post", "/api/v1/patients/{patient_id}/doses") in with_429  # nested override
    assert ("post", "/api/v1/users") not in with_429  # a new account's password
    assert all(method == "post" for method, _path in with_429)
    assert "429" not in paths["/api/v1/tokens"]["post"]["responses"]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        # each path also has a rule for the other method, which made these a 405
        ("GET", f"/api/v1/units/{DB_INT_MAX + 1}/labels"),
        ("POST", f"/api/v1/units/{DB_INT_MAX + 1}/labels"),
        ("POST", f"/api/v1/patients/{DB_INT_MAX + 1}/doses"),
        ("GET", f"/api/v1/lots/{2**63}/labels"),
        ("POST", f"/api/v1/donations/{DB_INT_MAX + 1}/eligibility"),
    ],
)
def test_an_id_beyond_the_database_is_a_404_even_where_another_method_has_the_path(
    method, url, make_user, clients
):
    client = clients.api(make_user("sig", *SIGNER_ROLES))
    response = client.open(url, method=method, json={} if method == "POST" else None)
    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON


def test_the_largest_id_and_leading_zeros_still_route(make_user, clients):
    client = clients.api(make_user("sig", *SIGNER_ROLES))
    for url in (f"/api/v1/units/{DB_INT_MAX}/labels", "/api/v1/units/0001/labels"):
        response = client.get(url)
        assert response.status_code == 404
        assert "There is no unit" in response.get_json()["detail"]  # the view's, not routing's


@given(
    largest=st.sampled_from([0, 1, 9, 10, 99, 100, 509, 1000, 65_535, DB_INT_MAX]),
    number=st.integers(min_value=0, max_value=10**12),
    zeros=st.integers(min_value=0, max_value=3),
)
def test_digits_up_to_matches_exactly_the_numbers_up_to_the_largest(largest, number, zeros):
    pattern = re.compile(f"(?:{digits_up_to(largest)})\\Z")
    for candidate in (number, number % (largest + 1), largest, largest + 1):
        text = "0" * zeros + str(candidate)
        assert bool(pattern.match(text)) == (candidate <= largest), (largest, text)
