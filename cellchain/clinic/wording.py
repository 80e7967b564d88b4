"""A sentence kept with its source text and values, so that a record stored in English (a
bedside check's title and detail, which the two clinicians sign) can be read in the reader's
language later (issue 21).

The module is the kernel's :mod:`cellchain.core.wording` (so that the label service, which
the clinic calls, can hand out its sentences as wordings too); the clinic imports it here by
the name it always used.
"""

from __future__ import annotations

from cellchain.core.wording import (
    Joined,
    Quoted,
    Said,
    Verbatim,
    Worded,
    Wording,
    english,
    from_json,
    joined,
    joined_text,
    say,
    shown,
    text_of,
    to_json,
    translated,
    worded,
    wording_of,
)

__all__ = [
    "Joined",
    "Quoted",
    "Said",
    "Verbatim",
    "Worded",
    "Wording",
    "english",
    "from_json",
    "joined",
    "joined_text",
    "say",
    "shown",
    "text_of",
    "to_json",
    "translated",
    "worded",
    "wording_of",
]
