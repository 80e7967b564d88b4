"""Issue 22: a post-thaw count names its cell counter (registered equipment).

``post_thaw_counts.equipment_id``: the cell counter the count was made on, chosen from the
registered counters and checked in date on the count's day; null on a count recorded before
(its counter, if any, is named only in its method's words).

Revision ID: 0048
Revises: 0047
Create Date: 2026-12-07 23:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0048"
down_revision = "0047"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("post_thaw_counts") as batch:
        batch.add_column(sa.Column("equipment_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_post_thaw_counts_equipment_id_equipment"),
            "equipment",
            ["equipment_id"],
            ["id"],
        )


def downgrade():
    with op.batch_alter_table("post_thaw_counts") as batch:
        batch.drop_constraint(
            batch.f("fk_post_thaw_counts_equipment_id_equipment"), type_="foreignkey"
        )
        batch.drop_column("equipment_id")
