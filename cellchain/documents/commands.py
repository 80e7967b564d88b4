"""Acting-user glue of the controlled documents, shared by the API and the pages: load the
version, then QA's approval as the acting user at the time of the request."""

from __future__ import annotations

from cellchain.documents.service import DocumentKind
from cellchain.documents.versioning import D
from cellchain.extensions import DbSession
from cellchain.http import acting_user, now


def approve_as_user(
    session: DbSession, kind: DocumentKind[D], document_id: int, password: str
) -> D:
    """The acting user signs version ``document_id`` of ``kind`` with their password."""
    document = kind.get(session, document_id)
    kind.approve(session, document, user=acting_user(), password=password, now=now())
    return document
