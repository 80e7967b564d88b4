"""The use cases of one kind of controlled document, written once for all three.

A protocol, a product definition and a release specification differ only in their table,
the approval their signature asks for, the meaning printed with it, their default version,
what makes their parameters acceptable and how a missing version in force is refused. A
``DocumentKind`` holds those; each feature declares its own (``dosing.service.PROTOCOLS``,
``manufacturing.service.PRODUCTS``, ``quality.service.SPECIFICATIONS``) and calls it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic

from cellchain.core.i18n import LazyText, lazy
from cellchain.core.models import Signature, User
from cellchain.core.roles import Permission, has_permission
from cellchain.documents import texts, versioning
from cellchain.documents.versioning import VERSION_TRANSITIONS, D, VersionStatus
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession


def _any_parameters(parameters: dict[str, Any]) -> None:
    """Parameters with no rule of their own beyond their shape."""


@dataclass(frozen=True)
class DefaultVersion:
    """What ``cellchain init`` and the demo load as the first version of a document."""

    code: str
    title: str
    parameters: dict[str, Any]


def _require_text(**fields: str) -> None:
    """Refuse a change whose title or reason is blank, naming each blank field."""
    messages = {
        "title": lazy("A title is required."),
        "reason": lazy("Say why the document changes."),
    }
    errors = {name: [str(messages[name])] for name, value in fields.items() if not value.strip()}
    if errors:
        raise InvalidInput(" ".join(m[0] for m in errors.values()), errors=errors)


@dataclass(frozen=True)
class Comparison(Generic[D]):
    """A version beside another (by default the one in force): what changed."""

    document: D
    base: D | None
    rows: list[texts.Difference]
    title_changed: bool


@dataclass(frozen=True)
class DocumentKind(Generic[D]):
    """One kind of versioned, QA-approved document and its use cases."""

    model: type[D]
    #: the approval QA's signature on a version of this kind asks for (``SIGN_PROTOCOL``, …)
    permission: Permission
    #: the meaning printed with that signature
    approval_meaning: str
    default: DefaultVersion
    #: the refusal when no version of ``{code}`` is in force
    missing: str | LazyText
    #: the field errors of that refusal, if the form names the code in a field
    missing_errors: Mapping[str, list[str]] | None = None
    #: refuses parameters this kind could not use (a specification's tests must be judgeable)
    check: Callable[[dict[str, Any]], None] = _any_parameters
    #: refuses parameters that do not fit the document's code (a label template's text is
    #: that of the label type its code names): called with the code and the parameters
    #: wherever ``check`` is (drafting, changing, signing, loading the default), before it
    check_code: Callable[[str, dict[str, Any]], None] | None = None

    def check_all(self, code: str, parameters: dict[str, Any]) -> None:
        """``check_code`` then ``check`` of a version of ``code`` with ``parameters``."""
        if self.check_code is not None:
            self.check_code(code, parameters)
        self.check(parameters)

    def draft(
        self,
        session: DbSession,
        *,
        actor: User | None,
        now: dt.datetime,
        code: str,
        title: str,
        parameters: dict[str, Any],
        reason: str | None = None,
    ) -> D:
        """Write a new draft version; it takes effect only when QA signs it. Parameters this
        kind could not use are refused (``check``) before anything is written."""
        texts.require_plain(parameters)
        self.check_all(code, parameters)
        return versioning.draft(
            session,
            self.model,
            actor=actor,
            now=now,
            code=code,
            title=title,
            parameters=parameters,
            reason=reason,
        )

    def draft_change(
        self,
        session: DbSession,
        *,
        actor: User,
        now: dt.datetime,
        code: str,
        title: str,
        parameters: dict[str, Any],
        reason: str,
    ) -> D:
        """A person drafts the next version of ``code``: a title and the change's reason are
        required, and the parameters must pass this kind's ``check``."""
        _require_text(title=title, reason=reason)
        return self.draft(
            session,
            actor=actor,
            now=now,
            code=code,
            title=title,
            parameters=parameters,
            reason=reason,
        )

    def edit_draft(
        self,
        session: DbSession,
        document: D,
        *,
        actor: User,
        now: dt.datetime,
        title: str | None,
        parameters: dict[str, Any] | None,
        reason: str,
    ) -> D:
        """Change a draft in place; a signed version is refused (it is never changed)."""
        _require_text(reason=reason)
        if document.status == VersionStatus.DRAFT.value and parameters is not None:
            texts.require_plain(parameters)
            self.check_all(document.code, parameters)
        versioning.edit_draft(
            session,
            document,
            actor=actor,
            now=now,
            title=title,
            parameters=parameters,
            reason=reason,
        )
        return document

    def load_default(self, session: DbSession, *, actor: User | None, now: dt.datetime) -> D:
        """The default as a draft, unless a version of its code is already on file."""
        self.check_all(self.default.code, self.default.parameters)
        return versioning.first_or_draft(
            session,
            self.model,
            actor=actor,
            now=now,
            code=self.default.code,
            title=self.default.title,
            parameters=self.default.parameters,
        )

    def approve(
        self,
        session: DbSession,
        document: D,
        *,
        user: User,
        password: str,
        now: dt.datetime,
        effective_at: dt.datetime | None = None,
    ) -> Signature:
        """QA signs a draft into force at ``effective_at`` (default: now); the version in force
        before it stays so until then. Its parameters are checked once more: a version this
        kind could not use is never signed."""
        self.check_all(document.code, document.parameters)
        return versioning.approve(
            session,
            document,
            meaning=self.approval_meaning,
            user=user,
            password=password,
            now=now,
            permission=self.permission,
            effective_at=effective_at,
        )

    def may_approve(self, document: D, user: User) -> bool:
        """Whether ``user`` is offered the approval of ``document``: a draft, and a signer
        whose roles grant this kind's approval."""
        next_states = VERSION_TRANSITIONS[VersionStatus(document.status)]
        may_sign = has_permission(user.roles, self.permission)
        return VersionStatus.EFFECTIVE in next_states and may_sign

    def may_draft(self, user: User) -> bool:
        """Whether ``user`` is offered a new draft: who may sign this kind may draft it."""
        return has_permission(user.roles, self.permission)

    def in_force(self, session: DbSession, code: str, *, at: dt.datetime) -> D:
        """The version of ``code`` in force at ``at`` (the time of the event it applies to);
        refused when there is none."""
        document = versioning.in_force(session, self.model, code.strip().upper(), at=at)
        if document is None:
            errors = dict(self.missing_errors) if self.missing_errors else None
            raise Conflict(str(self.missing).format(code=code), errors=errors)
        return document

    def in_force_or_none(self, session: DbSession, code: str, *, at: dt.datetime) -> D | None:
        """The version of ``code`` in force at ``at``, or None."""
        return versioning.in_force(session, self.model, code.strip().upper(), at=at)

    def differences(
        self, session: DbSession, document: D, *, at: dt.datetime, against: D | None = None
    ) -> Comparison[D]:
        """``document`` beside ``against`` (default: the version of its code in force at
        ``at``): every parameter changed, added or removed."""
        base = (
            against if against is not None else self.in_force_or_none(session, document.code, at=at)
        )
        old = base.parameters if base is not None else {}
        rows = texts.differences(old, document.parameters)
        title_changed = base is not None and base.title != document.title
        return Comparison(document=document, base=base, rows=rows, title_changed=title_changed)

    def versions(self, session: DbSession) -> list[D]:
        """Every version of every document of this kind, newest version first."""
        return versioning.list_versions(session, self.model)

    def get(self, session: DbSession, document_id: int) -> D:
        return versioning.get(session, self.model, document_id)


#: every kind of controlled document by the name its routes use (``protocol``,
#: ``specification``, ``product``, …), filled as each feature makes its API
#: (``documents.api.document_api``): what ``cellchain documents`` reads a KIND from
KINDS: dict[str, DocumentKind[Any]] = {}


def kind_named(name: str) -> DocumentKind[Any] | None:
    """The kind called ``name`` (its route name, plural or table's signature type)."""
    wanted = name.strip().lower()
    for key, kind in KINDS.items():
        if wanted in (key, f"{key}s", kind.model.signature_entity_type):
            return kind
    return None
