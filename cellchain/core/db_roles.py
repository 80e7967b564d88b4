"""The application's PostgreSQL login role: it owns nothing and can only do what the app does.

On PostgreSQL the migrations run as the role that owns the schema (the *owner*); the app
connects as a second role (the *app role*) that ``set_up_app_role`` creates or updates,
run by the owner (``cellchain db roles``). The app role may

- connect to the database and use the schema;
- SELECT, INSERT, UPDATE and DELETE rows of every table (a session row is deleted at logout,
  a status is updated; DESIGN.md rule 5 is kept by the services and the audit trail);
- only SELECT and INSERT audit entries (``APPEND_ONLY_TABLES``), only SELECT and UPDATE the
  chain head (the app moves it with each entry; ``HEAD_TABLES``), only SELECT the
  migrations' version table (so ``cellchain backup``, ``pg_dump``, works with the app's URL);
- read and advance sequences (``USAGE, SELECT``; not ``UPDATE``, which is ``setval``).

It is never granted TRUNCATE, REFERENCES or TRIGGER, and as it owns no table it can neither
``ALTER TABLE … DISABLE TRIGGER`` nor ALTER or DROP anything: those belong to the owner.
Tables the owner creates later (``cellchain db upgrade``) get the ordinary grants at once by
``ALTER DEFAULT PRIVILEGES``, so a new migration never breaks the running app; a table with
narrower grants must be named here, and ``cellchain db roles`` run again after the upgrade
that creates it. The whole set-up is one transaction and ends with ``check_app_role``: a
role that could still rewrite the trail (a member of the owner, a superuser, …) is refused
and nothing is changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from sqlalchemy import Connection, RowMapping, text

from cellchain.errors import DomainError

#: What the app may do to the rows of an ordinary table.
TABLE_PRIVILEGES: tuple[str, ...] = ("SELECT", "INSERT", "UPDATE", "DELETE")
#: What the app may do to a sequence: nextval and currval, not setval.
SEQUENCE_PRIVILEGES: tuple[str, ...] = ("USAGE", "SELECT")
#: Tables whose rows the app only appends: the audit trail.
APPEND_ONLY_TABLES = ("audit_entries",)
#: Tables whose one row the app moves but never adds or removes: the audit chain's head.
HEAD_TABLES = ("audit_chain_head",)
#: Tables the app only reads: Alembic's record of the schema version.
READ_ONLY_TABLES = ("alembic_version",)
#: table → its privileges, where they differ from ``TABLE_PRIVILEGES``.
NARROWER_GRANTS: Mapping[str, tuple[str, ...]] = {
    **{table: ("SELECT", "INSERT") for table in APPEND_ONLY_TABLES},
    **{table: ("SELECT", "UPDATE") for table in HEAD_TABLES},
    **{table: ("SELECT",) for table in READ_ONLY_TABLES},
}
#: Every privilege PostgreSQL has on a table: beyond its grants, the app role holds none.
ALL_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")

#: A role name we create: lower case, as PostgreSQL folds unquoted names.
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Role attributes the app role must not have, as pg_roles names them → the ALTER ROLE word.
FORBIDDEN_ATTRIBUTES = {
    "rolsuper": "NOSUPERUSER",
    "rolcreaterole": "NOCREATEROLE",
    "rolcreatedb": "NOCREATEDB",
    "rolreplication": "NOREPLICATION",
    "rolbypassrls": "NOBYPASSRLS",
}


class RoleSetupRefused(DomainError):
    """The app role cannot be set up as asked; nothing was changed."""

    status = 422
    title = "Database role not set up"
    type_slug = "database-role"


@dataclass(frozen=True)
class RoleSetup:
    """What ``set_up_app_role`` did, for the operator."""

    role: str
    created: bool
    password_set: bool
    owner: str
    database: str
    schema: str
    tables: int  #: tables in the schema, each granted its privileges
    narrower: tuple[str, ...]  #: the tables with narrower grants that exist


def set_up_app_role(
    connection: Connection, *, role: str, password: str | None, schema: str = "public"
) -> RoleSetup:
    """Create or update the app's login role and grant it exactly what the app needs (the
    module's docstring), in the caller's transaction; run as the owner of the schema.

    Idempotent: grants the role holds beyond these (on tables, sequences) are revoked, so
    running it again puts the role back where it should be. A new role needs a password;
    an existing one keeps its password unless one is given.
    """
    if connection.dialect.name != "postgresql":
        raise RoleSetupRefused(
            "Database roles are PostgreSQL's; a SQLite database is one file, protected by the "
            "file's permissions and the audit table's triggers."
        )
    if not ROLE_NAME.fullmatch(role):
        raise RoleSetupRefused(
            f"{role!r} is not a role name cellchain creates: lower-case letters, digits and _, "
            "starting with a letter or _, at most 63 characters."
        )
    owner, database = connection.execute(text("SELECT current_user, current_database()")).one()
    if role == owner:
        raise RoleSetupRefused(
            f"{role!r} is the role running this command, the owner of the schema; the app "
            "connects as a role of its own."
        )
    if connection.scalar(text("SELECT to_regnamespace(:schema)"), {"schema": schema}) is None:
        raise RoleSetupRefused(f"There is no schema {schema!r} in database {database!r}.")
    created = _create_or_update_role(connection, role, password)
    _grant(connection, role, database, schema)
    narrower = [table for table in NARROWER_GRANTS if _table_exists(connection, schema, table)]
    tables = connection.scalar(
        text("SELECT count(*) FROM pg_tables WHERE schemaname = :schema"),
        {"schema": schema},
    )
    problems = check_app_role(connection, role=role, schema=schema)
    if problems:
        raise RoleSetupRefused(
            f"The role {role!r} could still change what the app must not: "
            + "; ".join(problems)
            + ". Nothing was changed."
        )
    return RoleSetup(
        role=role,
        created=created,
        password_set=bool(password),
        owner=owner,
        database=database,
        schema=schema,
        tables=int(tables or 0),
        narrower=tuple(narrower),
    )


def put_back_grants(
    connection: Connection, *, role: str, schema: str = "public"
) -> list[str] | None:
    """Grant an existing app role exactly what ``set_up_app_role`` grants, in the caller's
    transaction, run as the schema's owner, without altering the role itself (no CREATEROLE
    needed): after ``cellchain restore`` recreated the tables. None if there is no such role
    (on a new server: run ``cellchain db roles``); else what it can still do that it must
    not (``check_app_role``; empty: nothing)."""
    if not ROLE_NAME.fullmatch(role):
        raise RoleSetupRefused(f"{role!r} is not a role name cellchain creates.")
    owner, database = connection.execute(text("SELECT current_user, current_database()")).one()
    if role == owner:
        raise RoleSetupRefused(
            f"{role!r} is the role running this command, the owner of the schema; the app "
            "connects as a role of its own."
        )
    if _attributes(connection, role) is None:
        return None
    _grant(connection, role, database, schema)
    return check_app_role(connection, role=role, schema=schema)


def check_app_role(connection: Connection, *, role: str, schema: str = "public") -> list[str]:
    """What ``role`` can do that the app role must not, in words (empty: nothing): act as
    or be an owner, a role attribute of ``FORBIDDEN_ATTRIBUTES``, CREATE in the schema, and
    on any table a privilege beyond its grants (TRUNCATE anywhere; UPDATE or DELETE of
    audit entries; …).

    Asked of PostgreSQL itself (``has_table_privilege``, ``pg_has_role``), so privileges that
    come through a role membership count too.
    """
    problems: list[str] = []
    attributes = _attributes(connection, role)
    if attributes is None:
        return [f"there is no role {role!r}"]
    problems += [
        f"it has {word.removeprefix('NO')}"
        for column, word in FORBIDDEN_ATTRIBUTES.items()
        if attributes[column]
    ]
    parameters: dict[str, Any] = {"role": role, "schema": schema}
    owners = connection.scalars(
        text(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = :schema "
            "AND pg_has_role(:role, tableowner, 'MEMBER')"
        ),
        parameters,
    ).all()
    problems += [f"it acts as {owner!r} (a member: SET ROLE), who owns tables" for owner in owners]
    owned = connection.scalar(
        text(
            "SELECT count(*) FROM pg_shdepend WHERE deptype = 'o' "
            "AND refobjid = (SELECT oid FROM pg_roles WHERE rolname = :role) "
            "AND dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))"
        ),
        parameters,
    )
    if owned:
        problems.append(f"it owns {owned} object(s)")
    if connection.scalar(text("SELECT has_schema_privilege(:role, :schema, 'CREATE')"), parameters):
        problems.append(
            f"it may create objects in schema {schema!r} (REVOKE CREATE ON SCHEMA {schema} "
            "FROM PUBLIC, as PostgreSQL 15 does by default)"
        )
    held = connection.execute(
        text(
            "SELECT tablename, privilege FROM pg_tables, "
            "unnest(CAST(:privileges AS text[])) AS privilege WHERE schemaname = :schema "
            "AND has_table_privilege(:role, format('%I.%I', schemaname, tablename), privilege) "
            "ORDER BY tablename, privilege"
        ),
        {**parameters, "privileges": list(ALL_TABLE_PRIVILEGES)},
    ).all()
    for table, privilege in held:
        if privilege not in NARROWER_GRANTS.get(table, TABLE_PRIVILEGES):
            problems.append(f"it has {privilege} on {table}")
    return problems


def _attributes(connection: Connection, role: str) -> RowMapping | None:
    """The role's attributes from ``pg_roles`` (``FORBIDDEN_ATTRIBUTES``), or None."""
    return (
        connection.execute(
            text(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
                "FROM pg_roles WHERE rolname = :role"
            ),
            {"role": role},
        )
        .mappings()
        .one_or_none()
    )


def _create_or_update_role(connection: Connection, role: str, password: str | None) -> bool:
    """Create the login role, or make an existing one a plain login role (its password
    changed only when given); True if it was created."""
    attributes = _attributes(connection, role)
    name = sql.Identifier(role)
    if attributes is None:
        if not password:
            raise RoleSetupRefused(
                f"The role {role!r} does not exist yet: give its password "
                "(--password or CELLCHAIN_APP_DB_PASSWORD)."
            )
        _run(
            connection,
            sql.SQL("CREATE ROLE {} LOGIN NOINHERIT PASSWORD {}").format(
                name, sql.Literal(password)
            ),
        )
        return True
    wrong = [word for column, word in FORBIDDEN_ATTRIBUTES.items() if attributes[column]]
    if wrong:  # said only when needed: changing these needs a superuser
        _run(connection, sql.SQL("ALTER ROLE {} " + " ".join(wrong)).format(name))
    login = sql.SQL("ALTER ROLE {} LOGIN NOINHERIT").format(name)
    if password:
        login = sql.SQL("{} PASSWORD {}").format(login, sql.Literal(password))
    _run(connection, login)
    return False


def _grant(connection: Connection, role: str, database: str, schema: str) -> None:
    """Put the role's privileges where the module's docstring says: whatever it held on the
    schema's tables and sequences, and by default on future ones, is revoked first."""
    name, in_schema = sql.Identifier(role), sql.Identifier(schema)
    statements = [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), name),
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(in_schema, name),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(in_schema, name),
    ]
    for kind, privileges in (("TABLES", TABLE_PRIVILEGES), ("SEQUENCES", SEQUENCE_PRIVILEGES)):
        objects, granted = sql.SQL(kind), _privileges(privileges)
        statements += [
            sql.SQL("REVOKE ALL ON ALL {} IN SCHEMA {} FROM {}").format(objects, in_schema, name),
            sql.SQL("GRANT {} ON ALL {} IN SCHEMA {} TO {}").format(
                granted, objects, in_schema, name
            ),
            # what the owner creates from now on (the next `db upgrade`)
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} REVOKE ALL ON {} FROM {}").format(
                in_schema, objects, name
            ),
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT {} ON {} TO {}").format(
                in_schema, granted, objects, name
            ),
        ]
    for table, privileges in NARROWER_GRANTS.items():
        if _table_exists(connection, schema, table):
            qualified = sql.Identifier(schema, table)
            statements += [
                sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(qualified, name),
                sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                    _privileges(privileges), qualified, name
                ),
            ]
    for statement in statements:
        _run(connection, statement)


def _privileges(privileges: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL(privilege) for privilege in privileges)


def _table_exists(connection: Connection, schema: str, table: str) -> bool:
    return bool(
        connection.scalar(
            text("SELECT to_regclass(:name) IS NOT NULL"),
            {"name": f'"{schema}"."{table}"'},
        )
    )


def _run(connection: Connection, statement: sql.Composable) -> None:
    """Run a composed statement (names and the password quoted by psycopg, never pasted in)
    on the connection's own cursor, in its transaction."""
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("the connection was closed")
    with driver.cursor() as cursor:
        cursor.execute(statement)
