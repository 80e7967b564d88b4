"""Placeholder in the migration chain for issue 20 work (no schema change yet).

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-06 22:00:00

"""

# revision identifiers, used by Alembic.
revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
