"""post thaw counts (issue 19): placeholder, filled by the slice that needs it

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 19:10:00

"""

# revision identifiers, used by Alembic.
revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
