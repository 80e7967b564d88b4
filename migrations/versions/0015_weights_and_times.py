"""weights that changed must be confirmed; infusion times that disagree are flagged

Issue 16, items 6 and 8. ``weights`` gains the change that needs confirming (``change_percent``
from ``change_reference``) and how, when and by whom it was confirmed (a re-weigh, named by
``confirmed_by_weight_id``, or a second person's countersignature). ``infusions`` gains the
time flag (recorded end, volume and rate that cannot all be true) and its acknowledgement by a
second clinician. Existing rows need nothing: a null change is a weight that needed no
confirmation, a null flag an infusion whose record agreed.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 13:20:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("weights", schema=None) as batch_op:
        batch_op.add_column(sa.Column("change_percent", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("change_reference", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("confirmation", sa.String(length=20), nullable=True))
        batch_op.add_column(
            sa.Column(
                "confirmed_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("confirmed_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("confirmed_by_weight_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_weights_confirmed_by_id_users"), "users", ["confirmed_by_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_weights_confirmed_by_weight_id_weights"),
            "weights",
            ["confirmed_by_weight_id"],
            ["id"],
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_weights_confirmation_known"),
            "confirmation IS NULL OR confirmation IN ('reweighed', 'countersigned')",
        )

    with op.batch_alter_table("infusions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_flag", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "time_flag_acknowledged_at",
                cellchain.core.types.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("time_flag_acknowledged_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("time_flag_note", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_infusions_time_flag_acknowledged_by_id_users"),
            "users",
            ["time_flag_acknowledged_by_id"],
            ["id"],
        )


def downgrade():
    with op.batch_alter_table("infusions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_infusions_time_flag_acknowledged_by_id_users"), type_="foreignkey"
        )
        batch_op.drop_column("time_flag_note")
        batch_op.drop_column("time_flag_acknowledged_by_id")
        batch_op.drop_column("time_flag_acknowledged_at")
        batch_op.drop_column("time_flag")

    with op.batch_alter_table("weights", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_weights_confirmation_known"), type_="check")
        batch_op.drop_constraint(
            batch_op.f("fk_weights_confirmed_by_weight_id_weights"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("fk_weights_confirmed_by_id_users"), type_="foreignkey")
        batch_op.drop_column("confirmed_by_weight_id")
        batch_op.drop_column("confirmed_by_id")
        batch_op.drop_column("confirmed_at")
        batch_op.drop_column("confirmation")
        batch_op.drop_column("change_reference")
        batch_op.drop_column("change_percent")
