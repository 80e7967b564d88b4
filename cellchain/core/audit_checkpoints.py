"""Checkpoints of the audit chain's head, kept outside the database (issue 18).

A keyed chain stops anyone without the key from rewriting an entry, but not from deleting
the last entries and moving the head row back, or from emptying the table and starting
again: what is left is a shorter chain that is still intact. A checkpoint pins the head as
it was: one line appended to ``audit-checkpoints.jsonl`` in the configured folder
(``AUDIT_CHECKPOINT_DIR``), holding the last entry's seq and hash, the time, the key id and
an HMAC over them with that key, so a line someone wrote without the key is found.

``cellchain audit verify`` compares the database with the last checkpoint before walking
the chain, and appends a new one when all is well; ``cellchain audit checkpoint`` does the
comparison and appends one, on a schedule (cron or a systemd timer, docs); ``cellchain
restore`` compares the restored database. A checkpoint is appended only when the database
still holds what the previous one recorded, so a scheduled checkpoint never makes a deleted
tail look normal. The site archives the file (a write-once location, another host).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from cellchain.core.audit_keys import Keyring
from cellchain.core.models import AuditChainHead, AuditEntry
from cellchain.core.types import canonical_json
from cellchain.extensions import DbSession

FILE_NAME = "audit-checkpoints.jsonl"
#: Marks what a checkpoint MAC covers, so no other MAC made with the key can pass for one.
DOMAIN = "cellchain audit checkpoint v1\n"


@dataclass(frozen=True)
class Checkpoint:
    """One line of the checkpoint file: the chain's head at ``at``."""

    seq: int
    entry_hash: str
    at: dt.datetime
    key_id: str
    #: why it was written: "verify", "checkpoint", "restore", "restore-older"
    event: str
    line: int = 0

    def when(self) -> str:
        """The time in words: ``2026-12-06 10:00 UTC``."""
        return self.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

    def fields(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "hash": self.entry_hash,
            "at": self.at.astimezone(dt.UTC).isoformat(),
            "key_id": self.key_id,
            "event": self.event,
        }


@dataclass(frozen=True)
class CheckpointLog:
    """The checkpoint file as read: the lines whose MAC holds, and those whose does not."""

    path: Path
    valid: list[Checkpoint] = field(default_factory=list)
    #: one sentence per forged or unreadable line
    forged: list[str] = field(default_factory=list)

    @property
    def last(self) -> Checkpoint | None:
        return self.valid[-1] if self.valid else None

    def last_at_or_before(self, seq: int) -> Checkpoint | None:
        """The latest valid checkpoint of an entry up to ``seq`` (for an older backup)."""
        for checkpoint in reversed(self.valid):
            if checkpoint.seq <= seq:
                return checkpoint
        return None


def file_in(directory: str | Path) -> Path:
    return Path(directory) / FILE_NAME


def _mac(keyring: Keyring, key_id: str, fields: dict[str, object]) -> str:
    return keyring.mac(key_id, (DOMAIN + canonical_json(fields)).encode())


def read(directory: str | Path, keyring: Keyring) -> CheckpointLog:
    """Every line of the checkpoint file, each MAC checked with the key it names."""
    path = file_in(directory)
    log = CheckpointLog(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return log
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            checkpoint = Checkpoint(
                seq=int(data["seq"]),
                entry_hash=str(data["hash"]),
                at=dt.datetime.fromisoformat(str(data["at"])),
                key_id=str(data["key_id"]),
                event=str(data.get("event", "")),
                line=number,
            )
            mac = str(data["mac"])
        except (ValueError, KeyError, TypeError):
            log.forged.append(f"line {number} of {path} is not a checkpoint")
            continue
        if checkpoint.key_id not in keyring.keys:
            log.forged.append(
                f"line {number} of {path} (checkpoint of {checkpoint.when()}, entry "
                f"#{checkpoint.seq}) names audit key {checkpoint.key_id!r}, which is not in "
                "the key file: it was not written by cellchain with this site's keys"
            )
            continue
        if _mac(keyring, checkpoint.key_id, checkpoint.fields()) != mac:
            log.forged.append(
                f"line {number} of {path} (checkpoint of {checkpoint.when()}, entry "
                f"#{checkpoint.seq}) has a MAC that does not match: it was forged or edited"
            )
            continue
        log.valid.append(checkpoint)
    return log


def append(
    directory: str | Path,
    keyring: Keyring,
    *,
    seq: int,
    entry_hash: str,
    at: dt.datetime,
    event: str,
) -> Checkpoint:
    """Append a checkpoint line, MAC'd with the current key, and force it to the disk."""
    path = file_in(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = Checkpoint(seq, entry_hash, at.astimezone(dt.UTC), keyring.current_id, event)
    fields = checkpoint.fields()
    line = json.dumps({**fields, "mac": _mac(keyring, checkpoint.key_id, fields)}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return checkpoint


def compare(session: DbSession, checkpoint: Checkpoint) -> list[str]:
    """What the database lacks of what ``checkpoint`` recorded, in words; empty if it still
    holds the checkpoint's entry unchanged and keys every entry after it."""
    recorded = f"the checkpoint of {checkpoint.when()}"
    m = checkpoint.seq
    if m == 0:
        return _unkeyed_after(session, checkpoint)
    last = session.scalar(select(func.max(AuditEntry.seq))) or 0
    if last == 0:
        return [
            f"the audit trail is empty, but {recorded} recorded entries #1–#{m}: the table "
            "was emptied and the chain head reset"
        ]
    if last < m:
        first_at = session.scalar(select(AuditEntry.at).where(AuditEntry.seq == 1))
        problems = [f"entries #{last + 1}–#{m} recorded in {recorded} are missing"]
        if first_at is not None and first_at > checkpoint.at:
            problems.append(
                f"entry #1 is dated after {recorded}: the trail was emptied and started again"
            )
        return problems
    stored = session.scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == m))
    if stored is None:
        return [f"entry #{m} recorded in {recorded} is missing"]
    if stored != checkpoint.entry_hash:
        return [
            f"entry #{m} is not the entry recorded in {recorded}: the trail up to it was "
            "rewritten, or emptied and written again"
        ]
    return _unkeyed_after(session, checkpoint)


def _unkeyed_after(session: DbSession, checkpoint: Checkpoint) -> list[str]:
    """Entries after a checkpoint are always keyed (checkpoints exist only since keys do): an
    unkeyed one there was rewritten without the key."""
    unkeyed = session.scalar(
        select(func.min(AuditEntry.seq)).where(
            AuditEntry.seq > checkpoint.seq, AuditEntry.key_id.is_(None)
        )
    )
    if unkeyed is None:
        return []
    return [
        f"entry #{unkeyed} has no audit key, but it comes after the checkpoint of "
        f"{checkpoint.when()} (entry #{checkpoint.seq}), since when every entry is keyed: "
        "it was rewritten by someone without the key"
    ]


@dataclass(frozen=True)
class Anchoring:
    """The database compared with the checkpoint file."""

    log: CheckpointLog
    #: what does not fit, in words: forged lines, then what the database lacks
    problems: list[str]
    #: set when a restored backup ends before the last checkpoint (a legitimate but
    #: explicit step back): the sentence saying which entries it lacks, and its last entry
    older: str | None = None
    restored_seq: int | None = None

    @property
    def intact(self) -> bool:
        return not self.problems


def check(session: DbSession, directory: str | Path, keyring: Keyring) -> Anchoring:
    """Read the checkpoint file and compare the database with its last valid checkpoint."""
    log = read(directory, keyring)
    problems = list(log.forged)
    if log.last is not None:
        problems += compare(session, log.last)
    return Anchoring(log, problems)


def check_restored(session: DbSession, directory: str | Path, keyring: Keyring) -> Anchoring:
    """Like ``check``, for a database just restored from a backup: a backup made before the
    last checkpoint legitimately ends before it. That is said in ``older`` (not a problem),
    and the backup is compared with the latest checkpoint it should hold instead."""
    log = read(directory, keyring)
    problems = list(log.forged)
    last = log.last
    if last is None:
        return Anchoring(log, problems)
    restored = session.scalar(select(func.max(AuditEntry.seq))) or 0
    if restored >= last.seq:
        return Anchoring(log, problems + compare(session, last))
    older = (
        f"the restored backup ends at entry #{restored}, the last checkpoint "
        f"({last.when()}) is #{last.seq}: entries #{restored + 1}–#{last.seq} are not in "
        "this backup"
    )
    earlier = log.last_at_or_before(restored)
    if earlier is not None:
        problems += compare(session, earlier)
    return Anchoring(log, problems, older, restored)


def write_head(
    session: DbSession, directory: str | Path, keyring: Keyring, *, at: dt.datetime, event: str
) -> Checkpoint:
    """Append a checkpoint of the head row as it is now, after checking that the entry it
    names holds its hash (``ChainHeadMismatch`` otherwise).

    The head row is read first: an entry it names was committed with it, while entries
    committed after it (the app keeps writing) are simply not in this checkpoint."""
    row = session.get(AuditChainHead, 1)
    if row is None:
        raise ChainHeadMismatch("the chain head row is missing: run `cellchain audit verify`")
    if row.last_seq:
        stored = session.scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == row.last_seq))
        if stored != row.last_hash:
            raise ChainHeadMismatch(
                f"the chain head names entry #{row.last_seq}, which the table does not hold "
                "with that hash: run `cellchain audit verify`"
            )
    return append(
        directory, keyring, seq=row.last_seq, entry_hash=row.last_hash, at=at, event=event
    )


class ChainHeadMismatch(RuntimeError):
    """The head row does not name the table's last entry; no checkpoint is written."""
