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
import tempfile
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
from cellchain.wiring import import_models

pytest.register_assert_rewrite("tests.support")
from tests.support.scenes import restore_for  # noqa: E402
from tests.support.schema_snapshots import SchemaSnapshots  # noqa: E402

pytest_plugins = [
    "tests.support.scenes",
    "tests.support.lab",
    "tests.support.bench",
    "tests.support.desk",
    "tests.support.clinic",
    "tests.support.ward",
]

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
            live = make_url(self.live_url).database
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{live}" TEMPLATE "{self.template}"'))
                # a commit need not wait for its WAL to reach the disk: the tests never
                # survive a crash of the server, and the wait is most of a small commit
                conn.execute(text(f'ALTER DATABASE "{live}" SET synchronous_commit = off'))
            import_models()
            self.schemas = SchemaSnapshots(
                self.live_url, [table.name for table in db.metadata.sorted_tables]
            )
            self.base = f"schema:{self.schemas.take()}"
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

    @property
    def live_url(self) -> str:
        """The URL of this worker's *live* database: the one the shared app is bound to.

        Its name never changes, so the app (and its OpenAPI spec) is built once per worker;
        ``restore`` replaces its content before each test."""
        if on_postgres():
            return self.url_of(f"cellchain_live_{self.run_id}")
        return f"sqlite:///{self.workdir / 'live.sqlite'}"

    def restore(self, source: str | None = None) -> str:
        """Make the live database what the snapshot ``source`` holds (one ``snapshot``
        returned; the migrated template by default); returns the live URL. No connection
        may be open to the live database."""
        live = self.live_url
        if on_postgres():
            handle = source or self.base
            if not handle.startswith("schema:"):
                raise ValueError(f"not a snapshot of the live database: {handle}")
            self.schemas.restore(handle.removeprefix("schema:"))
        else:
            path = Path(make_url(live).database or "")
            path.with_name(path.name + "-journal").unlink(missing_ok=True)
            shutil.copyfile(make_url(source).database if source else self.template_file, path)
        return live

    def snapshot(self) -> str:
        """A snapshot of the live database as it is now (committed, no connection open), for
        ``restore``: a schema inside it on PostgreSQL, a copy of the file on SQLite."""
        if on_postgres():
            return f"schema:{self.schemas.take()}"
        return self.create(copy_of=self.live_url)

    def create(self, copy_of: str | None = None) -> str:
        """A new database with the migrated schema, or a copy of the database at ``copy_of``
        (one made here, with no connection left open, e.g. the seeded demo); returns its URL."""
        n = next(self.counter)
        if on_postgres():
            name = f"cellchain_t_{self.run_id}_{n}"
            source = make_url(copy_of).database if copy_of else self.template
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
                conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
            return self.url_of(name)
        path = self.workdir / f"test-{n}.sqlite"
        shutil.copyfile(make_url(copy_of).database if copy_of else self.template_file, path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        if url.startswith("schema:"):
            self.schemas.drop(url.removeprefix("schema:"))
        elif on_postgres():
            name = make_url(url).database
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        else:
            Path(make_url(url).database or "").unlink(missing_ok=True)

    def close(self) -> None:
        if on_postgres():
            self.schemas.close()
            with self.admin.connect() as conn:
                conn.execute(
                    text(
                        f'DROP DATABASE IF EXISTS "{make_url(self.live_url).database}" WITH (FORCE)'
                    )
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)'))
            self.admin.dispose()


#: SQLite files live in memory (tmpfs) when the machine has one: each commit of a file on
#: disk waits for an fsync (18 ms here, a fifth of the suite's time), which tells a test nothing.
MEMORY_DIR = Path("/dev/shm")


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    if MEMORY_DIR.is_dir() and os.access(MEMORY_DIR, os.W_OK):
        workdir = Path(tempfile.mkdtemp(prefix="cellchain-tests-", dir=MEMORY_DIR))
    else:
        workdir = tmp_path_factory.mktemp("db")
    factory = DatabaseFactory(workdir)
    try:
        yield factory
    finally:
        factory.close()
        if workdir.parent == MEMORY_DIR:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def database_url(databases: DatabaseFactory, request: pytest.FixtureRequest) -> str:
    """This test's database: the worker's live database, restored from the snapshot of the
    scenes the test asks for (``tests.support.scenes``), or from the empty template."""
    return restore_for(request, databases)


@dataclass(frozen=True)
class SeededDemo:
    """A database seeded with the demo site (``cellchain demo``) once per worker, and the
    codes tests look for in it."""

    url: str  #: never opened by a test: take a copy (``databases.create(copy_of=url)``)
    reserved_dins: list[str]  #: canonical codes (body + check character) of the demo DINs
    donation_dins: dict[str, str]  #: demo stage → that donation's DIN
    patient_cois: dict[str, str]  #: study ID → the patient's COI
    dose_codes: dict[str, str]  #: study ID → the code of the patient's shipped dose
    shippers: dict[str, str]  #: demo stage → that shipment's dry shipper ID


def _seed(app: Flask) -> SeededDemo:
    """Seed the demo site into the database of ``app`` (context pushed) and commit."""
    from zoneinfo import ZoneInfo

    from cellchain.demo import seed_demo

    site = seed_demo(
        db.session,
        now=utcnow(),
        facility_code=app.config["FACILITY_CODE"],
        policy=AccountPolicy.from_config(app.config),
        site_zone=ZoneInfo(app.config["SITE_TIMEZONE"]),
    )
    seeded = SeededDemo(
        url=app.config["SQLALCHEMY_DATABASE_URI"],
        reserved_dins=[issued.code for issued in site.reserved_dins],
        donation_dins={stage: donation.din for stage, donation in site.donations.items()},
        patient_cois={study_id: p.coi for study_id, p in site.patients.items()},
        dose_codes={
            item.dose_order.patient.study_id: item.dose_order.dose_unit.code
            for shipment in site.shipments.values()
            for item in shipment.items
        },
        shippers={stage: shipment.shipper_id for stage, shipment in site.shipments.items()},
    )
    db.session.commit()
    return seeded


def seed_demo_database(url: str, **config: Any) -> SeededDemo:
    """Seed the demo site into the database at ``url`` (``config``: the site's settings, e.g.
    its ``SITE_TIMEZONE``, whose calendar day the demo's day 0 is), close it, and say what it
    holds."""
    app = create_app(test_config(url, **config))
    with app.app_context():
        seeded = _seed(app)
        db.session.remove()
        db.engine.dispose()
    return seeded


@pytest.fixture(scope="session")
def seeded_demo(databases: DatabaseFactory) -> Iterator[SeededDemo]:
    """The demo site seeded once per worker (seeding takes seconds; a copy milliseconds)."""
    seeded = seed_demo_database(databases.create())
    yield seeded
    databases.drop(seeded.url)


@pytest.fixture(scope="session")
def demo_template(seeded_demo: SeededDemo) -> str:
    """The URL of the demo site seeded once per run (per xdist worker).

    Never open it in a test: take a copy with ``databases.create(copy_of=demo_template)``, or
    override ``database_url`` with ``demo_database_url`` so ``app`` runs on a demo copy.
    """
    return seeded_demo.url


@pytest.fixture(scope="session")
def demo_snapshot(databases: DatabaseFactory, request: pytest.FixtureRequest) -> str:
    """The demo site seeded once per worker into the live database and kept as a snapshot."""
    if not on_postgres():
        # a SQLite snapshot is a database file never opened: the worker's seeded demo is one
        # (the demo was seeded twice per worker, for the browser tests and for these)
        seeded: SeededDemo = request.getfixturevalue("seeded_demo")
        return seeded.url
    shared_app: Flask = request.getfixturevalue("shared_app")
    databases.restore()
    with shared_app.app_context():
        _seed(shared_app)
        db.session.remove()
        db.engine.dispose()
    return databases.snapshot()


@pytest.fixture
def demo_database_url(databases: DatabaseFactory, demo_snapshot: str) -> str:
    """A copy of the demo site's database for one test (real records, ids and codes): the
    worker's live database, restored from the demo snapshot."""
    return databases.restore(demo_snapshot)


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


def build_test_app(database_url: str, **extra: Any) -> Flask:
    """A new app on ``database_url`` whose test clients run each request in its own context."""
    app = create_app(test_config(database_url, **extra))
    app.test_client_class = FreshContextClient
    return app


@pytest.fixture(scope="session")
def shared_app(databases: DatabaseFactory) -> Iterator[Flask]:
    """The app on the worker's live database, built once per worker: building one (its
    blueprints and OpenAPI spec) costs about a tenth of a second, once per test before."""
    app = build_test_app(databases.live_url)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def make_app(
    database_url: str, databases: DatabaseFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Flask]]:
    """The app of this test's database, with extra config where a test needs it: the shared
    app when the test runs on the live database with the default config, else a new one."""
    apps: list[Flask] = []
    shared: list[tuple[Flask, dict[str, Any]]] = []  # the shared app and its config before

    def build(**extra: Any) -> Flask:
        if not extra and database_url == databases.live_url:
            app: Flask = request.getfixturevalue("shared_app")
            if not shared:
                shared.append((app, dict(app.config)))
        else:
            app = build_test_app(database_url, **extra)
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    for app, config in shared:  # a test that changed the shared app's config changed it here
        app.config.clear()
        app.config.update(config)


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
    return user_maker(policy)


def user_maker(policy: AccountPolicy) -> Callable[..., User]:
    """The ``make_user`` function of an app whose context is pushed."""

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
        join_first_clinical_site(user)
        db.session.commit()
        return user

    return make


def join_first_clinical_site(user: User) -> None:
    """The sites ``cellchain init`` makes (from the app's configuration) when none is
    recorded, and a clinician or investigator made a member of the first clinical site, as
    an administrator would (docs/sites.md): a test's clinic staff see its patients."""
    from flask import current_app

    from cellchain.sites import service as sites

    config = current_app.config
    _facility, first = sites.ensure_configured_sites(
        db.session,
        name=config["SITE_NAME"],
        zone=config["SITE_TIMEZONE"],
        facility_code=config.get("FACILITY_CODE") or "FAC",
        now=utcnow(),
    )
    if {str(role) for role in user.roles} & {Role.CLINICIAN.value, Role.INVESTIGATOR.value}:
        sites.set_memberships(db.session, user, [first.id], actor=user, now=utcnow())


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


def _start_order(item: pytest.Item) -> int:
    """Heavy modules first, then the browser tests, then the rest (see ``heavy``)."""
    if "heavy" in item.keywords:
        return 0
    return 1 if "browser" in item.keywords else 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_pg = pytest.mark.skip(reason="needs CELLCHAIN_TEST_DATABASE_URL (PostgreSQL)")
    skip_no_db = pytest.mark.skip(
        reason="touches no database: it runs in the SQLite run, and would test nothing new here"
    )
    for item in items:
        if "postgres_only" in item.keywords and not on_postgres():
            item.add_marker(skip_pg)
        if on_postgres() and "databases" not in getattr(item, "fixturenames", ("databases",)):
            # every database the tests use comes from the ``databases`` fixture: a test
            # without it in its closure runs the same code on either run
            item.add_marker(skip_no_db)
    # The longest tests start first, so that the workers share them out and none is left
    # running one alone at the end while the others wait (a stable sort: each module's tests
    # stay together and in their order, so a module's fixtures are still made once).
    items.sort(key=_start_order)


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
