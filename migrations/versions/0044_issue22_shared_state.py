"""Several app servers sharing nothing but the database (issue 22): no schema change.

Everything a second app server needs was already in the database: web sessions
(``user_sessions``, 0017), the login back-off (``login_throttles``, 0021), API tokens,
identifier sequences, the audit chain's head, trial-data export files and their progress,
equipment certificates. No cache holds database state and nothing is written to local disk
but the audit checkpoints, which one timer host writes (docs/deployment.md).

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
