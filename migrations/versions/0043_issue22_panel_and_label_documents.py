"""Donor test panels and label templates as controlled documents (issue 22).

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-07 19:20:00

"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = "0043"
down_revision = "0042"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
