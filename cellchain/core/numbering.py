"""Issuing identifiers: per-year sequences and the registry of every code issued.

A sequence number is taken by an ``UPDATE … SET last_value = last_value + 1 RETURNING``,
which PostgreSQL serialises with a row lock and SQLite with its write lock, so two parallel
requests never get the same number. Every issued code goes into ``issued_identifiers``,
which has a unique constraint on the code whatever its kind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.interfaces import ORMOption

from cellchain.core import audit
from cellchain.core.i18n import _, document_text
from cellchain.core.identifiers import (
    UNIT_SEQUENCE_MAX,
    Identifier,
    make_coi,
    make_din,
    make_unit_code,
)
from cellchain.core.models import IdentifierSequence, IssuedIdentifier, User
from cellchain.core.payload import read_scan
from cellchain.errors import Conflict, NotFound
from cellchain.extensions import DbSession

MAX_SEQUENCE = 999_999


def next_in_sequence(session: DbSession, scope: str, *, maximum: int = MAX_SEQUENCE) -> int:
    """The next number in ``scope`` (1, 2, …), safe under concurrent transactions."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(IdentifierSequence)
        .values(scope=scope, last_value=0)
        .on_conflict_do_nothing(index_elements=["scope"])
    )
    value = session.execute(
        update(IdentifierSequence)
        .where(IdentifierSequence.scope == scope)
        .values(last_value=IdentifierSequence.last_value + 1)
        .returning(IdentifierSequence.last_value)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    if value > maximum:
        raise Conflict(
            _(
                "The sequence %(scope)s is exhausted (it ends at %(maximum)s).",
                scope=scope,
                maximum=maximum,
            )
        )
    return value


def _issue(
    session: DbSession,
    *,
    identifier: Identifier,
    actor: User | None,
    now: dt.datetime,
    purpose: str,
    entity_type: str | None,
    entity_id: str | None,
) -> IssuedIdentifier:
    issued = IssuedIdentifier(
        code=identifier.canonical,
        kind=identifier.kind,
        issued_at=now,
        issued_by_id=actor.id if actor else None,
        entity_type=entity_type,
        entity_id=entity_id,
        purpose=purpose,
    )
    session.add(issued)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="identifier.issued",
        entity_type="identifier",
        entity_id=identifier.canonical,
        changes={
            "kind": (None, identifier.kind),
            "purpose": (None, purpose),
            "entity": (None, f"{entity_type}:{entity_id}" if entity_type else None),
        },
    )
    return issued


def allocate_din(
    session: DbSession,
    *,
    facility_code: str,
    actor: User | None,
    now: dt.datetime,
    purpose: str,
    entity_type: str | None = None,
    entity_id: str | None = None,
) -> IssuedIdentifier:
    """Issue the next DIN of ``now``'s nominal year for the site's facility code."""
    year = now.year % 100
    sequence = next_in_sequence(session, f"DIN:{facility_code}:{year:02d}")
    return _issue(
        session,
        identifier=make_din(facility_code, year, sequence),
        actor=actor,
        now=now,
        purpose=purpose,
        entity_type=entity_type,
        entity_id=entity_id,
    )


def reserve_dins(
    session: DbSession,
    *,
    facility_code: str,
    actor: User | None,
    now: dt.datetime,
    purpose: str,
    count: int,
) -> list[IssuedIdentifier]:
    """Reserve ``count`` consecutive-as-available DINs, e.g. for pre-printed label stock."""
    return [
        allocate_din(session, facility_code=facility_code, actor=actor, now=now, purpose=purpose)
        for _ in range(count)
    ]


def allocate_coi(
    session: DbSession,
    *,
    facility_code: str,
    actor: User | None,
    now: dt.datetime,
    purpose: str,
    entity_type: str | None = None,
    entity_id: str | None = None,
) -> IssuedIdentifier:
    """Issue the next chain-of-identity identifier (one per patient therapy)."""
    year = now.year % 100
    sequence = next_in_sequence(session, f"COI:{facility_code}:{year:02d}")
    return _issue(
        session,
        identifier=make_coi(facility_code, year, sequence),
        actor=actor,
        now=now,
        purpose=purpose,
        entity_type=entity_type,
        entity_id=entity_id,
    )


def next_unit_code(session: DbSession, *, din: str, kind_letter: str) -> Identifier:
    """The next unit code of donation ``din`` (its DIN + kind letter + number), not yet issued.

    The number counts every unit of the donation whatever its kind, so codes read in the
    order the units were labelled. Record it with :func:`issue` once its unit exists.
    """
    sequence = next_in_sequence(session, f"UNIT:{din}", maximum=UNIT_SEQUENCE_MAX)
    return make_unit_code(din, kind_letter, sequence)


def issue(
    session: DbSession,
    identifier: Identifier,
    *,
    actor: User | None,
    now: dt.datetime,
    purpose: str,
    entity_type: str,
    entity_id: str | int,
) -> IssuedIdentifier:
    """Record ``identifier`` as issued to the record it identifies (one audit entry)."""
    return _issue(
        session,
        identifier=identifier,
        actor=actor,
        now=now,
        purpose=purpose,
        entity_type=entity_type,
        entity_id=str(entity_id),
    )


def attach(
    session: DbSession,
    issued: IssuedIdentifier,
    *,
    entity_type: str,
    entity_id: str | int,
    actor: User | None,
    now: dt.datetime,
) -> None:
    """Attach an issued, still unattached code to the record it now identifies.

    Refused when the code already identifies something: a code identifies one record for life.
    """
    if issued.entity_type is not None:
        raise Conflict(
            _(
                "%(code)s already identifies %(record)s %(id)s; a code identifies one record "
                "for life.",
                code=issued.code,
                record=document_text(issued.entity_type),
                id=issued.entity_id,
            ),
        )
    issued.entity_type = entity_type
    issued.entity_id = str(entity_id)
    audit.record(
        session,
        actor=actor,
        at=now,
        action="identifier.attached",
        entity_type="identifier",
        entity_id=issued.code,
        changes={"entity": (None, f"{entity_type}:{entity_id}")},
    )


def with_issuer() -> tuple[ORMOption, ...]:
    """Loader options for an answer that names who issued a code: the issuer comes with the
    identifier (not the issuer's roles), ``lookup(session, code, options=with_issuer())``."""
    return (joinedload(IssuedIdentifier.issued_by).lazyload(User.role_rows),)


def lookup(session: DbSession, code: str, *, options: Sequence[ORMOption] = ()) -> IssuedIdentifier:
    """The issued identifier for a scanned label payload or a typed code.

    Raises ``InvalidIdentifier`` when the text is not a well-formed code (saying what is
    wrong), ``NotFound`` when it is well-formed but this site never issued it. ``options``
    (loader options) load what the caller will read of it in the same statement.
    """
    identifier = read_scan(code)
    issued = session.execute(
        select(IssuedIdentifier)
        .where(IssuedIdentifier.code == identifier.canonical)
        .options(*options)
    ).scalar_one_or_none()
    if issued is None:
        raise NotFound(never_issued(identifier))
    return issued


def never_issued(identifier: Identifier) -> str:
    """What a well-formed code this site never issued is, in the reader's language: also the
    answer for a code of a record the reader does not see (another site's patient)."""
    return _(
        "%(code)s is a valid %(kind)s of facility %(facility)s, but this site has not "
        "issued it.",
        code=identifier.display,
        kind=identifier.kind,
        facility=identifier.facility_code,
    )


def recent_issued(session: DbSession, limit: int = 20) -> list[IssuedIdentifier]:
    return list(
        session.execute(
            select(IssuedIdentifier).order_by(IssuedIdentifier.id.desc()).limit(limit)
        ).scalars()
    )
