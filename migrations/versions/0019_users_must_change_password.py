"""an administrator-set password is changed at first login

Issue 18 ("Passwords"). ``users.must_change_password``: set when an administrator creates
the account (page, API, ``cellchain users create``), cleared when its holder changes the
password; until then the holder may only change it (cellchain/web/first_login.py). Existing
accounts are False: their holders chose or already used their passwords.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 15:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("must_change_password")
