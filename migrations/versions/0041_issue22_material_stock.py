"""Material stock: quantities received, used and remaining (issue 22).

A material lot gets the quantity received and its unit (mL, g or units); a step's use of a
lot its quantity and where it came from (the step's own figures, or entered); a lot's stock
changes otherwise only by an adjustment (a write-off, a spillage, a count correction) with
its reason. What remains is never stored: it is the receipt less the uses plus the
adjustments (``manufacturing.stock.service``). A material's reorder level is set per
material and unit.

A lot on file before this migration has no quantity: it is not counted (its uses are
recorded as before, without a quantity), docs/materials.md.

Revision ID: 0041
Revises: 0040
Create Date: 2026-12-07 19:20:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None

UNITS = "'mL', 'g', 'units'"


def upgrade():
    when = cellchain.core.types.UTCDateTime(timezone=True)
    with op.batch_alter_table("material_lots") as batch:
        batch.add_column(sa.Column("quantity_received", sa.Float(), nullable=True))
        batch.add_column(sa.Column("unit", sa.String(length=10), nullable=True))
        batch.create_check_constraint(
            batch.f("ck_material_lots_unit_known"), f"unit IS NULL OR unit IN ({UNITS})"
        )
        batch.create_check_constraint(
            batch.f("ck_material_lots_quantity_with_unit"),
            "(quantity_received IS NULL) = (unit IS NULL) "
            "AND (quantity_received IS NULL OR quantity_received > 0)",
        )
    with op.batch_alter_table("step_materials") as batch:
        batch.add_column(sa.Column("quantity", sa.Float(), nullable=True))
        batch.add_column(sa.Column("quantity_source", sa.String(length=10), nullable=True))
        batch.create_check_constraint(
            batch.f("ck_step_materials_quantity_positive"), "quantity IS NULL OR quantity > 0"
        )
        batch.create_check_constraint(
            batch.f("ck_step_materials_quantity_source_known"),
            "(quantity IS NULL AND quantity_source IS NULL) OR (quantity IS NOT NULL "
            "AND COALESCE(quantity_source, '') IN ('step', 'entered'))",
        )
    op.create_table(
        "stock_adjustments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("material_lot_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("made_at", when, nullable=False),
        sa.Column("made_by_id", sa.Integer(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('write_off', 'spillage', 'count_correction')",
            name=op.f("ck_stock_adjustments_kind_known"),
        ),
        sa.CheckConstraint(
            "quantity <> 0 AND (kind = 'count_correction' OR quantity < 0)",
            name=op.f("ck_stock_adjustments_quantity_sign"),
        ),
        sa.ForeignKeyConstraint(
            ["material_lot_id"],
            ["material_lots.id"],
            name=op.f("fk_stock_adjustments_material_lot_id_material_lots"),
        ),
        sa.ForeignKeyConstraint(
            ["made_by_id"], ["users.id"], name=op.f("fk_stock_adjustments_made_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_adjustments")),
    )
    op.create_index(
        "ix_stock_adjustments_lot", "stock_adjustments", ["material_lot_id", "made_at"], unique=False
    )
    op.create_table(
        "reorder_levels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("material", sa.String(length=120), nullable=False),
        sa.Column("unit", sa.String(length=10), nullable=False),
        sa.Column("level", sa.Float(), nullable=False),
        sa.Column("set_at", when, nullable=False),
        sa.Column("set_by_id", sa.Integer(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.CheckConstraint(f"unit IN ({UNITS})", name=op.f("ck_reorder_levels_unit_known")),
        sa.CheckConstraint("level >= 0", name=op.f("ck_reorder_levels_level_not_negative")),
        sa.ForeignKeyConstraint(
            ["set_by_id"], ["users.id"], name=op.f("fk_reorder_levels_set_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reorder_levels")),
        sa.UniqueConstraint("material", "unit", name=op.f("uq_reorder_levels_material")),
    )


def downgrade():
    op.drop_table("reorder_levels")
    op.drop_index("ix_stock_adjustments_lot", table_name="stock_adjustments")
    op.drop_table("stock_adjustments")
    with op.batch_alter_table("step_materials") as batch:
        batch.drop_constraint(batch.f("ck_step_materials_quantity_source_known"), type_="check")
        batch.drop_constraint(batch.f("ck_step_materials_quantity_positive"), type_="check")
        batch.drop_column("quantity_source")
        batch.drop_column("quantity")
    with op.batch_alter_table("material_lots") as batch:
        batch.drop_constraint(batch.f("ck_material_lots_quantity_with_unit"), type_="check")
        batch.drop_constraint(batch.f("ck_material_lots_unit_known"), type_="check")
        batch.drop_column("unit")
        batch.drop_column("quantity_received")
