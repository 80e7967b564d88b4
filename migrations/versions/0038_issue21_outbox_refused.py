"""An outbox e-mail the mail server refused for good (a 5xx answer to its recipient or its
content) is marked, and no longer retried (issue 21).

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-07 16:40:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbox_emails") as batch:
        batch.add_column(
            sa.Column("refused_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade():
    with op.batch_alter_table("outbox_emails") as batch:
        batch.drop_column("refused_at")
