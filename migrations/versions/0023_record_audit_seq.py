"""Regulated rows carry the audit sequence of their last change (issue 18)

Every regulated table (every table but the trail itself, its head, the login sessions, the
identifier counters and the login throttle: ``core/record_state.UNRECORDED``) gets
``audit_seq``, the ``seq`` of the ``records.state`` audit entry that holds the row's values
as of its last change (``core/record_state.py`` writes both in the transaction that changes
the row). ``cellchain audit verify --records`` rebuilds each row from that entry.

Rows that exist when the migration runs (an upgraded site) are set to 0: written before
there was a record trail. ``verify --records`` lists them as not sealed until
``cellchain audit seal-baseline --reason …`` records their values once. A fresh install has
no rows, so nothing is 0. Not indexed: nothing looks rows up by it (verify reads every row).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 16:20:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

#: The regulated tables as of this revision (a migration keeps its own list).
REGULATED = (
    "adverse_events",
    "api_tokens",
    "bedside_checks",
    "cell_records",
    "deviations",
    "donations",
    "donor_test_results",
    "donors",
    "dose_bags",
    "dose_orders",
    "eligibility_determinations",
    "equipment",
    "excursion_authorisations",
    "follow_up_visits",
    "infusions",
    "issued_identifiers",
    "label_events",
    "label_prints",
    "lineage_edges",
    "lot_dispositions",
    "lots",
    "material_lots",
    "patients",
    "processing_steps",
    "product_definitions",
    "protocols",
    "qc_results",
    "qc_samples",
    "recall_doses",
    "recall_notifications",
    "recall_units",
    "recalls",
    "shipment_items",
    "shipments",
    "signatures",
    "specifications",
    "step_equipment",
    "step_materials",
    "step_units",
    "storage_positions",
    "tank_readings",
    "thaws",
    "unit_events",
    "units",
    "user_roles",
    "users",
    "weights",
)


def upgrade():
    for name in REGULATED:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column("audit_seq", sa.Integer(), nullable=True))
        op.execute(sa.text(f"UPDATE {name} SET audit_seq = 0"))


def downgrade():
    for name in REGULATED:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column("audit_seq")
