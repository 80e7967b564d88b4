"""Visit scheduling (issue 19): a visit moved to another day with its reason, the protocol
window it was judged against and the investigator's signature on a move outside it; a visit
recorded as missed, once.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 19:10:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "visit_reschedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("visit", sa.String(length=10), nullable=False),
        sa.Column("previous_on", sa.Date(), nullable=False),
        sa.Column("planned_on", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("protocol_earliest", sa.Date(), nullable=False),
        sa.Column("protocol_latest", sa.Date(), nullable=False),
        sa.Column("outside_protocol", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.Column(
            "deviation_signed_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("deviation_signed_by_id", sa.Integer(), nullable=True),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_visit_reschedules_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"],
            ["users.id"],
            name=op.f("fk_visit_reschedules_recorded_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["deviation_signed_by_id"],
            ["users.id"],
            name=op.f("fk_visit_reschedules_deviation_signed_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_reschedules")),
    )
    with op.batch_alter_table("visit_reschedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_visit_reschedules_patient_id"), ["patient_id"], unique=False
        )
    op.create_table(
        "missed_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("visit", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_missed_visits_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"], ["users.id"], name=op.f("fk_missed_visits_recorded_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_missed_visits")),
        sa.UniqueConstraint("patient_id", "visit", name=op.f("uq_missed_visits_patient_id")),
    )


def downgrade():
    op.drop_table("missed_visits")
    with op.batch_alter_table("visit_reschedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visit_reschedules_patient_id"))
    op.drop_table("visit_reschedules")
