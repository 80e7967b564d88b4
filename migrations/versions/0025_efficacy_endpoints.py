"""Efficacy endpoints (issue 19): one row per patient and evaluation visit (BL, M6, M12)
holding the BASDAI and BASFI items, the patient's global assessment, CRP and ESR.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 18:00:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "efficacy_endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("visit", sa.String(length=10), nullable=False),
        sa.Column("assessed_on", sa.Date(), nullable=False),
        sa.Column("basdai_q1", sa.Float(), nullable=False),
        sa.Column("basdai_q2", sa.Float(), nullable=False),
        sa.Column("basdai_q3", sa.Float(), nullable=False),
        sa.Column("basdai_q4", sa.Float(), nullable=False),
        sa.Column("basdai_q5", sa.Float(), nullable=False),
        sa.Column("basdai_q6", sa.Float(), nullable=False),
        sa.Column("basfi_q1", sa.Float(), nullable=False),
        sa.Column("basfi_q2", sa.Float(), nullable=False),
        sa.Column("basfi_q3", sa.Float(), nullable=False),
        sa.Column("basfi_q4", sa.Float(), nullable=False),
        sa.Column("basfi_q5", sa.Float(), nullable=False),
        sa.Column("basfi_q6", sa.Float(), nullable=False),
        sa.Column("basfi_q7", sa.Float(), nullable=False),
        sa.Column("basfi_q8", sa.Float(), nullable=False),
        sa.Column("basfi_q9", sa.Float(), nullable=False),
        sa.Column("basfi_q10", sa.Float(), nullable=False),
        sa.Column("patient_global", sa.Float(), nullable=False),
        sa.Column("crp_mg_l", sa.Float(), nullable=False),
        sa.Column("esr_mm_h", sa.Float(), nullable=False),
        sa.Column("recorded_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_efficacy_endpoints_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"],
            ["users.id"],
            name=op.f("fk_efficacy_endpoints_recorded_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_efficacy_endpoints")),
        sa.UniqueConstraint("patient_id", "visit", name=op.f("uq_efficacy_endpoints_patient_id")),
    )


def downgrade():
    op.drop_table("efficacy_endpoints")
