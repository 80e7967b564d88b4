"""Controlled documents drafted and signed into force on a date in the app (issue 22).

No table changes: every versioned table already has ``effective_at`` (until now the time
of the signing; now the time QA gives, never before the signing), and the version in force
at a time is read from it (``documents.versioning.in_force(..., at=...)``). A version's
reason for the change is kept in the audit trail with its draft (``change_reason``), not in
a column, so the kinds other changes add (donor test panels, label templates) need none.

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
