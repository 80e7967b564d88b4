"""English words left on a page that should read in another language (issue 21).

``english_words(html, data=...)`` reads what a person sees of a page: the text of every
element but scripts and styles (the ``<title>`` included), and the attributes read aloud or
shown on hover or in an empty field (``title``, ``placeholder``, ``aria-label``, ``alt``, a
button's ``value``). From that text it takes away the values that come from the records
(``data``: study IDs, names, a reason typed by the test, a stored signature meaning …),
then every token holding a digit (codes, numbers, times, ``-180.0``), then the codes and
units every language keeps (:data:`KEPT`) and single capitals (a code's check character
shown apart). What is left and written in Latin letters is an
untranslated word.

``assert_translated(pages, data=...)`` fails listing each page with its English words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser

#: Attributes whose text a person reads (or hears from a screen reader).
READ_ATTRIBUTES = frozenset({"title", "placeholder", "aria-label", "alt"})

#: Codes, standards, units and names that are the same in every language (preamble: "Keep as
#: is"); compared as written, so "Dose" is not kept because "DOSE" would be.
KEPT = frozenset(
    {
        # identifiers and standards
        "DIN", "ISBT", "ICCBBA", "MSC", "COI", "CoA", "QR", "API", "QA", "QC", "ID", "GMP",
        "FHIR", "R",
        "CSV", "JSON", "PDF", "CTCAE", "ICH", "MedDRA", "BASDAI", "BASFI", "ASDAS", "CRP",
        "ESR", "DMARD", "NUL", "GET", "HEAD", "OPTIONS", "ln", "Q", "SMTP",
        # the abbreviations Chinese texts write as they are (the glossary's CPD; a cell
        # surface marker, a performance scale, a solvent, file formats, data standards)
        "CPD", "PD", "DMSO", "ECOG", "HIV", "HLA", "DR", "PBMC", "UTC", "XML", "PNG", "ZPL",
        "CDISC", "ODM", "DSMB", "JPEG", "ISO", "MB", "TOML",
        # a medium's name as the lab writes it (α-MEM), a label printer's maker
        "MEM", "Zebra",
        # units of measure
        "mL", "L", "kg", "g", "h", "min", "s", "mm", "mg", "C", "K", "EU", "mol", "dpi",
        # the product's own name, and the language switch's names (each in itself)
        "cellchain", "English",
    }
)  # fmt: skip

_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")
_DIGIT = re.compile(r"\d")


class _VisibleText(HTMLParser):
    """The pieces of text a person reads: text nodes outside scripts and styles, and the
    read attributes (a button's value too)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._hidden = 0
        self._open: list[str] = []  # the elements open around the text (void ones too)
        # depths of the open elements marked translate="no" (positive) or "yes" (negative)
        self._kept_at: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "style"):
            self._hidden += 1
        # translate="no": a record's text as stored and signed (a custody note, a location,
        # a signature's meaning), which is shown as it was written in every language
        # (HTML: an element's translate="no" covers its attributes and its content, and a
        # translate="yes" inside it makes that element's own text translatable again)
        self._open.append(tag)
        translate = values.get("translate")
        if translate in ("no", "yes"):
            self._kept_at.append(len(self._open) if translate == "no" else -len(self._open))
        if self._kept:
            return
        for name in READ_ATTRIBUTES:
            if values.get(name):
                self.pieces.append(str(values[name]))
        # a button's text is its content; an input button shows its value
        shows_value = tag == "input" and (values.get("type") or "") in ("submit", "button", "reset")
        if shows_value and values.get("value"):
            self.pieces.append(str(values["value"]))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1
        if tag in self._open:
            while self._open:
                depth = len(self._open)
                if self._kept_at and abs(self._kept_at[-1]) == depth:
                    self._kept_at.pop()
                if self._open.pop() == tag:
                    break

    @property
    def _kept(self) -> bool:
        """Inside an element marked translate="no" (and not in a translate="yes" one in it)."""
        return bool(self._kept_at) and self._kept_at[-1] > 0

    def handle_data(self, data: str) -> None:
        if not self._hidden and not self._kept and data.strip():
            self.pieces.append(data)


def visible_text(html: str) -> list[str]:
    """The pieces of ``html`` a person reads, in document order."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return parser.pieces


def english_words(html: str, *, data: Iterable[str] = ()) -> list[str]:
    """The untranslated words of a page, in order, each once; ``data``: values of the
    records shown, taken away first (longest first, so a name is removed whole)."""
    values = sorted({value for value in data if value}, key=len, reverse=True)
    found: list[str] = []
    for piece in visible_text(html):
        for value in values:
            piece = piece.replace(value, " ")
        for token in piece.split():
            if _DIGIT.search(token):
                continue
            for word in _WORD.findall(token):
                # one capital letter alone: a code's boxed check character
                if len(word) == 1 and word.isupper():
                    continue
                if word not in KEPT and word not in found:
                    found.append(word)
    return found


def untranslated(pages: Mapping[str, str], *, data: Iterable[str] = ()) -> dict[str, list[str]]:
    """Each page (by its name) with English words left on it; pages with none are left out."""
    kept = list(data)
    left = {name: english_words(html, data=kept) for name, html in pages.items()}
    return {name: words for name, words in left.items() if words}


def assert_translated(pages: Mapping[str, str], *, data: Iterable[str] = ()) -> None:
    """Fail, naming every page and its English words, unless no page has any."""
    left = untranslated(pages, data=data)
    assert not left, "English words left:\n" + "\n".join(
        f"  {name}: {' '.join(words)}" for name, words in left.items()
    )
