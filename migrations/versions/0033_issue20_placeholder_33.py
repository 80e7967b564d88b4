"""Placeholder in the migration chain for issue 20 work (no schema change yet).

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-06 22:00:00

"""

# revision identifiers, used by Alembic.
revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
