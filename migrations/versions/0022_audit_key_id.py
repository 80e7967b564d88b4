"""Keyed audit chain (issue 18): each audit entry names the key of its HMAC

``audit_entries.key_id`` is the id of the key (in the key file outside the database,
``CELLCHAIN_AUDIT_KEY_FILE``) whose HMAC-SHA256 the entry's hash is. Entries already written
keep a null key id: they are legacy entries, hashed with plain SHA-256, and verify as such;
the protection of the key starts at the first keyed entry (docs/audit-keys-and-checkpoints.md).

A nullable column is added in place (ALTER TABLE … ADD COLUMN on both databases), which
neither rewrites the rows nor touches the append-only triggers.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 16:20:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("audit_entries", sa.Column("key_id", sa.String(length=40), nullable=True))


def downgrade():
    # in place on SQLite too (3.35+), not batch mode's copy of the table, which would lose
    # the append-only triggers; the keyed entries can no longer be verified after this
    op.drop_column("audit_entries", "key_id")
