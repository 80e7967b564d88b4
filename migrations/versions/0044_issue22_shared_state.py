"""Several app servers sharing nothing but the database (issue 22).

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-07 19:20:00

"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = "0044"
down_revision = "0043"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
