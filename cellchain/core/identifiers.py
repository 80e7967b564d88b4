"""ISBT 128-style identifiers: the DIN, the chain-of-identity identifier and their check character.

Formats (see DOMAIN.md section 2; ICCBBA ST-001 and ST-028 define the structures, which are public):

* **Facility code** ``αppp``-style, 5 characters: the first is A–N, P–Z or 1–9 (never the letter O,
  never zero); the 2nd and 3rd are letters or digits but never the letter O; the 4th and 5th are
  digits. Real facility codes are assigned by ICCBBA and are site configuration.
* **DIN** (donation identification number), 13 characters: facility (5) + nominal year (2) +
  sequence within that year (6, ``000001``–``999999``). Example ``G123498654321``.
* **Chain-of-identity identifier (COI)**, 15 characters: ``CH`` + facility (5) + year (2) +
  sequence (6). Example ``CHG123498654321``.
* **Check character K**: ISO/IEC 7064 MOD 37-2 over the whole body (for a COI including ``CH``),
  alphabet ``0-9A-Z*`` (values 0–36). It is printed boxed after the identifier (``[H]``) for
  keyboard entry and catches every single mistyped character and every swap of two neighbours.
  The canonical form stored in the database is body + K, e.g. ``G123498654321H``.
* **Unit code**, 18 characters: DIN (13) + unit-kind letter (1) + sequence within the donation
  (4, ``0001``–``9999``). Example ``G123498654321V0007``: the 7th unit labelled for donation
  ``G123498654321``, a culture vessel. Every unit code embeds its donation's DIN (DOMAIN.md §2);
  its check character is computed over all 18 characters. Kind letters: :data:`UNIT_KIND_LETTERS`.
* **ISBT DIN barcode**: ``=`` + DIN + two flag characters. Flag ``00`` means "no check"; the
  "type 3" flag ``60``–``96`` is the check value + 60 and is verified like K.

:func:`parse_identifier` accepts what a person types or a scanner sends and either returns an
:class:`Identifier` or raises :class:`InvalidIdentifier` with a sentence a technician understands.
It accepts a code only with its check character (or the ISBT type 3 flag): a DIN, COI or unit
code typed without it is refused, whatever page, API or scanner it comes from.
:func:`identifier_of_body` is for codes the system composes from what it stores.
Checks run in a fixed order so the first message names the most basic problem: empty → characters
→ length → structure (facility/year/sequence/flag) → check character.

Everything here is pure: no Flask, no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stdnum.iso7064 import mod_37_2

from cellchain.core.i18n import N_, LazyText, Translated, _, document_text, lazy
from cellchain.errors import InvalidInput

__all__ = [
    "ALPHABET",
    "Identifier",
    "IdentifierKind",
    "InvalidIdentifier",
    "InvalidReason",
    "check_character",
    "format_coi",
    "format_din",
    "identifier_of_body",
    "make_coi",
    "make_din",
    "make_unit_code",
    "parse_identifier",
    "type3_flag",
    "validate_facility_code",
]

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
"""ISO/IEC 7064 MOD 37-2 alphabet: the position of a character is its value (0..36)."""

IdentifierKind = Literal["DIN", "COI", "UNIT"]
InvalidReason = Literal["empty", "length", "character", "structure", "no_check", "check"]

_DIGITS = frozenset("0123456789")
_BODY_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_FACILITY_FIRST = frozenset("ABCDEFGHIJKLMNPQRSTUVWXYZ123456789")
_FACILITY_MIDDLE = _BODY_CHARS - {"O"}

DIN_LENGTH = 13
COI_LENGTH = 15
UNIT_LENGTH = 18
UNIT_SEQUENCE_MAX = 9999

#: The letter after the DIN in a unit code says what kind of physical thing the unit is.
UNIT_KIND_LETTERS: dict[str, str] = {
    "D": N_("donation container"),
    "V": N_("culture vessel"),
    "B": N_("cell-bank vial"),
    "C": N_("cryobag"),
    "S": N_("sample tube"),
    "P": N_("prepared dose"),
}
COI_PREFIX = "CH"
BARCODE_PREFIX = "="
NO_CHECK_FLAG = "00"


def _o_hint() -> str:
    return _("letter O is never used; did you mean zero?")


class InvalidIdentifier(InvalidInput):
    """A typed or scanned identifier was refused.

    ``reason`` says which rule failed (``empty``, ``length``, ``character``, ``structure``,
    ``no_check``: typed without its check character, or ``check``: the check character or
    flag does not match) so callers can react differently (e.g. a scanner beep vs. a form message);
    ``text`` is the input exactly as received; ``position`` is the 1-based position of the
    offending character in the normalised text, when one character is to blame.
    """

    title: str | LazyText = lazy("Invalid identifier")
    type_slug = "invalid-identifier"

    def __init__(
        self,
        detail: str,
        *,
        reason: InvalidReason,
        text: str,
        position: int | None = None,
        errors: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(detail, errors=errors)
        self.reason: InvalidReason = reason
        self.text = text
        self.position = position


# --------------------------------------------------------------------------------------------
# Check character and flag
# --------------------------------------------------------------------------------------------


def check_character(body: str) -> str:
    """The ISO/IEC 7064 MOD 37-2 check character over ``body``.

    Rule: ``t = 0; for each char: t = ((t + v) * 2) % 37; K = ALPHABET[(38 - t) % 37]``, computed
    by ``stdnum.iso7064.mod_37_2``. ``body`` must be non-empty and use only 0-9 and A-Z (upper
    case); ``*`` is a possible check character, never a body character. Published examples:
    ``G123498654321`` → ``H``, ``G123417654321`` → ``A``.
    """
    if not body:
        raise InvalidInput(_("A check character needs at least one character to check."))
    for index, char in enumerate(body, start=1):
        if char not in _BODY_CHARS:
            raise InvalidInput(
                _(
                    "%(code)s has %(char)s at position %(position)s; only digits 0–9 and "
                    "capital letters A–Z can be checked.",
                    code=repr(body),
                    char=repr(char),
                    position=index,
                )
            )
    return mod_37_2.calc_check_digit(body, alphabet=ALPHABET)


def type3_flag(din: str) -> str:
    """The ISBT 128 "type 3" flag of a 13-character DIN: two digits, check value + 60.

    The value of the MOD 37-2 check character in :data:`ALPHABET` (0..36) plus 60 gives
    ``"60"``..``"96"``; it carries the check in a barcode, where flags follow the DIN.
    """
    if len(din) != DIN_LENGTH:
        raise InvalidInput(
            _(
                "A DIN has %(length)s characters without its check character; %(code)s has "
                "%(count)s.",
                length=DIN_LENGTH,
                code=repr(din),
                count=len(din),
            )
        )
    return f"{ALPHABET.index(check_character(din)) + 60:02d}"


# --------------------------------------------------------------------------------------------
# Structure rules (shared by the builders and the parser)
# --------------------------------------------------------------------------------------------


def _facility_problem(code: str) -> tuple[int, str] | None:
    """The first broken facility-code rule in a 5-character code: (0-based index, why), or None.

    Rules: first character A–N, P–Z or 1–9 (no letter O, no zero); 2nd–3rd letters or digits
    but no letter O; 4th–5th digits.
    """
    for index, char in enumerate(code):
        if index == 0:
            if char in _FACILITY_FIRST:
                continue
            if char == "O":
                return index, _o_hint()
            if char == "0":
                return index, _("a facility code never starts with 0")
            return index, _("a facility code starts with a letter (not O) or a digit 1–9")
        if index in (1, 2):
            if char in _FACILITY_MIDDLE:
                continue
            if char == "O":
                return index, _o_hint()
            return index, _("the 2nd and 3rd characters of a facility code are letters or digits")
        if char in _DIGITS:
            continue
        if char == "O":
            return index, _o_hint()
        return index, _("a facility code ends in two digits")
    return None


def _digits_problem(text: str, what: str) -> tuple[int, str] | None:
    """The first non-digit in ``text`` (a year, sequence or unit number): (0-based index,
    why), or None."""
    for index, char in enumerate(text):
        if char not in _DIGITS:
            return index, (_o_hint() if char == "O" else _digits_only(what))
    return None


def _digits_only(what: str) -> str:
    """Why a letter in the year, the sequence number or the unit number is refused."""
    if what == "year":
        return _("the year is digits only")
    if what == "unit number":
        return _("the unit number is digits only")
    return _("the sequence number is digits only")


def validate_facility_code(code: str) -> str:
    """Return the facility code upper-cased (surrounding spaces removed) or raise InvalidInput.

    Rule (ISBT 128 facility identification number): 5 characters; the first is A–N, P–Z or 1–9
    (not the letter O, not zero); the 2nd and 3rd are letters or digits but not the letter O;
    the 4th and 5th are digits.
    """
    normal = code.strip().upper()
    if len(normal) != 5:
        message = _(
            "A facility code has 5 characters; %(code)s has %(count)s.",
            code=repr(normal),
            count=len(normal),
        )
        raise InvalidInput(message, errors={"facility_code": [message]})
    problem = _facility_problem(normal)
    if problem is not None:
        index, why = problem
        message = _(
            "Facility code %(code)s has %(char)s at position %(position)s, which is not "
            "allowed there (%(why)s).",
            code=repr(normal),
            char=repr(normal[index]),
            position=index + 1,
            why=why,
        )
        raise InvalidInput(message, errors={"facility_code": [message]})
    return normal


def _nominal_year(year: int) -> str:
    """Two-digit nominal year: 0..99 as is, a four-digit year (1000..9999) by its last two."""
    if isinstance(year, bool) or not isinstance(year, int):
        raise InvalidInput(_("The year must be a whole number; got %(year)s.", year=repr(year)))
    if 0 <= year <= 99:
        return f"{year:02d}"
    if 1000 <= year <= 9999:
        return f"{year % 100:02d}"
    message = _("The year must be 0–99 or a four-digit year such as 2026; got %(year)s.", year=year)
    raise InvalidInput(message, errors={"year": [message]})


def _sequence(sequence: int) -> str:
    """Six-digit zero-padded sequence; 1..999999 (0 is never issued, 7 digits do not fit)."""
    if isinstance(sequence, bool) or not isinstance(sequence, int):
        raise InvalidInput(
            _("The sequence number must be a whole number; got %(number)s.", number=repr(sequence))
        )
    if not 1 <= sequence <= 999_999:
        message = _(
            "The sequence number must be between 1 and 999999; got %(number)s.", number=sequence
        )
        raise InvalidInput(message, errors={"sequence": [message]})
    return f"{sequence:06d}"


def format_din(facility_code: str, year: int, sequence: int) -> str:
    """The 13-character DIN body: facility (5) + nominal year (2) + sequence (6).

    ``year`` may be 0..99 or a four-digit year (2026 → ``"26"``); ``sequence`` is 1..999999 and
    is zero-padded to six digits. Anything else raises InvalidInput.
    """
    return validate_facility_code(facility_code) + _nominal_year(year) + _sequence(sequence)


def format_coi(facility_code: str, year: int, sequence: int) -> str:
    """The 15-character chain-of-identity body: ``CH`` + facility + year (2) + sequence (6).

    Same year and sequence rules as :func:`format_din`. Its check character is computed over all
    15 characters, ``CH`` included.
    """
    return COI_PREFIX + format_din(facility_code, year, sequence)


# --------------------------------------------------------------------------------------------
# The value object
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identifier:
    """A checked DIN, chain-of-identity identifier or unit code: body and check character.

    Build with :func:`make_din`, :func:`make_coi`, :func:`make_unit_code` or
    :func:`parse_identifier`; the constructor
    only refuses (ValueError) an inconsistent kind/body/check, a programming error.
    """

    kind: IdentifierKind
    body: str
    check: str

    def __post_init__(self) -> None:
        """Refuse an Identifier whose body length or check character does not fit its kind."""
        expected = {"DIN": DIN_LENGTH, "COI": COI_LENGTH, "UNIT": UNIT_LENGTH}.get(self.kind)
        if expected is None:
            raise ValueError(f"unknown identifier kind {self.kind!r}")
        if len(self.body) != expected:
            raise ValueError(f"a {self.kind} body has {expected} characters, not {self.body!r}")
        if self.kind == "COI" and not self.body.startswith(COI_PREFIX):
            raise ValueError(f"a COI body starts with {COI_PREFIX!r}, not {self.body!r}")
        if self.kind == "UNIT" and self.body[DIN_LENGTH] not in UNIT_KIND_LETTERS:
            raise ValueError(f"{self.body[DIN_LENGTH]!r} is not a unit-kind letter")
        if self.check != check_character(self.body):
            raise ValueError(f"{self.check!r} is not the check character of {self.body!r}")

    @property
    def _din_part(self) -> str:
        """The 13 characters facility + year + sequence: the DIN this identifier embeds."""
        if self.kind == "COI":
            return self.body[len(COI_PREFIX) :]
        return self.body[:DIN_LENGTH]

    @property
    def din(self) -> str:
        """The 13-character DIN (without check character) embedded in a DIN or unit code."""
        if self.kind == "COI":
            raise ValueError("A chain-of-identity identifier does not embed a DIN.")
        return self.body[:DIN_LENGTH]

    @property
    def unit_kind_letter(self) -> str:
        """The unit-kind letter of a unit code (``V`` for a culture vessel, …)."""
        if self.kind != "UNIT":
            raise ValueError("Only a unit code has a unit-kind letter.")
        return self.body[DIN_LENGTH]

    @property
    def canonical(self) -> str:
        """Body + check character: the form stored in the database and compared exactly."""
        return self.body + self.check

    @property
    def facility_code(self) -> str:
        """The 5-character facility code."""
        return self._din_part[:5]

    @property
    def year(self) -> str:
        """The two-digit nominal year, as text (``"98"``)."""
        return self._din_part[5:7]

    @property
    def sequence(self) -> int:
        """The sequence number within the year (1..999999)."""
        return int(self._din_part[7:])

    @property
    def display(self) -> str:
        """Human-readable form with the check character boxed: ``G1234 98 654321 [H]``.

        A COI reads ``CH G1234 98 654321 [K]``, a unit code ``G1234 98 654321 V0007 [K]``.
        :func:`parse_identifier` accepts these forms back.
        """
        part = self._din_part
        din = f"{part[:5]} {part[5:7]} {part[7:]}"
        if self.kind == "UNIT":
            return f"{din} {self.body[DIN_LENGTH:]} [{self.check}]"
        text = f"{din} [{self.check}]"
        return text if self.kind == "DIN" else f"{COI_PREFIX} {text}"

    @property
    def barcode_din(self) -> str:
        """The ISBT 128 DIN barcode data: ``=`` + DIN + type 3 flag (DIN only).

        A chain-of-identity identifier has no such form; asking for it raises ValueError.
        """
        if self.kind != "DIN":
            raise ValueError("A chain-of-identity identifier has no ISBT DIN barcode form.")
        return BARCODE_PREFIX + self.body + type3_flag(self.body)


def make_din(facility_code: str, year: int, sequence: int) -> Identifier:
    """A DIN :class:`Identifier` from its parts (rules of :func:`format_din`)."""
    body = format_din(facility_code, year, sequence)
    return Identifier("DIN", body, check_character(body))


def make_coi(facility_code: str, year: int, sequence: int) -> Identifier:
    """A chain-of-identity :class:`Identifier` from its parts (rules of :func:`format_coi`)."""
    body = format_coi(facility_code, year, sequence)
    return Identifier("COI", body, check_character(body))


def make_unit_code(din: str, kind_letter: str, sequence: int) -> Identifier:
    """A unit code: the donation's 13-character DIN + kind letter + sequence 1..9999."""
    din_id = _parse(din, typed=False)  # the stored DIN, with or without its K
    if din_id.kind != "DIN":
        raise InvalidInput(
            _(
                "A unit code embeds a DIN; %(code)s is a %(kind)s.",
                code=repr(din),
                kind=din_id.kind,
            )
        )
    if kind_letter not in UNIT_KIND_LETTERS:
        raise InvalidInput(_("%(letter)s is not a unit-kind letter.", letter=repr(kind_letter)))
    if isinstance(sequence, bool) or not 1 <= sequence <= UNIT_SEQUENCE_MAX:
        raise InvalidInput(
            _(
                "A donation has at most %(most)s unit codes; got number %(number)s.",
                most=UNIT_SEQUENCE_MAX,
                number=sequence,
            )
        )
    body = f"{din_id.body}{kind_letter}{sequence:04d}"
    return Identifier("UNIT", body, check_character(body))


# --------------------------------------------------------------------------------------------
# Parsing what people type and scanners send
# --------------------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    """Upper-case, drop all whitespace and hyphens, and unbox a trailing check char ``[H]``."""
    normal = "".join(text.split()).replace("-", "").upper()
    if len(normal) >= 3 and normal[-3] == "[" and normal[-1] == "]":
        normal = normal[:-3] + normal[-2]
    return normal


def _character_message(normal: str, index: int) -> str:
    """Why the character at ``index`` of the normalised text is not acceptable anywhere there."""
    char = normal[index]
    where = {"code": repr(normal), "char": repr(char), "position": index + 1}
    if char == "*":
        return _(
            "%(code)s has %(char)s at position %(position)s; '*' is only ever a check "
            "character (the last, boxed one).",
            **where,
        )
    if char == BARCODE_PREFIX:
        return _(
            "%(code)s has %(char)s at position %(position)s; '=' may only come first, where "
            "it starts a scanned DIN.",
            **where,
        )
    if char in "[]":
        return _(
            "%(code)s has %(char)s at position %(position)s; brackets are only accepted "
            "around the check character, like [H].",
            **where,
        )
    if char == "&" or (index == 1 and normal[0] == BARCODE_PREFIX):
        return _(
            "%(code)s has %(char)s at position %(position)s, which is not allowed. This looks "
            "like another ISBT 128 barcode (for example a product code or expiry date), not a "
            "DIN.",
            **where,
        )
    return _(
        "%(code)s has %(char)s at position %(position)s, which is not allowed (only digits "
        "0–9 and letters A–Z are used).",
        **where,
    )


def parse_identifier(text: str) -> Identifier:
    """Parse a typed or scanned DIN, chain-of-identity identifier or unit code, checking it.

    Rule (DOMAIN.md §7): a code typed by hand is accepted only with its check character, so
    one mistyped or swapped character can never land on another donation, patient or unit.

    Normalisation: surrounding whitespace is stripped, inner whitespace and hyphens removed,
    letters upper-cased, and a boxed check character (``[H]``) unboxed. Accepted shapes:

    * DIN + K, 14 characters (K verified);
    * ISBT barcode ``=`` + DIN + the type 3 flag ``60``–``96`` (verified), or ``=`` + DIN + K;
    * COI + K, ``CH`` + 13 characters + K (K verified). A 14-character text starting with CH
      is a DIN from a facility whose code starts with CH.
    * unit code + K, DIN + kind letter + 4 digits + K: 19 characters (K verified).

    The same code without its check character (13, 15 or 18 characters), or an ISBT barcode
    with flag ``00`` (no check), is refused with reason ``no_check``. A wrong check character
    is refused without saying which one would fit: that would turn a typo into another valid
    code. Raises :class:`InvalidIdentifier`; checks run in the order empty → characters →
    length → structure → check, so the message names the most basic problem.
    """
    return _parse(text, typed=True)


def identifier_of_body(body: str) -> Identifier:
    """The identifier whose body (without K) is ``body``, with its check character computed.

    For codes the system composes from records it holds (the 13 characters of a stored DIN
    when it numbers that donation's units), never for text a person typed or a scanner sent:
    those go through :func:`parse_identifier`, which requires the check character.
    """
    identifier = _parse(body, typed=False)
    if identifier.canonical == _normalise(body or ""):
        raise InvalidInput(
            _("%(code)s is a whole code with its check character, not a body.", code=repr(body))
        )
    return identifier


def _parse(text: str, *, typed: bool) -> Identifier:
    """:func:`parse_identifier`; with ``typed`` false a body without K is accepted."""
    normal = _normalise(text or "")

    # 1. empty
    if not normal:
        raise InvalidIdentifier(_("No identifier was entered."), reason="empty", text=text)

    # 2. characters: 0-9 and A-Z; '=' only first; '*' only last (where a check character is).
    for index, char in enumerate(normal):
        if char in _BODY_CHARS:
            continue
        if char == BARCODE_PREFIX and index == 0:
            continue
        if char == "*" and index == len(normal) - 1:
            continue  # possibly a check character; confirmed once the shape is known
        raise InvalidIdentifier(
            _character_message(normal, index), reason="character", text=text, position=index + 1
        )

    # 3. length → shape
    kind: IdentifierKind
    offset = 0  # where the body starts in ``normal``
    flag: str | None = None
    given_check: str | None = None
    if normal.startswith(BARCODE_PREFIX):
        offset = 1
        rest = normal[1:]
        if len(rest) not in (DIN_LENGTH + 1, DIN_LENGTH + 2):
            raise InvalidIdentifier(
                _(
                    "A scanned DIN is '=' followed by %(length)s characters and a 2-character "
                    "flag (or the check character); %(code)s has %(count)s characters after "
                    "'='.",
                    length=DIN_LENGTH,
                    code=repr(normal),
                    count=len(rest),
                ),
                reason="length",
                text=text,
            )
        kind = "DIN"
        if len(rest) == DIN_LENGTH + 2:
            flag = rest[DIN_LENGTH:]
        else:
            given_check = rest[DIN_LENGTH]
    elif normal.startswith(COI_PREFIX) and len(normal) in (COI_LENGTH, COI_LENGTH + 1):
        kind = "COI"
        if len(normal) == COI_LENGTH + 1:
            given_check = normal[COI_LENGTH]
    elif len(normal) in (DIN_LENGTH, DIN_LENGTH + 1):
        kind = "DIN"
        if len(normal) == DIN_LENGTH + 1:
            given_check = normal[DIN_LENGTH]
    elif len(normal) == UNIT_LENGTH + 1:
        kind = "UNIT"
        given_check = normal[UNIT_LENGTH]
    elif len(normal) == UNIT_LENGTH:
        kind = "UNIT"
    elif normal.startswith(COI_PREFIX):
        raise InvalidIdentifier(
            _(
                "A chain-of-identity identifier has %(length)s characters starting with CH, or "
                "%(checked)s with its check character (a DIN has %(din)s or %(din_checked)s); "
                "%(code)s has %(count)s.",
                length=COI_LENGTH,
                checked=COI_LENGTH + 1,
                din=DIN_LENGTH,
                din_checked=DIN_LENGTH + 1,
                code=repr(normal),
                count=len(normal),
            ),
            reason="length",
            text=text,
        )
    else:
        raise InvalidIdentifier(
            _(
                "A DIN has %(length)s characters, or %(checked)s with its check character (a "
                "unit code %(unit)s or %(unit_checked)s); %(code)s has %(count)s.",
                length=DIN_LENGTH,
                checked=DIN_LENGTH + 1,
                unit=UNIT_LENGTH,
                unit_checked=UNIT_LENGTH + 1,
                code=repr(normal),
                count=len(normal),
            ),
            reason="length",
            text=text,
        )
    body_length = {"DIN": DIN_LENGTH, "COI": COI_LENGTH, "UNIT": UNIT_LENGTH}[kind]
    body = normal[offset : offset + body_length]
    check_index = offset + body_length  # index of K or of the flag in ``normal``

    # '*' passed step 2 only if last; it is a character error unless it is the check character.
    if normal.endswith("*") and given_check is None:
        raise InvalidIdentifier(
            _character_message(normal, len(normal) - 1),
            reason="character",
            text=text,
            position=len(normal),
        )

    # 4. structure: facility code, year, sequence, flag
    din_start = offset + (len(COI_PREFIX) if kind == "COI" else 0)
    din_part = normal[din_start : din_start + DIN_LENGTH]
    problem = (
        _facility_problem(din_part[:5])
        or _shift(_digits_problem(din_part[5:7], "year"), 5)
        or _shift(_digits_problem(din_part[7:], "sequence number"), 7)
    )
    if problem is None and kind == "UNIT":
        problem = _unit_suffix_problem(body[DIN_LENGTH:])
        if problem is not None:
            problem = _shift(problem, DIN_LENGTH)
    if problem is not None:
        index, why = problem
        position = din_start + index + 1
        raise InvalidIdentifier(
            _(
                "%(code)s has %(char)s at position %(position)s, which is not allowed there "
                "(%(why)s).",
                code=repr(normal),
                char=repr(normal[position - 1]),
                position=position,
                why=why,
            ),
            reason="structure",
            text=text,
            position=position,
        )
    if din_part[7:] == "000000":
        raise InvalidIdentifier(
            _(
                "%(code)s has sequence number 000000, which is never issued; sequence numbers "
                "start at 000001.",
                code=repr(normal),
            ),
            reason="structure",
            text=text,
            position=din_start + 8,
        )
    if flag is not None and not (
        flag == NO_CHECK_FLAG or (set(flag) <= _DIGITS and 60 <= int(flag) <= 96)
    ):
        raise InvalidIdentifier(
            _(
                "The flag %(flag)s after the DIN in %(code)s is not accepted: use 00 (no check) "
                "or the check flag 60–96.",
                flag=repr(flag),
                code=repr(normal),
            ),
            reason="structure",
            text=text,
            position=check_index + 1,
        )

    # 5. check character / type 3 flag: required on what people type and scanners send
    if typed and flag == NO_CHECK_FLAG:
        raise InvalidIdentifier(
            _(
                "The scanned DIN %(code)s carries flag 00 (no check), so a misread character "
                "could not be caught; it needs its check character: scan the cellchain label, "
                "or type the DIN with the boxed character printed after it.",
                code=repr(body),
            ),
            reason="no_check",
            text=text,
            position=check_index + 1,
        )
    if typed and given_check is None and flag is None:
        raise InvalidIdentifier(
            _without_check(kind, repr(normal), _display_without_check(kind, body)),
            reason="no_check",
            text=text,
            position=len(normal) + 1,
        )
    check = check_character(body)
    if given_check is not None and given_check != check:
        raise InvalidIdentifier(
            _(
                "Check character mismatch: %(given)s is not the check character of %(code)s. "
                "A character may be mistyped or two swapped; compare the code with the label "
                "character by character.",
                given=given_check,
                code=repr(body),
            ),
            reason="check",
            text=text,
            position=check_index + 1,
        )
    if flag is not None and flag != NO_CHECK_FLAG and flag != type3_flag(body):
        raise InvalidIdentifier(
            _(
                "The flag %(flag)s does not match the DIN %(code)s: a character may be misread "
                "or two swapped; scan it again or type the DIN with its check character.",
                flag=repr(flag),
                code=repr(body),
            ),
            reason="check",
            text=text,
            position=check_index + 1,
        )
    return Identifier(kind, body, check)


def _without_check(kind: IdentifierKind, code: str, example: str) -> str:
    """Why a code typed without its check character is refused, naming what it looks like."""
    if kind == "COI":
        return _(
            "%(code)s looks like a chain-of-identity identifier without its check character; "
            "a typed code needs its check character: type the boxed character printed after "
            "it too (like %(example)s [K]), or scan the label.",
            code=code,
            example=example,
        )
    if kind == "UNIT":
        return _(
            "%(code)s looks like a unit code without its check character; a typed code needs "
            "its check character: type the boxed character printed after it too (like "
            "%(example)s [K]), or scan the label.",
            code=code,
            example=example,
        )
    return _(
        "%(code)s looks like a DIN without its check character; a typed code needs its check "
        "character: type the boxed character printed after it too (like %(example)s [K]), or "
        "scan the label.",
        code=code,
        example=example,
    )


def _display_without_check(kind: IdentifierKind, body: str) -> str:
    """``body`` grouped as labels print it, for a message (``G1234 98 654321``)."""
    din = body[2:] if kind == "COI" else body[:DIN_LENGTH]
    grouped = f"{din[:5]} {din[5:7]} {din[7:13]}"
    if kind == "COI":
        return f"{COI_PREFIX} {grouped}"
    return f"{grouped} {body[DIN_LENGTH:]}" if kind == "UNIT" else grouped


def _unit_suffix_problem(suffix: str) -> tuple[int, str] | None:
    """The first problem in a unit code's 5-character suffix (kind letter + 4 digits), or None."""
    if suffix[0] not in UNIT_KIND_LETTERS:
        return 0, _(
            "after the DIN a unit code has a kind letter: %(letters)s", letters=_kind_letters()
        )
    problem = _shift(_digits_problem(suffix[1:], "unit number"), 1)
    if problem is None and suffix[1:] == "0000":
        return 1, _("unit numbers start at 0001")
    return problem


def _kind_letters() -> str:
    """The unit-kind letters with their names (``D (donation container), …``), the names in
    the reader's language and, for the record, in English."""
    shown = Translated(", ".join(f"{k} ({document_text(v)})" for k, v in UNIT_KIND_LETTERS.items()))
    shown.english = ", ".join(f"{k} ({v})" for k, v in UNIT_KIND_LETTERS.items())
    return shown


def _shift(problem: tuple[int, str] | None, by: int) -> tuple[int, str] | None:
    """Move a (0-based index, why) problem found in a slice back to the slice's position."""
    return None if problem is None else (problem[0] + by, problem[1])
