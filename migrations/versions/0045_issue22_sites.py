"""Sites as records: the manufacturing facility and clinical sites (issue 22).

A database that already holds records gets the manufacturing facility and one clinical site
made from the environment's configuration (``CELLCHAIN_SITE_NAME``, ``CELLCHAIN_TIMEZONE``,
``CELLCHAIN_FACILITY_CODE``); every existing patient belongs to that clinical site, every
existing shipment goes to it (its free-text destination is kept as it was typed, in
``destination``), and every clinician and investigator is made a member of it. A new, empty
database gets no site: ``cellchain init`` (or the demo) makes them. Rows written here carry
``audit_seq`` 0, as the baseline rows of 0023 do (``cellchain audit seal-baseline``).

Revision ID: 0045
Revises: 0044
Create Date: 2026-12-07 19:20:00

"""

import datetime as dt
import os

import sqlalchemy as sa
from alembic import op

import cellchain.core.types

# revision identifiers, used by Alembic.
revision = "0045"
down_revision = "0044"
branch_labels = None
depends_on = None

ROLES_BEFORE = (
    "'technician', 'qc_analyst', 'qa', 'clinician', 'investigator', 'statistician', 'admin'"
)
ROLES_AFTER = ROLES_BEFORE + ", 'monitor'"


def _env(name: str, default: str) -> str:
    value = os.environ.get(f"CELLCHAIN_{name}", "").strip()
    return value or default


def upgrade():
    when = cellchain.core.types.UTCDateTime(timezone=True)
    op.create_table(
        "sites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("time_zone", sa.String(length=60), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("contact", sa.String(length=200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('manufacturing_facility', 'clinical_site')",
            name=op.f("ck_sites_kind_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
        sa.UniqueConstraint("code", name=op.f("uq_sites_code")),
    )
    op.create_index(
        "uq_sites_one_facility",
        "sites",
        ["kind"],
        unique=True,
        sqlite_where=sa.text("kind = 'manufacturing_facility'"),
        postgresql_where=sa.text("kind = 'manufacturing_facility'"),
    )
    op.create_table(
        "site_memberships",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_site_memberships_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_site_memberships_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "site_id", name=op.f("pk_site_memberships")),
    )
    op.create_index(
        op.f("ix_site_memberships_site_id"), "site_memberships", ["site_id"], unique=False
    )

    bind = op.get_bind()
    has_records = bind.execute(sa.text("SELECT COUNT(*) FROM users")).scalar() or 0
    clinic_id = None
    if has_records:
        sites = sa.table(
            "sites",
            sa.column("id", sa.Integer),
            sa.column("code", sa.String),
            sa.column("name", sa.String),
            sa.column("kind", sa.String),
            sa.column("time_zone", sa.String),
            sa.column("active", sa.Boolean),
            sa.column("created_at", when),
            sa.column("audit_seq", sa.Integer),
        )
        name = _env("SITE_NAME", "cellchain demo site")
        zone = _env("TIMEZONE", "UTC")
        now = dt.datetime.now(dt.UTC)
        op.bulk_insert(
            sites,
            [
                {
                    "id": 1,
                    "code": _env("FACILITY_CODE", "FAC")[:20].upper(),
                    "name": name,
                    "kind": "manufacturing_facility",
                    "time_zone": zone,
                    "active": True,
                    "created_at": now,
                    "audit_seq": 0,
                },
                {
                    "id": 2,
                    "code": "SITE-1",
                    "name": f"{name} clinic"[:120],
                    "kind": "clinical_site",
                    "time_zone": zone,
                    "active": True,
                    "created_at": now,
                    "audit_seq": 0,
                },
            ],
        )
        clinic_id = 2
        bind.execute(
            sa.text(
                "INSERT INTO site_memberships (user_id, site_id, audit_seq) "
                "SELECT DISTINCT user_id, :site, 0 FROM user_roles "
                "WHERE role IN ('clinician', 'investigator')"
            ),
            {"site": clinic_id},
        )
        if bind.dialect.name == "postgresql":
            bind.execute(sa.text("SELECT setval('sites_id_seq', 2)"))

    with op.batch_alter_table("patients") as batch:
        batch.add_column(sa.Column("site_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("shipments") as batch:
        batch.add_column(sa.Column("destination_site_id", sa.Integer(), nullable=True))
    if clinic_id is not None:
        bind.execute(sa.text("UPDATE patients SET site_id = :site"), {"site": clinic_id})
        bind.execute(
            sa.text("UPDATE shipments SET destination_site_id = :site"), {"site": clinic_id}
        )
    with op.batch_alter_table("patients") as batch:
        batch.alter_column("site_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(op.f("fk_patients_site_id_sites"), "sites", ["site_id"], ["id"])
        batch.create_index(op.f("ix_patients_site_id"), ["site_id"], unique=False)
    with op.batch_alter_table("shipments") as batch:
        batch.alter_column("destination_site_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(
            op.f("fk_shipments_destination_site_id_sites"),
            "sites",
            ["destination_site_id"],
            ["id"],
        )
        batch.create_index(
            op.f("ix_shipments_destination_site_id"), ["destination_site_id"], unique=False
        )
    with op.batch_alter_table("user_roles") as batch:
        batch.drop_constraint(op.f("ck_user_roles_role_known"), type_="check")
        batch.create_check_constraint(op.f("ck_user_roles_role_known"), f"role IN ({ROLES_AFTER})")


def downgrade():
    op.execute("DELETE FROM user_roles WHERE role = 'monitor'")
    with op.batch_alter_table("user_roles") as batch:
        batch.drop_constraint(op.f("ck_user_roles_role_known"), type_="check")
        batch.create_check_constraint(op.f("ck_user_roles_role_known"), f"role IN ({ROLES_BEFORE})")
    with op.batch_alter_table("shipments") as batch:
        batch.drop_index(op.f("ix_shipments_destination_site_id"))
        batch.drop_constraint(op.f("fk_shipments_destination_site_id_sites"), type_="foreignkey")
        batch.drop_column("destination_site_id")
    with op.batch_alter_table("patients") as batch:
        batch.drop_index(op.f("ix_patients_site_id"))
        batch.drop_constraint(op.f("fk_patients_site_id_sites"), type_="foreignkey")
        batch.drop_column("site_id")
    op.drop_index(op.f("ix_site_memberships_site_id"), table_name="site_memberships")
    op.drop_table("site_memberships")
    op.drop_index("uq_sites_one_facility", table_name="sites")
    op.drop_table("sites")
