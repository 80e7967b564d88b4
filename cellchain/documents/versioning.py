"""Versioned, QA-approved configuration documents (DESIGN.md rule 9).

Trial protocols, product definitions and later specifications share one life cycle: a new
version is written as a draft, takes effect only when QA signs it, and supersedes the version
that was in force. Records keep the id of the version they were made under, so a later version
never changes what an earlier record meant.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from sqlalchemy import ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from cellchain.core import actions, audit, signatures
from cellchain.core.i18n import N_, LazyText, _, document_text, lazy
from cellchain.core.models import Signature, User
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, require
from cellchain.core.types import UTCDateTime, canonical_json
from cellchain.errors import InvalidInput
from cellchain.extensions import DbSession


class VersionStatus(enum.StrEnum):
    DRAFT = "draft"  #: written, not yet approved: nothing uses it
    EFFECTIVE = "effective"  #: approved by QA's signature; the version in force
    SUPERSEDED = "superseded"  #: a later version became effective

    @property
    def label(self) -> str:
        """The status in the language of the moment."""
        return str(VERSION_STATUS_LABELS[self])


VERSION_STATUS_LABELS: dict[VersionStatus, LazyText] = {
    VersionStatus.DRAFT: lazy("draft"),
    VersionStatus.EFFECTIVE: lazy("effective"),
    VersionStatus.SUPERSEDED: lazy("superseded"),
}

#: Allowed status changes (DESIGN.md rule 2).
VERSION_TRANSITIONS: dict[VersionStatus, frozenset[VersionStatus]] = {
    VersionStatus.DRAFT: frozenset({VersionStatus.EFFECTIVE}),
    VersionStatus.EFFECTIVE: frozenset({VersionStatus.SUPERSEDED}),
    VersionStatus.SUPERSEDED: frozenset(),
}

#: SQL for the check constraint on a versioned table's status column.
STATUS_CHECK = "status IN ('draft', 'effective', 'superseded')"


class VersionedDocument:
    """Columns and behaviour shared by every versioned configuration table.

    A subclass sets ``__tablename__``, ``signature_entity_type`` and a unique constraint on
    (code, version), and may add columns of its own.
    """

    if TYPE_CHECKING:
        # every subclass is also a mapped model, whose constructor takes columns as keywords
        def __init__(self, **kwargs: Any) -> None: ...

    signature_entity_type: ClassVar[str]
    #: the words that name one document of this kind in messages, e.g. "Protocol"
    document_label: ClassVar[str]

    id: Mapped[int] = mapped_column(primary_key=True)
    #: what the document is about, e.g. NCT01420432 or UC-MSC
    code: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    #: canonical JSON of the parameters
    parameters_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    effective_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    @declared_attr
    def created_by_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("users.id"))

    @declared_attr
    def created_by(cls) -> Mapped[User | None]:
        return relationship(User)

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(json.loads(self.parameters_json))

    @property
    def signature_entity_id(self) -> str:
        return str(self.id)

    @property
    def label(self) -> str:
        return f"{self.document_label} {self.code} v{self.version}"

    @property
    def status_label(self) -> str:
        return VersionStatus(self.status).label

    def signed_content(self) -> dict[str, Any]:
        """A signature on a version covers its identity and every parameter."""
        return {
            "code": self.code,
            "version": self.version,
            "title": self.title,
            "parameters": self.parameters,
        }


D = TypeVar("D", bound=VersionedDocument)


def _transition(document: VersionedDocument, target: VersionStatus) -> None:
    current = VersionStatus(document.status)
    actions.require_transition(
        VERSION_TRANSITIONS,
        current,
        target,
        _(
            "%(kind)s %(code)s v%(version)s",
            kind=document_text(document.document_label),
            code=document.code,
            version=document.version,
        ),
    )
    document.status = target.value


def draft(
    session: DbSession,
    model: type[D],
    *,
    actor: User | None,
    now: dt.datetime,
    code: str,
    title: str,
    parameters: dict[str, Any],
) -> D:
    """Write the next version of ``code`` as a draft; it takes effect only when QA signs it."""
    code = code.strip().upper()
    if not code or not title.strip():
        raise InvalidInput(
            _(
                "A %(kind)s needs a code and a title.",
                kind=document_text(model.document_label.lower()),
            )
        )
    latest = session.execute(select(func.max(model.version)).where(model.code == code)).scalar_one()
    document = model(
        code=code,
        version=(latest or 0) + 1,
        title=title.strip(),
        parameters_json=canonical_json(parameters),
        status=VersionStatus.DRAFT.value,
        created_at=now,
        created_by_id=actor.id if actor else None,
    )
    session.add(document)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action=f"{model.signature_entity_type}.drafted",
        entity_type=model.signature_entity_type,
        entity_id=document.id,
        changes={"code": (None, code), "version": (None, document.version)},
    )
    return document


def first_or_draft(
    session: DbSession,
    model: type[D],
    *,
    actor: User | None,
    now: dt.datetime,
    code: str,
    title: str,
    parameters: dict[str, Any],
) -> D:
    """The first version of ``code`` on file, or a new draft of it with ``parameters``."""
    existing = (
        session.execute(select(model).where(model.code == code).order_by(model.version))
        .scalars()
        .first()
    )
    if existing is not None:
        return existing
    return draft(
        session, model, actor=actor, now=now, code=code, title=title, parameters=parameters
    )


def approve(
    session: DbSession,
    document: VersionedDocument,
    *,
    meaning: str,
    user: User,
    password: str,
    now: dt.datetime,
    permission: Permission,
) -> Signature:
    """QA signs a draft; it becomes the version in force and the previous one is superseded.

    ``permission`` is the approval the document's kind asks for (``SIGN_PROTOCOL``, …); a
    signer without it is refused before anything changes."""
    require(user, permission)
    model = type(document)
    entity_type = model.signature_entity_type
    _transition(document, VersionStatus.EFFECTIVE)
    signature = signatures.sign(
        session,
        record=document,
        meaning=meaning,
        user=user,
        password=password,
        now=now,
        permission=permission,
    )
    previous = session.execute(
        select(model).where(
            model.code == document.code,
            model.status == VersionStatus.EFFECTIVE.value,
            model.id != document.id,
        )
    ).scalars()
    for old in previous:
        _transition(old, VersionStatus.SUPERSEDED)
        audit.record(
            session,
            actor=user,
            at=now,
            action=f"{entity_type}.superseded",
            entity_type=entity_type,
            entity_id=old.id,
            changes={"status": ("effective", "superseded")},
        )
    document.effective_at = now
    audit.record(
        session,
        actor=user,
        at=now,
        action=f"{entity_type}.approved",
        entity_type=entity_type,
        entity_id=document.id,
        changes={"status": ("draft", "effective")},
    )
    return signature


def in_force(session: DbSession, model: type[D], code: str) -> D | None:
    """The effective version of ``code``, or None when no version has been approved."""
    return session.execute(
        select(model).where(model.code == code, model.status == VersionStatus.EFFECTIVE.value)
    ).scalar_one_or_none()


def get(session: DbSession, model: type[D], document_id: int) -> D:
    return get_or_404(session, model, document_id, model.document_label.lower())


#: the kinds of controlled document (``document_label``, and lower-cased in a sentence),
#: marked so that a refusal names them in the reader's language (``document_text``)
DOCUMENT_KIND_NAMES = (
    N_("Protocol"),
    N_("protocol"),
    N_("Product definition"),
    N_("product definition"),
    N_("Specification"),
    N_("specification"),
)


def list_versions(session: DbSession, model: type[D]) -> list[D]:
    """Every version of every document of this kind, newest version first."""
    return list(session.execute(select(model).order_by(model.code, model.version.desc())).scalars())


def describe(session: DbSession, document: VersionedDocument) -> dict[str, Any]:
    """A version's fields with its signatures, each checked against its content now."""
    fields = ("id", "code", "version", "title", "status", "parameters", "created_at")
    out = {name: getattr(document, name) for name in fields}
    out["effective_at"] = document.effective_at
    out["signatures"] = signatures.manifest(session, document)
    return out
