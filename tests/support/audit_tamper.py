"""What an insider with the database (and without, or with the wrong, audit key) does to the
audit trail: rewrite an entry and recompute every hash after it, cut the tail off, or empty
the table, and move the chain head to match, so that the chain alone still looks intact.
Everything goes around the append-only triggers (``tests.support.tamper.triggers_off``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from cellchain.core import audit
from cellchain.core.audit_keys import Keyring
from tests.support.tamper import triggers_off

#: fields of an entry → (the key id to store, the hash to store)
Hasher = Callable[[dict[str, Any]], tuple[str | None, str]]

_FIELDS = (
    "seq, prev_hash, at, actor_id, actor_username, action, entity_type, entity_id, changes, "
    "reason, key_id"
)


def plain_sha256(*, unkeyed: bool) -> Hasher:
    """The hash anyone can compute: SHA-256, as entries were before keys. ``unkeyed``: the
    insider also clears the key id (the entries pass for legacy ones); else leaves it."""

    def hasher(fields: dict[str, Any]) -> tuple[str | None, str]:
        content = {name: value for name, value in fields.items() if name != "key_id"}
        return (None if unkeyed else fields["key_id"]), audit.entry_hash(**content)

    return hasher


def with_key(keyring: Keyring, key_id: str) -> Hasher:
    """An HMAC with ``keyring``'s key ``key_id``: the wrong key, or a retired one."""

    def hasher(fields: dict[str, Any]) -> tuple[str | None, str]:
        content = {name: value for name, value in fields.items() if name != "key_id"}
        return key_id, audit.keyed_entry_hash(keyring, key_id, **content)

    return hasher


def _at(value: Any) -> dt.datetime:
    if isinstance(value, str):  # SQLite hands back text
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def rechain(conn: Any, from_seq: int, hasher: Hasher, **rewrite: Any) -> None:
    """Change entry ``from_seq`` (``rewrite``: column → new value), recompute the hash of it
    and of every entry after it with ``hasher``, and move the head to the new last hash."""
    rows = conn.execute(
        text(f"SELECT {_FIELDS} FROM audit_entries WHERE seq >= :s ORDER BY seq"),
        {"s": from_seq},
    ).mappings()
    entries = [dict(row) for row in rows]
    prev = conn.execute(
        text("SELECT entry_hash FROM audit_entries WHERE seq = :s"), {"s": from_seq - 1}
    ).scalar()
    prev_hash = prev or audit.GENESIS_HASH
    with triggers_off(conn):
        for entry in entries:
            if entry["seq"] == from_seq:
                entry.update(rewrite)
            entry["prev_hash"] = prev_hash
            entry["at"] = _at(entry["at"])
            key_id, entry_hash = hasher(entry)
            conn.execute(
                text(
                    "UPDATE audit_entries SET prev_hash = :prev_hash, reason = :reason, "
                    "actor_username = :actor_username, key_id = :key_id, "
                    "entry_hash = :entry_hash WHERE seq = :seq"
                ),
                {**entry, "key_id": key_id, "entry_hash": entry_hash},
            )
            prev_hash = entry_hash
        conn.execute(text("UPDATE audit_chain_head SET last_hash = :h"), {"h": prev_hash})


def cut_tail(conn: Any, keep: int) -> None:
    """Delete every entry after ``keep`` and move the head back to entry ``keep``."""
    last_hash = conn.execute(
        text("SELECT entry_hash FROM audit_entries WHERE seq = :s"), {"s": keep}
    ).scalar()
    with triggers_off(conn):
        conn.execute(text("DELETE FROM audit_entries WHERE seq > :s"), {"s": keep})
        conn.execute(
            text("UPDATE audit_chain_head SET last_seq = :s, last_hash = :h"),
            {"s": keep, "h": last_hash or audit.GENESIS_HASH},
        )
