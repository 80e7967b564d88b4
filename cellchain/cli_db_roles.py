"""``cellchain db roles``: the app's PostgreSQL login role, in Flask-Migrate's ``db`` group.

Run with the owner's URL (the one ``cellchain db upgrade`` runs with) in
``CELLCHAIN_DATABASE_URL``; the app then runs with the app role's URL in the same variable
(docs/security.md, "Least-privilege database role"). The rules are in ``core/db_roles.py``.
"""

from __future__ import annotations

import importlib

import click
import psycopg
from flask.cli import with_appcontext
from sqlalchemy.exc import DBAPIError

from cellchain.core import db_roles
from cellchain.extensions import db

#: The app role's name when none is given.
DEFAULT_ROLE = "cellchain_app"


@click.command("roles")
@click.option(
    "--role",
    envvar="CELLCHAIN_APP_DB_ROLE",
    default=DEFAULT_ROLE,
    show_default=True,
    help="The app's login role (or CELLCHAIN_APP_DB_ROLE).",
)
@click.option(
    "--password",
    envvar="CELLCHAIN_APP_DB_PASSWORD",
    default=None,
    help="Its password (or CELLCHAIN_APP_DB_PASSWORD); needed to create the role, "
    "changed when given.",
)
@click.option("--schema", default="public", show_default=True)
@click.option(
    "--check",
    is_flag=True,
    help="Change nothing: say what the role can do that it must not; exit 1 if anything.",
)
@with_appcontext
def db_roles_command(role: str, password: str | None, schema: str, check: bool) -> None:
    """Create or update the app's PostgreSQL login role (run as the schema's owner): it may
    read and write rows, only append audit entries, and own, alter, drop or truncate nothing.
    Idempotent; new tables get the same grants by default privileges."""
    db.session.remove()
    if check:
        _check(role, schema)
        return
    try:
        with db.engine.begin() as connection:
            done = db_roles.set_up_app_role(connection, role=role, password=password, schema=schema)
    except db_roles.RoleSetupRefused as error:
        raise click.ClickException(error.detail) from error
    except (psycopg.Error, DBAPIError) as error:
        refusal = str(getattr(error, "orig", None) or error).strip()
        raise click.ClickException(
            f"PostgreSQL refused: {refusal}. Nothing was changed. Run this with the URL of "
            "the role that owns the schema; it needs CREATEROLE to create or alter the app "
            "role (or a superuser creates the role first and this command only grants)."
        ) from error
    narrower = "; ".join(
        f"{table} only {', '.join(db_roles.NARROWER_GRANTS[table])}" for table in done.narrower
    )
    click.echo(
        f"Role {done.role} {'created' if done.created else 'updated'}"
        + (", password set" if done.password_set else ", password unchanged")
        + f", in database {done.database}, schema {done.schema} (owner {done.owner}): "
        f"SELECT, INSERT, UPDATE, DELETE on the rows of {done.tables} tables"
        + (f" ({narrower})" if narrower else "")
        + "; it owns nothing and can alter, drop or truncate nothing."
    )
    click.echo(
        f"Tables {done.owner} creates later get the same row grants. Run `cellchain db roles` "
        "again after each `cellchain db upgrade` (with the owner's URL; `cellchain restore` "
        "puts the grants back itself). Run the app with CELLCHAIN_DATABASE_URL="
        f"postgresql+psycopg://{done.role}:<password>@<host>/{done.database}."
    )


def _check(role: str, schema: str) -> None:
    """``--check``: the role's problems, read in a transaction that is rolled back."""
    with db.engine.connect() as connection:
        if connection.dialect.name != "postgresql":
            raise click.ClickException("Database roles are PostgreSQL's.")
        problems = db_roles.check_app_role(connection, role=role, schema=schema)
        connection.rollback()
    if problems:
        raise click.ClickException(
            f"The role {role} can do what the app role must not: {'; '.join(problems)}. "
            "Run `cellchain db roles` (with the owner's URL) to put it right."
        )
    click.echo(f"The role {role} owns nothing and holds only the app's grants in {schema}.")


def add_db_roles_command() -> None:
    """Add ``roles`` to Flask-Migrate's ``db`` group (``flask_migrate.cli.db``, the group
    ``Migrate.init_app`` gives every app's CLI). Imported by name: Flask-Migrate's type stubs
    do not describe that module."""
    group = importlib.import_module("flask_migrate.cli").db
    if not isinstance(group, click.Group):
        raise TypeError("flask_migrate.cli.db is not a click group")
    group.add_command(db_roles_command)
