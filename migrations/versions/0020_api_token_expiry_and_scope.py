"""API tokens have an expiry and a scope

Issue 18 ("API tokens"). ``api_tokens.expires_at``: after it the token authenticates
nothing; tokens created before this migration expire 90 days after it (the default
lifetime, ``API_TOKEN_DAYS``). ``api_tokens.scope``: ``read`` (GET, HEAD and OPTIONS only,
for integrations) or ``full`` (devices); tokens created before this migration keep what
they could do, ``full``.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 15:40:00

"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("expires_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("scope", sa.String(length=10), nullable=True))
    tokens = sa.table(
        "api_tokens",
        sa.column("expires_at", cellchain.core.types.UTCDateTime(timezone=True)),
        sa.column("scope", sa.String(length=10)),
    )
    expiry = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=90)
    op.execute(tokens.update().values(expires_at=expiry, scope="full"))
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column(
            "expires_at",
            existing_type=cellchain.core.types.UTCDateTime(timezone=True),
            nullable=False,
        )
        batch_op.alter_column("scope", existing_type=sa.String(length=10), nullable=False)


def downgrade():
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("scope")
        batch_op.drop_column("expires_at")
