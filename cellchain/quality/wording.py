"""A document kind's refusal filled in later and still English on record.

``DocumentKind.missing`` is filled with ``str.format`` ("No release specification for
{code} is in force"): :func:`formatted_later` fills its English too, so ``http.unit_of_work``
audits the English (``english_of``). Refusals listing several translated pieces join them
with ``core.wording.joined_text``, which keeps their English the same way.
"""

from __future__ import annotations

from typing import Any

from cellchain.core.i18n import LazyText, Translated, english_of, gettext


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
