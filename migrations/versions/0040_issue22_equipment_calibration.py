"""Equipment calibration and maintenance (issue 22).

Equipment gets its calibration and maintenance intervals (or a reason it is not subject to
calibration) and the due dates computed from its events; each calibration or maintenance is
an ``equipment_events`` row, its certificate file an ``equipment_certificates`` row (kept in
the database: several app servers share nothing else). A QC result names the registered
equipment its instrument is; a tank reading may carry the LN2 level of a monitoring export.

Equipment on file before this migration has no interval and no exemption: it counts as
subject to calibration and never calibrated, so it is refused until someone sets its interval
and records a calibration (docs/equipment.md).

Revision ID: 0040
Revises: 0039
Create Date: 2026-12-07 19:20:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0040"
down_revision = "0039"
branch_labels = None
depends_on = None


def upgrade():
    when = cellchain.core.types.UTCDateTime(timezone=True)
    with op.batch_alter_table("equipment") as batch:
        batch.add_column(sa.Column("calibration_interval_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("calibration_exempt_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("maintenance_interval_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("calibration_due_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("maintenance_due_on", sa.Date(), nullable=True))
    op.create_table(
        "equipment_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("equipment_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("performed_on", sa.Date(), nullable=False),
        sa.Column("performed_by", sa.String(length=120), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("certificate_ref", sa.String(length=80), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("next_due_on", sa.Date(), nullable=True),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", when, nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('calibration', 'maintenance')", name=op.f("ck_equipment_events_kind_known")
        ),
        sa.ForeignKeyConstraint(
            ["equipment_id"], ["equipment.id"], name=op.f("fk_equipment_events_equipment_id_equipment")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"], ["users.id"], name=op.f("fk_equipment_events_recorded_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_equipment_events")),
    )
    op.create_index(
        "ix_equipment_events_item",
        "equipment_events",
        ["equipment_id", "kind", "performed_on"],
        unique=False,
    )
    op.create_table(
        "equipment_certificates",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["equipment_events.id"],
            name=op.f("fk_equipment_certificates_event_id_equipment_events"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_equipment_certificates")),
    )
    with op.batch_alter_table("qc_results") as batch:
        batch.add_column(sa.Column("equipment_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_qc_results_equipment_id_equipment"), "equipment", ["equipment_id"], ["id"]
        )
    with op.batch_alter_table("tank_readings") as batch:
        batch.add_column(sa.Column("level_percent", sa.Float(), nullable=True))


def downgrade():
    with op.batch_alter_table("tank_readings") as batch:
        batch.drop_column("level_percent")
    with op.batch_alter_table("qc_results") as batch:
        batch.drop_constraint(batch.f("fk_qc_results_equipment_id_equipment"), type_="foreignkey")
        batch.drop_column("equipment_id")
    op.drop_table("equipment_certificates")
    op.drop_index("ix_equipment_events_item", table_name="equipment_events")
    op.drop_table("equipment_events")
    with op.batch_alter_table("equipment") as batch:
        batch.drop_column("maintenance_due_on")
        batch.drop_column("calibration_due_on")
        batch.drop_column("maintenance_interval_days")
        batch.drop_column("calibration_exempt_reason")
        batch.drop_column("calibration_interval_days")
