"""visit scheduling (issue 19): placeholder, filled by the slice that needs it

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 19:10:00

"""

# revision identifiers, used by Alembic.
revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
