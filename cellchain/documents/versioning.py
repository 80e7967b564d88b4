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

from sqlalchemy import ForeignKey, Integer, String, Text, event, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Mapper, declared_attr, mapped_column, relationship

from cellchain.core import actions, audit, signatures
from cellchain.core.i18n import N_, LazyText, _, document_text, lazy
from cellchain.core.models import AuditEntry, Signature, User
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, require
from cellchain.core.types import UTCDateTime, canonical_json
from cellchain.errors import Conflict, InvalidInput
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
    #: its old value is loaded before a change (active_history), so the guard below knows
    #: whether a version being changed was signed, even when the change came unloaded
    status: Mapped[str] = mapped_column(String(20), active_history=True)
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

#: what a signature covers and so never changes once a version is signed
SIGNED_COLUMNS = ("code", "version", "title", "parameters_json")


def _refuse_signed_changes(_mapper: Mapper[Any], _connection: Any, target: Any) -> None:
    """Before any UPDATE of a version: a signed version's content is never changed in
    place, whatever path the change took (only its status moves on, from effective to
    superseded; its effective time is set at the signing and never moved)."""
    if not isinstance(target, VersionedDocument):
        return
    state = inspect(target)
    status = state.attrs.status.history
    was = status.deleted[0] if status.deleted else target.status
    if was == VersionStatus.DRAFT.value:
        return
    changed = [name for name in SIGNED_COLUMNS if state.attrs[name].history.has_changes()]
    # the time it comes into force was signed with it: never moved afterwards (only the
    # draft's own signing sets it); nor does a signed version become a draft again
    moved = state.attrs.effective_at.history.has_changes()
    if moved or target.status == VersionStatus.DRAFT.value:
        changed.append("effective_at")
    if changed:
        raise Conflict(
            _(
                "%(kind)s %(code)s v%(version)s is signed: it is never changed in place; "
                "draft a new version instead.",
                kind=document_text(target.document_label),
                code=target.code,
                version=target.version,
            )
        )


if not event.contains(Mapper, "before_update", _refuse_signed_changes):
    event.listen(Mapper, "before_update", _refuse_signed_changes)


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
    reason: str | None = None,
) -> D:
    """Write the next version of ``code`` as a draft; it takes effect only when QA signs it.

    ``reason``, the change's reason, is kept in the audit trail's entry of the draft (the
    application requires one from a person; a default version loaded at set-up has none)."""
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
    try:
        with session.begin_nested():  # of two drafts of one code at once, one is numbered
            session.add(document)
            session.flush()
    except IntegrityError as error:
        raise Conflict(
            _(
                "Another version of %(code)s was drafted at the same moment as this one; "
                "reload the document and draft again.",
                code=code,
            )
        ) from error
    audit.record(
        session,
        actor=actor,
        at=now,
        action=f"{model.signature_entity_type}.drafted",
        entity_type=model.signature_entity_type,
        entity_id=document.id,
        changes={"code": (None, code), "version": (None, document.version)},
        reason=reason.strip() if reason else None,
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


#: an effective time typed to the minute (a form's ``datetime-local``) for the minute of the
#: signing counts as the signing itself, not as a time in the past
EFFECTIVE_GRACE = dt.timedelta(seconds=60)


def approve(
    session: DbSession,
    document: VersionedDocument,
    *,
    meaning: str,
    user: User,
    password: str,
    now: dt.datetime,
    permission: Permission,
    effective_at: dt.datetime | None = None,
) -> Signature:
    """QA signs a draft into force at ``effective_at`` (default: the signing, ``now``).

    From that time it is the version in force (``in_force``); until then the version in
    force before it stays so. The versions signed before it are marked superseded at the
    signing (``status``); which one is in force at a time is read from the effective times.
    ``permission`` is the approval the document's kind asks for (``SIGN_PROTOCOL``, …); a
    signer without it is refused before anything changes. An effective time before the
    signing, or before that of a version already signed, is refused."""
    require(user, permission)
    model = type(document)
    entity_type = model.signature_entity_type
    # two signers at once: the second waits here, then finds the version signed
    session.execute(
        select(model)
        .where(model.id == document.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    _refuse_signing_below(session, document)
    effective = _effective_time(session, document, now=now, effective_at=effective_at)
    # set with the signing's status, in one flush: once signed it never moves
    document.effective_at = effective
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
    audit.record(
        session,
        actor=user,
        at=now,
        action=f"{entity_type}.approved",
        entity_type=entity_type,
        entity_id=document.id,
        changes={"status": ("draft", "effective"), "effective_at": (None, effective.isoformat())},
    )
    return signature


def _refuse_signing_below(session: DbSession, document: VersionedDocument) -> None:
    """A draft is signed only while no later version of its code is signed: versions come
    into force in the order of their numbers, so the one signed is the one in force from its
    effective time (a v2 signed after v3 would be recorded as in force and never apply)."""
    model = type(document)
    newer = session.execute(
        select(func.max(model.version)).where(
            model.code == document.code,
            model.status != VersionStatus.DRAFT.value,
            model.version > document.version,
        )
    ).scalar_one()
    if newer is not None:
        raise Conflict(
            _(
                "%(kind)s %(code)s v%(newer)s is already signed: v%(version)s can no longer "
                "come into force. Draft a new version from v%(newer)s instead.",
                kind=document_text(document.document_label),
                code=document.code,
                newer=newer,
                version=document.version,
            )
        )


def _effective_time(
    session: DbSession,
    document: VersionedDocument,
    *,
    now: dt.datetime,
    effective_at: dt.datetime | None,
) -> dt.datetime:
    if effective_at is None:
        effective = now
    elif effective_at.tzinfo is None:
        raise InvalidInput(_("An effective time needs its time zone."))
    elif now - EFFECTIVE_GRACE <= effective_at < now:
        effective = now
    else:
        effective = effective_at
    if effective < now:
        message = _("A version cannot take effect before it is signed.")
        raise InvalidInput(message, errors={"effective_at": [message]})
    model = type(document)
    latest = session.execute(
        select(model.effective_at)
        .where(
            model.code == document.code,
            model.status != VersionStatus.DRAFT.value,
            model.id != document.id,
            model.effective_at.is_not(None),
        )
        .order_by(model.effective_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if latest is not None and effective < latest:
        message = _(
            "A version already signed takes effect at %(when)s; this one cannot take effect "
            "before it.",
            when=latest.isoformat(timespec="minutes"),
        )
        raise InvalidInput(message, errors={"effective_at": [message]})
    return effective


def in_force(session: DbSession, model: type[D], code: str, *, at: dt.datetime) -> D | None:
    """The version of ``code`` in force at ``at``: the newest signed version whose effective
    time is not after ``at``; None when there is none. There is no "latest" without a time:
    a version signed to take effect later does not apply before then, so every caller passes
    the time of the event the version applies to (the record's time, or ``now`` passed down
    from the command)."""
    query = select(model).where(
        model.code == code,
        model.status != VersionStatus.DRAFT.value,
        model.effective_at <= at,
    )
    return session.execute(query.order_by(model.version.desc()).limit(1)).scalars().first()


def in_force_ids(session: DbSession, model: type[D], *, at: dt.datetime) -> set[int]:
    """The ids of the versions in force at ``at``, one per code at most."""
    rows = session.execute(
        select(model.code, func.max(model.version))
        .where(model.status != VersionStatus.DRAFT.value, model.effective_at <= at)
        .group_by(model.code)
    ).all()
    if not rows:
        return set()
    ids = set()
    for code, version in rows:
        found = session.execute(
            select(model.id).where(model.code == code, model.version == version)
        ).scalar_one()
        ids.add(found)
    return ids


class Standing(enum.StrEnum):
    """Where a version stands at a time: what a page shows beside it."""

    DRAFT = "draft"
    SIGNED = "signed"  #: signed, in force from a time still to come
    IN_FORCE = "in_force"
    SUPERSEDED = "superseded"

    @property
    def label(self) -> str:
        return str(STANDING_LABELS[self])


STANDING_LABELS: dict[Standing, LazyText] = {
    Standing.DRAFT: lazy("draft"),
    Standing.SIGNED: lazy("signed, not yet in force"),
    Standing.IN_FORCE: lazy("in force"),
    Standing.SUPERSEDED: lazy("superseded"),
}


def standing(document: VersionedDocument, in_force_now: set[int], now: dt.datetime) -> Standing:
    """Where ``document`` stands at ``now``, given the ids in force then (``in_force_ids``)."""
    if document.status == VersionStatus.DRAFT.value:
        return Standing.DRAFT
    if document.id in in_force_now:
        return Standing.IN_FORCE
    if document.effective_at is not None and document.effective_at > now:
        return Standing.SIGNED
    return Standing.SUPERSEDED


def edit_draft(
    session: DbSession,
    document: VersionedDocument,
    *,
    actor: User | None,
    now: dt.datetime,
    title: str | None,
    parameters: dict[str, Any] | None,
    reason: str | None,
) -> None:
    """Change a draft's title or parameters; a signed version is never changed in place
    (its change is a new version)."""
    model = type(document)
    if document.status != VersionStatus.DRAFT.value:
        raise Conflict(
            _(
                "%(kind)s %(code)s v%(version)s is signed: it is never changed in place; "
                "draft a new version instead.",
                kind=document_text(document.document_label),
                code=document.code,
                version=document.version,
            )
        )
    changes: dict[str, tuple[Any, Any]] = {}
    if title is not None and title.strip() != document.title:
        if not title.strip():
            message = _("A title is required.")
            raise InvalidInput(message, errors={"title": [message]})
        changes["title"] = (document.title, title.strip())
        document.title = title.strip()
    if parameters is not None:
        text = canonical_json(parameters)
        if text != document.parameters_json:
            changes["parameters"] = ("…", "…")
            document.parameters_json = text
    audit.record(
        session,
        actor=actor,
        at=now,
        action=f"{model.signature_entity_type}.edited",
        entity_type=model.signature_entity_type,
        entity_id=document.id,
        changes=changes,
        reason=reason.strip() if reason else None,
    )


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
    out["change_reason"] = change_reason(session, document)
    out["signatures"] = signatures.manifest(session, document)
    return out


def change_reason(session: DbSession, document: VersionedDocument) -> str | None:
    """The reason given for the version's change: that of its draft, or of its latest edit
    that gave one (kept in the audit trail)."""
    entity_type = type(document).signature_entity_type
    return session.execute(
        select(AuditEntry.reason)
        .where(
            AuditEntry.entity_type == entity_type,
            AuditEntry.entity_id == str(document.id),
            AuditEntry.action.in_((f"{entity_type}.drafted", f"{entity_type}.edited")),
            AuditEntry.reason.is_not(None),
        )
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    ).scalar_one_or_none()
