"""passage and CPD limits refuse the step unless QA authorises the excursion

Issue 16, item 7. A new deviation category ``limit_excursion``; QA's signed authorisation
of one (``excursion_authorisations``: the highest passage and/or CPD allowed, and why), and
``processing_steps.deviation_id``, the authorised deviation a step beyond a limit relied on.
Steps recorded before this migration keep a null ``deviation_id`` (their lots still carry
their limit flags, which block release).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 13:20:00

"""

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_CATEGORIES_BEFORE = (
    "'process', 'equipment', 'material', 'storage_excursion', 'out_of_specification', "
    "'documentation', 'other'"
)
_CATEGORIES_AFTER = (
    "'process', 'equipment', 'material', 'storage_excursion', 'out_of_specification', "
    "'limit_excursion', 'documentation', 'other'"
)


def _deviation_categories(values: str) -> None:
    """Replace the CHECK on deviations.category."""
    with op.batch_alter_table("deviations", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_deviations_category_known"), type_="check")
        batch_op.create_check_constraint("category_known", f"category IN ({values})")


def upgrade():
    _deviation_categories(_CATEGORIES_AFTER)
    op.create_table(
        "excursion_authorisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deviation_id", sa.Integer(), nullable=False),
        sa.Column("max_passage", sa.Integer(), nullable=True),
        sa.Column("max_cumulative_pd", sa.Float(), nullable=True),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("authorised_at", cellchain.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("authorised_by_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "max_passage IS NOT NULL OR max_cumulative_pd IS NOT NULL",
            name=op.f("ck_excursion_authorisations_names_a_limit"),
        ),
        sa.ForeignKeyConstraint(
            ["authorised_by_id"],
            ["users.id"],
            name=op.f("fk_excursion_authorisations_authorised_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["deviation_id"],
            ["deviations.id"],
            name=op.f("fk_excursion_authorisations_deviation_id_deviations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_excursion_authorisations")),
        sa.UniqueConstraint("deviation_id", name=op.f("uq_excursion_authorisations_deviation_id")),
    )
    with op.batch_alter_table("processing_steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deviation_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_processing_steps_deviation_id_deviations"),
            "deviations",
            ["deviation_id"],
            ["id"],
        )


def downgrade():
    with op.batch_alter_table("processing_steps", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_processing_steps_deviation_id_deviations"), type_="foreignkey"
        )
        batch_op.drop_column("deviation_id")
    op.drop_table("excursion_authorisations")
    op.execute("UPDATE deviations SET category = 'process' WHERE category = 'limit_excursion'")
    _deviation_categories(_CATEGORIES_BEFORE)
