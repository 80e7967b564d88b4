"""The label payload: what a label's QR code holds and a keyboard-wedge scanner types.

Format version 1 (``docs/labels.md``)::

    CC1.<identifier with its check character>      e.g.  CC1.X999926000001C0018T

* ``CC`` says "a cellchain label", ``1`` the format version, ``.`` ends the header. The
  identifier is the canonical unit code, DIN or COI identifier: upper-case letters, digits and,
  as a check character only, ``*`` (the MOD 37-2 alphabet). Nothing else is ever in it, so a
  scanner in keyboard mode types it faithfully.
* The payload is read strictly: a header of another version, a missing or truncated identifier,
  or an identifier not written exactly in canonical form is refused, never repaired; the check
  character is verified as for any typed code.
* Anything without the header is read as a code typed by hand, in any of the forms
  :func:`cellchain.core.identifiers.parse_identifier` accepts (spaces, hyphens, a boxed ``[K]``),
  and only with its check character.

:func:`read_scan` is the one way into the system for a typed or scanned DIN, COI identifier or
unit code: the scan box, every API field and form field that takes a code, the bedside, receipt
and the photo scan all reach it (most through ``numbering.lookup``).

A DIN never contains ``.``, so a text is a payload exactly when it starts with ``CC`` followed
by a version and ``.``, even at a facility whose code starts with CC.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from cellchain.core.identifiers import (
    Identifier,
    IdentifierKind,
    InvalidIdentifier,
    parse_identifier,
)

PAYLOAD_VERSION = 1
PAYLOAD_PREFIX = f"CC{PAYLOAD_VERSION}."
_HEADER = re.compile(r"^CC(\d*)\.")


def encode_payload(identifier: Identifier) -> str:
    """The QR content of a label for ``identifier``."""
    return f"{PAYLOAD_PREFIX}{identifier.canonical}"


def is_payload(text: str) -> bool:
    """Whether ``text`` carries a cellchain label header (of any version)."""
    return _HEADER.match((text or "").strip().upper()) is not None


_KIND_NAMES = {"DIN": "a DIN", "COI": "a chain-of-identity identifier", "UNIT": "a unit code"}


def read_scan(text: str, kinds: Collection[IdentifierKind] | None = None) -> Identifier:
    """The identifier a scanned payload or a hand-typed code names, checked; or
    :class:`InvalidIdentifier` saying what is wrong.

    Rule: the full label payload, or the code with its check character; a code typed without
    it, or with a wrong one, is refused (reason ``no_check`` or ``check``). With ``kinds``, a
    well-formed code of another kind is refused too, saying what it is.
    """
    identifier = _read(text)
    if kinds is not None and identifier.kind not in kinds:
        expected = " or ".join(_KIND_NAMES[kind] for kind in kinds)
        raise InvalidIdentifier(
            f"{identifier.display} is {_KIND_NAMES[identifier.kind]}; {expected} is expected here.",
            reason="structure",
            text=text,
        )
    return identifier


def _read(text: str) -> Identifier:
    stripped = (text or "").strip()
    header = _HEADER.match(stripped.upper())
    if header is None:
        return parse_identifier(stripped)
    if header.group(0) != PAYLOAD_PREFIX:
        raise InvalidIdentifier(
            f"{stripped!r} is a cellchain label of format {header.group(0)!r}; this system "
            f"reads {PAYLOAD_PREFIX!r}. Type the code printed under the QR code instead.",
            reason="structure",
            text=text,
        )
    content = stripped[header.end() :]
    if not content:
        raise InvalidIdentifier(
            "The label was read only partly (no code after its header); scan it again.",
            reason="length",
            text=text,
        )
    identifier = parse_identifier(content)
    if content != identifier.canonical:
        raise InvalidIdentifier(
            f"The label content {content!r} is not written as a label writes it; scan it "
            "again or type the printed code.",
            reason="structure",
            text=text,
        )
    return identifier
