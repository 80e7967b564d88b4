"""An address a user gives for their notifications waits for its confirmation (a link
e-mailed to it) before anything is sent there (issue 21).

Revision ID: 0039
Revises: 0038
Create Date: 2026-12-07 16:30:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None


def upgrade():
    when = cellchain.core.types.UTCDateTime(timezone=True)
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email_pending", sa.String(length=254), nullable=True))
        batch.add_column(sa.Column("email_confirm_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("email_confirm_expires_at", when, nullable=True))


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email_confirm_expires_at")
        batch.drop_column("email_confirm_hash")
        batch.drop_column("email_pending")
