"""Tables of the shared kernel: users, roles, API tokens, audit trail, signatures, identifiers."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cellchain.core.roles import Role
from cellchain.core.types import UTCDateTime
from cellchain.extensions import Model, Recorded

_ROLE_VALUES = ", ".join(f"'{role.value}'" for role in Role)


class User(Recorded, Model):
    """A person with an account. Never deleted; a username is never given to anyone else."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: login name, lower case; unique for all time because rows are never deleted
    username: Mapped[str] = mapped_column(String(40), unique=True)
    #: printed name shown with every e-signature (21 CFR 11.50)
    full_name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: consecutive failed authentications (login or signing); reset by a success
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: an administrator set the password: its holder must change it before doing anything else
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    deactivated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    #: the language the user chose for pages, messages, e-mails and PDFs ("zh_Hans", "en");
    #: None: the browser's Accept-Language decides, then the site's default
    language: Mapped[str | None] = mapped_column(String(16))
    #: where the user's notifications are e-mailed (None: in the app only); migration 0037
    email: Mapped[str | None] = mapped_column(String(254))
    #: an address the user gave, waiting for the confirmation link e-mailed to it (0039);
    #: SHA-256 of that link's secret, and when the link stops working
    email_pending: Mapped[str | None] = mapped_column(String(254))
    email_confirm_hash: Mapped[str | None] = mapped_column(String(64))
    email_confirm_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    role_rows: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )
    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", foreign_keys="ApiToken.user_id"
    )

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(Role(row.role) for row in self.role_rows)

    @property
    def locked(self) -> bool:
        return self.locked_at is not None

    # Flask-Login protocol
    @property
    def is_active(self) -> bool:
        return self.active and not self.locked

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class UserRole(Recorded, Model):
    """One role held by one user."""

    __tablename__ = "user_roles"
    __table_args__ = (CheckConstraint(f"role IN ({_ROLE_VALUES})", name="role_known"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True)

    user: Mapped[User] = relationship(back_populates="role_rows")


class ApiToken(Recorded, Model):
    """A bearer token for the API; only its SHA-256 is stored, the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    #: what the holder calls it, e.g. "bench scanner 3"
    name: Mapped[str] = mapped_column(String(80))
    #: first characters of the token, shown so a holder can tell tokens apart
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: after this the token authenticates nothing (set at creation, never extended)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: ``read`` (safe methods only, for integrations) or ``full`` (devices)
    scope: Mapped[str] = mapped_column(String(10), default="full")

    user: Mapped[User] = relationship(back_populates="tokens", foreign_keys=[user_id])

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired(self, now: dt.datetime) -> bool:
        """Whether the token's lifetime is over at ``now``."""
        return now >= self.expires_at


class UserSession(Model):
    """One logged-in browser session, known on the server so it can be ended there.

    The signed session cookie carries a random token; only its SHA-256 is stored here. A
    cookie whose token has no row opens no page, however validly it is signed: logout deletes
    the session's row, and a password change, a role change, a deactivation or a lockout
    deletes every row of the user (docs/security.md). Rows are credentials, not records: the
    audit trail keeps the logins and logouts.
    """

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class AuditEntry(Model):
    """One append-only, hash-chained record of a change (DOMAIN.md §6).

    ``seq`` numbers the chain without gaps; ``entry_hash`` covers this entry's content and
    ``prev_hash``, so an edited, deleted or inserted row breaks the chain at that point.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_entity", "entity_type", "entity_id"),
        Index("ix_audit_entries_at", "at"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: null for the system itself (migrations, scheduled checks)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    #: kept as text too, so the entry reads on its own in an export
    actor_username: Mapped[str] = mapped_column(String(40))
    #: dotted verb, e.g. "user.created", "login.failed", "signature.signed"
    action: Mapped[str] = mapped_column(String(60), index=True)
    entity_type: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[str] = mapped_column(String(80))
    #: canonical JSON {field: [old, new]}; hashed exactly as stored
    changes: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: the audit key whose HMAC ``entry_hash`` is (core/audit_keys.py); null: a legacy entry
    #: from before the chain was keyed, hashed with plain SHA-256
    key_id: Mapped[str | None] = mapped_column(String(40))


class AuditChainHead(Model):
    """The single row that holds the end of the audit chain.

    Writers take this row's lock before appending (``SELECT … FOR UPDATE`` on PostgreSQL, an
    ``UPDATE`` that changes nothing on SQLite), held until their commit, which serialises them
    so the chain never forks; ``cellchain audit verify`` also checks that the chain ends here, which
    catches deleted entries at the end of the table.
    """

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class Signature(Recorded, Model):
    """An electronic signature bound to the exact content of a record (21 CFR 11.50, 11.70)."""

    __tablename__ = "signatures"
    __table_args__ = (Index("ix_signatures_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[str] = mapped_column(String(80))
    #: what the signature means, shown with it, e.g. "approval", "release for clinical use"
    meaning: Mapped[str] = mapped_column(String(120))
    signer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    #: the signer's printed name at the time of signing
    printed_name: Mapped[str] = mapped_column(String(120))
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: SHA-256 of the canonical JSON of the content signed
    content_hash: Mapped[str] = mapped_column(String(64))
    #: the canonical JSON that was signed, so a reviewer can see what changed since
    content: Mapped[str] = mapped_column(Text)

    signer: Mapped[User] = relationship()


class IdentifierSequence(Model):
    """The last number handed out in a sequence scope such as ``DIN:X9999:26``."""

    __tablename__ = "identifier_sequences"

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer)


class IssuedIdentifier(Recorded, Model):
    """Every identifier the site has issued, with what it now identifies.

    One table for all kinds makes a scanned code resolve in one indexed lookup and makes it
    impossible to issue the same code twice, whatever it was for.
    """

    __tablename__ = "issued_identifiers"
    __table_args__ = (UniqueConstraint("code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: canonical form with its check character, compared whole and exactly
    code: Mapped[str] = mapped_column(String(40))
    #: "DIN", "COI", later unit kinds
    kind: Mapped[str] = mapped_column(String(20))
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: the record it was attached to (null while reserved for label stock)
    entity_type: Mapped[str | None] = mapped_column(String(60))
    entity_id: Mapped[str | None] = mapped_column(String(80))
    #: why it was issued, e.g. "reserved for pre-printed label stock"
    purpose: Mapped[str] = mapped_column(String(200))

    issued_by: Mapped[User | None] = relationship()
