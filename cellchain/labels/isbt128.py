"""The ISBT 128 compound message of a licensed site's labels, and its Data Matrix symbol.

ISBT 128 (ICCBBA ST-001) puts the 2-D code of a container label in a **Data Matrix** symbol that
carries a *compound message*: a header followed by data structures, each introduced by its data
identifier. This module builds and reads the message with three structures (DOMAIN.md §2)::

    =+03000 =G123498654321 77 =<S1234V00 &>0260601430
    └header┘└─ DIN ──────┘flags└product─┘└─ expiry ─┘      (no spaces in the real message)

* **Header** ``=+aabbb``: ``aa`` is the number of data structures that follow (two digits, here
  ``03``) and ``bbb`` the compound-message reference number (``000``: no predefined order). The
  reader identifies every structure by its data identifier, so it accepts them in any order.
* **DIN** (data structure 001): ``=`` + the 13-character DIN ``αppppyynnnnnn`` + two flag
  characters. The data identifier is ``=`` followed by the DIN's first character (A–N, P–Z or
  1–9). The flags are the MOD 37-2 check value of the DIN (0–36) + 60, i.e. ``60``–``96``, so
  the reader verifies the DIN exactly like the boxed check character K. The "no check" flag
  ``00`` is refused here: a message this module reads must carry its check.
* **Product code** (data structure 003): ``=<`` + 8 characters: a capital letter, 4 digits, the
  type-of-donation character and 2 division characters (capital letters or digits).
* **Expiration date and time** (data structure 005): ``&>cyyjjjhhmm``: ``c`` the century digit
  (``year // 100 - 20``, so 0 for 2000–2099; years 2000–2999 only), ``yy`` the year within the
  century, ``jjj`` the day of the year (001–366), ``hhmm`` the 24-hour local wall-clock time
  (``2359`` when only a date is meant).

Facility numbers and product codes are **licensed site configuration**: ICCBBA assigns facility
numbers and publishes the product-code database to its licensees, so neither is bundled here.
This module only checks their *shape*; which codes a site may print is decided by its
configuration (a demo install uses the plainly unregistered facility code ``X9999``).

:func:`datamatrix_modules` draws the message as a square ECC 200 Data Matrix with zxing-cpp and
returns its module matrix without quiet zone, for a renderer to place on a label. zxing-cpp is
imported only there, so building and reading messages does not need it.

Everything here is pure: no Flask, no database. Every refusal is an :class:`IsbtError` whose
message says what is wrong and where, in plain words for the technician who scanned the code
(no "data structure" or "data identifier"), in the language of the moment.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import cast

from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.identifiers import DIN_LENGTH, identifier_of_body, type3_flag
from cellchain.errors import InvalidInput

__all__ = [
    "COMPOUND_HEADER",
    "DIN_IDENTIFIER",
    "EXPIRY_IDENTIFIER",
    "PRODUCT_IDENTIFIER",
    "CompoundMessage",
    "IsbtError",
    "compound_message",
    "datamatrix_modules",
    "din_flags",
    "expiry_structure",
    "parse_compound_message",
]

COMPOUND_HEADER = "=+"
"""Data identifier of the compound-message header ``=+aabbb``."""
DIN_IDENTIFIER = "="
"""First character of the DIN data identifier; the second is the DIN's own first character."""
PRODUCT_IDENTIFIER = "=<"
"""Data identifier of the product code (data structure 003)."""
EXPIRY_IDENTIFIER = "&>"
"""Data identifier of the expiration date and time (data structure 005)."""

#: The compound message this module builds: 3 structures, reference 000 (no predefined order).
STRUCTURE_COUNT = 3
NO_PREDEFINED_ORDER = "000"

PRODUCT_CODE_LENGTH = 8
FLAGS_LENGTH = 2
EXPIRY_DATA_LENGTH = 10  # c yy jjj hh mm
_HEADER_LENGTH = len(COMPOUND_HEADER) + 2 + 3

_DIGITS = frozenset("0123456789")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_UPPER_OR_DIGIT = _UPPER | _DIGITS
_DIN_FIRST = frozenset("ABCDEFGHIJKLMNPQRSTUVWXYZ123456789")

_DIN = "DIN"
_PRODUCT = "product code"
_EXPIRY = "expiry"
#: each part as a technician reads it, in the language of the moment
_PART_NAMES: dict[str, LazyText] = {
    _DIN: lazy("DIN"),
    _PRODUCT: lazy("product code"),
    _EXPIRY: lazy("expiry"),
}


def _part(name: str) -> str:
    return str(_PART_NAMES[name])


class IsbtError(ValueError):
    """An ISBT 128 message, or a value meant for one, was refused; the message says why."""


@dataclass(frozen=True)
class CompoundMessage:
    """A read compound message: its three data structures and the text they came from."""

    din: str
    """The 13-character DIN (without check character)."""
    flags: str
    """The two flag characters after the DIN: ``"60"``..``"96"``, the MOD 37-2 check value + 60."""
    product_code: str
    """The 8-character product code, e.g. ``"S1234V00"``."""
    expires_at: dt.datetime
    """Naive local wall-clock time of the expiry, minute precision."""
    text: str
    """The full message as encoded."""


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def din_flags(din: str) -> str:
    """The flags of a 13-character DIN: its MOD 37-2 check value (0..36) + 60, ``"60"``..``"96"``.

    Example: ``G123498654321`` has check character ``H`` (value 17), so its flags are ``"77"``.
    The DIN must be exactly 13 characters of a well-formed DIN (capital letters and digits, no
    surrounding spaces); otherwise :class:`IsbtError`.
    """
    return type3_flag(_checked_din(din))


def expiry_structure(expires_at: dt.datetime | dt.date) -> str:
    """Data structure 005: ``&>`` + ``cyyjjjhhmm`` for a naive local expiry time.

    ``c`` is ``year // 100 - 20`` (0 for 2000–2099), ``yy`` the year within the century, ``jjj``
    the day of the year, ``hhmm`` the 24-hour time. A plain :class:`datetime.date` means the end
    of that day (``2359``). Seconds and microseconds are dropped (the structure has minute
    precision), so the printed expiry is never later than the one given. A timezone-aware
    datetime is refused: convert it to the site's local time first, the label shows wall-clock
    time. Years outside 2000–2999 cannot be written and are refused.
    """
    when = _naive_expiry(expires_at)
    century = when.year // 100 - 20
    day_of_year = when.timetuple().tm_yday
    return (
        f"{EXPIRY_IDENTIFIER}{century}{when.year % 100:02d}{day_of_year:03d}"
        f"{when.hour:02d}{when.minute:02d}"
    )


def compound_message(din: str, product_code: str, expires_at: dt.datetime | dt.date) -> str:
    """The compound message ``=+03000`` + DIN with flags + product code + expiry.

    Each part is checked (:func:`din_flags`, the product-code shape, :func:`expiry_structure`);
    a bad one raises :class:`IsbtError`. :func:`parse_compound_message` reads the result back.
    """
    return (
        f"{COMPOUND_HEADER}{STRUCTURE_COUNT:02d}{NO_PREDEFINED_ORDER}"
        f"{DIN_IDENTIFIER}{din}{din_flags(din)}"
        f"{PRODUCT_IDENTIFIER}{check_product_code(product_code)}"
        f"{expiry_structure(expires_at)}"
    )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def parse_compound_message(text: str) -> CompoundMessage:
    """Read a compound message with a DIN, a product code and an expiry, checking everything.

    The text is taken exactly as scanned (no trimming, no case change). It must start with the
    header ``=+aabbb``; then exactly ``aa`` data structures follow, each identified by its data
    identifier (``=`` + DIN first character, ``=<``, ``&>``), in any order, each once, and
    nothing after them. Raises :class:`IsbtError` for a wrong header or count, an unknown data
    identifier, a repeated or missing structure, trailing text, a DIN whose flags do not match
    its check value, a malformed product code or an impossible date.
    """
    if not isinstance(text, str) or not text:
        raise IsbtError(_("Nothing was scanned: the ISBT 128 code is empty."))
    count = _read_header(text)
    found: dict[str, str] = {}
    position = _HEADER_LENGTH
    for number in range(count):
        if position >= len(text):
            raise IsbtError(
                _(
                    "The scanned ISBT 128 code is incomplete: it should hold %(count)s parts but "
                    "ends after %(found)s. Scan it again; if it fails again, the label is "
                    "damaged or misprinted.",
                    count=count,
                    found=number,
                )
            )
        name, data, position = _read_structure(text, position)
        if name in found:
            raise IsbtError(
                _(
                    "The scanned ISBT 128 code holds the %(part)s twice; a label's code holds "
                    "it once.",
                    part=_part(name),
                )
            )
        found[name] = data
    if position != len(text):
        raise IsbtError(
            _(
                "The scanned ISBT 128 code has extra characters %(extra)s at position "
                "%(position)s, after the %(count)s parts it announces. Scan it again; if it "
                "fails again, the label is damaged or misprinted.",
                extra=repr(text[position:]),
                position=position + 1,
                count=count,
            )
        )
    missing = [name for name in (_DIN, _PRODUCT, _EXPIRY) if name not in found]
    if missing:
        raise IsbtError(
            _(
                "The scanned ISBT 128 code has no %(part)s; a label's code holds the DIN, the "
                "product code and the expiry.",
                part=_part(missing[0]),
            )
        )
    din, flags = _checked_din_with_flags(found[_DIN])
    return CompoundMessage(
        din=din,
        flags=flags,
        product_code=check_product_code(found[_PRODUCT]),
        expires_at=_parse_expiry(found[_EXPIRY]),
        text=text,
    )


def _read_header(text: str) -> int:
    """The number of data structures announced by the header ``=+aabbb`` at the start."""
    if not text.startswith(COMPOUND_HEADER):
        raise IsbtError(
            _(
                "This is not an ISBT 128 label code: such a code starts with %(header)s, this "
                "one with %(start)s.",
                header=repr(COMPOUND_HEADER),
                start=repr(text[:_HEADER_LENGTH]),
            )
        )
    header = text[:_HEADER_LENGTH]
    count, reference = header[2:4], header[4:7]
    if len(header) < _HEADER_LENGTH or not set(count + reference) <= _DIGITS:
        raise IsbtError(
            _(
                "The start of the scanned ISBT 128 code is damaged: it is %(header)s, 2 digits "
                "(how many parts follow) and 3 digits; this one reads %(got)s.",
                header=repr(COMPOUND_HEADER),
                got=repr(header),
            )
        )
    if int(count) == 0:
        raise IsbtError(_("The scanned ISBT 128 code says it holds no parts (00)."))
    return int(count)


def _read_structure(text: str, position: int) -> tuple[str, str, int]:
    """The data structure at ``position``: (name, data without identifier, next position)."""
    identifier = text[position : position + 2]
    if identifier == PRODUCT_IDENTIFIER:
        name, skip, length = _PRODUCT, 2, PRODUCT_CODE_LENGTH
    elif identifier == EXPIRY_IDENTIFIER:
        name, skip, length = _EXPIRY, 2, EXPIRY_DATA_LENGTH
    elif len(identifier) == 2 and identifier[0] == DIN_IDENTIFIER and identifier[1] in _DIN_FIRST:
        name, skip, length = _DIN, 1, DIN_LENGTH + FLAGS_LENGTH
    else:
        raise IsbtError(
            _(
                "The scanned ISBT 128 code has %(found)s at position %(position)s, which starts "
                "none of its parts: a DIN starts with '=' and the DIN's first character, a "
                "product code with %(product)s, an expiry with %(expiry)s. It may be another "
                "system's code, or the label is damaged.",
                found=repr(identifier),
                position=position + 1,
                product=repr(PRODUCT_IDENTIFIER),
                expiry=repr(EXPIRY_IDENTIFIER),
            )
        )
    start = position + skip
    data = text[start : start + length]
    if len(data) < length:
        raise IsbtError(
            _(
                "The %(part)s at position %(position)s of the scanned ISBT 128 code is cut "
                "short: it needs %(length)s characters after %(start)s, the code has %(found)s.",
                part=_part(name),
                position=position + 1,
                length=length,
                start=repr(text[position:start]),
                found=len(data),
            )
        )
    return name, data, start + length


# --------------------------------------------------------------------------------------------
# Checks shared by building and reading
# --------------------------------------------------------------------------------------------


def _checked_din(din: str) -> str:
    """``din`` if it is exactly a well-formed 13-character DIN, else :class:`IsbtError`."""
    if not isinstance(din, str) or len(din) != DIN_LENGTH:
        raise IsbtError(
            _(
                "A DIN has %(length)s characters; %(din)s does not.",
                length=DIN_LENGTH,
                din=repr(din),
            )
        )
    for index, char in enumerate(din, start=1):
        if char not in _UPPER_OR_DIGIT:
            raise IsbtError(
                _(
                    "DIN %(din)s has %(char)s at position %(position)s; a DIN is capital "
                    "letters and digits only.",
                    din=repr(din),
                    char=repr(char),
                    position=index,
                )
            )
    try:
        identifier = identifier_of_body(din)
    except InvalidInput as exc:
        raise IsbtError(_("Not a valid DIN: %(reason)s", reason=exc.detail)) from exc
    if identifier.kind != "DIN":  # pragma: no cover - 13 characters always parse as a DIN
        raise IsbtError(_("%(din)s is not a DIN.", din=repr(din)))
    return din


def _checked_din_with_flags(data: str) -> tuple[str, str]:
    """Split DIN data (13 + 2 characters) and verify that the flags match the DIN's check."""
    din, flags = data[:DIN_LENGTH], data[DIN_LENGTH:]
    _checked_din(din)
    if flags == "00":
        raise IsbtError(
            _(
                "The DIN %(din)s carries no check (its two check digits are '00'); a label's "
                "code must carry them (60–96) so that a misread DIN is caught.",
                din=din,
            )
        )
    if not (set(flags) <= _DIGITS and 60 <= int(flags) <= 96):
        raise IsbtError(
            _(
                "The two characters %(flags)s after DIN %(din)s are not its check digits, which "
                "are two digits from 60 to 96.",
                flags=repr(flags),
                din=din,
            )
        )
    expected = din_flags(din)
    if flags != expected:
        raise IsbtError(
            _(
                "The check digits %(flags)s do not match DIN %(din)s, whose check digits are "
                "%(expected)s: a character of the DIN or of its check digits was misread or "
                "misprinted. Scan it again, or type the DIN and its check character from the "
                "label.",
                flags=flags,
                din=din,
                expected=expected,
            )
        )
    return din, flags


def check_product_code(code: str) -> str:
    """``code`` if it has the product-code shape (letter, 4 digits, 3 letters/digits)."""
    if not isinstance(code, str) or len(code) != PRODUCT_CODE_LENGTH:
        raise IsbtError(
            _(
                "A product code has %(length)s characters; %(code)s does not.",
                length=PRODUCT_CODE_LENGTH,
                code=repr(code),
            )
        )
    # each rule's whole sentence, so that a translation can order it as its language does
    rules = (
        (
            range(0, 1),
            _UPPER,
            lazy(
                "Product code %(code)s has %(char)s at position %(position)s, where a capital "
                "letter belongs."
            ),
        ),
        (
            range(1, 5),
            _DIGITS,
            lazy(
                "Product code %(code)s has %(char)s at position %(position)s, where a digit "
                "belongs."
            ),
        ),
        (
            range(5, 6),
            _UPPER_OR_DIGIT,
            lazy(
                "Product code %(code)s has %(char)s at position %(position)s, where the type "
                "of donation belongs (a capital letter or digit)."
            ),
        ),
        (
            range(6, 8),
            _UPPER_OR_DIGIT,
            lazy(
                "Product code %(code)s has %(char)s at position %(position)s, where a "
                "division character belongs (a capital letter or digit)."
            ),
        ),
    )
    for positions, allowed, sentence in rules:
        for index in positions:
            if code[index] not in allowed:
                raise IsbtError(
                    _(
                        sentence.message,
                        code=repr(code),
                        char=repr(code[index]),
                        position=index + 1,
                    )
                )
    return code


def _naive_expiry(expires_at: dt.datetime | dt.date) -> dt.datetime:
    """The expiry as a naive datetime floored to the minute; a date means 23:59 that day."""
    if isinstance(expires_at, dt.datetime):
        if expires_at.tzinfo is not None and expires_at.utcoffset() is not None:
            raise IsbtError(
                _(
                    "The expiry must be a local wall-clock time without a time zone; convert "
                    "%(when)s to the site's local time first.",
                    when=expires_at.isoformat(),
                )
            )
        when = expires_at.replace(second=0, microsecond=0, tzinfo=None)
    elif isinstance(expires_at, dt.date):
        when = dt.datetime.combine(expires_at, dt.time(23, 59))
    else:
        raise IsbtError(
            _(
                "The expiry must be a date or a date and time; got %(value)s.",
                value=repr(expires_at),
            )
        )
    if not 2000 <= when.year <= 2999:
        raise IsbtError(
            _(
                "An ISBT 128 expiry can be written for the years 2000–2999; got %(year)s.",
                year=when.year,
            )
        )
    return when


def _parse_expiry(data: str) -> dt.datetime:
    """The naive datetime of expiry data ``cyyjjjhhmm``, or :class:`IsbtError`."""
    if not set(data) <= _DIGITS:
        raise IsbtError(
            _(
                "The expiry %(expiry)s in the scanned code must be 10 digits: century, year, day "
                "of the year, hour and minute.",
                expiry=repr(data),
            )
        )
    year = 2000 + int(data[0]) * 100 + int(data[1:3])
    day, hour, minute = int(data[3:6]), int(data[6:8]), int(data[8:10])
    days_in_year = 366 if calendar.isleap(year) else 365
    # the day and the time as they are written in the code, outside the texts to translate
    day_written, time_written = f"{day:03d}", f"{hour:02d}:{minute:02d}"
    if not 1 <= day <= days_in_year:
        raise IsbtError(
            _(
                "The expiry %(expiry)s names day %(day)s of %(year)s, which has days 001–%(last)s.",
                expiry=repr(data),
                day=day_written,
                year=year,
                last=days_in_year,
            )
        )
    if hour > 23 or minute > 59:
        raise IsbtError(
            _(
                "The expiry %(expiry)s has the time %(time)s, which is not a time of day.",
                expiry=repr(data),
                time=time_written,
            )
        )
    return dt.datetime(year, 1, 1, hour, minute) + dt.timedelta(days=day - 1)


# --------------------------------------------------------------------------------------------
# Data Matrix
# --------------------------------------------------------------------------------------------


def datamatrix_modules(text: str) -> list[list[bool]]:
    """The square ECC 200 Data Matrix of ``text`` as rows of modules (True = dark), no quiet zone.

    Drawn by zxing-cpp (``zxingcpp.create_barcode``), read off its 1-pixel-per-module image.
    The result is checked to be a bare Data Matrix (square, solid L-shaped finder on the left
    and bottom, alternating timing pattern on the top and right), so a change in the library's
    output cannot silently yield a wrong symbol. A renderer adds the quiet zone (at least one
    module) when it places the symbol. ``text`` must be non-empty ASCII, as ISBT 128 messages are.
    """
    if not isinstance(text, str) or not text:
        raise IsbtError(_("A Data Matrix cannot be drawn for an empty code."))
    if not text.isascii():
        raise IsbtError(
            _("ISBT 128 codes are plain ASCII characters; %(text)s is not.", text=repr(text))
        )
    try:
        import zxingcpp
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "Drawing a Data Matrix needs the zxing-cpp package (pip install zxing-cpp)."
        ) from exc
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.DataMatrix, force_square=True)
    image = barcode.to_image(scale=1, add_quiet_zones=False)
    # zxingcpp.Image exports a 2-D uint8 buffer, which its stub does not declare
    rows = cast("list[list[int]]", memoryview(image).tolist())  # type: ignore[arg-type]
    modules = [[value < 128 for value in row] for row in rows]
    _check_bare_datamatrix(modules)
    return modules


def _check_bare_datamatrix(modules: list[list[bool]]) -> None:
    """Raise RuntimeError unless ``modules`` is a square Data Matrix without quiet zone."""
    size = len(modules)
    square = size >= 10 and all(len(row) == size for row in modules)
    framed = square and (
        all(row[0] for row in modules)  # finder: left column dark
        and all(modules[-1])  # finder: bottom row dark
        and all(dark == (x % 2 == 0) for x, dark in enumerate(modules[0]))  # top timing
        and all(row[-1] == ((size - 1 - y) % 2 == 0) for y, row in enumerate(modules))
    )
    if not framed:
        raise RuntimeError(
            "zxing-cpp did not return a bare square Data Matrix module image; check the "
            "installed zxing-cpp version."
        )
