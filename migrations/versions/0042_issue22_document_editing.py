"""Controlled documents drafted and signed into force on a date in the app (issue 22).

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-07 19:20:00

"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
