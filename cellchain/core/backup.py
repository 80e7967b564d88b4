"""Backup and restore of the site's database, a restore proven by the audit chain.

A backup is one file: on SQLite a copy made with SQLite's online backup (consistent while
the app runs), on PostgreSQL a ``pg_dump`` archive (custom format, one consistent snapshot).
A restore replaces the database with the backup's content in one step (the SQLite online
backup the other way; ``pg_restore --clean --single-transaction`` on PostgreSQL, which
leaves the database as it was if anything fails) and then walks the restored audit chain:
it reports success only if the chain is intact, so a backup file edited after it was made
is caught before anyone works on it. Stop the app before a restore.

The chain is verified with the site's audit keys, and a restored database is compared with
the last checkpoint outside the database (``audit_checkpoints.check_restored``): a backup
made before that checkpoint ends before it, which the caller reports and accepts only when
asked to (``cellchain restore --accept-older``).

On PostgreSQL the archive's owners and grants are not restored (``--no-owner --no-acl``):
the role restoring (the schema's owner) owns every table, and a backup taken where the app's
login role existed restores on a server where it does not. The app role's grants are then
put back as ``cellchain db roles`` makes them (``db_roles.put_back_grants``), since the
owner's default privileges gave the recreated tables the ordinary grants, audit entries
included; where the role does not exist the caller says to run ``cellchain db roles``.

The PostgreSQL tools must be the server's major version (Debian's ``postgresql-client``);
the password, if the URL has one, is passed in the environment, never on the command line.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
from sqlalchemy import URL, create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cellchain.core import audit, audit_checkpoints, db_roles
from cellchain.core.audit import ChainReport
from cellchain.core.audit_checkpoints import Anchoring
from cellchain.core.audit_keys import Keyring
from cellchain.core.models import AuditEntry
from cellchain.errors import DomainError


class BackupFailed(DomainError):
    """The backup or restore could not be made; nothing was changed by a failed restore."""

    status = 500
    title = "Backup or restore failed"


@dataclass(frozen=True)
class Summary:
    """What a database holds, as an operator compares it before and after."""

    audit_entries: int
    chain: ChainReport
    #: the comparison with the checkpoint file (a restore with a checkpoint folder only)
    anchoring: Anchoring | None = None
    #: what a PostgreSQL restore did for the app's login role (given its name)
    app_role: AppRoleGrants | None = None


@dataclass(frozen=True)
class AppRoleGrants:
    """The app's login role after a restore: its grants put back, or it does not exist."""

    role: str
    #: False: no such role on this server (``cellchain db roles`` creates it)
    exists: bool
    #: what it can still do that it must not, after its grants were put back (empty: nothing)
    problems: tuple[str, ...] = ()


def summarise(
    database_url: str, keyring: Keyring, checkpoint_dir: str | Path | None = None
) -> Summary:
    """The number of audit entries in the database at ``database_url``, its chain's state
    verified with ``keyring``, and, given ``checkpoint_dir``, its comparison with the last
    checkpoint there (as a restored database: ``check_restored``)."""
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            entries = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
            chain = audit.verify_chain(session, keyring=keyring)
            anchoring = None
            if checkpoint_dir is not None:
                anchoring = audit_checkpoints.check_restored(session, checkpoint_dir, keyring)
            return Summary(audit_entries=entries, chain=chain, anchoring=anchoring)
    finally:
        engine.dispose()


def backup(database_url: str, destination: Path, keyring: Keyring) -> Summary:
    """Write a backup of the database at ``database_url`` to ``destination`` (replaced if
    it exists); returns what the backup holds, read back from the file on SQLite."""
    url = make_url(database_url)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if url.get_backend_name() == "sqlite":
        partial = destination.with_name(destination.name + ".partial")
        partial.unlink(missing_ok=True)
        _sqlite_copy(_sqlite_path(url), partial)
        partial.replace(destination)
        return summarise(f"sqlite:///{destination}", keyring)
    if url.get_backend_name() == "postgresql":
        _run(
            ["pg_dump", "--format=custom", "--no-owner", f"--file={destination}"],
            url,
        )
        return summarise(database_url, keyring)
    raise BackupFailed(f"No backup for {url.get_backend_name()} databases.")


def restore(
    database_url: str,
    source: Path,
    keyring: Keyring,
    checkpoint_dir: str | Path | None = None,
    app_role: str | None = None,
) -> Summary:
    """Replace the database at ``database_url`` with the backup ``source``; returns what it
    holds now. The caller reports success only if ``summary.chain.intact`` and the anchoring
    (given ``checkpoint_dir``) is intact, and says so when the backup is older. On
    PostgreSQL, given ``app_role`` (the app's login role), its grants are put back, or
    ``summary.app_role`` says it does not exist."""
    if not source.is_file():
        raise BackupFailed(f"There is no backup file {source}.")
    url = make_url(database_url)
    grants = None
    if url.get_backend_name() == "sqlite":
        _sqlite_copy(source, _sqlite_path(url))
    elif url.get_backend_name() == "postgresql":
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-acl",
                "--single-transaction",
                "--exit-on-error",
                str(source),
            ],
            url,
        )
        if app_role is not None:
            grants = _put_back_grants(database_url, app_role)
    else:
        raise BackupFailed(f"No restore for {url.get_backend_name()} databases.")
    summary = summarise(database_url, keyring, checkpoint_dir)
    return replace(summary, app_role=grants)


def _put_back_grants(database_url: str, role: str) -> AppRoleGrants:
    """Grant the app role what ``cellchain db roles`` grants it, in one transaction of the
    restoring owner; a refusal is one of the problems (the restore itself stands)."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            problems = db_roles.put_back_grants(connection, role=role)
    except db_roles.RoleSetupRefused as error:
        return AppRoleGrants(role, True, (error.detail,))
    except (psycopg.Error, DBAPIError) as error:
        refusal = str(getattr(error, "orig", None) or error).strip()
        return AppRoleGrants(role, True, (f"PostgreSQL refused its grants: {refusal}",))
    finally:
        engine.dispose()
    if problems is None:
        return AppRoleGrants(role, False)
    return AppRoleGrants(role, True, tuple(problems))


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupFailed("An in-memory SQLite database cannot be backed up.")
    return Path(url.database)


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy one SQLite database into another with SQLite's online backup (page by page,
    consistent even while the source is written to)."""
    if not source.is_file():
        raise BackupFailed(f"There is no SQLite database at {source}.")
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _run(command: list[str], url: URL) -> None:
    """Run a PostgreSQL client tool against ``url``: the password in the environment."""
    tool = shutil.which(command[0])
    if tool is None:
        raise BackupFailed(f"{command[0]} is not installed (Debian: postgresql-client).")
    environment = dict(os.environ)
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    target = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    finished = subprocess.run(
        [tool, *command[1:], f"--dbname={target}"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        raise BackupFailed(
            f"{command[0]} failed (exit {finished.returncode}): {finished.stderr.strip()}"
        )
