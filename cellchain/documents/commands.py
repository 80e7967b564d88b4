"""Acting-user glue of the controlled documents, shared by the API and the pages: load the
version, then draft, edit or approve it as the acting user at the time of the request."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cellchain.documents.service import DocumentKind
from cellchain.documents.versioning import D
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now


def approve_as_user(
    session: DbSession,
    kind: DocumentKind[D],
    document_id: int,
    password: str,
    effective_at: dt.datetime | None = None,
) -> D:
    """The acting user signs version ``document_id`` of ``kind`` with their password, into
    force at ``effective_at`` (default: now)."""
    document = kind.get(session, document_id)
    kind.approve(
        session,
        document,
        user=acting_user(),
        password=password,
        now=now(),
        effective_at=effective_at,
    )
    return document


def draft_as_user(
    session: DbSession,
    kind: DocumentKind[D],
    *,
    code: str,
    title: str,
    parameters: dict[str, Any],
    reason: str,
) -> D:
    """The acting user drafts the next version of ``code``."""
    return kind.draft_change(
        session,
        actor=acting_user(),
        now=now(),
        code=code,
        title=title,
        parameters=parameters,
        reason=reason,
    )


def edit_as_user(
    session: DbSession,
    kind: DocumentKind[D],
    document_id: int,
    *,
    title: str | None,
    parameters: dict[str, Any] | None,
    reason: str,
) -> D:
    """The acting user changes draft ``document_id``; a signed version is refused."""
    document = kind.get(session, document_id)
    return kind.edit_draft(
        session,
        document,
        actor=acting_user(),
        now=now(),
        title=title,
        parameters=parameters,
        reason=reason,
    )
