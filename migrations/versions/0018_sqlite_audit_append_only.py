"""the audit trail is append-only on SQLite too

Issue 18 ("on SQLite, triggers refuse UPDATE and DELETE on the trail"). PostgreSQL has had
its append-only triggers since 0001; SQLite now refuses an UPDATE or a DELETE of an audit
entry with the same message. Someone with the file can still drop the triggers: that is what
the hash chain and ``cellchain audit verify`` are for.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 15:20:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

#: trigger name → the operation it refuses
SQLITE_TRIGGERS = {
    "audit_entries_no_update": "UPDATE",
    "audit_entries_no_delete": "DELETE",
}


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, operation in SQLITE_TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} BEFORE {operation} ON audit_entries BEGIN "
            f"SELECT RAISE(ABORT, 'audit_entries is append-only: {operation} refused'); END"
        )


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
