"""Placeholder (issue 22): no schema change yet.

Revision ID: 0048
Revises: 0047
Create Date: 2026-12-07 23:30:00

"""

# revision identifiers, used by Alembic.
revision = "0048"
down_revision = "0047"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
