"""Several protocols and products at once (issue 22).

A patient of a protocol of one arm (open label) takes that arm without randomization: the
arm's source ``single_arm`` joins ``trial_randomization``. A trial-data export is of one
protocol: ``trial_data_exports.protocol_code``, the exports already on file given the code of
the first protocol signed (before this migration there was one).

Revision ID: 0046
Revises: 0045
Create Date: 2026-12-07 19:20:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0046"
down_revision = "0045"
branch_labels = None
depends_on = None


def _arm_sources(values: str) -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_patients_arm_source_known"), type_="check")
        batch_op.create_check_constraint("arm_source_known", f"arm_source IN ({values})")


def upgrade():
    _arm_sources("'trial_randomization', 'single_arm'")
    with op.batch_alter_table("trial_data_exports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("protocol_code", sa.String(length=40), nullable=True))
    op.execute(
        "UPDATE trial_data_exports SET protocol_code = COALESCE(("
        "SELECT code FROM protocols WHERE status <> 'draft' ORDER BY id LIMIT 1), 'UNKNOWN')"
    )
    with op.batch_alter_table("trial_data_exports", schema=None) as batch_op:
        batch_op.alter_column("protocol_code", existing_type=sa.String(length=40), nullable=False)


def downgrade():
    with op.batch_alter_table("trial_data_exports", schema=None) as batch_op:
        batch_op.drop_column("protocol_code")
    _arm_sources("'trial_randomization'")
