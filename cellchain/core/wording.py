"""A sentence kept with its source text and values, so that a text stored or signed in English
(a bedside check's title and detail, which the two clinicians sign; a unit's label problem,
which such a check quotes) can be read in the reader's language later (issue 21).

The English text is what is stored and signed, as before; beside it the record keeps the
wording (:func:`to_json`): each sentence's source text, marked with ``lazy("…")`` where it is
written so the extractor finds it, and the values of its ``%(name)s`` placeholders. A value
may itself be a wording (a list of lots, a count's working, a unit's kind). A text made
elsewhere, in words of another package, is kept :class:`Verbatim` and shown as it is; a text
quoted as it reads on a thing (a label's printed marking) is :class:`Quoted`.

Written in the kernel so that any package can hand out its sentences as wordings (the label
service does, for the clinic's bedside check and dispatch); ``clinic/wording.py`` re-exports
it under the name the clinic has always used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from cellchain.core.i18n import LazyText, Translated, document_text, english_of, gettext


@dataclass(frozen=True)
class Said:
    """One marked sentence and its values."""

    text: LazyText
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Joined:
    """Several wordings read one after the other."""

    parts: tuple[Wording, ...]
    separator: str = " "


@dataclass(frozen=True)
class Verbatim:
    """A text made elsewhere, shown as it is in every language (as the value of a sentence,
    read through ``document_text``: a stored status word or a fixed sentence the catalogue
    knows reads translated)."""

    text: str


@dataclass(frozen=True)
class Quoted(Verbatim):
    """A text quoted as it reads on a thing (a label's printed marking): never translated,
    not even where the catalogue knows it, so the reader finds it where it is written."""


Wording = Said | Joined | Verbatim


def say(text: LazyText, **values: Any) -> Said:
    """``text`` (``lazy("… %(name)s …")``) with its values, read later in any language."""
    return Said(text, values)


def joined(parts: list[Wording] | tuple[Wording, ...], separator: str = " ") -> Joined:
    return Joined(tuple(parts), separator)


def _render(wording: Wording, translate: bool) -> str:
    if isinstance(wording, Verbatim):
        return wording.text
    if isinstance(wording, Joined):
        return wording.separator.join(_render(part, translate) for part in wording.parts)
    values = {
        name: _render(value, translate) if isinstance(value, Said | Joined | Verbatim) else value
        for name, value in wording.values.items()
    }
    if translate:
        # a value that is a controlled document's text (a visit's name) or a status word
        # the catalogue knows reads in the reader's language too; a quoted text as it reads
        shown = {
            name: document_text(value)
            if isinstance(value, str) and not isinstance(wording.values[name], Quoted)
            else value
            for name, value in values.items()
        }
        return gettext(wording.text.message, **shown)
    return wording.text.message % values if values else wording.text.message


def markup_of(wording: Wording) -> Markup:
    """The text in the language of the moment as HTML, everything escaped, each quoted text
    (a label's printed marking, kept as it reads on the thing) in ``translate="no"``: a page
    shows it as written and no translator, person or browser, changes it."""
    if isinstance(wording, Quoted):
        return Markup('<span translate="no">{}</span>').format(wording.text)
    if isinstance(wording, Verbatim):
        return escape(document_text(wording.text))
    if isinstance(wording, Joined):
        return Markup(escape(wording.separator)).join(markup_of(part) for part in wording.parts)
    values = {
        name: markup_of(value)
        if isinstance(value, Said | Joined | Verbatim)
        else escape(document_text(value) if isinstance(value, str) else value)
        for name, value in wording.values.items()
    }
    template = escape(gettext(wording.text.message))
    return template % values if values else template


def english(wording: Wording) -> str:
    """The source text: what is stored and signed."""
    return _render(wording, translate=False)


def translated(wording: Wording) -> str:
    """The text in the language of the moment."""
    return _render(wording, translate=True)


def text_of(wording: Wording) -> str:
    """The text in the language of the moment that remembers its English
    (``i18n.english_of``): for a page, or a refusal whose audit entry reads English."""
    text = Translated(translated(wording))
    text.english = english(wording)
    return text


def joined_text(parts: Iterable[str], separator: str = " ") -> str:
    """``parts`` (each made by ``_()`` or :func:`text_of`, or a stored English value) joined
    by ``separator``, remembering the English of each joined the same way (which a plain
    ``str.join`` loses): a sentence that embeds the result reads English in its English."""
    pieces = list(parts)
    text = Translated(separator.join(pieces))
    text.english = separator.join(english_of(piece) for piece in pieces)
    return text


class Worded(str):
    """An English text (what a caller stores or signs) that keeps its wording, so that the
    caller can keep the wording beside it and show it translated (:func:`wording_of`). It
    compares, hashes and reads as its English."""

    wording: Wording


def worded(wording: Wording) -> Worded:
    """The English of ``wording``, keeping the wording."""
    text = Worded(english(wording))
    text.wording = wording
    return text


def wording_of(text: str) -> Wording:
    """The wording an English text keeps (:func:`worded`), else the text as it is."""
    kept = getattr(text, "wording", None)
    return kept if kept is not None else Verbatim(text)


def to_json(wording: Wording) -> Any:
    """A JSON value the record keeps beside its English text."""
    if isinstance(wording, Quoted):
        return {"q": wording.text}
    if isinstance(wording, Verbatim):
        return {"t": wording.text}
    if isinstance(wording, Joined):
        return {"j": wording.separator, "p": [to_json(part) for part in wording.parts]}
    return {
        "m": wording.text.message,
        "v": {
            name: to_json(value) if isinstance(value, Said | Joined | Verbatim) else value
            for name, value in wording.values.items()
        },
    }


def from_json(data: Any) -> Wording:
    """The wording :func:`to_json` kept."""
    if "q" in data:
        return Quoted(str(data["q"]))
    if "t" in data:
        return Verbatim(str(data["t"]))
    if "j" in data:
        return Joined(tuple(from_json(part) for part in data["p"]), str(data["j"]))
    return Said(
        LazyText(str(data["m"])),
        {
            name: from_json(value) if isinstance(value, dict) else value
            for name, value in data["v"].items()
        },
    )


def shown(english_text: str, kept: Any) -> str:
    """A stored text in the reader's language: from its kept wording, else (a record stored
    before wordings were kept) the English as stored."""
    if not kept:
        return english_text
    return translated(from_json(kept))
