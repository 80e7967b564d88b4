"""Dose exceptions (issue 19): intentionally empty

The dose exceptions needed no schema change (a destroyed dose ends in the existing status
`cancelled`); the revision keeps its place in the chain, since databases are stamped with it.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 18:00:00

"""

# revision identifiers, used by Alembic.
revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
