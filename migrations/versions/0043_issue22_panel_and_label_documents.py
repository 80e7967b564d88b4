"""Donor test panels and label templates as controlled documents (issue 22).

- ``donor_test_panels``: versions of the donor test panel. On a database with product
  definitions, each product code's panel (the ``donor_test_panel`` parameter of its versions as
  they stand, left unchanged: signed content) becomes panel versions of the same code, one per
  different list in version order, starting at 1: the one of the product version in force is in
  force (effective since that product version), earlier ones superseded, one only in drafts a
  draft. ``donations.donor_test_panel_id`` points each donation at the panel version of its
  product definition version.
- ``label_templates``: versions of each label type's template; ``label_prints.template_id``.
  On a database that already has users (an upgraded site), the templates in ``labels/`` are
  loaded as the versions in force, each under its file's version and text (the same SHA-256 as
  the prints recorded), and every earlier print whose label type, version and hash match is
  pointed at its version. A new database gets them from ``cellchain init`` or the demo.

Rows this migration writes carry ``audit_seq`` 0 (not sealed), as migration 0023's did: run
``cellchain audit seal-baseline --reason "upgrade to 0043"`` once after the upgrade.

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-07 19:20:00

"""

import datetime as dt
import hashlib
import json
import tomllib

import sqlalchemy as sa
from alembic import op

import cellchain.core.types
from cellchain.core.types import canonical_json

# revision identifiers, used by Alembic.
revision = "0043"
down_revision = "0042"
branch_labels = None
depends_on = None

PANEL_TITLE = "Infectious-disease tests of the birth mother (21 CFR 1271.85)"
WHEN = cellchain.core.types.UTCDateTime(timezone=True)


def _document_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("parameters_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("effective_at", WHEN, nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'effective', 'superseded')",
            name=op.f(f"ck_{name}_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f(f"fk_{name}_created_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint("code", "version", name=op.f(f"uq_{name}_code")),
    )


def _table(name, *columns):
    typed = {"created_at": WHEN, "effective_at": WHEN}
    return sa.table(name, *(sa.column(column, typed.get(column)) for column in columns))


DOCUMENT_COLUMNS = (
    "id",
    "code",
    "version",
    "title",
    "parameters_json",
    "status",
    "created_at",
    "effective_at",
    "created_by_id",
    "audit_seq",
)


def _panels_from_products(connection) -> None:
    """Panel versions from the product definitions' parameter; donations pointed at them."""
    definitions = _table(
        "product_definitions",
        "id",
        "code",
        "version",
        "status",
        "parameters_json",
        "created_at",
        "effective_at",
        "created_by_id",
    )
    products = connection.execute(
        sa.select(definitions).order_by(definitions.c.code, definitions.c.version)
    ).all()
    panels = _table("donor_test_panels", *DOCUMENT_COLUMNS)
    donations = _table("donations", "product_definition_id", "donor_test_panel_id", "audit_seq")
    by_code: dict[str, list] = {}
    for row in products:
        by_code.setdefault(row.code, []).append(row)
    for code, versions in by_code.items():
        groups: list[tuple[list, list]] = []  # (tests, product versions with them)
        for row in versions:
            tests = json.loads(row.parameters_json).get("donor_test_panel")
            if not isinstance(tests, list):  # none named: the previous panel goes on
                if groups:
                    groups[-1][1].append(row)
                continue
            if groups and groups[-1][0] == tests:
                groups[-1][1].append(row)
            else:
                groups.append((tests, [row]))
        in_force = next(
            (n for n, (_, rows) in enumerate(groups) if any(r.status == "effective" for r in rows)),
            None,
        )
        for number, (tests, rows) in enumerate(groups, start=1):
            signed = [r for r in rows if r.status != "draft"]
            if in_force is not None and number - 1 == in_force:
                status = "effective"
            elif signed:
                status = "superseded"
            else:
                status = "draft"
            effective_at = (
                min(_aware(r.effective_at) for r in signed if r.effective_at is not None)
                if any(r.effective_at is not None for r in signed)
                else None
            )
            first = rows[0]
            result = connection.execute(
                panels.insert()
                .values(
                    code=code,
                    version=number,
                    title=PANEL_TITLE,
                    parameters_json=canonical_json({"tests": tests}),
                    status=status,
                    created_at=_aware(first.created_at),
                    effective_at=effective_at,
                    created_by_id=first.created_by_id,
                    audit_seq=0,
                )
                .returning(panels.c.id)
            )
            panel_id = result.scalar_one()
            for row in rows:
                connection.execute(
                    donations.update()
                    .where(donations.c.product_definition_id == row.id)
                    .values(donor_test_panel_id=panel_id, audit_seq=0)
                )


def _aware(value):
    """A time as read (naive UTC on SQLite), made aware."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def _label_templates_from_files(connection) -> None:
    """The templates in ``labels/`` in force on an upgraded site; earlier prints linked."""
    if connection.execute(sa.text("SELECT COUNT(*) FROM users")).scalar_one() == 0:
        return  # a new database: init or the demo loads them
    from cellchain.resources import resource_path

    now = dt.datetime.now(dt.UTC)
    templates = _table("label_templates", *DOCUMENT_COLUMNS)
    prints = _table(
        "label_prints",
        "label_type",
        "template_version",
        "template_hash",
        "template_id",
        "audit_seq",
    )
    for path in sorted(resource_path("labels").glob("*.toml")):
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
        label_type, version = data["label_type"], int(data["version"])
        inserted = connection.execute(
            templates.insert()
            .values(
                code=label_type.upper(),
                version=version,
                title=data["title"],
                parameters_json=canonical_json({"toml": raw.decode("utf-8")}),
                status="effective",
                created_at=now,
                effective_at=now,
                created_by_id=None,
                audit_seq=0,
            )
            .returning(templates.c.id)
        )
        template_id = inserted.scalar_one()
        connection.execute(
            prints.update()
            .where(
                prints.c.label_type == label_type,
                prints.c.template_version == version,
                prints.c.template_hash == hashlib.sha256(raw).hexdigest(),
            )
            .values(template_id=template_id, audit_seq=0)
        )


def upgrade():
    _document_table("donor_test_panels")
    _document_table("label_templates")
    with op.batch_alter_table("donations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("donor_test_panel_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("label_prints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_label_prints_template_id_label_templates"),
            "label_templates",
            ["template_id"],
            ["id"],
        )
    connection = op.get_bind()
    _panels_from_products(connection)
    _label_templates_from_files(connection)
    with op.batch_alter_table("donations", schema=None) as batch_op:
        batch_op.alter_column("donor_test_panel_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_donations_donor_test_panel_id_donor_test_panels"),
            "donor_test_panels",
            ["donor_test_panel_id"],
            ["id"],
        )


def downgrade():
    with op.batch_alter_table("label_prints", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_label_prints_template_id_label_templates"), type_="foreignkey"
        )
        batch_op.drop_column("template_id")
    with op.batch_alter_table("donations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_donations_donor_test_panel_id_donor_test_panels"), type_="foreignkey"
        )
        batch_op.drop_column("donor_test_panel_id")
    op.drop_table("label_templates")
    op.drop_table("donor_test_panels")
