"""Post-thaw counts numbered per dose (issue 19 review): ``sequence`` is 1 for a dose's first
count, 2 for its first repeat, …, unique per dose, so that of two counts recorded at once
(each seeing no earlier count) one is refused instead of both skipping the reason a repeat
count needs.

The column is nullable and left empty on counts recorded before this migration (their rows
stay as the audit trail recorded them; NULLs never collide): the next count of such a dose is
numbered after them.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-06 20:20:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("post_thaw_counts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sequence", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(
            "uq_post_thaw_counts_dose_order_id", ["dose_order_id", "sequence"]
        )


def downgrade():
    with op.batch_alter_table("post_thaw_counts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_post_thaw_counts_dose_order_id", type_="unique")
        batch_op.drop_column("sequence")
