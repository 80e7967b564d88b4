"""The README's role table says what ``GRANTS`` says (the README is what sites read)."""

from __future__ import annotations

from pathlib import Path

from cellchain.core.roles import GRANTS, Permission

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_grants() -> dict[str, set[str]]:
    """Permission → roles marked "yes" in the README's table under "## Roles"."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Roles", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    header = next(line for line in section.splitlines() if line.startswith("| permission"))
    roles = [cell.strip() for cell in header.strip("|").split("|")][2:]
    table: dict[str, set[str]] = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        marks = zip(roles, cells[2:], strict=True)
        table[cells[0].strip("`")] = {role for role, cell in marks if cell == "yes"}
    return table


def test_readme_role_table_matches_grants() -> None:
    expected = {
        permission.value: {role.value for role in GRANTS[permission]} for permission in Permission
    }
    assert readme_grants() == expected
