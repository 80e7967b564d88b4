"""The answer to a scan, read in one Core statement and written without an ORM object.

Scanning is the request people wait on most (issue 20). ``GET /api/v1/scan`` used to load the
issued identifier with its issuer, then the unit with its donation and creator, as ORM objects,
and dump them through ``ScanOut``. Building those objects and dumping them cost more CPU than
everything else in the request. Here one statement reads the identifier with the unit it names
(left joins: the issuer's username, the unit, its donation's DIN, its creator's username) as
plain columns, and ``answer_of`` writes the very dictionary ``ScanOut().dump`` writes for the
same records (``tests/chain/test_scan_answer.py`` compares them over every kind of code).

Only a code that names something unusual — a unit code whose record is not a unit, or whose
unit is missing, or a code this site never issued — is left to the ORM path
(``answer_for`` returns None), which raises the error it always raised.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from sqlalchemy import Integer as SqlInteger
from sqlalchemy import Select, and_, bindparam, case, cast, select, true
from sqlalchemy.engine import Connection, Row

from cellchain.chain.models import Unit
from cellchain.core import accounts
from cellchain.core.driver import DriverStatement
from cellchain.core.identifiers import InvalidIdentifier, parse_identifier
from cellchain.core.models import IssuedIdentifier, User
from cellchain.core.payload import read_scan
from cellchain.core.roles import Permission, Role, effective_roles
from cellchain.core.schemas import SCANNED_CODE
from cellchain.donors.models import Donation
from cellchain.extensions import DbSession
from cellchain.sites.scope import VISIBLE_SITES
from cellchain.sites.service import site_restricted


@functools.cache
def scan_statement() -> Select[Any]:
    """The identifier of ``:code`` with its issuer's name and, when it names a unit, the unit
    with its donation's DIN and its creator's name. Built once; SQLAlchemy caches its SQL."""
    issued = IssuedIdentifier.__table__
    units = Unit.__table__
    donations = Donation.__table__
    issuer = User.__table__.alias("issuer")
    creator = User.__table__.alias("creator")
    # the unit's id, only for a unit's record: another record's entity_id need not be a number
    unit_id = case(
        (issued.c.entity_type == "unit", cast(issued.c.entity_id, SqlInteger)), else_=None
    )
    return (
        select(
            issued.c.code,
            issued.c.kind,
            issued.c.issued_at,
            issued.c.issued_by_id,
            issuer.c.username.label("issued_by"),
            issued.c.purpose,
            issued.c.entity_type,
            issued.c.entity_id,
            units.c.id.label("unit_id"),
            units.c.code.label("unit_code"),
            units.c.kind.label("unit_kind"),
            units.c.status.label("unit_status"),
            units.c.donation_id.label("unit_donation_id"),
            donations.c.id.label("donation_found"),
            donations.c.din.label("unit_din"),
            units.c.location.label("unit_location"),
            units.c.created_at.label("unit_created_at"),
            units.c.created_by_id.label("unit_created_by_id"),
            creator.c.username.label("unit_created_by"),
        )
        .select_from(issued)
        .outerjoin(issuer, issuer.c.id == issued.c.issued_by_id)
        .outerjoin(units, and_(issued.c.kind == "UNIT", units.c.id == unit_id))
        .outerjoin(donations, donations.c.id == units.c.donation_id)
        .outerjoin(creator, creator.c.id == units.c.created_by_id)
        .where(issued.c.code == bindparam("code"))
    )


@functools.cache
def bearer_scan_statement() -> DriverStatement:
    """The bearer token of ``:token_hash`` with what its rules read (``accounts.
    bearer_statement``) and, beside it, the row of ``scan_statement`` for ``:code`` (none for
    a code never issued): authentication and answer in one statement, sent on the driver's
    cursor (``core/driver.py``). Built once."""
    scanned = scan_statement().subquery("scanned")
    return DriverStatement(
        accounts.bearer_statement().add_columns(*scanned.c).outerjoin(scanned, true())
    )


#: The longest code ``ScanQueryIn`` accepts (``core.schemas.SCANNED_CODE``).
LONGEST_CODE = SCANNED_CODE.max or 0


def scan_as_bearer(
    connection: Connection, *, token: str, code: str | None, now: dt.datetime, method: str
) -> Any | None:
    """The scan of ``code`` by the holder of the bearer ``token``, as one statement on
    ``connection`` (in the driver's autocommit, ``driver.autocommit``: one statement is one
    snapshot, no BEGIN or ROLLBACK): the row ``answer_of`` writes the answer from, once
    every rule of the token, its account and its roles (``accounts.bearer_may_read``,
    ``Permission.USE_APP``) lets the request through; the token's use is written at most
    once a minute, as ``accounts.valid_token`` writes it.

    None for anything out of the ordinary, left to the ordinary path (the hooks' checks,
    ``requires``, the schema, ``numbering.lookup``), which answers with its own error: input
    ``ScanQueryIn`` refuses, a malformed code, an unknown token, a token or account that may
    not make the request, a code this site never issued. The statement is not sent for input
    that is refused before it."""
    if code is None or not 1 <= len(code) <= LONGEST_CODE:
        return None
    try:
        canonical = canonical_of(code)
    except InvalidIdentifier:
        return None
    row = bearer_scan_statement().one_or_none(
        connection, {"token_hash": accounts.hash_token(token), "code": canonical}
    )
    if row is None or not accounts.bearer_may_read(
        row, now=now, method=method, permission=Permission.USE_APP
    ):
        return None
    if not reads_every_site_plainly(row.user_roles):
        return None  # the ordinary path filters by site and pseudonymises (review 2 items 1, 10)
    if accounts.token_use_due(row.token_last_used_at, now):
        accounts.record_token_use(connection, token_id=row.token_id, now=now)
    return row if row.code is not None else None


#: Codes whose reading is kept per worker: reading one (its check character above all) costs
#: more than a tenth of a scan's CPU, and a bench scans the same few codes again and again.
CODES_KEPT = 4096


@functools.lru_cache(maxsize=CODES_KEPT)
def canonical_of(text: str) -> str:
    """``read_scan(text).canonical``, kept: a pure function of the text (a refused text
    raises again every time, nothing of it is kept)."""
    return read_scan(text).canonical


@functools.lru_cache(maxsize=CODES_KEPT)
def display_of(code: str) -> str:
    """``parse_identifier(code).display``, kept: a pure function of the code."""
    return parse_identifier(code).display


def reads_every_site_plainly(user_roles: str | None) -> bool:
    """Whether the holder of ``user_roles`` (``bearer_statement``'s comma-joined roles) sees
    every site's records as they are: not a clinician or investigator of their sites only
    (``sites.service.site_restricted``), whose reads ``sites/scope.py`` filters through the
    ORM, nor the monitor, whose answers ``sites/monitor.py`` pseudonymises after the request.
    The Core reads here pass neither, so a scan of theirs takes the ordinary path."""
    held = effective_roles(frozenset(Role(name) for name in (user_roles or "").split(",") if name))
    return Role.MONITOR not in held and not site_restricted(held)


def read_scanned(session: DbSession, code: str) -> Row[Any] | None:
    """The row of the scanned ``code`` (``InvalidIdentifier`` for a malformed one, as
    ``numbering.lookup``), or None when this site never issued it — or when the acting user
    sees only some sites (``scope.VISIBLE_SITES``): this Core read is not filtered by site,
    so their scan takes the ORM path (``numbering.lookup``), which is."""
    if VISIBLE_SITES.get() is not None:
        return None
    canonical = read_scan(code).canonical
    return session.execute(scan_statement(), {"code": canonical}).one_or_none()


def answer_of(row: Row[Any], url: str) -> dict[str, Any] | None:
    """What ``ScanOut().dump`` gives for the row's identifier and unit, or None for a unit
    code that names no unit (the ORM path says why). A relation that is absent (no issuer,
    no donation, no creator) leaves its key out, as marshmallow leaves out an attribute path
    through None."""
    unit: dict[str, Any] | None = None
    if row.kind == "UNIT":
        if row.unit_id is None:
            return None
        unit = {
            "id": row.unit_id,
            "code": _text(row.unit_code),
            "display": display_of(row.unit_code),
            "kind": _text(row.unit_kind),
            "status": _text(row.unit_status),
            "donation_id": row.unit_donation_id,
            "location": _text(row.unit_location),
            "created_at": _iso(row.unit_created_at),
        }
        if row.donation_found is not None:
            unit["din"] = _text(row.unit_din)
        if row.unit_created_by_id is not None and row.unit_created_by is not None:
            unit["created_by"] = _text(row.unit_created_by)
    answer: dict[str, Any] = {
        "code": _text(row.code),
        "kind": _text(row.kind),
        "issued_at": _iso(row.issued_at),
        "purpose": _text(row.purpose),
        "entity_type": _text(row.entity_type),
        "entity_id": _text(row.entity_id),
        "url": url,
        "unit": unit,
    }
    if row.issued_by_id is not None and row.issued_by is not None:
        answer["issued_by"] = _text(row.issued_by)
    return answer


def _text(value: Any) -> str | None:
    """marshmallow's ``String``: None stays None, anything else is its text."""
    return None if value is None else str(value)


def _iso(value: dt.datetime | None) -> str | None:
    """marshmallow's ``AwareDateTime`` (ISO 8601)."""
    return None if value is None else value.isoformat()
