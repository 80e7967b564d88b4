"""Trial data exports (issue 19): one row per export of the trial's data as CDISC ODM or a CSV
bundle, a job with its progress, then the file, its SHA-256 and who asked for it.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06 19:10:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade():
    when = cellchain.core.types.UTCDateTime(timezone=True)
    op.create_table(
        "trial_data_exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=True),
        sa.Column("requested_at", when, nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=False),
        sa.Column("started_at", when, nullable=True),
        sa.Column("finished_at", when, nullable=True),
        sa.Column("file_name", sa.String(length=200), nullable=True),
        sa.Column("media_type", sa.String(length=100), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("subjects", sa.Integer(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "format IN ('odm', 'csv')", name=op.f("ck_trial_data_exports_format_known")
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')",
            name=op.f("ck_trial_data_exports_status_known"),
        ),
        sa.CheckConstraint(
            "percent BETWEEN 0 AND 100", name=op.f("ck_trial_data_exports_percent_range")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_trial_data_exports_requested_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_data_exports")),
    )


def downgrade():
    op.drop_table("trial_data_exports")
