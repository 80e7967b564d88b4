"""`cellchain db roles` on PostgreSQL: the app's login role does the app's work and cannot
rewrite the audit trail, alter or drop a table, nor disable the trail's triggers.

Each test makes a database of its own, owned by an owner role of its own (not a superuser),
migrates it as that owner as a site would, runs `cellchain db roles`, works as the app role,
and drops the database and both roles at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from cellchain.cli import main
from cellchain.core import audit, db_roles
from cellchain.demo import DEMO_USERS
from cellchain.extensions import db
from tests.conftest import (
    FAST_HASH,
    DatabaseFactory,
    build_test_app,
    on_postgres,
    seed_demo_database,
)

#: long tests (a database migrated from scratch, the demo seeded): started first
pytestmark = pytest.mark.heavy

OWNER_PASSWORD = "owner-secret-for-tests"
APP_PASSWORD = "app-secret-for-tests"
#: SQLSTATE insufficient_privilege: "permission denied …", "must be owner of …"
INSUFFICIENT_PRIVILEGE = "42501"


@dataclass(frozen=True)
class Site:
    """A database owned by ``owner``; the app role ``app`` is made by `db roles`."""

    owner: str
    app: str
    owner_url: str
    app_url: str
    admin: Engine  #: the test cluster's superuser, for setting up and tearing down

    def engine(self, url: str) -> Engine:
        return create_engine(url, isolation_level="AUTOCOMMIT")


@pytest.fixture
def site(databases: DatabaseFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    suffix = uuid.uuid4().hex[:10]
    owner, app, name = f"cc_owner_{suffix}", f"cc_app_{suffix}", f"cellchain_roles_{suffix}"
    admin = databases.admin
    with admin.connect() as conn:
        # the owner may create roles (CREATEROLE), as a site's owner role would; no superuser
        conn.execute(text(f"CREATE ROLE {owner} LOGIN CREATEROLE PASSWORD '{OWNER_PASSWORD}'"))
        conn.execute(text(f'CREATE DATABASE "{name}" OWNER {owner}'))
    base = databases.admin_url.set(database=name)

    def url(user: str, password: str) -> str:
        return base.set(username=user, password=password).render_as_string(hide_password=False)

    monkeypatch.setenv("CELLCHAIN_ENV", "testing")
    monkeypatch.setenv("CELLCHAIN_PASSWORD_HASH_METHOD", FAST_HASH)
    try:
        yield Site(owner, app, url(owner, OWNER_PASSWORD), url(app, APP_PASSWORD), admin)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f"DROP ROLE IF EXISTS {app}"))
            conn.execute(text(f"DROP ROLE IF EXISTS {owner}"))


def cli(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> Result:
    """Run `cellchain ARGS` with CELLCHAIN_DATABASE_URL=url, as an operator would."""
    monkeypatch.setenv("CELLCHAIN_DATABASE_URL", url)
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def set_up(site: Site, monkeypatch: pytest.MonkeyPatch) -> Result:
    """Migrate as the owner, then `cellchain db roles` as the owner."""
    migrated = cli(monkeypatch, site.owner_url, "db", "upgrade")
    assert migrated.exit_code == 0, migrated.output
    roles = cli(
        monkeypatch, site.owner_url, "db", "roles", "--role", site.app, "--password", APP_PASSWORD
    )
    assert roles.exit_code == 0, roles.output
    return roles


def refusal(engine: Engine, statement: str) -> str:
    """The error PostgreSQL gives ``statement`` run by the engine's role (it must refuse)."""
    with pytest.raises(DBAPIError) as refused, engine.connect() as conn:
        conn.execute(text(statement))
    assert getattr(refused.value.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE, refused.value
    return str(refused.value.orig)


@pytest.mark.postgres_only
def test_the_app_role_runs_the_app_and_cannot_rewrite_the_trail_or_the_schema(
    site: Site, monkeypatch: pytest.MonkeyPatch
):
    first = set_up(site, monkeypatch)
    assert f"Role {site.app} created" in first.output
    again = cli(monkeypatch, site.owner_url, "db", "roles", "--role", site.app)
    assert again.exit_code == 0, again.output
    assert f"Role {site.app} updated, password unchanged" in again.output  # idempotent

    # real work as the app role: the demo site (every package's use cases) …
    seed_demo_database(site.app_url)
    # … and a failed login, a login and a logout over HTTP (the throttle's row, the session
    # row inserted, then deleted)
    app = build_test_app(site.app_url)
    tech = next(user for user in DEMO_USERS if user.username == "tech")
    client = app.test_client()
    wrong = client.post("/login", data={"username": tech.username, "password": "not-it-at-all"})
    assert wrong.status_code == 401  # counted by the login throttle, as the app role
    login = client.post("/login", data={"username": tech.username, "password": tech.password})
    assert login.status_code == 302, login.get_data(as_text=True)
    assert client.get("/").status_code == 200
    assert client.post("/logout").status_code == 302
    with app.app_context():
        report = audit.verify_chain(db.session)  # as the app role
        db.session.remove()
        db.engine.dispose()
    assert report.intact, report.problem
    assert report.entries_checked > 100  # the demo's and the login's entries

    as_app = site.engine(site.app_url)
    try:
        with as_app.connect() as conn:
            assert conn.scalar(text("SELECT current_user")) == site.app
            assert conn.scalar(text("SELECT count(*) FROM user_sessions")) == 0  # deleted
            logouts = "SELECT count(*) FROM audit_entries WHERE action = 'logout'"
            assert conn.scalar(text(logouts)) == 1
        # refused by privilege, before the append-only trigger is reached
        for statement in (
            "UPDATE audit_entries SET reason = 'rewritten'",
            "DELETE FROM audit_entries WHERE seq = (SELECT max(seq) FROM audit_entries)",
            "TRUNCATE audit_entries",
            "DELETE FROM audit_chain_head",
        ):
            assert "permission denied for table" in refusal(as_app, statement), statement
        for statement in (
            "ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only",
            "ALTER TABLE audit_entries DISABLE TRIGGER ALL",
            "DROP TABLE patients",
            "ALTER TABLE patients ADD COLUMN nickname text",
            "DROP TRIGGER audit_entries_no_truncate ON audit_entries",
        ):
            assert "must be owner of" in refusal(as_app, statement), statement
        assert "permission denied for schema" in refusal(as_app, "CREATE TABLE mine (id int)")
        assert "permission denied for sequence" in refusal(
            as_app, "SELECT setval('users_id_seq', 1)"
        )

        # a table the owner adds later (the next `db upgrade`) is the app's to use at once
        as_owner = site.engine(site.owner_url)
        with as_owner.connect() as conn:
            conn.execute(text("CREATE TABLE added_later (id serial PRIMARY KEY, note text)"))
            assert db_roles.check_app_role(conn, role=site.app) == []
        with as_app.connect() as conn:
            conn.execute(text("INSERT INTO added_later (note) VALUES ('a')"))
            conn.execute(text("UPDATE added_later SET note = 'b'"))
            conn.execute(text("DELETE FROM added_later"))
        assert "must be owner of" in refusal(as_app, "DROP TABLE added_later")
        as_owner.dispose()
    finally:
        as_app.dispose()


@pytest.mark.postgres_only
def test_a_restore_runs_as_the_owner_and_puts_the_app_roles_grants_back(
    site: Site, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    set_up(site, monkeypatch)
    monkeypatch.setenv("CELLCHAIN_APP_DB_ROLE", site.app)  # the role `db roles` uses
    created = cli(
        monkeypatch, site.app_url, "users", "create", "rita", "--full-name", "Rita Tech",
        "--role", "technician", "--password", "a-long-password-1",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    archive = tmp_path / "site.dump"
    backup = cli(monkeypatch, site.app_url, "backup", str(archive))  # pg_dump reads all
    assert backup.exit_code == 0, backup.output
    assert "chain intact" in backup.output

    as_app = cli(monkeypatch, site.app_url, "restore", "--yes", str(archive))
    assert as_app.exit_code == 1
    assert "must be owner of" in as_app.output  # pg_restore --clean drops tables

    restored = cli(monkeypatch, site.owner_url, "restore", "--yes", str(archive))
    assert restored.exit_code == 0, restored.output
    # the restore recreated the tables, and the owner's default privileges gave each one
    # the ordinary grants, audit_entries included: the restore puts the app role's grants
    # back itself, and says so
    assert f"The app role {site.app}'s grants were put back" in restored.output
    checked = cli(monkeypatch, site.owner_url, "db", "roles", "--role", site.app, "--check")
    assert checked.exit_code == 0, checked.output
    owner = site.engine(site.owner_url)
    app = site.engine(site.app_url)
    try:
        with owner.connect() as conn:
            assert db_roles.check_app_role(conn, role=site.app) == []
        with app.connect() as conn:
            assert conn.scalar(text("SELECT username FROM users")) == "rita"
        assert "permission denied" in refusal(app, "UPDATE audit_entries SET reason = 'x'")
    finally:
        owner.dispose()
        app.dispose()


@pytest.mark.postgres_only
def test_a_backup_restores_on_a_server_without_its_app_role(
    site: Site, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """The archive grants to the app role of the site it was taken on; a new server (a new
    database, the role gone from the cluster) restores it all the same, owned by the owner
    restoring it, and the restore says to run `cellchain db roles`."""
    set_up(site, monkeypatch)
    monkeypatch.setenv("CELLCHAIN_APP_DB_ROLE", site.app)
    created = cli(
        monkeypatch, site.app_url, "users", "create", "rita", "--full-name", "Rita Tech",
        "--role", "technician", "--password", "a-long-password-1",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    archive = tmp_path / "site.dump"
    assert cli(monkeypatch, site.owner_url, "backup", str(archive)).exit_code == 0

    old = make_url(site.owner_url)
    new_name = f"{old.database}_new"
    new_url = old.set(database=new_name).render_as_string(hide_password=False)
    as_admin_in_old = create_engine(
        site.admin.url.set(database=old.database), isolation_level="AUTOCOMMIT"
    )
    try:
        with as_admin_in_old.connect() as conn:  # the role and all its grants gone
            conn.execute(text(f"DROP OWNED BY {site.app}"))
            conn.execute(text(f"DROP ROLE {site.app}"))
        with site.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{new_name}" OWNER {site.owner}'))
        restored = cli(monkeypatch, new_url, "restore", "--yes", str(archive))
        assert restored.exit_code == 0, restored.output
        assert "chain intact" in restored.output
        assert f"There is no role {site.app} on this server" in restored.output
        assert "cellchain db roles" in restored.output
        owner = site.engine(new_url)
        try:
            with owner.connect() as conn:
                assert conn.scalar(text("SELECT username FROM users")) == "rita"
                owners = conn.scalars(
                    text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
                ).all()
                assert owners == [site.owner]
        finally:
            owner.dispose()
        roles = cli(
            monkeypatch, new_url, "db", "roles", "--role", site.app, "--password", APP_PASSWORD
        )
        assert roles.exit_code == 0, roles.output
        checked = cli(monkeypatch, new_url, "db", "roles", "--role", site.app, "--check")
        assert checked.exit_code == 0, checked.output
    finally:
        as_admin_in_old.dispose()
        with site.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{new_name}" WITH (FORCE)'))


@pytest.mark.postgres_only
def test_a_role_that_could_act_as_the_owner_is_refused_and_nothing_changes(
    site: Site, monkeypatch: pytest.MonkeyPatch
):
    migrated = cli(monkeypatch, site.owner_url, "db", "upgrade")
    assert migrated.exit_code == 0, migrated.output
    with site.admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {site.app} LOGIN PASSWORD '{APP_PASSWORD}'"))
        conn.execute(text(f"GRANT {site.owner} TO {site.app}"))  # a member of the owner
    refused = cli(monkeypatch, site.owner_url, "db", "roles", "--role", site.app)
    assert refused.exit_code == 1
    assert f"it acts as '{site.owner}'" in refused.output
    assert "Nothing was changed" in refused.output
    owner = site.engine(site.owner_url)
    try:
        with owner.connect() as conn:
            granted = "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = :r"
            assert conn.scalar(text(granted), {"r": site.app}) == 0  # rolled back

        myself = cli(monkeypatch, site.owner_url, "db", "roles", "--role", site.owner)
        assert myself.exit_code == 1
        assert "the owner of the schema" in myself.output
        unnamed = cli(monkeypatch, site.owner_url, "db", "roles", "--role", "App-Role")
        assert unnamed.exit_code == 1
        assert "not a role name" in unnamed.output
    finally:
        owner.dispose()


@pytest.mark.postgres_only
def test_a_new_role_needs_a_password(site: Site, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CELLCHAIN_APP_DB_PASSWORD", raising=False)
    refused = cli(monkeypatch, site.owner_url, "db", "roles", "--role", site.app)
    assert refused.exit_code == 1
    assert "give its password" in refused.output
    monkeypatch.setenv("CELLCHAIN_APP_DB_ROLE", site.app)
    monkeypatch.setenv("CELLCHAIN_APP_DB_PASSWORD", APP_PASSWORD)
    from_env = cli(monkeypatch, site.owner_url, "db", "roles")
    assert from_env.exit_code == 0, from_env.output
    assert f"Role {site.app} created, password set" in from_env.output


@pytest.mark.postgres_only
def test_an_owner_who_may_not_create_roles_is_told_in_one_line(
    site: Site, monkeypatch: pytest.MonkeyPatch
):
    with site.admin.connect() as conn:
        conn.execute(text(f"ALTER ROLE {site.owner} NOCREATEROLE"))
    refused = cli(
        monkeypatch, site.owner_url, "db", "roles", "--role", site.app, "--password", APP_PASSWORD
    )
    assert refused.exit_code == 1
    assert "PostgreSQL refused: permission denied to create role" in refused.output
    assert "Traceback" not in refused.output
    with site.admin.connect() as conn:
        exists = "SELECT count(*) FROM pg_roles WHERE rolname = :r"
        assert conn.scalar(text(exists), {"r": site.app}) == 0


def test_on_sqlite_db_roles_says_roles_are_postgresqls(
    database_url: str, monkeypatch: pytest.MonkeyPatch
):
    if on_postgres():
        pytest.skip("the SQLite answer; the PostgreSQL run tests the roles themselves")
    monkeypatch.setenv("CELLCHAIN_ENV", "testing")
    refused = cli(monkeypatch, database_url, "db", "roles", "--password", "x")
    assert refused.exit_code == 1
    assert "Database roles are PostgreSQL's" in refused.output
