"""One label laid out once, in millimetres: what every output format draws.

A template (``labels/*.toml``) says where the QR code and each field go; ``lay_out`` turns a
template and a label's content into a ``Drawing``: the 2-D symbols with their modules, the text
lines already wrapped to their boxes, and the frame around the boxed check character. The PNG,
PDF and ZPL writers only translate these primitives into pixels, points or printer dots; none
of them decides where anything goes, so the three outputs cannot drift apart.

Text is measured with the fonts the labels print in, DejaVu Sans and DejaVu Sans Mono (their
zero is distinct from O, their one from I and l), falling back to Pillow's font when DejaVu is
not installed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from PIL import ImageFont

from cellchain.core.pdf import DEJAVU_DIRS
from cellchain.labels.qr import qr_matrix
from cellchain.labels.templates import Box, FieldLayout, LabelTemplate

#: fields printed in the monospaced font (codes a person may have to type)
MONO_FIELDS: frozenset[str] = frozenset({"identifier", "coi"})
#: the space between wrapped lines, as a multiple of the text height
LINE_SPACING = 1.15
#: font size at which text is measured; widths scale linearly with size
_MEASURE_SIZE = 1000

Modules = tuple[tuple[bool, ...], ...]


@dataclass(frozen=True)
class LabelContent:
    """What one label prints: the QR payload, each field's text, and optionally the ISBT 128
    compound message for the Data Matrix (only on templates that place one)."""

    payload: str
    texts: dict[str, str] = field(default_factory=dict)
    isbt_message: str | None = None


@dataclass(frozen=True)
class Symbol:
    """A 2-D code: its modules (True is dark, no quiet zone) centred in a square."""

    kind: str  #: "qr" or "datamatrix"
    text: str  #: what it encodes
    box: Box
    modules: Modules


@dataclass(frozen=True)
class TextLine:
    """One line of text; ``x_mm``/``y_mm`` is the top-left of its line box."""

    x_mm: float
    y_mm: float
    size_mm: float  #: font size (em height)
    text: str
    bold: bool
    mono: bool


@dataclass(frozen=True)
class Frame:
    """A rectangle outline (the box around a check character)."""

    box: Box
    line_mm: float


@dataclass(frozen=True)
class Drawing:
    """Everything one label prints, positioned in millimetres from its top-left corner."""

    width_mm: float
    height_mm: float
    symbols: tuple[Symbol, ...]
    lines: tuple[TextLine, ...]
    frames: tuple[Frame, ...]


def lay_out(template: LabelTemplate, content: LabelContent) -> Drawing:
    """Place the content on the template. A field the content leaves empty stays blank; text
    that does not fit its box after wrapping is cut at the last whole line."""
    symbols = [Symbol("qr", content.payload, template.qr, qr_modules(content.payload))]
    if template.datamatrix is not None and content.isbt_message:
        from cellchain.labels.isbt128 import datamatrix_modules

        modules = tuple(tuple(row) for row in datamatrix_modules(content.isbt_message))
        symbols.append(Symbol("datamatrix", content.isbt_message, template.datamatrix, modules))
    lines: list[TextLine] = []
    frames: list[Frame] = []
    for layout in template.fields:
        text = content.texts.get(layout.name, "")
        if not text:
            continue
        if layout.name in MONO_FIELDS and _has_boxed_check(text):
            line, frame = _boxed_check_lines(layout, text)
            lines.extend(line)
            frames.append(frame)
        else:
            lines.extend(_wrapped_lines(layout, text))
    return Drawing(
        template.width_mm, template.height_mm, tuple(symbols), tuple(lines), tuple(frames)
    )


@functools.lru_cache(maxsize=4096)
def qr_modules(payload: str) -> Modules:
    """The QR code of ``payload``: error correction M (15 % of the code may be lost), the
    smallest version that holds it; the symbol ``qrcode`` makes, its mask chosen faster
    (``qr.py``)."""
    return tuple(tuple(row) for row in qr_matrix(payload))


@functools.lru_cache(maxsize=16384)
def text_width_mm(text: str, size_mm: float, *, bold: bool, mono: bool) -> float:
    """How wide ``text`` prints at font size ``size_mm``."""
    return measuring_font(bold=bold, mono=mono).getlength(text) / _MEASURE_SIZE * size_mm


def ascent_ratio(*, bold: bool, mono: bool) -> float:
    """The font's ascent as a fraction of its size: where the baseline lies below the top."""
    ascent, _descent = measuring_font(bold=bold, mono=mono).getmetrics()
    return ascent / _MEASURE_SIZE


@functools.cache
def font_path(*, bold: bool, mono: bool) -> Path | None:
    """The DejaVu file a label prints with, or None when DejaVu is not installed."""
    name = "DejaVuSansMono" if mono else "DejaVuSans"
    file = f"{name}-Bold.ttf" if bold else f"{name}.ttf"
    for folder in DEJAVU_DIRS:
        path = folder / file
        if path.is_file():
            return path
    return None


@functools.cache
def measuring_font(*, bold: bool, mono: bool) -> ImageFont.FreeTypeFont:
    """The font at the measuring size."""
    return pillow_font(_MEASURE_SIZE, bold=bold, mono=mono)


@functools.lru_cache(maxsize=256)
def pillow_font(size: int, *, bold: bool, mono: bool) -> ImageFont.FreeTypeFont:
    """The label font at ``size`` pixels, for measuring and for drawing PNGs."""
    path = font_path(bold=bold, mono=mono)
    if path is not None:
        return ImageFont.truetype(str(path), size)
    # with FreeType (which truetype above needs too, and Pillow's wheels have) the default
    # font at a size is a FreeTypeFont; only a Pillow without FreeType gives a bitmap font
    return cast(ImageFont.FreeTypeFont, ImageFont.load_default(size=size))


# --- fields -------------------------------------------------------------------------------------


def _has_boxed_check(text: str) -> bool:
    return text.endswith("]") and "[" in text


def _boxed_check_lines(layout: FieldLayout, text: str) -> tuple[list[TextLine], Frame]:
    """``X9999 26 000001 C0018 [T]``: the code, a space, and the check character in a frame."""
    body = text[: text.rindex("[")].rstrip() + " "
    check = text[text.rindex("[") + 1 : -1]
    size, bold = layout.text_mm, layout.bold
    x, y = layout.box.x_mm, layout.box.y_mm
    check_x = x + text_width_mm(body, size, bold=bold, mono=True)
    check_width = text_width_mm(check, size, bold=bold, mono=True)
    pad = size * 0.12
    frame = Frame(
        Box(check_x - pad, y - pad * 0.5, check_width + 2 * pad, size * 1.1 + pad),
        line_mm=max(0.15, size * 0.06),
    )
    lines = [
        TextLine(x, y, size, body.rstrip(), bold, True),
        TextLine(check_x, y, size, check, bold, True),
    ]
    return lines, frame


def _wrapped_lines(layout: FieldLayout, text: str) -> list[TextLine]:
    size, bold = layout.text_mm, layout.bold
    mono = layout.name in MONO_FIELDS
    bottom = layout.box.y_mm + layout.box.height_mm
    lines: list[TextLine] = []
    y = layout.box.y_mm
    for line in _wrap(text, size, layout.box.width_mm, bold=bold, mono=mono):
        if y + size > bottom + 1e-6:
            break
        lines.append(TextLine(layout.box.x_mm, y, size, line, bold, mono))
        y += size * LINE_SPACING
    return lines


def _wrap(text: str, size_mm: float, width_mm: float, *, bold: bool, mono: bool) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            too_wide = text_width_mm(candidate, size_mm, bold=bold, mono=mono) > width_mm
            if line and too_wide:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines
