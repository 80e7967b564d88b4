"""Login throttling: a short, growing back-off after repeated failed passwords (issue 18).

Before, five wrong passwords at the login page locked an account until an administrator
unlocked it, so anyone who could reach the page could lock out the only QA. Now a run of
failures makes the name (and, at a higher count, the client address) wait: ``threshold``
failures within ``window`` refuse it for ``backoff``, doubling with every back-off in a row
up to ``backoff_max``. While it waits, an attempt is refused without checking any password
and is only counted (``refused``), so a flood writes one counter update per attempt and no
audit entry of its own (``accounts.record_failed_authentication`` audits the failures that
were checked and the start of each back-off).

The counters are rows of ``login_throttles``, one per (scope, key): several gunicorn
workers and several app servers share them through the database alone. A row is reset by
a success (the account's, never the address's) and forgotten once it has been quiet for
``window + backoff_max``; ``purge`` deletes such rows when failures are recorded.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, String, and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from cellchain.core.types import UTCDateTime
from cellchain.extensions import DbSession, Model

#: The longest key kept: a name typed at the login page may be anything.
KEY_LENGTH = 120


class Scope(enum.StrEnum):
    """What a counter counts the failures of."""

    #: a username as typed at the login page (or to ``cellchain tokens create``), case-folded,
    #: whether or not such an account exists
    ACCOUNT = "account"
    #: the client address of login attempts (an IPv6 address by its /64 network)
    ADDRESS = "address"
    #: a password re-entered by a logged-in user: an e-signature, a password change
    REAUTH = "reauth"


class LoginThrottle(Model):
    """The failure count and back-off of one username, client address or signer.

    A credential, not a record (DESIGN.md rule 5 does not apply): rows are updated and
    deleted; the audit trail keeps the failures and the back-offs.
    """

    __tablename__ = "login_throttles"

    #: ``Scope``: what ``key`` names
    scope: Mapped[str] = mapped_column(String(10), primary_key=True)
    #: the case-folded username, or the client address
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    #: failures counted since ``window_start`` (back to 0 when a back-off starts)
    failures: Mapped[int] = mapped_column(default=0)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_failure_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    #: back-offs in a row: the next one lasts ``backoff * 2**level`` (at most ``backoff_max``)
    level: Mapped[int] = mapped_column(default=0)
    #: attempts are refused until then, unchecked
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: attempts refused while blocked and not yet written to the audit trail
    refused: Mapped[int] = mapped_column(default=0)


@dataclass(frozen=True)
class Rule:
    """When a key must wait, and for how long."""

    threshold: int
    window: dt.timedelta
    backoff: dt.timedelta
    backoff_max: dt.timedelta

    @property
    def memory(self) -> dt.timedelta:
        """A row quiet for this long is forgotten: its count and its doubling start over."""
        return self.window + self.backoff_max

    def backoff_for(self, level: int) -> dt.timedelta:
        """The ``level``-th back-off in a row (0 first): doubling, capped."""
        return min(self.backoff * (1 << min(level, 30)), self.backoff_max)


@dataclass(frozen=True)
class Block:
    """A key that must wait until ``until``."""

    scope: Scope
    key: str
    until: dt.datetime

    def retry_after(self, now: dt.datetime) -> int:
        """Whole seconds to wait (rounded up, at least 1): the ``Retry-After`` value."""
        seconds = (self.until - now).total_seconds()
        return max(1, int(-(-seconds // 1)))


@dataclass(frozen=True)
class Failure:
    """What recording one failure did to its key."""

    scope: Scope
    key: str
    #: failures counted in the window, this one included
    count: int
    #: a back-off started by this failure: until when (else None)
    blocked_until: dt.datetime | None
    #: attempts refused during the previous back-off, reported now (0 if none)
    refused: int


def account_key(typed: str) -> str:
    """A username as typed, without surrounding blanks, case-folded (``Qa`` and ``qa `` are
    one key), whether or not an account has it."""
    return typed.strip().casefold()[:KEY_LENGTH]


def address_key(address: str | None) -> str | None:
    """The client address, or None when there is none (the CLI). An IPv6 client is keyed by
    its /64 network, which one host usually holds whole (it could otherwise take a fresh
    address for every guess)."""
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:KEY_LENGTH]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is 192.0.2.1
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _matching(keys: Sequence[tuple[Scope, str]]) -> ColumnElement[bool]:
    return or_(
        *(and_(LoginThrottle.scope == scope.value, LoginThrottle.key == key) for scope, key in keys)
    )


def current_block(
    session: DbSession, keys: Sequence[tuple[Scope, str]], now: dt.datetime
) -> Block | None:
    """The block among ``keys`` that lasts longest, or None when none must wait now."""
    if not keys:
        return None
    rows = session.execute(
        select(LoginThrottle).where(_matching(keys), LoginThrottle.blocked_until > now)
    ).scalars()
    blocks = [
        Block(Scope(row.scope), row.key, row.blocked_until)
        for row in rows
        if row.blocked_until is not None
    ]
    return max(blocks, key=lambda block: block.until, default=None)


def count_refusal(session: DbSession, keys: Sequence[tuple[Scope, str]], now: dt.datetime) -> None:
    """Count an attempt refused because one of ``keys`` waits: one UPDATE, no audit entry."""
    if keys:
        session.execute(
            update(LoginThrottle)
            .where(_matching(keys), LoginThrottle.blocked_until > now)
            .values(refused=LoginThrottle.refused + 1)
        )


def _row_for_update(session: DbSession, scope: Scope, key: str, now: dt.datetime) -> LoginThrottle:
    """The key's row, created if missing, locked until the transaction ends (PostgreSQL: a
    row lock; SQLite: the INSERT already took the database's write lock), so two workers
    counting the same key at once both count."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(LoginThrottle)
        .values(
            scope=scope.value,
            key=key,
            failures=0,
            level=0,
            refused=0,
            window_start=now,
            last_failure_at=now,
        )
        .on_conflict_do_nothing(index_elements=["scope", "key"])
    )
    return session.execute(
        select(LoginThrottle)
        .where(LoginThrottle.scope == scope.value, LoginThrottle.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def record_failure(
    session: DbSession, scope: Scope, key: str, *, now: dt.datetime, rule: Rule
) -> Failure:
    """Count one checked failure of ``key``; the ``rule.threshold``-th within the window
    starts a back-off, each one in a row twice as long as the one before (capped)."""
    row = _row_for_update(session, scope, key, now)
    if now - row.last_failure_at > rule.memory:
        row.level = 0  # quiet long enough: the doubling starts over
    if row.failures == 0 or now - row.window_start > rule.window:
        row.failures = 0
        row.window_start = now
    row.failures += 1
    row.last_failure_at = now
    count = row.failures
    refused = 0
    blocked_until = None
    if row.failures >= rule.threshold:
        blocked_until = now + rule.backoff_for(row.level)
        refused, row.refused = row.refused, 0
        row.blocked_until = blocked_until
        row.level += 1
        row.failures = 0
    session.flush()
    return Failure(scope, key, count, blocked_until, refused)


def reset(session: DbSession, scope: Scope, key: str) -> int:
    """Forget ``key``'s failures after a success; returns the attempts it had refused and
    not yet reported."""
    row = session.get(LoginThrottle, (scope.value, key))
    if row is None:
        return 0
    refused = row.refused
    session.delete(row)
    session.flush()
    return refused


def purge(
    session: DbSession, *, now: dt.datetime, memory: dt.timedelta
) -> list[tuple[Scope, str, int]]:
    """Delete the rows quiet for longer than ``memory`` and no longer blocking; returns the
    scope, key and count of those that had refused attempts not yet reported, for the
    caller to audit."""
    stale = and_(
        LoginThrottle.last_failure_at < now - memory,
        or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now),
    )
    unreported = [
        (Scope(scope), key, refused)
        for scope, key, refused in session.execute(
            select(LoginThrottle.scope, LoginThrottle.key, LoginThrottle.refused).where(
                stale, LoginThrottle.refused > 0
            )
        )
    ]
    session.execute(delete(LoginThrottle).where(stale).execution_options(synchronize_session=False))
    return unreported
