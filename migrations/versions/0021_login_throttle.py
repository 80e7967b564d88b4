"""Login throttling (issue 18): failed-password counters shared by every worker and server

Issue 18 ("Anyone can lock any account without logging in"). ``login_throttles``: one row
per username typed at the login page (whether or not it has an account), per client
address, and per signer re-entering a password, holding the failures counted in the
current window and the back-off they started (``cellchain/core/throttle.py``). Kept in
the database so that several gunicorn workers and app servers share them; rows are
credentials, not records, and are deleted once quiet.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 16:20:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "login_throttles",
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", cellchain.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "last_failure_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("blocked_until", cellchain.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_login_throttles")),
    )
    with op.batch_alter_table("login_throttles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_login_throttles_last_failure_at"), ["last_failure_at"], unique=False
        )


def downgrade():
    with op.batch_alter_table("login_throttles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_throttles_last_failure_at"))
    op.drop_table("login_throttles")
