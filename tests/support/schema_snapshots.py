"""Snapshots of the live PostgreSQL database as schemas inside it, restored by copying rows.

Creating and dropping a database per test costs one to two and a half seconds on this
machine (PostgreSQL copies and then checkpoints the files); copying the rows of fifty small
tables back from a schema of the same database costs a few tens of milliseconds. So each
worker's live database is created once, and a snapshot is a schema ``snap_<n>`` holding a
copy of every table's rows and the value of every sequence. Restoring empties the live
tables (DELETE, children first) and copies the rows back, in an order where every row's
foreign keys exist already, with the tables' own triggers off (the audit table refuses
TRUNCATE and DELETE), and sets every sequence back, so ids continue exactly where the
snapshot left them.
"""

from __future__ import annotations

import itertools

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

#: Wait this long for a lock before failing a restore: a connection left open by a test
#: would otherwise hang the suite.
LOCK_TIMEOUT = "15s"


class SchemaSnapshots:
    """Snapshots of one database (``url``) kept as schemas inside it."""

    def __init__(self, url: str, table_order: list[str]) -> None:
        self.engine: Engine = create_engine(url, poolclass=NullPool)
        self.counter = itertools.count()
        with self.engine.connect() as conn:
            present = set(
                conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                ).scalars()
            )
            self.sequences: list[str] = list(
                conn.execute(
                    text(
                        "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' "
                        "ORDER BY sequencename"
                    )
                ).scalars()
            )
            self.with_triggers: list[str] = list(
                conn.execute(
                    text(
                        "SELECT DISTINCT c.relname FROM pg_trigger t "
                        "JOIN pg_class c ON c.oid = t.tgrelid "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = 'public' AND NOT t.tgisinternal ORDER BY 1"
                    )
                ).scalars()
            )
        #: parents before children; tables the models do not know (alembic_version) last
        self.tables = [t for t in table_order if t in present] + sorted(present - set(table_order))
        self.sequence_values: dict[str, list[tuple[str, int, bool]]] = {}
        self.row_counts: dict[str, dict[str, int]] = {}

    def take(self) -> str:
        """A snapshot of the database as it is now (committed); returns its name."""
        name = f"snap_{next(self.counter)}"
        with self.engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
            for table in self.tables:
                conn.execute(text(f'CREATE TABLE "{name}"."{table}" AS TABLE public."{table}"'))
            self.row_counts[name] = {
                table: conn.execute(text(f'SELECT count(*) FROM "{name}"."{table}"')).scalar_one()
                for table in self.tables
            }
            self.sequence_values[name] = [
                (
                    sequence,
                    *conn.execute(
                        text(f'SELECT last_value, is_called FROM public."{sequence}"')
                    ).one(),
                )
                for sequence in self.sequences
            ]
        return name

    def restore(self, name: str) -> None:
        """Make the live tables and sequences what they were when ``name`` was taken."""
        with self.engine.begin() as conn:
            conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            for table in self.with_triggers:
                conn.execute(text(f'ALTER TABLE public."{table}" DISABLE TRIGGER USER'))
            # DELETE, children first: on tables this small it costs far less than TRUNCATE,
            # which gives every table a new file
            for table in reversed(self.tables):
                conn.execute(text(f'DELETE FROM public."{table}"'))
            for table in self.tables:
                if self.row_counts[name].get(table):
                    conn.execute(
                        text(
                            f'INSERT INTO public."{table}" OVERRIDING SYSTEM VALUE '
                            f'SELECT * FROM "{name}"."{table}"'
                        )
                    )
            for table in self.with_triggers:
                conn.execute(text(f'ALTER TABLE public."{table}" ENABLE TRIGGER USER'))
            for sequence, last_value, is_called in self.sequence_values[name]:
                conn.execute(
                    text("SELECT setval(:sequence, :value, :called)"),
                    {"sequence": f'public."{sequence}"', "value": last_value, "called": is_called},
                )

    def drop(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        self.sequence_values.pop(name, None)

    def close(self) -> None:
        self.engine.dispose()
