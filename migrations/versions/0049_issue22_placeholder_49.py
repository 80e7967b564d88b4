"""Placeholder (issue 22): no schema change yet.

Revision ID: 0049
Revises: 0048
Create Date: 2026-12-07 23:30:00

"""

# revision identifiers, used by Alembic.
revision = "0049"
down_revision = "0048"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
