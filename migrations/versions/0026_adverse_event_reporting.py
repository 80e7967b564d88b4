"""Adverse events for regulators (issue 19): seriousness criteria, awareness time, MedDRA-style
term, the investigator's signed causality and expectedness, and the sponsor reports.

All columns are nullable: events recorded before this migration have none of them.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 18:00:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

_WHEN = ("aware_at", "assessed_at", "initial_reported_at", "follow_up_reported_at")


def upgrade():
    with op.batch_alter_table("adverse_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("serious_criteria", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("term", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("term_code", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("causality", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("expected", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("assessed_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("initial_report_ref", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("follow_up_report_ref", sa.String(length=100), nullable=True))
        for name in _WHEN:
            batch_op.add_column(
                sa.Column(name, cellchain.core.types.UTCDateTime(timezone=True), nullable=True)
            )
        batch_op.create_foreign_key(
            "fk_adverse_events_assessed_by_id_users", "users", ["assessed_by_id"], ["id"]
        )


def downgrade():
    with op.batch_alter_table("adverse_events", schema=None) as batch_op:
        batch_op.drop_constraint("fk_adverse_events_assessed_by_id_users", type_="foreignkey")
        for name in (*_WHEN, "follow_up_report_ref", "initial_report_ref", "assessed_by_id"):
            batch_op.drop_column(name)
        for name in ("expected", "causality", "term_code", "term", "serious_criteria"):
            batch_op.drop_column(name)
