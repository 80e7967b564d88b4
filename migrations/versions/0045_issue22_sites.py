"""Sites as records: the manufacturing facility and clinical sites (issue 22).

Revision ID: 0045
Revises: 0044
Create Date: 2026-12-07 19:20:00

"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = "0045"
down_revision = "0044"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
