"""Verifying the audit trail: one use case for ``cellchain audit verify``, the audit review
page and ``POST /api/v1/audit/verify`` (issue 18).

The database is compared with the last checkpoint outside it (``audit_checkpoints.check``)
and the chain is walked with the keys (``audit.verify_chain``), both in one snapshot on
PostgreSQL (REPEATABLE READ), so an entry the running application commits meanwhile is
neither half seen nor taken for a deleted tail. Verification only reads: appending a
checkpoint after a clean verification is the command line's job (``cellchain audit verify``
and the scheduled ``cellchain audit checkpoint``, run as the app's account, whose folder the
site archives), never a web request's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, scoped_session

from cellchain.core import audit, audit_checkpoints
from cellchain.core.audit import ChainReport
from cellchain.core.audit_checkpoints import Anchoring, Checkpoint
from cellchain.core.audit_keys import Keyring
from cellchain.extensions import DbSession

#: Isolation levels in which every read of a transaction sees one snapshot (PostgreSQL).
ONE_SNAPSHOT_LEVELS = ("REPEATABLE READ", "SERIALIZABLE")


@dataclass(frozen=True)
class Verification:
    """The chain walked with the keys, and its comparison with the last checkpoint."""

    chain: ChainReport
    #: None when no checkpoint folder is configured (nothing to compare with)
    anchoring: Anchoring | None

    @property
    def intact(self) -> bool:
        """The chain is whole and the database holds what the last checkpoint recorded."""
        return self.chain.intact and (self.anchoring is None or self.anchoring.intact)

    @property
    def checkpoints_configured(self) -> bool:
        return self.anchoring is not None

    @property
    def checkpoint_problems(self) -> list[str]:
        """What does not fit the checkpoint file, in words (forged lines, missing entries)."""
        return list(self.anchoring.problems) if self.anchoring is not None else []

    @property
    def compared_with(self) -> Checkpoint | None:
        """The last valid checkpoint, the one the database was compared with."""
        return self.anchoring.log.last if self.anchoring is not None else None


def verify(
    session: DbSession, *, keyring: Keyring, checkpoint_dir: str | Path | None
) -> Verification:
    """Compare the database with the last checkpoint in ``checkpoint_dir`` (if given) and walk
    the chain with ``keyring``, reading one snapshot (``one_snapshot``). Writes nothing."""
    with one_snapshot(session) as reading:
        anchoring = (
            audit_checkpoints.check(reading, checkpoint_dir, keyring) if checkpoint_dir else None
        )
        chain = audit.verify_chain(reading, keyring=keyring)
    return Verification(chain, anchoring)


def start_one_snapshot(session: DbSession) -> bool:
    """On PostgreSQL, make the session's next transaction read one snapshot (REPEATABLE
    READ); True if its reads see one snapshot from now on (always on SQLite, where a
    verification reads as it did; False for a PostgreSQL session already in a transaction
    of a weaker level)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    if isinstance(session, scoped_session):  # Flask-SQLAlchemy's: the request's own session
        session = session()
    if not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return True
    level = session.connection().get_isolation_level()
    return level in ONE_SNAPSHOT_LEVELS


@contextmanager
def one_snapshot(session: DbSession) -> Iterator[DbSession]:
    """A session whose reads see one snapshot: ``session`` itself when it can (nothing read
    yet, as in the command line, or already REPEATABLE READ), else a session of its own on
    the same database, rolled back and closed after (a page's session has read the acting
    user already)."""
    if start_one_snapshot(session):
        yield session
        return
    with Session(bind=session.get_bind()) as own:
        own.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        try:
            yield own
        finally:
            own.rollback()
