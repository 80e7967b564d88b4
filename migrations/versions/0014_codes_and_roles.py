"""Codes and roles (issue 16 items 4 and 5): no schema change.

Typed codes with check characters and the role rules are enforced in code
(`core.payload.read_scan`, `core.roles`), so this revision is intentionally empty.
It stays in the chain because databases upgraded on 2026-12-05 recorded it; removing
it would leave their version history with a gap.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 13:20:00

"""

# revision identifiers, used by Alembic.
revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change in the schema."""


def downgrade() -> None:
    """Nothing to undo."""
