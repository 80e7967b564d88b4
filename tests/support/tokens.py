"""API tokens for tests: minted through the service, committed, the secret given back."""

from __future__ import annotations

import datetime as dt

from cellchain.core import accounts
from cellchain.core.models import User
from cellchain.core.types import utcnow
from cellchain.extensions import db


def mint(
    user: User,
    *,
    scope: str = "full",
    days: int = 90,
    at: dt.datetime | None = None,
    name: str = "tests",
) -> str:
    """A new token of ``user`` (made ``at``, now by default), committed; its secret."""
    _row, token = accounts.create_token(
        db.session, user=user, now=at or utcnow(), name=name, scope=scope, days=days
    )
    db.session.commit()
    return token
