"""An outbox e-mail is claimed by the sender about to send it (issue 22: several app servers
and the timer send the outbox; each e-mail is sent by one of them).

``outbox_emails.claimed_at``: when a sender claimed the row (an atomic conditional UPDATE,
``mail.claim``); null when no sender holds it. A claim older than ``mail.CLAIM_TIMEOUT`` is
one whose sender died: another sender takes it.

Revision ID: 0047
Revises: 0046
Create Date: 2026-12-07 20:00:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0047"
down_revision = "0046"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbox_emails") as batch:
        batch.add_column(
            sa.Column("claimed_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade():
    with op.batch_alter_table("outbox_emails") as batch:
        batch.drop_column("claimed_at")
