"""Rules of deviations: departures from procedure or specification (DOMAIN.md §4).

Anyone may open a deviation, against a lot or against nothing in particular; QA closes it
with a resolution and an e-signature. An open deviation on a lot blocks the lot's release
(``has_open_deviation``), so closing is guarded: a closed deviation is never closed again, and
two people closing the same one at the same moment end with one closure and one signature.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from cellchain.core import actions, audit, listing, signatures
from cellchain.core.display import UTC_ZONE, local_time
from cellchain.core.guarded import update_if
from cellchain.core.i18n import _, english_of
from cellchain.core.models import Signature, User
from cellchain.core.records import get_or_404
from cellchain.core.roles import Permission, has_permission, require
from cellchain.donors.models import Donation
from cellchain.errors import Conflict, InvalidInput, PermissionDenied
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import (
    Deviation,
    DeviationCategory,
    ExcursionAuthorisation,
    Lot,
)
from cellchain.manufacturing.terms import term
from cellchain.notifications import service as notifications

#: The meaning printed with QA's signature on a closed deviation.
CLOSE_MEANING = "approval: deviation closed"
#: The meaning printed with QA's signature authorising a passage or CPD beyond the limit.
AUTHORISE_MEANING = "approval: limit excursion authorised"

#: Longest description or resolution kept (a page of text; the rest belongs in a report).
MAX_TEXT = 5000


class DeviationStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


#: Allowed deviation status changes (DESIGN.md rule 2): QA closes an open deviation, once.
DEVIATION_TRANSITIONS: dict[DeviationStatus, frozenset[DeviationStatus]] = {
    DeviationStatus.OPEN: frozenset({DeviationStatus.CLOSED}),
    DeviationStatus.CLOSED: frozenset(),
}


class DeviationAction(enum.StrEnum):
    """What QA may do with a deviation."""

    CLOSE = "close"  #: close it with a resolution (signed)
    AUTHORISE = "authorise"  #: authorise a limit excursion under it (signed), once


#: The statuses each act starts from; closing, from the transition table.
DEVIATION_ACTIONS: dict[DeviationAction, frozenset[DeviationStatus]] = {
    DeviationAction.CLOSE: actions.leading_to(DEVIATION_TRANSITIONS, DeviationStatus.CLOSED),
    DeviationAction.AUTHORISE: frozenset({DeviationStatus.OPEN}),
}


def deviation_actions(deviation: Deviation) -> frozenset[DeviationAction]:
    """The acts the deviation allows; the page offers these (permissions apart).

    Only a limit-excursion deviation is authorised, and only once (``authorise_excursion``).
    """
    acts = actions.allowed(deviation.status, DEVIATION_ACTIONS)
    if (
        deviation.category != DeviationCategory.LIMIT_EXCURSION.value
        or deviation.authorisation is not None
    ):
        return acts - {DeviationAction.AUTHORISE}
    return acts


def open_deviation(
    session: DbSession,
    *,
    lot: Lot | None,
    category: DeviationCategory | str,
    description: str,
    actor: User | None,
    now: dt.datetime,
    donation: Donation | None = None,
) -> Deviation:
    """Open a deviation, against ``lot``, against a ``donation`` still in processing (no lot
    yet), or against neither; it stays open until QA closes it. The description says what
    happened and is required. A limit excursion is always against a donation (or its lot):
    the authorisation is for that donation's cells only."""
    category = _category(category)
    # stored and audited: a description a service made with ``_()`` is kept in its English
    text = _required_text(english_of(description), "description")
    if lot is not None and donation is not None and lot.donation_id != donation.id:
        raise InvalidInput(
            _(
                "Lot %(lot)s was not made from donation %(din)s.",
                lot=lot.lot_number,
                din=donation.din,
            ),
            errors={"donation": [_("Not the lot's donation.")]},
        )
    donation_id = lot.donation_id if lot else donation.id if donation else None
    if category is DeviationCategory.LIMIT_EXCURSION and donation_id is None:
        raise InvalidInput(
            _(
                "A limit excursion is against the donation (DIN) or lot whose cells go beyond "
                "the limit."
            ),
            errors={"donation": [_("Name the donation or the lot.")]},
        )
    deviation = Deviation(
        lot_id=lot.id if lot else None,
        donation_id=donation_id,
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
            "donation_id": (None, donation_id),
            "category": (None, category.value),
            "description": (None, text),
            "status": (None, DeviationStatus.OPEN.value),
        },
    )
    notifications.notify(
        session,
        "deviation_opened",
        entity_type="deviation",
        entity_id=deviation.id,
        params={
            "deviation_id": deviation.id,
            "category": category.value,
            "lot": lot.lot_number if lot else None,
            "description": text,
        },
        actor=actor,
        now=now,
    )
    return deviation


def close_deviation(
    session: DbSession,
    deviation: Deviation,
    *,
    resolution: str,
    user: User,
    password: str,
    now: dt.datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> Signature:
    """QA closes an open deviation with a resolution and signs it (password re-entered).

    The closing is a conditional update (``WHERE status = 'open'``): of two people closing the
    same deviation at once, the second waits for the first and is then refused. A wrong
    password raises ``CredentialsRejected``; the caller rolls everything back, so nothing is
    closed and nothing is signed.
    """
    require(user, Permission.CLOSE_DEVIATIONS)
    text = _required_text(resolution, "resolution")
    if DeviationAction.CLOSE not in actions.allowed(deviation.status, DEVIATION_ACTIONS):
        raise _already_closed(deviation, zone)
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
        raise _already_closed(deviation, zone)
    set_committed_value(deviation, "closed_by", user)
    # The signature covers the resolution, so it is taken after the resolution is set.
    signature = signatures.sign(
        session,
        record=deviation,
        meaning=CLOSE_MEANING,
        user=user,
        password=password,
        now=now,
        permission=Permission.CLOSE_DEVIATIONS,
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


def authorise_excursion(
    session: DbSession,
    deviation: Deviation,
    *,
    max_passage: int | None,
    max_cumulative_pd: float | None,
    justification: str,
    user: User,
    password: str,
    now: dt.datetime,
) -> ExcursionAuthorisation:
    """QA authorises an open limit-excursion deviation: the donation's cells may be taken up
    to ``max_passage`` and/or ``max_cumulative_pd``, beyond the product's limits, for the
    reason given. Signed (password re-entered, meaning ``AUTHORISE_MEANING``).

    Only QA may sign it; only once per deviation; only values beyond the product's limits
    (within them nothing needs authorising). Release stays blocked by the lot's limit flags.
    """
    if not has_permission(user.roles, Permission.CLOSE_DEVIATIONS):
        raise PermissionDenied(
            _("Only Quality assurance may authorise going beyond a product limit."),
            title=_("QA signature required"),
        )
    if deviation.category != DeviationCategory.LIMIT_EXCURSION.value:
        raise Conflict(
            _(
                "Deviation #%(id)s is a %(category)s deviation; only a limit-excursion "
                "deviation authorises going beyond a limit.",
                id=deviation.id,
                category=term(deviation.category),
            ),
            title=_("Not a limit excursion"),
        )
    if DeviationAction.AUTHORISE not in actions.allowed(deviation.status, DEVIATION_ACTIONS):
        raise Conflict(
            _(
                "Deviation #%(id)s is closed; a closed deviation authorises nothing.",
                id=deviation.id,
            ),
            title=_("Deviation closed"),
        )
    if deviation.authorisation is not None:
        raise _already_authorised(deviation.authorisation)
    text = _required_text(justification, "justification")
    if max_passage is None and max_cumulative_pd is None:
        one_of_two = _("One of the two is required.")
        raise InvalidInput(
            _("Name the highest passage or the highest cumulative PD you authorise (or both)."),
            errors={"max_passage": [one_of_two], "max_cumulative_pd": [one_of_two]},
        )
    limits = product_limits(session.get(Donation, deviation.donation_id))
    if max_passage is not None and max_passage <= limits.max_passage:
        raise InvalidInput(
            _(
                "P%(passage)s is within the product's maximum P%(max)s; an authorisation "
                "names a passage beyond it.",
                passage=max_passage,
                max=limits.max_passage,
            ),
            errors={"max_passage": [_("Above P%(max)s.", max=limits.max_passage)]},
        )
    if max_cumulative_pd is not None and not (
        limits.max_cumulative_pd < max_cumulative_pd < float("inf")
    ):
        highest = format(limits.max_cumulative_pd, "g")
        raise InvalidInput(
            _(
                "CPD %(cpd)s is not beyond the product's maximum %(max)s; an authorisation "
                "names a CPD beyond it.",
                cpd=format(max_cumulative_pd, "g"),
                max=highest,
            ),
            errors={"max_cumulative_pd": [_("Above %(max)s.", max=highest)]},
        )
    authorisation = ExcursionAuthorisation(
        deviation_id=deviation.id,
        max_passage=max_passage,
        max_cumulative_pd=max_cumulative_pd,
        justification=text,
        authorised_at=now,
        authorised_by_id=user.id,
    )
    session.add(authorisation)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # another QA user authorised it a moment ago
        session.expire(deviation)
        raise _already_authorised(deviation.authorisation) from None
    set_committed_value(authorisation, "deviation", deviation)
    set_committed_value(deviation, "authorisation", authorisation)
    signature = signatures.sign(
        session,
        record=authorisation,
        meaning=AUTHORISE_MEANING,
        user=user,
        password=password,
        now=now,
        permission=Permission.CLOSE_DEVIATIONS,
    )
    audit.record(
        session,
        actor=user,
        at=now,
        action="deviation.excursion_authorised",
        entity_type="deviation",
        entity_id=deviation.id,
        changes={
            "max_passage": (None, max_passage),
            "max_cumulative_pd": (None, max_cumulative_pd),
            "justification": (None, text),
            "signature_id": (None, signature.id),
        },
    )
    return authorisation


@dataclass(frozen=True)
class ProductLimits:
    """The product's processing limits a step is held to (DOMAIN.md §4)."""

    max_passage: int
    max_cumulative_pd: float
    product: str


def product_limits(donation: Donation | None) -> ProductLimits:
    """The limits of the product version ``donation`` was registered under."""
    if donation is None:
        raise Conflict(
            _("This deviation names no donation; it cannot authorise a limit excursion.")
        )
    product = donation.product_definition
    parameters = product.parameters
    return ProductLimits(
        max_passage=int(parameters["max_passage"]),
        max_cumulative_pd=float(parameters["max_cumulative_population_doublings"]),
        product=f"{product.code} v{product.version}",
    )


def authorising_excursion(
    session: DbSession,
    deviation_id: int | None,
    *,
    donation: Donation,
    passage: int,
    cumulative_pd: float,
    step: str,
) -> Deviation | None:
    """The deviation that authorises a step making cells at ``passage`` and ``cumulative_pd``
    from ``donation``; ``None`` when the step is within the product's limits.

    Beyond a limit, the step is refused unless ``deviation_id`` names an open limit-excursion
    deviation of this donation whose QA authorisation is validly signed by QA and covers the
    values reached (DOMAIN.md §7: "refused unless QA signs a deviation").
    """
    limits = product_limits(donation)
    over_passage = passage > limits.max_passage
    over_cpd = cumulative_pd > limits.max_cumulative_pd
    if not over_passage and not over_cpd:
        return None
    figures = {
        "passage": passage,
        "max_passage": limits.max_passage,
        "cpd": format(cumulative_pd, ".1f"),
        "max_cpd": format(limits.max_cumulative_pd, "g"),
    }
    if over_passage and over_cpd:
        over = _(
            "passage P%(passage)s (maximum P%(max_passage)s) and cumulative PD %(cpd)s "
            "(maximum %(max_cpd)s)",
            **figures,
        )
    elif over_passage:
        over = _("passage P%(passage)s (maximum P%(max_passage)s)", **figures)
    else:
        over = _("cumulative PD %(cpd)s (maximum %(max_cpd)s)", **figures)
    # ``step`` is the step kind's label ("passage", "bank thaw"): read as the lab's word
    beyond = {
        "step": term(step.replace(" ", "_")),
        "din": donation.din,
        "product": limits.product,
        "over": over,
    }
    if deviation_id is None:
        raise Conflict(
            _(
                "This %(step)s would take the cells of donation %(din)s beyond the limits of "
                "%(product)s: %(over)s. It is refused. To go on, open a limit-excursion "
                "deviation for this donation, have QA authorise it with a signed "
                "justification, and record the step again naming that deviation.",
                **beyond,
            ),
            errors={"deviation_id": [_("A QA-authorised limit-excursion deviation is required.")]},
            title=_("Product limit exceeded"),
        )
    deviation = session.get(Deviation, deviation_id)
    if deviation is None:
        raise InvalidInput(
            _("There is no deviation #%(id)s.", id=deviation_id),
            errors={"deviation_id": [_("Unknown deviation.")]},
        )
    problem = _why_not_authorising(session, deviation, donation, passage, cumulative_pd)
    if problem:
        reason, field = problem
        raise Conflict(
            _(
                "This %(step)s would take the cells of donation %(din)s beyond the limits of "
                "%(product)s: %(over)s. Deviation #%(id)s does not authorise it: %(reason)s.",
                id=deviation.id,
                reason=reason,
                **beyond,
            ),
            errors={"deviation_id": [field]},
            title=_("Product limit exceeded"),
        )
    return deviation


def _why_not_authorising(
    session: DbSession, deviation: Deviation, donation: Donation, passage: int, cpd: float
) -> tuple[str, str] | None:
    """Why ``deviation`` does not authorise the step, or None: the reason as a clause of the
    refusal's sentence and as the field's own sentence, each in the reader's language."""
    if deviation.category != DeviationCategory.LIMIT_EXCURSION.value:
        category = term(deviation.category)
        return (
            _("it is a %(category)s deviation", category=category),
            _("It is a %(category)s deviation.", category=category),
        )
    if deviation.donation_id != donation.id:
        return (
            _("it is for another donation, not %(din)s", din=donation.din),
            _("It is for another donation, not %(din)s.", din=donation.din),
        )
    # Not the act table (QA's authorising): whether an authorisation already given still covers
    # a step; it lapses when the deviation is closed.
    if deviation.status != DeviationStatus.OPEN.value:
        return _("it is closed"), _("It is closed.")
    authorisation = deviation.authorisation
    if authorisation is None:
        return _("QA has not authorised it"), _("QA has not authorised it.")
    signed = [
        m
        for m in signatures.manifest(session, authorisation)
        if m.meaning == AUTHORISE_MEANING and m.valid
    ]
    if not signed or not has_permission(
        authorisation.authorised_by.roles, Permission.CLOSE_DEVIATIONS
    ):
        return (
            _("its authorisation carries no valid QA signature"),
            _("Its authorisation carries no valid QA signature."),
        )
    limits = product_limits(donation)
    if passage > limits.max_passage and (
        authorisation.max_passage is None or passage > authorisation.max_passage
    ):
        allowed = authorisation.max_passage
        if allowed is None:
            return (
                _("it authorises no passage beyond the limit, not P%(passage)s", passage=passage),
                _("It authorises no passage beyond the limit, not P%(passage)s.", passage=passage),
            )
        return (
            _(
                "it authorises up to P%(allowed)s, not P%(passage)s",
                allowed=allowed,
                passage=passage,
            ),
            _(
                "It authorises up to P%(allowed)s, not P%(passage)s.",
                allowed=allowed,
                passage=passage,
            ),
        )
    if cpd > limits.max_cumulative_pd and (
        authorisation.max_cumulative_pd is None or cpd > authorisation.max_cumulative_pd
    ):
        allowed_cpd = authorisation.max_cumulative_pd
        reached = format(cpd, ".1f")
        if allowed_cpd is None:
            return (
                _("it authorises no CPD beyond the limit, not CPD %(cpd)s", cpd=reached),
                _("It authorises no CPD beyond the limit, not CPD %(cpd)s.", cpd=reached),
            )
        most = format(allowed_cpd, "g")
        return (
            _("it authorises up to CPD %(allowed)s, not CPD %(cpd)s", allowed=most, cpd=reached),
            _("It authorises up to CPD %(allowed)s, not CPD %(cpd)s.", allowed=most, cpd=reached),
        )
    return None


def has_open_deviation(session: DbSession, lot: Lot) -> bool:
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


def open_deviations_of(session: DbSession, lot: Lot) -> list[Deviation]:
    return list(
        session.execute(
            select(Deviation)
            .where(Deviation.lot_id == lot.id, Deviation.status == DeviationStatus.OPEN.value)
            .order_by(Deviation.id)
        ).scalars()
    )


def list_deviations(
    session: DbSession, status: DeviationStatus | str | None = None
) -> list[Deviation]:
    """Deviations, newest first, optionally only the open or only the closed ones."""
    query = _deviations_query(status).order_by(Deviation.id.desc())
    return list(session.execute(query).scalars())


def _deviations_query(
    status: DeviationStatus | str | None, category: DeviationCategory | None = None
) -> Select[Deviation]:
    """The deviations ``list_deviations`` and ``count_deviations`` select."""
    query = select(Deviation)
    if status is not None:
        query = query.where(Deviation.status == DeviationStatus(status).value)
    if category is not None:
        query = query.where(Deviation.category == category.value)
    return query


def count_deviations(
    session: DbSession,
    status: DeviationStatus | str | None = None,
    category: DeviationCategory | None = None,
) -> int:
    """How many deviations ``list_deviations`` lists (one statement), optionally of one
    category only (the open storage excursions are the storage alarms)."""
    query = _deviations_query(status, category)
    return session.execute(select(func.count()).select_from(query.subquery())).scalar_one()


def get_deviation(session: DbSession, deviation_id: int) -> Deviation:
    return get_or_404(session, Deviation, deviation_id, "deviation")


# --- internals ----------------------------------------------------------------------------------


def _category(value: DeviationCategory | str) -> DeviationCategory:
    try:
        return DeviationCategory(value)
    except ValueError:
        # the API's values, as the request names them
        known = ", ".join(c.value for c in DeviationCategory)
        raise InvalidInput(
            _(
                "%(value)s is not a deviation category; use one of: %(known)s.",
                value=repr(value),
                known=known,
            ),
            errors={"category": [_("Unknown category.")]},
        ) from None


def _required_text(value: str | None, field: str) -> str:
    """``value`` trimmed; refused when blank or longer than ``MAX_TEXT``. ``field`` is the
    description, the resolution or the justification."""
    text = (value or "").strip()
    if not text:
        raise InvalidInput(_text_refusal(field, too_long=False), errors={field: [_("Required.")]})
    if len(text) > MAX_TEXT:
        raise InvalidInput(
            _text_refusal(field, too_long=True),
            errors={field: [_("At most %(max)s characters.", max=MAX_TEXT)]},
        )
    return text


def _text_refusal(field: str, *, too_long: bool) -> str:
    """The refusal of a blank or too long text, one whole sentence for each field."""
    if field == "description":
        if too_long:
            return _(
                "A description of what happened is limited to %(max)s characters; attach a "
                "report for more.",
                max=MAX_TEXT,
            )
        return _("A description of what happened is required.")
    if field == "resolution":
        if too_long:
            return _(
                "The resolution is limited to %(max)s characters; attach a report for more.",
                max=MAX_TEXT,
            )
        return _("The resolution is required.")
    if too_long:
        return _(
            "Why the limit may be exceeded is limited to %(max)s characters; attach a report "
            "for more.",
            max=MAX_TEXT,
        )
    return _("Why the limit may be exceeded is required.")


def _authorised_limits(authorisation: ExcursionAuthorisation) -> str:
    """What an authorisation allows, in the reader's language (its English is
    ``limits_text``: "up to P6", "up to CPD 45", or both)."""
    passage = authorisation.max_passage
    cpd = authorisation.max_cumulative_pd
    if passage is not None and cpd is not None:
        return _("up to P%(passage)s and up to CPD %(cpd)s", passage=passage, cpd=format(cpd, "g"))
    if passage is not None:
        return _("up to P%(passage)s", passage=passage)
    if cpd is not None:
        return _("up to CPD %(cpd)s", cpd=format(cpd, "g"))
    return ""


def _already_authorised(authorisation: ExcursionAuthorisation | None) -> Conflict:
    if authorisation is None:
        return Conflict(
            _("This deviation was authorised a moment ago."), title=_("Already authorised")
        )
    return Conflict(
        _(
            "Deviation #%(id)s was already authorised by %(who)s (%(limits)s); an "
            "authorisation is never changed. Open a new deviation for more.",
            id=authorisation.deviation_id,
            who=authorisation.authorised_by.full_name,
            limits=_authorised_limits(authorisation),
        ),
        title=_("Already authorised"),
    )


def _already_closed(deviation: Deviation, zone: ZoneInfo) -> Conflict:
    when = local_time(deviation.closed_at, zone) if deviation.closed_at else "?"
    if deviation.closed_by is None:
        detail = _(
            "Deviation #%(id)s was already closed (%(when)s); it cannot be closed again.",
            id=deviation.id,
            when=when,
        )
    else:
        detail = _(
            "Deviation #%(id)s was already closed by %(who)s (%(when)s); it cannot be closed "
            "again.",
            id=deviation.id,
            who=deviation.closed_by.full_name,
            when=when,
        )
    return Conflict(detail, title=_("Deviation already closed"))


# --- the list (issue 21) ----------------------------------------------------------------------


def _deviation_search(text: str) -> ColumnElement[bool]:
    """A deviation matches a search text in its number (``12`` or ``#12``), its lot number
    or its description."""
    pattern = "%" + listing.like_escaped(text) + "%"
    found = [
        Deviation.description.ilike(pattern, escape="\\"),
        Deviation.lot.has(Lot.lot_number.ilike(pattern, escape="\\")),
    ]
    number = text.lstrip("#").strip()
    if number.isdigit() and len(number) < 10:
        found.append(Deviation.id == int(number))
    return or_(*found)


#: The deviations list: newest first; searched in the number, the lot number, the text.
DEVIATION_LIST = listing.ListSpec(
    sorts={
        "opened": Deviation.id,
        "status": Deviation.status,
        "category": Deviation.category,
        "closed": Deviation.closed_at,
    },
    default_sort="opened",
    tiebreaker=Deviation.id,
    search=_deviation_search,
)


def deviations_page(
    session: DbSession,
    request: listing.PageRequest,
    *,
    status: DeviationStatus | str | None = None,
    category: DeviationCategory | None = None,
) -> listing.Page[Deviation]:
    """A page of the deviations, filtered, searched and sorted (two statements, and one
    each for the page's lots and people)."""
    query = _deviations_query(status, category).options(
        selectinload(Deviation.lot),
        selectinload(Deviation.opened_by),
        selectinload(Deviation.closed_by),
    )
    return listing.fetch_page(session, query, DEVIATION_LIST, request)
