"""What the tests of the audit trail's write path expect of ``audit.chain_hashes``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cellchain.core import audit
from cellchain.core.audit_keys import Keyring


def assert_chained_as_keyed_entry_hash(
    keyring: Keyring,
    key_id: str,
    rows: Sequence[Sequence[Any]],
    written: Sequence[tuple[Any, ...]],
    *,
    first_seq: int,
    prev_hash: str,
) -> None:
    """Each written row is ``(seq, prev_hash, keyed_entry_hash of the entry, key_id,
    entity_id)``, chained to the one before from ``prev_hash``; a row's
    ``audit.FIRST_OF_BATCH`` entity id stands for the batch's first seq. ``rows`` are
    ``(action, entity_type, entity_id, changes, reason, actor_id, actor_username, at)``."""
    before = prev_hash
    for seq, (row, done) in enumerate(zip(rows, written, strict=True), start=first_seq):
        action, entity_type, entity_id, changes, reason, actor_id, actor_username, at = row
        if entity_id == audit.FIRST_OF_BATCH:
            entity_id = str(first_seq)
        expected = audit.keyed_entry_hash(
            keyring,
            key_id,
            seq=seq,
            prev_hash=before,
            at=at,
            actor_id=actor_id,
            actor_username=actor_username,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            changes=changes,
            reason=reason,
        )
        assert done == (seq, before, expected, key_id, entity_id)
        before = expected
