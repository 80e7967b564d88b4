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

from cellchain.core.i18n import _
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


def read_scan(text: str, kinds: Collection[IdentifierKind] | None = None) -> Identifier:
    """The identifier a scanned payload or a hand-typed code names, checked; or
    :class:`InvalidIdentifier` saying what is wrong.

    Rule: the full label payload, or the code with its check character; a code typed without
    it, or with a wrong one, is refused (reason ``no_check`` or ``check``). With ``kinds``, a
    well-formed code of another kind is refused too, saying what it is.
    """
    identifier = _read(text)
    if kinds is not None and identifier.kind not in kinds:
        raise InvalidIdentifier(_other_kind(identifier, set(kinds)), reason="structure", text=text)
    return identifier


def _other_kind(identifier: Identifier, expected: set[IdentifierKind]) -> str:
    """Why a well-formed code of a kind not ``expected`` here is refused, as one sentence."""
    code = identifier.display
    if identifier.kind == "DIN":
        if expected == {"UNIT"}:
            return _("%(code)s is a DIN; a unit code is expected here.", code=code)
        if expected == {"COI"}:
            return _(
                "%(code)s is a DIN; a chain-of-identity identifier is expected here.", code=code
            )
        return _(
            "%(code)s is a DIN; a unit code or a chain-of-identity identifier is expected here.",
            code=code,
        )
    if identifier.kind == "UNIT":
        if expected == {"DIN"}:
            return _("%(code)s is a unit code; a DIN is expected here.", code=code)
        if expected == {"COI"}:
            return _(
                "%(code)s is a unit code; a chain-of-identity identifier is expected here.",
                code=code,
            )
        return _(
            "%(code)s is a unit code; a DIN or a chain-of-identity identifier is expected here.",
            code=code,
        )
    if expected == {"DIN"}:
        return _("%(code)s is a chain-of-identity identifier; a DIN is expected here.", code=code)
    if expected == {"UNIT"}:
        return _(
            "%(code)s is a chain-of-identity identifier; a unit code is expected here.", code=code
        )
    return _(
        "%(code)s is a chain-of-identity identifier; a DIN or a unit code is expected here.",
        code=code,
    )


def _read(text: str) -> Identifier:
    stripped = (text or "").strip()
    header = _HEADER.match(stripped.upper())
    if header is None:
        return parse_identifier(stripped)
    if header.group(0) != PAYLOAD_PREFIX:
        raise InvalidIdentifier(
            _(
                "%(text)s is a cellchain label of format %(format)s; this system reads "
                "%(ours)s. Type the code printed under the QR code instead.",
                text=repr(stripped),
                format=repr(header.group(0)),
                ours=repr(PAYLOAD_PREFIX),
            ),
            reason="structure",
            text=text,
        )
    content = stripped[header.end() :]
    if not content:
        raise InvalidIdentifier(
            _("The label was read only partly (no code after its header); scan it again."),
            reason="length",
            text=text,
        )
    identifier = parse_identifier(content)
    if content != identifier.canonical:
        raise InvalidIdentifier(
            _(
                "The label content %(content)s is not written as a label writes it; scan it "
                "again or type the printed code.",
                content=repr(content),
            ),
            reason="structure",
            text=text,
        )
    return identifier
