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

from cellchain.core.i18n import LazyText
from cellchain.core.models import Signature, User
from cellchain.core.roles import Permission, has_permission
from cellchain.documents import versioning
from cellchain.documents.versioning import VERSION_TRANSITIONS, D, VersionStatus
from cellchain.errors import Conflict
from cellchain.extensions import DbSession


def _any_parameters(parameters: dict[str, Any]) -> None:
    """Parameters with no rule of their own beyond their shape."""


@dataclass(frozen=True)
class DefaultVersion:
    """What ``cellchain init`` and the demo load as the first version of a document."""

    code: str
    title: str
    parameters: dict[str, Any]


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

    def draft(
        self,
        session: DbSession,
        *,
        actor: User | None,
        now: dt.datetime,
        code: str,
        title: str,
        parameters: dict[str, Any],
    ) -> D:
        """Write a new draft version; it takes effect only when QA signs it."""
        self.check(parameters)
        return versioning.draft(
            session, self.model, actor=actor, now=now, code=code, title=title, parameters=parameters
        )

    def load_default(self, session: DbSession, *, actor: User | None, now: dt.datetime) -> D:
        """The default as a draft, unless a version of its code is already on file."""
        self.check(self.default.parameters)
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
        self, session: DbSession, document: D, *, user: User, password: str, now: dt.datetime
    ) -> Signature:
        """QA signs a draft; it becomes the version in force and the previous one is
        superseded."""
        return versioning.approve(
            session,
            document,
            meaning=self.approval_meaning,
            user=user,
            password=password,
            now=now,
            permission=self.permission,
        )

    def may_approve(self, document: D, user: User) -> bool:
        """Whether ``user`` is offered the approval of ``document``: a draft, and a signer
        whose roles grant this kind's approval."""
        next_states = VERSION_TRANSITIONS[VersionStatus(document.status)]
        may_sign = has_permission(user.roles, self.permission)
        return VersionStatus.EFFECTIVE in next_states and may_sign

    def in_force(self, session: DbSession, code: str) -> D:
        """The effective version of ``code``; refused when QA has approved none."""
        document = versioning.in_force(session, self.model, code.strip().upper())
        if document is None:
            errors = dict(self.missing_errors) if self.missing_errors else None
            raise Conflict(str(self.missing).format(code=code), errors=errors)
        return document

    def versions(self, session: DbSession) -> list[D]:
        """Every version of every document of this kind, newest version first."""
        return versioning.list_versions(session, self.model)

    def get(self, session: DbSession, document_id: int) -> D:
        return versioning.get(session, self.model, document_id)
