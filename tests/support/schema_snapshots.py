"""Snapshots of the live PostgreSQL database as schemas inside it, restored by copying rows.

Creating and dropping a database per test costs one to two and a half seconds on this
machine (PostgreSQL copies and then checkpoints the files); copying the rows of fifty small
tables back from a schema of the same database costs a few tens of milliseconds. So each
worker's live database is created once, and a snapshot is a schema ``snap_<n>`` holding a
copy of every table's rows and the value of every sequence.

Restoring copies back only the tables that can differ from the snapshot: those written to
since the last restore (a statement-level trigger on every table notes its name in
``cellchain_dirty.tables``), the tables with triggers of their own (a test may turn those
off, and the mark with them) and, when the snapshot is not the one last restored, those that
hold rows in either of the two. Most tests write to a handful of the fifty tables, so a
restore is one round trip of a few statements. The restore runs as a replication replica
(``session_replication_role``), which skips every trigger and foreign-key check — the audit
table's refusal of DELETE, and the dirty marks themselves — so the order of the tables does
not matter; every sequence is set back, so ids continue exactly where the snapshot left
them.
"""

from __future__ import annotations

import itertools

from sqlalchemy import Connection, Engine, create_engine, text

#: Wait this long for a lock before failing a restore: a connection left open by a test
#: would otherwise hang the suite.
LOCK_TIMEOUT = "15s"

#: The schema holding the names of the tables written to since the last restore.
DIRTY = "cellchain_dirty"

_TRACKING = f"""
CREATE SCHEMA IF NOT EXISTS {DIRTY};
CREATE UNLOGGED TABLE IF NOT EXISTS {DIRTY}.tables (name text NOT NULL);
CREATE OR REPLACE FUNCTION {DIRTY}.mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- no unique key: concurrent writers must never wait on each other here
  INSERT INTO {DIRTY}.tables VALUES (TG_TABLE_NAME);
  RETURN NULL;
END $$;
"""


class SchemaSnapshots:
    """Snapshots of one database (``url``) kept as schemas inside it."""

    def __init__(self, url: str, table_order: list[str]) -> None:
        # one connection kept open: connecting costs more than a restore
        self.engine: Engine = create_engine(url, pool_size=1, max_overflow=0)
        self.counter = itertools.count()
        with self.engine.begin() as conn:
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
            #: parents before children; tables the models do not know (alembic_version) last
            self.tables = [t for t in table_order if t in present] + sorted(
                present - set(table_order)
            )
            #: tables with triggers of their own (the audit trail's): a test that turns them
            #: off to tamper with a row turns the write mark off too, so they are always
            #: restored
            self.always: frozenset[str] = frozenset(
                conn.execute(
                    text(
                        "SELECT DISTINCT c.relname FROM pg_trigger t "
                        "JOIN pg_class c ON c.oid = t.tgrelid "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = 'public' AND NOT t.tgisinternal"
                    )
                ).scalars()
            )
            self._track_writes(conn)
        self.sequence_values: dict[str, list[tuple[str, int, bool]]] = {}
        self.row_counts: dict[str, dict[str, int]] = {}
        #: the snapshot the live tables held at the last restore or take (None: unknown)
        self.current: str | None = None

    def _track_writes(self, conn: Connection) -> None:
        """Give every table a statement-level trigger noting that it was written to."""
        conn.exec_driver_sql(_TRACKING)
        conn.exec_driver_sql(
            "".join(
                f"CREATE TRIGGER zz_cellchain_dirty AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f'ON public."{table}" FOR EACH STATEMENT EXECUTE FUNCTION {DIRTY}.mark();'
                for table in self.tables
            )
        )

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
            conn.exec_driver_sql(f"TRUNCATE {DIRTY}.tables")
        self.current = name
        return name

    def _to_restore(self, conn: Connection, name: str) -> list[str]:
        """The tables whose rows may differ from the snapshot ``name``, in table order."""
        written = set(conn.exec_driver_sql(f"SELECT DISTINCT name FROM {DIRTY}.tables").scalars())
        written |= self.always
        if self.current is None:
            return list(self.tables)
        if self.current != name:
            before, after = self.row_counts[self.current], self.row_counts[name]
            written |= {t for t in self.tables if before.get(t) or after.get(t)}
        return [t for t in self.tables if t in written]

    def restore(self, name: str) -> None:
        """Make the live tables and sequences what they were when ``name`` was taken."""
        with self.engine.begin() as conn:
            tables = self._to_restore(conn, name)
            statements = [
                f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'",
                "SET LOCAL session_replication_role = replica",
                # DELETE: on tables this small it costs far less than TRUNCATE, which gives
                # every table a new file
                *(f'DELETE FROM public."{table}"' for table in tables),
                *(
                    f'INSERT INTO public."{table}" OVERRIDING SYSTEM VALUE '
                    f'SELECT * FROM "{name}"."{table}"'
                    for table in tables
                    if self.row_counts[name].get(table)
                ),
                f"TRUNCATE {DIRTY}.tables",
            ]
            if self.sequence_values[name]:
                statements.append(
                    "SELECT "
                    + ", ".join(
                        f"setval('public.\"{sequence}\"', {int(value)}, {bool(called)})"
                        for sequence, value, called in self.sequence_values[name]
                    )
                )
            conn.exec_driver_sql(";\n".join(statements))
        self.current = name

    def drop(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        self.sequence_values.pop(name, None)

    def close(self) -> None:
        self.engine.dispose()
