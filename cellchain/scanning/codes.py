"""One scan box for every code: what was typed is classified by its shape, in a fixed order,
and looked up (issue 21).

The order, most specific shape first:

1. a cellchain label payload (``CC1.…``): always an issued identifier, read strictly;
2. a **lot number**, ``<DIN with its check character>-L<nn>`` (``X999926000001X-L01``): its
   DIN's check character is verified like any typed code's;
3. an **issued identifier** (DIN, unit code, chain-of-identity identifier, ``=`` ISBT DIN
   barcode), accepted only with its check character (``core.payload.read_scan``): a
   well-formed code without it, or with a wrong one, is refused in the identifier's words;
4. the site's own codes, looked up exactly (case as a scanner sends it does not matter):
   **patient study IDs**, **shipper IDs** (the shipper's latest shipment), **material lot
   numbers**, **equipment IDs**. They share one shape, so a code on file as two of them
   (or two material lots of one number from two suppliers) is ambiguous and every match is
   listed.

A code found nowhere is described in words: "This looks like a lot number, but no lot … exists"
when its shape (or, for the site's own codes, its letter prefix, shared with codes on file)
says what it is meant to be; "This is not a code cellchain knows" otherwise, naming what the
scan box reads.

A kind the user may not see (``KINDS[kind].permission``, the permission of the page the code
leads to) is never looked up: its codes answer exactly as unknown ones do, so the answer
never tells whether such a record exists. Likewise a record of a site the user does not see
(docs/sites.md): every read here, the hints' included, is a statement of the ORM's classes,
which the site filter (``sites/scope.py``) reaches, so another site's patient or shipment
neither matches nor makes a hint.

Everything here takes the session and the user's roles; no request, no URL (``web/resolve.py``
turns a :class:`Match` into its page).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import SQLColumnExpression, func, select

from cellchain.clinic.models import Shipment
from cellchain.core import numbering
from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.identifiers import Identifier, InvalidIdentifier, parse_identifier
from cellchain.core.models import IssuedIdentifier
from cellchain.core.payload import is_payload, read_scan
from cellchain.core.roles import Permission, Role, has_permission
from cellchain.dosing.models import Patient
from cellchain.errors import Conflict, InvalidInput, NotFound
from cellchain.extensions import DbSession
from cellchain.manufacturing.models import Equipment, Lot, MaterialLot

#: The longest code the scan box reads: a shipper ID or a material lot number (60 characters).
MAX_CODE_LENGTH = 60
#: How much of an over-long text a refusal quotes.
_QUOTED = 24


class CodeKind(enum.StrEnum):
    """What a scanned code is."""

    DIN = "din"
    UNIT = "unit"
    COI = "coi"
    LOT = "lot"
    PATIENT = "patient"
    SHIPPER = "shipper"
    MATERIAL_LOT = "material_lot"
    EQUIPMENT = "equipment"


@dataclass(frozen=True)
class KindInfo:
    #: "a lot number", in a sentence
    name: LazyText
    #: the permission of the page a code of this kind leads to
    permission: Permission


KINDS: dict[CodeKind, KindInfo] = {
    CodeKind.DIN: KindInfo(lazy("a DIN"), Permission.READ_RECORDS),
    CodeKind.UNIT: KindInfo(lazy("a unit code"), Permission.READ_RECORDS),
    CodeKind.COI: KindInfo(lazy("a chain-of-identity identifier"), Permission.READ_RECORDS),
    CodeKind.LOT: KindInfo(lazy("a lot number"), Permission.READ_RECORDS),
    CodeKind.PATIENT: KindInfo(lazy("a patient study ID"), Permission.READ_RECORDS),
    CodeKind.SHIPPER: KindInfo(lazy("a shipper ID"), Permission.READ_RECORDS),
    CodeKind.MATERIAL_LOT: KindInfo(lazy("a material lot number"), Permission.READ_RECORDS),
    CodeKind.EQUIPMENT: KindInfo(lazy("an equipment ID"), Permission.READ_RECORDS),
}

_IDENTIFIER_KINDS = {"DIN": CodeKind.DIN, "UNIT": CodeKind.UNIT, "COI": CodeKind.COI}

#: What the scan box reads, for the refusal of a text it does not.
READABLE = lazy(
    "DINs and unit codes (with their check character), lot numbers (like X999926000001X-L01), "
    "chain-of-identity identifiers (CH…), patient study IDs, shipper IDs, material lot numbers "
    "and equipment IDs"
)


@dataclass(frozen=True)
class Match:
    """A record a code names: what ``web/resolve.record_url`` needs (``code``, ``entity_type``,
    ``entity_id``) and what a person reads of it."""

    kind: CodeKind
    #: the code as the record holds it (an identifier's canonical form with K)
    code: str
    #: the record's type for ``RECORD_PAGES``; None for an issued code attached to nothing
    entity_type: str | None
    entity_id: str | None
    label: str


class UnreadableCode(InvalidInput):
    """The text is no code the scan box reads, or a code refused by its own rule (422)."""

    title: str | LazyText = lazy("Invalid code")
    type_slug = "invalid-code"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, errors={"code": [detail]})


class UnknownCode(NotFound):
    """The text has a code's shape, but no record of it exists that the user may see (404)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, errors={"code": [detail]})


class AmbiguousCode(Conflict):
    """The code names records of more than one kind (or several of one): every one is listed."""

    title: str | LazyText = lazy("Ambiguous code")

    def __init__(self, code: str, matches: list[Match]) -> None:
        names = "; ".join(f"{KINDS[m.kind].name}: {m.label}" for m in matches)
        detail = _(
            "%(code)s names more than one record (%(names)s); choose the one you meant.",
            code=code,
            names=names,
        )
        super().__init__(detail, errors={"code": [detail]})
        self.matches = matches


def may_see(roles: Iterable[Role], kind: CodeKind) -> bool:
    return has_permission(frozenset(roles), KINDS[kind].permission)


def find(session: DbSession, text: str, *, roles: Iterable[Role]) -> Match:
    """The one record ``text`` names that ``roles`` may see, or a refusal in words:
    :class:`UnreadableCode` (422), :class:`UnknownCode` (404), :class:`AmbiguousCode` (the
    interfaces answer it 300 Multiple Choices, listing the matches)."""
    roles = frozenset(roles)
    typed = _readable_text(text)
    upper = typed.upper()

    # 1. a label payload is an issued identifier or nothing
    if is_payload(upper):
        return _issued(session, _read_identifier(typed), roles)

    # 2. a lot number
    lot_number = _lot_number(upper)
    if lot_number is not None:
        return _lot(session, lot_number, roles)

    # 3. an issued identifier, with its check character
    try:
        identifier = read_scan(typed)
    except InvalidIdentifier as error:
        if error.reason in ("no_check", "check") or upper.startswith("="):
            raise UnreadableCode(error.detail) from error
        identifier_error = error
    else:
        return _issued(session, identifier, roles)

    # 4. the site's own codes
    if _SITE_CODE.fullmatch(upper):
        matches = _site_codes(session, upper, roles)
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise AmbiguousCode(upper, matches)
        meant = _meant_by_prefix(session, upper, roles)
        if meant:
            raise UnknownCode(_looks_like(meant, upper))
    if _near_identifier(upper, identifier_error):
        raise UnreadableCode(identifier_error.detail)
    if _SITE_CODE.fullmatch(upper):
        raise UnknownCode(
            _(
                "This is not a code cellchain knows: %(code)s. The scan box reads %(readable)s.",
                code=upper,
                readable=READABLE,
            )
        )
    raise UnreadableCode(
        _(
            "This is not a code cellchain knows: %(code)s. The scan box reads %(readable)s; "
            "codes are made of letters A–Z, digits and - . / _ only.",
            code=repr(typed),
            readable=READABLE,
        )
    )


# --- the text ---------------------------------------------------------------------------------


def _readable_text(text: str) -> str:
    """``text`` without surrounding whitespace, full-width forms made ASCII (a scanner behind a
    Chinese input method types ``ＡＳ－００１``); refused when empty, too long or not ASCII."""
    typed = unicodedata.normalize("NFKC", text or "").strip()
    if not typed:
        raise UnreadableCode(_("No code was entered: scan a label or type its code."))
    if len(typed) > MAX_CODE_LENGTH + 10:
        raise UnreadableCode(
            _(
                "%(text)s… has %(count)s characters; no code cellchain reads has more than "
                "%(most)s. Scan the label again, or type only its code.",
                text=repr(typed[:_QUOTED]),
                count=len(typed),
                most=MAX_CODE_LENGTH,
            )
        )
    for index, char in enumerate(typed):
        if ord(char) < 32 or ord(char) == 127:
            raise UnreadableCode(
                _(
                    "The code has a control character (U+%(char)s) at position %(position)s; "
                    "a scanner or a person types none. Scan the label again.",
                    char=format(ord(char), "04X"),
                    position=index + 1,
                )
            )
        if ord(char) > 126:
            raise UnreadableCode(
                _(
                    "%(text)s has %(char)s at position %(position)s; codes cellchain reads are "
                    "made of letters A–Z, digits and - . / _ only.",
                    text=repr(typed[:_QUOTED]),
                    char=repr(char),
                    position=index + 1,
                )
            )
    return typed


def _read_identifier(typed: str) -> Identifier:
    try:
        return read_scan(typed)
    except InvalidIdentifier as error:
        raise UnreadableCode(error.detail) from error


def _near_identifier(upper: str, error: InvalidIdentifier) -> bool:
    """Whether ``upper``, which is no identifier, is still close enough to one (its length,
    give or take one character) that the identifier's own words say best what is wrong."""
    if error.reason == "structure":
        return True
    normal = "".join(upper.split()).replace("-", "")
    return 12 <= len(normal) <= 20 and re.fullmatch(r"[0-9A-Z\[\]<>\"'*&=]+", normal) is not None


# --- issued identifiers -----------------------------------------------------------------------


def _issued(session: DbSession, identifier: Identifier, roles: frozenset[Role]) -> Match:
    kind = _IDENTIFIER_KINDS[identifier.kind]
    issued = (
        session.execute(
            select(IssuedIdentifier).where(IssuedIdentifier.code == identifier.canonical)
        ).scalar_one_or_none()
        if may_see(roles, kind)
        else None
    )
    if (
        issued is not None
        and issued.entity_type == "patient"
        and issued.entity_id
        and session.get(Patient, int(issued.entity_id)) is None
    ):
        issued = None  # a patient of a site the user does not see (docs/sites.md)
    if issued is None:
        raise UnknownCode(numbering.never_issued(identifier))
    names = {"DIN": "DIN", "UNIT": _("Unit"), "COI": _("Chain of identity")}
    return Match(
        kind=kind,
        code=issued.code,
        entity_type=issued.entity_type,
        entity_id=issued.entity_id,
        label=f"{names[identifier.kind]} {identifier.display}",
    )


# --- lot numbers ------------------------------------------------------------------------------

#: a lot number: the donation's DIN (13) with its check character, ``-L`` and two digits
_LOT_SHAPE = re.compile(r"([0-9A-Z]{13})([0-9A-Z*]?)\s*-?\s*L\s*(\d{2})")


def _lot_number(upper: str) -> str | None:
    """The canonical lot number ``upper`` has the shape of (DIN + K + ``-L`` + nn), or None.

    Refused (:class:`UnreadableCode`) when the DIN in it lacks its check character or has a
    wrong one: a lot number is found by its DIN, which is checked like any typed code."""
    shape = _LOT_SHAPE.fullmatch(upper.replace(" ", "") if " " in upper else upper)
    if shape is None:
        return None
    din, check, number = shape.groups()
    try:
        identifier = parse_identifier(din + check)
    except InvalidIdentifier as error:
        if not check and error.reason == "no_check":
            raise UnreadableCode(
                _(
                    "This looks like a lot number, but its DIN %(din)s has no check character: "
                    "a lot number is the DIN with its check character, -L and the lot's number "
                    "(like %(example)s); type it as printed on the label.",
                    din=din,
                    example=din + "K-L" + number,
                )
            ) from error
        raise UnreadableCode(
            _(
                "This looks like a lot number, but its DIN is not right: %(why)s",
                why=error.detail,
            )
        ) from error
    if identifier.kind != "DIN":
        return None
    return f"{identifier.canonical}-L{number}"


def _lot(session: DbSession, lot_number: str, roles: frozenset[Role]) -> Match:
    row = (
        session.execute(
            select(Lot.id, Lot.status).where(Lot.lot_number == lot_number)
        ).one_or_none()
        if may_see(roles, CodeKind.LOT)
        else None
    )
    if row is None:
        raise UnknownCode(
            _("This looks like a lot number, but no lot %(number)s exists.", number=lot_number)
        )
    return Match(
        kind=CodeKind.LOT,
        code=lot_number,
        entity_type="lot",
        entity_id=str(row.id),
        label=_("Lot %(number)s (%(status)s)", number=lot_number, status=row.status),
    )


# --- the site's own codes ---------------------------------------------------------------------

#: what a study ID, shipper ID, material lot number or equipment ID may look like
_SITE_CODE = re.compile(rf"[0-9A-Z][0-9A-Z ._/-]{{0,{MAX_CODE_LENGTH - 1}}}")

#: kind → (the column holding the code, upper-cased as the scan box compares it). The ORM's
#: attributes, never the tables' columns: a statement of the mapped classes is one the site
#: filter (``sites/scope.py``) applies to, so that neither a match nor a hint ("this looks
#: like a patient study ID") is read from another site's patients or shipments
#: (docs/sites.md, "The site invariant"; ``tests/sites/test_scan_hints_scope.py``).
_SITE_COLUMNS: dict[CodeKind, SQLColumnExpression[str]] = {
    CodeKind.PATIENT: Patient.study_id,
    CodeKind.SHIPPER: func.upper(Shipment.shipper_id),
    CodeKind.MATERIAL_LOT: MaterialLot.lot_number,
    CodeKind.EQUIPMENT: Equipment.code,
}

#: kind → the record whose rows a hint reads (its id, selected, makes the statement the
#: ORM's: a bare ``select(1)`` over a column would be a Core statement, unfiltered by site)
_SITE_RECORDS: dict[CodeKind, Any] = {
    CodeKind.PATIENT: Patient.id,
    CodeKind.SHIPPER: Shipment.id,
    CodeKind.MATERIAL_LOT: MaterialLot.id,
    CodeKind.EQUIPMENT: Equipment.id,
}

_NOT_ON_FILE: dict[CodeKind, LazyText] = {
    CodeKind.PATIENT: lazy("no patient %(code)s is enrolled"),
    CodeKind.SHIPPER: lazy("no shipment has travelled in shipper %(code)s"),
    CodeKind.MATERIAL_LOT: lazy("no material lot %(code)s has been received"),
    CodeKind.EQUIPMENT: lazy("no equipment %(code)s is registered"),
}


def _site_codes(session: DbSession, upper: str, roles: frozenset[Role]) -> list[Match]:
    """Every record of the site's own codes that ``upper`` names exactly and ``roles`` may see."""
    matches: list[Match] = []
    if may_see(roles, CodeKind.PATIENT):
        for patient_id, study_id in session.execute(
            select(Patient.id, Patient.study_id).where(Patient.study_id == upper)
        ):
            matches.append(
                Match(
                    CodeKind.PATIENT,
                    study_id,
                    "patient",
                    str(patient_id),
                    _("Patient %(study_id)s", study_id=study_id),
                )
            )
    if may_see(roles, CodeKind.SHIPPER):
        # a shipper travels many times: its latest shipment is the one in hand
        shipment = session.execute(
            select(Shipment.id, Shipment.shipper_id, Shipment.status, Shipment.destination)
            .where(_SITE_COLUMNS[CodeKind.SHIPPER] == upper)
            .order_by(Shipment.dispatched_at.desc(), Shipment.id.desc())
            .limit(1)
        ).one_or_none()
        if shipment is not None:
            matches.append(
                Match(
                    CodeKind.SHIPPER,
                    shipment.shipper_id,
                    "shipment",
                    str(shipment.id),
                    _(
                        "Shipment %(id)s in shipper %(shipper)s (%(status)s, to %(to)s)",
                        id=shipment.id,
                        shipper=shipment.shipper_id,
                        status=shipment.status,
                        to=shipment.destination,
                    ),
                )
            )
    if may_see(roles, CodeKind.MATERIAL_LOT):
        for lot in session.execute(
            select(MaterialLot).where(MaterialLot.lot_number == upper).order_by(MaterialLot.id)
        ).scalars():
            matches.append(
                Match(CodeKind.MATERIAL_LOT, lot.lot_number, "material_lot", str(lot.id), lot.label)
            )
    if may_see(roles, CodeKind.EQUIPMENT):
        for item in session.execute(select(Equipment).where(Equipment.code == upper)).scalars():
            matches.append(
                Match(
                    CodeKind.EQUIPMENT,
                    item.code,
                    "equipment",
                    str(item.id),
                    _("Equipment %(code)s (%(name)s)", code=item.code, name=item.name),
                )
            )
    return matches


#: the letters a site's code starts with and the separator after them (``AS-`` of ``AS-007``)
_PREFIX = re.compile(r"([A-Z]+[-./_ ]?)(?=[0-9])")


def _meant_by_prefix(session: DbSession, upper: str, roles: frozenset[Role]) -> list[CodeKind]:
    """The kinds of the site's own codes whose codes on file start as ``upper`` does (its
    letters and separator, ``AS-`` of ``AS-999``), of those ``roles`` may see."""
    prefix = _PREFIX.match(upper)
    if prefix is None:
        return []
    pattern = prefix.group(1).replace("_", "\\_") + "%"
    return [
        kind
        for kind, column in _SITE_COLUMNS.items()
        if may_see(roles, kind)
        and session.execute(
            select(_SITE_RECORDS[kind]).where(column.like(pattern, escape="\\")).limit(1)
        ).first()
        is not None
    ]


def _looks_like(kinds: list[CodeKind], code: str) -> str:
    """ "This looks like a patient study ID, but no patient AS-999 is enrolled." for one kind or
    several."""
    names = _(" or ").join(str(KINDS[kind].name) for kind in kinds)
    missing = _("; ").join(str(_NOT_ON_FILE[kind]) % {"code": code} for kind in kinds)
    if len(kinds) == 1:
        return _("This looks like %(names)s, but %(missing)s.", names=names, missing=missing)
    return _(
        "This looks like %(names)s, but none is on file: %(missing)s.",
        names=names,
        missing=missing,
    )
