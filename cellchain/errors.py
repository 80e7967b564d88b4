"""Domain errors and the one error shape (RFC 9457 problem details).

Services raise these; the API turns them into ``application/problem+json`` and the web
views into a page or a form message in plain words. Nothing here knows about Flask.
"""

from __future__ import annotations

from typing import Any

from cellchain.core.i18n import LazyText, Translated, _, document_text, lazy


class DomainError(Exception):
    """A rule of the domain refused the request.

    ``status`` is the HTTP status the interfaces use; ``title`` a short, stable summary
    of the kind of problem; ``detail`` the sentence a technician reads; ``errors`` the
    field → messages map for validation problems.
    """

    status: int = 409
    #: read in the language of the moment (``str(error.title)``)
    title: str | LazyText = lazy("Request conflicts with a rule")
    type_slug: str = "conflict"

    def __init__(
        self,
        detail: str,
        *,
        errors: dict[str, list[str]] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}
        if title is not None:
            self.title = title

    def to_problem(self) -> dict[str, Any]:
        """The RFC 9457 body for this error."""
        body: dict[str, Any] = {
            "type": f"urn:cellchain:problem:{self.type_slug}",
            "title": str(self.title),
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        return body


class InvalidInput(DomainError):
    """Input has the right shape but a value is not acceptable (422)."""

    status = 422
    title: str | LazyText = lazy("Invalid input")
    type_slug = "invalid-input"


class MalformedRequest(DomainError):
    """The request itself cannot be read as input (400): JSON nested deeper than any
    cellchain body, or text that is not text (a lone UTF-16 surrogate such as ``\\ud800``,
    which no database column can store)."""

    status = 400
    title: str | LazyText = lazy("Malformed request")
    type_slug = "malformed-request"


class NotFound(DomainError):
    """The thing asked for does not exist (404)."""

    status = 404
    title: str | LazyText = lazy("Not found")
    type_slug = "not-found"


class Conflict(DomainError):
    """A state or uniqueness rule refuses the request (409)."""


class StateConflict(Conflict):
    """A state machine refused a transition; names the current and attempted state."""

    title: str | LazyText = lazy("Transition not allowed")
    type_slug = "state-conflict"

    def __init__(self, entity: str, current: str, attempted: str) -> None:
        super().__init__(
            _(
                "%(entity)s is %(current)s; it cannot become %(attempted)s.",
                entity=entity,
                current=_status_word(current),
                attempted=_status_word(attempted),
            )
        )
        self.current = current
        self.attempted = attempted


def _status_word(status: object) -> str:
    """A stored status quoted as the reader reads it (``'received'``, '已接收'): its word in the
    catalogue (a status word marked where its package names it), else as stored; in English
    always the stored value, as the audit trail keeps it."""
    stored = str(status)
    read = document_text(stored.replace("_", " "))
    shown = Translated(repr(str(read)) if str(read) != stored.replace("_", " ") else repr(stored))
    shown.english = repr(stored)
    return shown


class AuthenticationFailed(DomainError):
    """Credentials are missing or wrong (401)."""

    status = 401
    title: str | LazyText = lazy("Authentication failed")
    type_slug = "authentication-failed"


class LoginRequired(AuthenticationFailed):
    """No one is logged in (401): a page answers with the login form, the API with 401."""

    title: str | LazyText = lazy("Login required")


class PermissionDenied(DomainError):
    """The user is known but their roles do not allow this (403)."""

    status = 403
    title: str | LazyText = lazy("Not allowed")
    type_slug = "forbidden"


class ReasonRequired(InvalidInput):
    """A correction or other change that needs a reason was attempted without one."""

    title: str | LazyText = lazy("Reason required")
    type_slug = "reason-required"

    def __init__(self, what: str) -> None:
        super().__init__(
            _("A reason is required for %(what)s.", what=what),
            errors={"reason": [_("A reason is required.")]},
        )
