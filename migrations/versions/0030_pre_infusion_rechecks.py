"""Pre-infusion re-checks (issue 19): before each infusion after the first (M3), a clinician
re-confirms the eligibility items that can change since enrolment (pregnancy test, active
infection, another trial, organ function, ECOG score); one row per re-check, every item as
answered and whether it passed.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06 19:10:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "pre_infusion_rechecks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("protocol_id", sa.Integer(), nullable=False),
        sa.Column("visit", sa.String(length=10), nullable=False),
        sa.Column("answers_json", sa.Text(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_pre_infusion_rechecks_patient_id_patients"),
        ),
        sa.ForeignKeyConstraint(
            ["protocol_id"],
            ["protocols.id"],
            name=op.f("fk_pre_infusion_rechecks_protocol_id_protocols"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"],
            ["users.id"],
            name=op.f("fk_pre_infusion_rechecks_recorded_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pre_infusion_rechecks")),
    )
    op.create_index(
        "ix_pre_infusion_rechecks_patient_visit",
        "pre_infusion_rechecks",
        ["patient_id", "visit"],
        unique=False,
    )


def downgrade():
    op.drop_index("ix_pre_infusion_rechecks_patient_visit", table_name="pre_infusion_rechecks")
    op.drop_table("pre_infusion_rechecks")
