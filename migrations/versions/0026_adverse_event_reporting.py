"""Adverse events for regulators (issue 19): placeholder

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 18:00:00

"""

# revision identifiers, used by Alembic.
revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
