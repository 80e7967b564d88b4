"""donor lookback: an eligibility determination can be re-opened by a later donor result, and
a recall can be opened by the system on such a result (issue 16, item 2)

- ``eligibility_determinations``: the unique ``donation_id`` becomes one determination *in
  force* per donation (partial unique index where ``reopened_at IS NULL``); a re-opened one
  keeps its row and signature and says when, by which result and why it was re-opened.
- ``recalls.cause_result_id``: the donor test result whose recording or correction opened a
  lookback automatically (null for a recall QA opened).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 13:20:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("eligibility_determinations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reopened_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("reopened_by_result_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reopened_reason", sa.Text(), nullable=True))
        batch_op.drop_constraint("uq_eligibility_determinations_donation_id", type_="unique")
        batch_op.create_foreign_key(
            batch_op.f("fk_eligibility_determinations_reopened_by_result_id_donor_test_results"),
            "donor_test_results",
            ["reopened_by_result_id"],
            ["id"],
        )
        batch_op.create_index(
            batch_op.f("ix_eligibility_determinations_donation_id"), ["donation_id"], unique=False
        )
        batch_op.create_index(
            "uq_eligibility_determinations_current",
            ["donation_id"],
            unique=True,
            sqlite_where=sa.text("reopened_at IS NULL"),
            postgresql_where=sa.text("reopened_at IS NULL"),
        )

    with op.batch_alter_table("recalls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cause_result_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_recalls_cause_result_id_donor_test_results"),
            "donor_test_results",
            ["cause_result_id"],
            ["id"],
        )


def downgrade():
    with op.batch_alter_table("recalls", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_recalls_cause_result_id_donor_test_results"), type_="foreignkey"
        )
        batch_op.drop_column("cause_result_id")

    # a donation whose determination was re-opened has several determinations; the old
    # one-per-donation constraint cannot hold them, and records are never deleted
    reopened = (
        op.get_bind()
        .execute(
            sa.text("SELECT COUNT(*) FROM eligibility_determinations WHERE reopened_at IS NOT NULL")
        )
        .scalar_one()
    )
    if reopened:
        raise RuntimeError(
            f"{reopened} re-opened eligibility determination(s) exist; downgrading below 0012 "
            "would have to delete signed records."
        )
    with op.batch_alter_table("eligibility_determinations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_eligibility_determinations_current",
            sqlite_where=sa.text("reopened_at IS NULL"),
            postgresql_where=sa.text("reopened_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_eligibility_determinations_donation_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_eligibility_determinations_reopened_by_result_id_donor_test_results"),
            type_="foreignkey",
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_eligibility_determinations_donation_id"), ["donation_id"]
        )
        batch_op.drop_column("reopened_reason")
        batch_op.drop_column("reopened_by_result_id")
        batch_op.drop_column("reopened_at")
