"""labels gate the chain: every print logs the status marking it carried

Issue 16, item 3. ``label_prints.marking`` is the status marking the label printed ("" for
none); a unit carries the label its status requires only while its latest applied label's
marking equals the one its status requires now (``labels.service.label_state``). Rows printed
before this migration get the marking the code of the time printed: the quarantine marking
when the print says so, the rejection marking for a rejected unit, the ineligible-donor
marking for any blocked unit (recalled ones too: that was the bug), else none.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 13:20:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("label_prints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("marking", sa.String(length=200), nullable=True))
    op.execute(
        sa.text(
            "UPDATE label_prints SET marking = CASE"
            " WHEN quarantine THEN :quarantine"
            " WHEN unit_status = 'rejected' THEN :rejected"
            " WHEN unit_status = 'blocked' THEN :blocked"
            " ELSE '' END"
        ).bindparams(
            quarantine="QUARANTINE — NOT FOR CLINICAL USE",
            rejected="REJECTED — NOT FOR CLINICAL USE",
            blocked="BLOCKED — INELIGIBLE DONOR — NOT FOR CLINICAL USE",
        )
    )
    with op.batch_alter_table("label_prints", schema=None) as batch_op:
        batch_op.alter_column("marking", existing_type=sa.String(length=200), nullable=False)


def downgrade():
    with op.batch_alter_table("label_prints", schema=None) as batch_op:
        batch_op.drop_column("marking")
