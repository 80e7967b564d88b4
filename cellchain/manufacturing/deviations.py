"""Rules of deviations: departures from procedure or specification (DOMAIN.md §4).

Anyone may open a deviation, against a lot or against nothing in particular; QA closes it
with a resolution and an e-signature. An open deviation on a lot blocks the lot's release
(``has_open_deviation``), so closing is guarded: a closed deviation is never closed again, and
two people closing the same one at the same moment end with one closure and one signature.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import exists, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from cellchain.core import audit, signatures
from cellchain.core.guarded import update_if
from cellchain.core.models import Signature, User
from cellchain.errors import Conflict, InvalidInput, NotFound
from cellchain.manufacturing.models import Deviation, DeviationCategory, Lot

#: The meaning printed with QA's signature on a closed deviation.
CLOSE_MEANING = "approval: deviation closed"

#: Longest description or resolution kept (a page of text; the rest belongs in a report).
MAX_TEXT = 5000


class DeviationStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


def open_deviation(
    session: Session,
    *,
    lot: Lot | None,
    category: DeviationCategory | str,
    description: str,
    actor: User | None,
    now: dt.datetime,
) -> Deviation:
    """Open a deviation, against ``lot`` or (``None``) against no lot; it stays open until QA
    closes it. The description says what happened and is required."""
    category = _category(category)
    text = _required_text(description, "description", "A description of what happened")
    deviation = Deviation(
        lot_id=lot.id if lot else None,
        donation_id=lot.donation_id if lot else None,
        category=category.value,
        description=text,
        status=DeviationStatus.OPEN.value,
        opened_at=now,
        opened_by_id=actor.id if actor else None,
    )
    session.add(deviation)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="deviation.opened",
        entity_type="deviation",
        entity_id=deviation.id,
        changes={
            "lot": (None, lot.lot_number if lot else None),
            "category": (None, category.value),
            "description": (None, text),
            "status": (None, DeviationStatus.OPEN.value),
        },
    )
    return deviation


def close_deviation(
    session: Session,
    deviation: Deviation,
    *,
    resolution: str,
    user: User,
    password: str,
    now: dt.datetime,
) -> Signature:
    """QA closes an open deviation with a resolution and signs it (password re-entered).

    The closing is a conditional update (``WHERE status = 'open'``): of two people closing the
    same deviation at once, the second waits for the first and is then refused. A wrong
    password raises ``CredentialsRejected``; the caller rolls everything back, so nothing is
    closed and nothing is signed.
    """
    text = _required_text(resolution, "resolution", "The resolution")
    if deviation.status == DeviationStatus.CLOSED.value:
        raise _already_closed(deviation)
    if not update_if(
        session,
        deviation,
        Deviation.status == DeviationStatus.OPEN.value,
        status=DeviationStatus.CLOSED.value,
        closed_at=now,
        closed_by_id=user.id,
        resolution=text,
    ):
        session.refresh(deviation)
        raise _already_closed(deviation)
    set_committed_value(deviation, "closed_by", user)
    # The signature covers the resolution, so it is taken after the resolution is set.
    signature = signatures.sign(
        session, record=deviation, meaning=CLOSE_MEANING, user=user, password=password, now=now
    )
    audit.record(
        session,
        actor=user,
        at=now,
        action="deviation.closed",
        entity_type="deviation",
        entity_id=deviation.id,
        changes={
            "status": (DeviationStatus.OPEN.value, DeviationStatus.CLOSED.value),
            "resolution": (None, text),
            "signature_id": (None, signature.id),
        },
    )
    return signature


def has_open_deviation(session: Session, lot: Lot) -> bool:
    """Whether ``lot`` has a deviation still open: if so, the lot may not be released."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    Deviation.lot_id == lot.id, Deviation.status == DeviationStatus.OPEN.value
                )
            )
        )
    )


def open_deviations_of(session: Session, lot: Lot) -> list[Deviation]:
    return list(
        session.execute(
            select(Deviation)
            .where(Deviation.lot_id == lot.id, Deviation.status == DeviationStatus.OPEN.value)
            .order_by(Deviation.id)
        ).scalars()
    )


def list_deviations(
    session: Session, status: DeviationStatus | str | None = None
) -> list[Deviation]:
    """Deviations, newest first, optionally only the open or only the closed ones."""
    query = select(Deviation).order_by(Deviation.id.desc())
    if status is not None:
        query = query.where(Deviation.status == DeviationStatus(status).value)
    return list(session.execute(query).scalars())


def get_deviation(session: Session, deviation_id: int) -> Deviation:
    deviation = session.get(Deviation, deviation_id)
    if deviation is None:
        raise NotFound(f"There is no deviation #{deviation_id}.")
    return deviation


# --- internals ----------------------------------------------------------------------------------


def _category(value: DeviationCategory | str) -> DeviationCategory:
    try:
        return DeviationCategory(value)
    except ValueError:
        known = ", ".join(c.value for c in DeviationCategory)
        raise InvalidInput(
            f"{value!r} is not a deviation category; use one of: {known}.",
            errors={"category": ["Unknown category."]},
        ) from None


def _required_text(value: str | None, field: str, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{what} is required.", errors={field: ["Required."]})
    if len(text) > MAX_TEXT:
        raise InvalidInput(
            f"{what} is limited to {MAX_TEXT} characters; attach a report for more.",
            errors={field: [f"At most {MAX_TEXT} characters."]},
        )
    return text


def _already_closed(deviation: Deviation) -> Conflict:
    who = deviation.closed_by.full_name if deviation.closed_by else "someone"
    when = deviation.closed_at.strftime("%Y-%m-%d %H:%M UTC") if deviation.closed_at else "?"
    return Conflict(
        f"Deviation #{deviation.id} was already closed by {who} ({when}); it cannot be closed "
        "again.",
        title="Deviation already closed",
    )
