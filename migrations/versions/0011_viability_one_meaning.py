"""cell_records.concentration_per_ml is renamed total_cells_per_ml (issue 16, item 1)

A bag's concentration is the TOTAL (nucleated) cells per mL counted at fill; the dose arithmetic
applies the release viability to it exactly once (DOMAIN.md §7). The values are kept as they
are: the dose arithmetic has always read them as total counts, and a bag's ``cells`` (volume ×
concentration) is its total cells under the new name too.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 13:20:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("cell_records", schema=None) as batch_op:
        batch_op.alter_column("concentration_per_ml", new_column_name="total_cells_per_ml")


def downgrade():
    with op.batch_alter_table("cell_records", schema=None) as batch_op:
        batch_op.alter_column("total_cells_per_ml", new_column_name="concentration_per_ml")
