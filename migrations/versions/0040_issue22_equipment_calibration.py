"""Equipment calibration and maintenance (issue 22).

Revision ID: 0040
Revises: 0039
Create Date: 2026-12-07 19:20:00

"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = "0040"
down_revision = "0039"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
