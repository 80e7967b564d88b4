"""PLACEHOLDER (issue 16, codes and roles): fill in or leave empty; the lead removes unused ones

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 13:20:00

"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
