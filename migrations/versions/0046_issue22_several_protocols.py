"""Several protocols and products at once (issue 22).

Revision ID: 0046
Revises: 0045
Create Date: 2026-12-07 19:20:00

"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = "0046"
down_revision = "0045"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
