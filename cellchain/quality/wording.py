"""Refusals of quality built of several translated pieces, and still English on record.

A refusal listing every problem of a submission (each a whole sentence, or each an item of a
list) is read in the reader's language, while ``http.unit_of_work`` audits its English
(``english_of``): :func:`joined` keeps the English of the pieces joined the same way, which
a plain ``str.join`` would lose.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cellchain.core.i18n import LazyText, Translated, english_of, gettext


def joined(parts: Iterable[str], separator: str) -> str:
    """``parts`` (each made by ``_()``, or a stored English value) joined by ``separator``,
    remembering the English of each joined the same way."""
    pieces = list(parts)
    text = Translated(separator.join(pieces))
    text.english = separator.join(english_of(piece) for piece in pieces)
    return text


class _FilledInBothLanguages(Translated):
    """A translated text with ``{name}`` fields whose ``format`` fills its English too."""

    def format(self, *args: Any, **kwargs: Any) -> str:
        text = Translated(str.format(self, *args, **kwargs))
        text.english = self.english.format(*args, **kwargs)
        return text


class LazyFormatted(LazyText):
    """A text defined at import that its reader fills with ``str.format`` (the refusal
    ``DocumentKind.missing``): read in the language of the moment, filled in English as
    well, so the refusal's audit entry reads English."""

    __slots__ = ()

    def __str__(self) -> str:
        shown = gettext(self.message)
        text = _FilledInBothLanguages(shown)
        text.english = english_of(shown)
        return text


def formatted_later(text: LazyText) -> LazyFormatted:
    """``text`` (``lazy("… {code} …")``) as a :class:`LazyFormatted`."""
    return LazyFormatted(text.message)
