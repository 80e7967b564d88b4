"""The whole API under schemathesis (issue 18): every operation of the app's own OpenAPI
document (as served at ``/api/v1/openapi.json``), called with the bearer tokens of two
accounts on a copy of the demo site, answers without a server error and as documented:
status code, content type and body schema (errors are ``application/problem+json`` with the
``Problem`` schema, documented for every operation by ``web/docs.ProblemResponses``).

Repeatable and bounded: a fixed seed, derandomized generation, ``MAX_EXAMPLES`` random
examples per operation and generation mode plus schemathesis' deterministic coverage cases
(boundary values, each required field missing, wrong types, ids beyond the range): about
5,900 calls. Writes are allowed: the database is a copy of the demo site. Runs in CI's
PostgreSQL run only: PostgreSQL refuses out-of-range integers that SQLite stores, so it finds
all that SQLite would and more, and running it twice cost about 40 s of the 8-minute budget.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from cellchain.core import accounts
from cellchain.core.models import ApiToken
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.extensions import db
from tests.conftest import TEST_PASSWORD

#: long tests: started first (tests/conftest.py, ``heavy``); PostgreSQL only (module docstring)
pytestmark = [pytest.mark.heavy, pytest.mark.postgres_only]

SEED = 18
#: random examples per operation and generation mode (valid and invalid input); the
#: coverage phase adds its deterministic cases to these
MAX_EXAMPLES = 5
#: what every answer must satisfy
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: The two accounts whose tokens call every operation, in turn. Together they hold every
#: role (an administrator never holds a signing role), so each operation is reached past
#: its permission check by one of them and refused (403) to the other where roles differ.
ACCOUNTS: dict[str, tuple[Role, ...]] = {
    "bench": (Role.TECHNICIAN, Role.CLINICIAN, Role.ADMIN),
    "quality": (Role.QA, Role.QC_ANALYST, Role.INVESTIGATOR),
}
#: Operations a run must see answer 2xx at least once, or it tested little but refusals
#: (of 129 operations; 120 did when this was written: the other nine need a body whose
#: records line up, which random input rarely gives).
MIN_OPERATIONS_SUCCEEDING = 110
#: changes after which an account may no longer authenticate as planned
ACCOUNT_CHANGES = ("/api/v1/users", "/api/v1/tokens")


@pytest.fixture
def database_url(demo_database_url: str) -> str:
    """A copy of the demo site: real ids, codes and records in every state."""
    return demo_database_url


@pytest.fixture
def fuzz_app(make_app: Any) -> Flask:
    # A wrong password typed for a second signer counts toward that account's lockout or
    # back-off (tested in tests/web/test_login_throttle.py); here it would only turn later
    # calls into refusals.
    app: Flask = make_app(LOCKOUT_THRESHOLD=1_000_000)
    return app


@dataclass
class Fuzzers:
    """The accounts the calls are made as, their tokens, and what the calls got.

    The administrator's calls may deactivate the other account, change its roles or revoke
    a token (its own included): after a successful change of an account or a token,
    ``renew`` gives each account that can no longer act as planned a fresh user and token,
    so the calls that follow still get past authentication."""

    app: Flask
    tokens: dict[str, str] = field(default_factory=dict)
    serial: Iterator[int] = field(default_factory=itertools.count)
    turns: Counter[str] = field(default_factory=Counter)
    succeeded: set[str] = field(default_factory=set)

    def renew(self) -> None:
        with self.app.app_context():
            for name, roles in ACCOUNTS.items():
                if name not in self.tokens or not self._intact(self.tokens[name], roles):
                    self.tokens[name] = self._mint(name, roles)
            db.session.commit()
            db.session.remove()

    def _intact(self, token: str, roles: tuple[Role, ...]) -> bool:
        row = db.session.execute(
            select(ApiToken).where(ApiToken.token_hash == accounts.hash_token(token))
        ).scalar_one()
        valid = accounts.valid_token(db.session, token, utcnow()) is not None
        return valid and set(row.user.roles) == set(roles)

    def _mint(self, name: str, roles: tuple[Role, ...]) -> str:
        user = accounts.create_user(
            db.session,
            actor=None,
            now=utcnow(),
            username=f"fuzz.{name}.{next(self.serial)}",
            full_name=f"Fuzz {name.title()}",
            password=TEST_PASSWORD,
            roles=roles,
            policy=accounts.AccountPolicy.from_config(self.app.config),
        )
        assert not user.must_change_password  # else every call would be a 403
        _row, token = accounts.create_token(db.session, user=user, now=utcnow(), name="fuzz")
        return token

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def next_account(self, operation: str) -> str:
        """The account to call ``operation`` as: each in turn, so that every operation is
        called as both and a run costs one call per generated case."""
        turn = self.turns[operation]
        self.turns[operation] += 1
        return list(ACCOUNTS)[turn % len(ACCOUNTS)]


@pytest.fixture
def fuzzers(fuzz_app: Flask) -> Iterator[Fuzzers]:
    fuzzers = Fuzzers(fuzz_app)
    fuzzers.renew()
    yield fuzzers
    # a guard against a run that passes by being refused everywhere (a broken token)
    assert len(fuzzers.succeeded) >= MIN_OPERATIONS_SUCCEEDING, sorted(fuzzers.succeeded)


@pytest.fixture
def api_schema(fuzz_app: Flask, fuzzers: Fuzzers) -> Any:
    """The OpenAPI document as the app serves it."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "deterministic": True,
                "max-examples": MAX_EXAMPLES,
                "database": "none",
            },
        }
    )
    return schemathesis.openapi.from_wsgi(
        "/api/v1/openapi.json", fuzz_app, config=config, headers=fuzzers.headers("quality")
    )


def with_passwords(body: Any, password: str) -> Any:
    """``body`` with every text ``password`` field set to ``password``: the signer's own
    signature then passes and the call reaches the rules behind it (a wrong password is
    a plain 401, tested elsewhere). A second signer's password is left as generated."""
    if isinstance(body, dict):
        return {
            key: password
            if key == "password" and isinstance(value, str)
            else with_passwords(value, password)
            for key, value in body.items()
        }
    if isinstance(body, list):
        return [with_passwords(item, password) for item in body]
    return body


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(
    case: Any, fuzz_app: Flask, fuzzers: Fuzzers
) -> None:
    if isinstance(case.body, dict | list):
        case.body = with_passwords(case.body, TEST_PASSWORD)
    account = fuzzers.next_account(case.operation.label)
    response = case.call_and_validate(
        session=fuzz_app.test_client(), headers=fuzzers.headers(account), checks=CHECKS
    )
    if response.status_code < 300:
        fuzzers.succeeded.add(case.operation.label)
        if case.method != "GET" and case.path.startswith(ACCOUNT_CHANGES):
            fuzzers.renew()
