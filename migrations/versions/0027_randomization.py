"""Randomization (issue 19): the statistician's signed schedules and their slots, drawn in
sequence at enrolment; the trial statistician role.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 19:10:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

_ROLES = ("technician", "qc_analyst", "qa", "clinician", "investigator", "admin")


def _roles_check(roles):
    return "role IN (" + ", ".join(f"'{role}'" for role in roles) + ")"


def upgrade():
    with op.batch_alter_table("user_roles", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_user_roles_role_known"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_user_roles_role_known"),
            _roles_check(
                (
                    "technician",
                    "qc_analyst",
                    "qa",
                    "clinician",
                    "investigator",
                    "statistician",
                    "admin",
                )
            ),
        )
    op.create_table(
        "randomization_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("protocol_code", sa.String(length=40), nullable=False),
        sa.Column("protocol_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("ratio", sa.String(length=20), nullable=False),
        sa.Column("planned_enrolment", sa.Integer(), nullable=False),
        sa.Column("block_sizes", sa.String(length=40), nullable=True),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "method IN ('permuted_block', 'imported')",
            name=op.f("ck_randomization_schedules_method_known"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'superseded')",
            name=op.f("ck_randomization_schedules_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["protocol_id"],
            ["protocols.id"],
            name=op.f("fk_randomization_schedules_protocol_id_protocols"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_randomization_schedules_created_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_randomization_schedules")),
    )
    with op.batch_alter_table("randomization_schedules", schema=None) as batch_op:
        batch_op.create_index(
            "uq_randomization_schedules_active",
            ["protocol_code"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
    op.create_table(
        "randomization_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("randomization_number", sa.String(length=30), nullable=False),
        sa.Column("allocation", sa.String(length=60), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("allocated_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.CheckConstraint("sequence > 0", name=op.f("ck_randomization_slots_sequence_positive")),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["randomization_schedules.id"],
            name=op.f("fk_randomization_slots_schedule_id_randomization_schedules"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_randomization_slots_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_randomization_slots")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_randomization_slots_patient_id")),
        sa.UniqueConstraint("schedule_id", "sequence", name="uq_randomization_slots_sequence"),
        sa.UniqueConstraint(
            "schedule_id",
            "randomization_number",
            name="uq_randomization_slots_number",
        ),
    )


def downgrade():
    op.drop_table("randomization_slots")
    with op.batch_alter_table("randomization_schedules", schema=None) as batch_op:
        batch_op.drop_index("uq_randomization_schedules_active")
    op.drop_table("randomization_schedules")
    with op.batch_alter_table("user_roles", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_user_roles_role_known"), type_="check")
        batch_op.create_check_constraint(op.f("ck_user_roles_role_known"), _roles_check(_ROLES))
