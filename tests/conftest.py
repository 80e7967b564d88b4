"""Fixtures: a freshly migrated database per test, on SQLite or (with
CELLCHAIN_TEST_DATABASE_URL) PostgreSQL, an app bound to it, users and logged-in clients.

The schema is migrated once per run into a template (a SQLite file, or a PostgreSQL
database); each test gets a copy (a file copy, or CREATE DATABASE … TEMPLATE) and the copy
is dropped afterwards, so tests that commit, and tests that run parallel transactions,
start from the same clean state.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cellchain import create_app
from cellchain.core import accounts, numbering
from cellchain.core.accounts import AccountPolicy
from cellchain.core.models import User
from cellchain.core.roles import Role
from cellchain.core.types import utcnow
from cellchain.extensions import db

POSTGRES_URL = os.environ.get("CELLCHAIN_TEST_DATABASE_URL")
TEST_PASSWORD = "correct horse battery"
FAST_HASH = "pbkdf2:sha256:1000"  # tests only: real sites use scrypt


def on_postgres() -> bool:
    return POSTGRES_URL is not None


def test_config(database_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "ENV_NAME": "testing",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "PASSWORD_HASH_METHOD": FAST_HASH,
        "WTF_CSRF_ENABLED": False,
        **extra,
    }


class DatabaseFactory:
    """Hands out fresh copies of a migrated template database."""

    def __init__(self, workdir: Path) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.counter = itertools.count()
        self.workdir = workdir
        if on_postgres():
            self.admin_url = make_url(POSTGRES_URL)
            self.admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
            self.template = f"cellchain_tmpl_{self.run_id}"
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.template}"'))
            self._migrate(self.url_of(self.template))
        else:
            self.template_file = workdir / "template.sqlite"
            self._migrate(f"sqlite:///{self.template_file}")

    def url_of(self, name: str) -> str:
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def _migrate(self, url: str) -> None:
        app = create_app(test_config(url))
        with app.app_context():
            upgrade()
            db.engine.dispose()

    def create(self, copy_of: str | None = None) -> str:
        """A new database with the migrated schema, or a copy of the database at ``copy_of``
        (one made here, with no connection left open, e.g. the seeded demo); returns its URL."""
        n = next(self.counter)
        if on_postgres():
            name = f"cellchain_t_{self.run_id}_{n}"
            source = make_url(copy_of).database if copy_of else self.template
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
            return self.url_of(name)
        path = self.workdir / f"test-{n}.sqlite"
        shutil.copyfile(make_url(copy_of).database if copy_of else self.template_file, path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        if on_postgres():
            name = make_url(url).database
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        else:
            Path(make_url(url).database or "").unlink(missing_ok=True)

    def close(self) -> None:
        if on_postgres():
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)'))
            self.admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("db"))
    yield factory
    factory.close()


@pytest.fixture
def database_url(databases: DatabaseFactory) -> Iterator[str]:
    url = databases.create()
    yield url
    databases.drop(url)


def seed_demo_database(url: str) -> None:
    """Seed the demo site (``cellchain demo``) into the database at ``url`` and close it."""
    from zoneinfo import ZoneInfo

    from cellchain.demo import seed_demo

    app = create_app(test_config(url))
    with app.app_context():
        seed_demo(
            db.session,
            now=utcnow(),
            facility_code=app.config["FACILITY_CODE"],
            policy=AccountPolicy.from_config(app.config),
            site_zone=ZoneInfo(app.config["SITE_TIMEZONE"]),
        )
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def demo_template(databases: DatabaseFactory) -> Iterator[str]:
    """The URL of a database seeded once per run (per xdist worker) with the demo site.

    Never open it in a test: take a copy with ``databases.create(copy_of=demo_template)``, or
    override ``database_url`` with ``demo_database_url`` so ``app`` runs on a demo copy.
    """
    url = databases.create()
    seed_demo_database(url)
    yield url
    databases.drop(url)


@pytest.fixture
def demo_database_url(databases: DatabaseFactory, demo_template: str) -> Iterator[str]:
    """A copy of the demo site's database for one test (real records, ids and codes)."""
    url = databases.create(copy_of=demo_template)
    yield url
    databases.drop(url)


class FreshContextClient(FlaskClient):
    """A test client whose every request (and redirect hop) runs in an app context of its own.

    The ``app`` fixture keeps a context pushed for the whole test so tests can use
    ``db.session``; Flask reuses a pushed context of the same app for test requests, so
    without this all requests of a test would share one ``flask.g`` and one session:
    Flask-Login caches the loaded user in ``g``, so one client would act as another's user,
    and ``cellchain.http.now()`` would return the first request's time ever after.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)  # read streamed bodies while the context lives
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def make_app(database_url: str) -> Iterator[Callable[..., Flask]]:
    """Build an app on this test's database, with extra config where a test needs it."""
    apps: list[Flask] = []

    def build(**extra: Any) -> Flask:
        app = create_app(test_config(database_url, **extra))
        app.test_client_class = FreshContextClient
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app()
    with app.app_context():
        yield app


@pytest.fixture
def session(app: Flask) -> Any:
    return db.session


@pytest.fixture
def policy(app: Flask) -> AccountPolicy:
    return AccountPolicy.from_config(app.config)


@pytest.fixture
def make_user(app: Flask, policy: AccountPolicy) -> Callable[..., User]:
    """Create and commit a user holding ``roles`` with the password TEST_PASSWORD."""

    def make(username: str, *roles: Role | str, full_name: str | None = None) -> User:
        user = accounts.create_user(
            db.session,
            actor=None,
            now=utcnow(),
            username=username,
            full_name=full_name or f"{username.title()} Tester",
            password=TEST_PASSWORD,
            roles=roles or [Role.TECHNICIAN],
            policy=policy,
        )
        db.session.commit()
        return user

    return make


def issue_din(app: Flask) -> str:
    """Issue (and commit) the next DIN of the test site; returns its canonical code."""
    issued = numbering.allocate_din(
        db.session,
        facility_code=app.config["FACILITY_CODE"],
        actor=None,
        now=utcnow(),
        purpose="test",
    )
    db.session.commit()
    return issued.code


@dataclass
class Clients:
    app: Flask
    make_user: Callable[..., User]

    def web(self, user: User, password: str = TEST_PASSWORD) -> FlaskClient:
        """A browser-like client logged in as ``user`` through the login form."""
        client = self.app.test_client()
        response = client.post("/login", data={"username": user.username, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    def api(self, user: User) -> FlaskClient:
        """A client sending ``user``'s new bearer token with every request."""
        _row, token = accounts.create_token(db.session, user=user, now=utcnow(), name="tests")
        db.session.commit()
        client = self.app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return client


@pytest.fixture
def clients(app: Flask, make_user: Callable[..., User]) -> Clients:
    return Clients(app, make_user)


def pytest_report_header(config: pytest.Config) -> str:
    where = f"PostgreSQL {make_url(POSTGRES_URL).database}" if POSTGRES_URL else "SQLite"
    return f"cellchain database: {where}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_pg = pytest.mark.skip(reason="needs CELLCHAIN_TEST_DATABASE_URL (PostgreSQL)")
    for item in items:
        if "postgres_only" in item.keywords and not on_postgres():
            item.add_marker(skip_pg)


@pytest.fixture
def lab(app: Flask, make_user: Callable[..., User]) -> Any:
    """A technician, a QC analyst and QA, with the UC-MSC product definition in force."""
    from tests.factories import make_lab

    return make_lab(app, make_user)


def at_once(app: Flask, jobs: list[Callable[[], str]], *, timeout: float = 60) -> list[str]:
    """Run every job in its own thread and app context, released together; their results.

    For tests of concurrent writers on PostgreSQL: each job commits or rolls back itself and
    returns what happened ("won", "refused", …). An exception in any job fails the test.
    """
    barrier = threading.Barrier(len(jobs))
    outcomes: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(job: Callable[[], str]) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=timeout / 2)
                try:
                    outcome = job()
                finally:
                    db.session.remove()
            with lock:
                outcomes.append(outcome)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert failures == [], failures
    return sorted(outcomes)
