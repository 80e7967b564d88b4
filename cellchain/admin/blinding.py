"""The audit trail as a blind reader sees it (single blind, issue 19).

The trail keeps every value as it was written (its hash chain covers them), among them a
patient's arm and randomization number: in the ``patient.enrolled`` entry and in the state
entries of the ``patients`` and ``randomization_slots`` rows. A reader of the trail whose
roles do not see arms (``Permission.SEE_ARMS``: the administrator) is shown those values
masked, on the page, in the API and in the CSV export; the stored entries never change, so
``audit verify`` (QA, who sees arms) still checks them. A masked export's ``changes`` then no
longer hash to its ``entry_hash``: a blind reader's copy is for reading, not for verifying.
"""

from __future__ import annotations

import json
from typing import Any

from cellchain.core.models import AuditEntry
from cellchain.core.record_state import STATE_ACTIONS
from cellchain.core.roles import Permission, Role, has_permission
from cellchain.core.types import canonical_json

MASK = "not shown to your role"
#: the fields of an entry's changes that name a patient's arm or randomization number
BLINDED_FIELDS = frozenset({"arm", "randomization_number"})
#: the same, per table, in the state entries (``records.state``, ``records.baseline``)
BLINDED_COLUMNS: dict[str, frozenset[str]] = {
    "patients": frozenset({"arm", "randomization_number"}),
    "randomization_slots": frozenset({"randomization_number"}),
}


def sees_arms(roles: frozenset[Role] | set[Role]) -> bool:
    return has_permission(roles, Permission.SEE_ARMS)


def _masked(value: Any) -> Any:
    return MASK if value not in (None, "") else value


def shown_changes(entry: AuditEntry, roles: frozenset[Role] | set[Role]) -> str:
    """``entry.changes`` (canonical JSON) as a reader holding ``roles`` is shown it."""
    if sees_arms(roles):
        return entry.changes
    changes = json.loads(entry.changes)
    if not isinstance(changes, dict):
        return entry.changes
    masked = False
    if entry.action in STATE_ACTIONS:
        for table, columns in BLINDED_COLUMNS.items():
            old_new = changes.get(table)
            if not isinstance(old_new, list) or len(old_new) != 2:
                continue
            for rows in old_new:
                for values in (rows or {}).values() if isinstance(rows, dict) else ():
                    for column in columns & set(values or {}):
                        values[column] = _masked(values[column])
                        masked = True
    else:
        for field in BLINDED_FIELDS & set(changes):
            pair = changes[field]
            if isinstance(pair, list):
                changes[field] = [_masked(value) for value in pair]
                masked = True
    return canonical_json(changes) if masked else entry.changes


class ShownEntry:
    """An audit entry with its changes as the reader is shown them; everything else is the
    entry's own."""

    def __init__(self, entry: AuditEntry, roles: frozenset[Role] | set[Role]) -> None:
        self._entry = entry
        self.changes = shown_changes(entry, roles)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._entry, name)
