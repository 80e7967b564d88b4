"""The fonts a PDF prints with, read back from its pages' resources."""

from __future__ import annotations

import io
import re

from pypdf import PdfReader

#: a font embedded as a subset: six capital letters, a plus, the font's name
SUBSET = re.compile(r"^/[A-Z]{6}\+")


def page_fonts(pdf: bytes) -> dict[str, bool]:
    """Each font the pages use, by its PDF name (``/AAAAAA+WenQuanYiMicroHei-0``), and
    whether the font's file is embedded in the document (a ``/FontFile2`` stream)."""
    found: dict[str, bool] = {}
    for page in PdfReader(io.BytesIO(pdf)).pages:
        resources = page["/Resources"].get_object()
        fonts = resources.get("/Font")
        if fonts is None:
            continue
        for reference in fonts.get_object().values():
            font = reference.get_object()
            descriptor = font.get("/FontDescriptor")
            embedded = descriptor is not None and "/FontFile2" in descriptor.get_object()
            found[str(font["/BaseFont"])] = embedded
    return found


#: what pypdf reads for a character drawn in a font that has no glyph for it (an empty box)
NO_GLYPH = "\x00"


def embeds_wenquanyi(pdf: bytes) -> bool:
    """The document prints with WenQuanYi Micro Hei, embedded as a subset."""
    fonts = page_fonts(pdf)
    chinese = [name for name in fonts if "WenQuanYi" in name]
    return bool(chinese) and all(SUBSET.match(name) and fonts[name] for name in chinese)


def glyph_fonts(pdf: bytes) -> dict[str, set[str]]:
    """Each character the pages draw → the fonts it is drawn in (``/BaseFont`` names)."""
    drawn: dict[str, set[str]] = {}

    def visit(text: str, _cm: object, _tm: object, font: object, _size: object) -> None:
        if not text or font is None:
            return
        name = str(font.get("/BaseFont"))  # type: ignore[attr-defined]
        for char in text:
            drawn.setdefault(char, set()).add(name)

    for page in PdfReader(io.BytesIO(pdf)).pages:
        page.extract_text(visitor_text=visit)
    return drawn
