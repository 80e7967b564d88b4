"""Keyed audit chain (issue 18): placeholder, filled by the keyed-chain change

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 16:20:00

"""

# revision identifiers, used by Alembic.
revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
