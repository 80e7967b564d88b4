"""Post-thaw counts (issue 19): a count of a thawed dose (total cells per mL and viability,
where, how, when, by whom), what the dose delivers with it, and the investigator's signed
decision when that is outside tolerance.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 19:10:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "post_thaw_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dose_order_id", sa.Integer(), nullable=False),
        sa.Column("total_cells_per_ml", sa.Float(), nullable=False),
        sa.Column("viability_percent", sa.Float(), nullable=False),
        sa.Column("place", sa.String(length=20), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("counted_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("counted_by_id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_cells", sa.Float(), nullable=False),
        sa.Column("deviation_percent", sa.Float(), nullable=False),
        sa.Column("within_tolerance", sa.Boolean(), nullable=False),
        sa.Column("working_json", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("decided_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("deviation_id", sa.Integer(), nullable=True),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "total_cells_per_ml > 0", name=op.f("ck_post_thaw_counts_total_positive")
        ),
        sa.CheckConstraint(
            "viability_percent >= 0 AND viability_percent <= 100",
            name=op.f("ck_post_thaw_counts_viability_percent"),
        ),
        sa.CheckConstraint(
            "place IN ('bedside', 'pharmacy')", name=op.f("ck_post_thaw_counts_place_known")
        ),
        sa.CheckConstraint(
            "decision IS NULL OR decision IN ('proceed', 'do_not_infuse')",
            name=op.f("ck_post_thaw_counts_decision_known"),
        ),
        sa.ForeignKeyConstraint(
            ["dose_order_id"],
            ["dose_orders.id"],
            name=op.f("fk_post_thaw_counts_dose_order_id_dose_orders"),
        ),
        sa.ForeignKeyConstraint(
            ["counted_by_id"], ["users.id"], name=op.f("fk_post_thaw_counts_counted_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"], ["users.id"], name=op.f("fk_post_thaw_counts_decided_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["deviation_id"],
            ["deviations.id"],
            name=op.f("fk_post_thaw_counts_deviation_id_deviations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post_thaw_counts")),
    )
    with op.batch_alter_table("post_thaw_counts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_post_thaw_counts_dose_order_id"), ["dose_order_id"], unique=False
        )


def downgrade():
    with op.batch_alter_table("post_thaw_counts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_post_thaw_counts_dose_order_id"))
    op.drop_table("post_thaw_counts")
