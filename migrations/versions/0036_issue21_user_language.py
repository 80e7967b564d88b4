"""Each user's language for pages, messages, e-mails and PDFs (issue 21).

``NULL`` means the user has not chosen: the browser's Accept-Language decides, then the
site's default language.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 12:50:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("language", sa.String(length=16), nullable=True))


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language")
