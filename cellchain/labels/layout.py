"""One label laid out once, in millimetres: what every output format draws.

A template (``labels/*.toml``) says where the QR code and each field go; ``lay_out`` turns a
template and a label's content into a ``Drawing``: the 2-D symbols with their modules, the text
lines already wrapped to their boxes, and the frame around the boxed check character. The PNG,
PDF and ZPL writers only translate these primitives into pixels, points or printer dots; none
of them decides where anything goes, so the three outputs cannot drift apart.

Text is measured with the fonts the labels print in, DejaVu Sans and DejaVu Sans Mono (their
zero is distinct from O, their one from I and l), falling back to Pillow's font when DejaVu is
not installed. Chinese characters (a label printed in ``zh_Hans``) are measured and printed in
the Chinese font the PDF documents use (``core.pdf.cjk_font_path``: WenQuanYi Micro Hei,
``CELLCHAIN_CJK_FONT``); everything else on the same line stays in DejaVu, so a code is never
set in the Chinese font. Chinese is wrapped between characters (it has no spaces), never before
a closing punctuation mark.

A field's text is set at its template size; when it does not fit its box there it is set
smaller, down to ``MIN_SCALE`` of that size (never below ``MIN_TEXT_MM``), so that it prints
whole. Text that does not fit even then is cut at the last whole line at its template size, as
it always was (``Drawing.cut`` names those fields). An identifier with its boxed check
character is one line, never wrapped: it is set smaller in the same way to fit its box's width,
and named in ``Drawing.cut`` when it cannot (it used to run past its box unmeasured).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from PIL import ImageFont

from cellchain.core.i18n import _
from cellchain.core.pdf import (
    CJK_FONT_PACKAGE,
    DEJAVU_DIRS,
    FontMissing,
    cjk_font_path,
    cjk_runs,
    has_cjk,
)
from cellchain.labels.qr import qr_matrix
from cellchain.labels.templates import Box, FieldLayout, LabelTemplate

#: fields printed in the monospaced font (codes a person may have to type)
MONO_FIELDS: frozenset[str] = frozenset({"identifier", "coi"})
#: the space between wrapped lines, as a multiple of the text height
LINE_SPACING = 1.15
#: font size at which text is measured; widths scale linearly with size
_MEASURE_SIZE = 1000
#: text that does not fit its box is set smaller, down to this fraction of its size …
MIN_SCALE = 0.65
#: … and never below this height (1.2 mm: about 3.4 pt, 14 dots at 300 dpi)
MIN_TEXT_MM = 1.2
#: each step down while looking for the size at which a text fits, as a fraction of its size
_SHRINK_STEP = 0.025
#: Chinese punctuation a line never starts with (it stays with the character before it)
_CLOSING = frozenset("，。、：；！？）」』】》〉”’…—")
#: and punctuation a line never ends with
_OPENING = frozenset("（「『【《〈“‘")

Modules = tuple[tuple[bool, ...], ...]


@dataclass(frozen=True)
class LabelContent:
    """What one label prints: the QR payload, each field's text, and optionally the ISBT 128
    compound message for the Data Matrix (only on templates that place one)."""

    payload: str
    #: each field's text in English: what the print log records (the status marking) and
    #: what a label printed in English alone prints
    texts: dict[str, str] = field(default_factory=dict)
    isbt_message: str | None = None
    #: what the label prints, in the site's label languages (``CELLCHAIN_LABEL_LANGUAGES``),
    #: when that is not the English ``texts``
    printed: dict[str, str] | None = None

    @property
    def printed_texts(self) -> dict[str, str]:
        """Each field's text as the label prints it."""
        return self.texts if self.printed is None else self.printed


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
    #: fields whose text did not fit their box even at the smallest size, cut at the last
    #: whole line
    cut: tuple[str, ...] = ()


def lay_out(template: LabelTemplate, content: LabelContent) -> Drawing:
    """Place the content on the template (its ``printed_texts``). A field the content leaves
    empty stays blank; text that does not fit its box is set smaller down to the floor
    (``MIN_SCALE``, ``MIN_TEXT_MM``), and what does not fit even then is cut at the last
    whole line at its template size (named in ``Drawing.cut``)."""
    symbols = [Symbol("qr", content.payload, template.qr, qr_modules(content.payload))]
    if template.datamatrix is not None and content.isbt_message:
        from cellchain.labels.isbt128 import datamatrix_modules

        modules = tuple(tuple(row) for row in datamatrix_modules(content.isbt_message))
        symbols.append(Symbol("datamatrix", content.isbt_message, template.datamatrix, modules))
    lines: list[TextLine] = []
    frames: list[Frame] = []
    cut: list[str] = []
    texts = content.printed_texts
    if any(has_cjk(text) for text in texts.values()):
        cjk_font_file()  # refused before anything is measured when the font is missing
    for layout in template.fields:
        text = texts.get(layout.name, "")
        if not text:
            continue
        if layout.name in MONO_FIELDS and _has_boxed_check(text):
            line, frame, whole = _boxed_check_lines(layout, text)
            lines.extend(line)
            frames.append(frame)
            if not whole:
                cut.append(layout.name)
        else:
            placed, whole = _wrapped_lines(layout, text)
            lines.extend(placed)
            if not whole:
                cut.append(layout.name)
    return Drawing(
        template.width_mm,
        template.height_mm,
        tuple(symbols),
        tuple(lines),
        tuple(frames),
        tuple(cut),
    )


@functools.lru_cache(maxsize=4096)
def qr_modules(payload: str) -> Modules:
    """The QR code of ``payload``: error correction M (15 % of the code may be lost), the
    smallest version that holds it; the symbol ``qrcode`` makes, its mask chosen faster
    (``qr.py``)."""
    return tuple(tuple(row) for row in qr_matrix(payload))


@functools.lru_cache(maxsize=16384)
def text_width_mm(text: str, size_mm: float, *, bold: bool, mono: bool) -> float:
    """How wide ``text`` prints at font size ``size_mm`` (its Chinese in the Chinese font)."""
    if not has_cjk(text):
        return measuring_font(bold=bold, mono=mono).getlength(text) / _MEASURE_SIZE * size_mm
    width = 0.0
    for run, cjk in text_runs(text):
        font = cjk_font(_MEASURE_SIZE) if cjk else measuring_font(bold=bold, mono=mono)
        width += font.getlength(run)
    return width / _MEASURE_SIZE * size_mm


#: ``text`` cut into runs of Chinese characters (True: printed in the Chinese font) and of
#: other characters (printed in DejaVu): the PDFs' rule
text_runs = cjk_runs


def cjk_font_file() -> Path:
    """The Chinese font's file (``CELLCHAIN_CJK_FONT``, else Debian's WenQuanYi Micro Hei);
    refused (503, naming the package) when it is not installed: a label is never printed with
    empty boxes for its Chinese."""
    path = cjk_font_path()
    if not path.is_file():
        raise FontMissing(
            _(
                "The Chinese font for labels is not installed (%(path)s). Install the Debian "
                "package %(package)s (apt-get install %(package)s) or set CELLCHAIN_CJK_FONT "
                "to a TrueType font with Chinese characters.",
                path=str(path),
                package=CJK_FONT_PACKAGE,
            )
        )
    return path


def cjk_font(size: int) -> ImageFont.FreeTypeFont:
    """The Chinese font at ``size`` pixels (the first face of a .ttc)."""
    return _cjk_font(str(cjk_font_file()), size)


@functools.lru_cache(maxsize=256)
def _cjk_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size, index=0)


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


def _boxed_check_lines(layout: FieldLayout, text: str) -> tuple[list[TextLine], Frame, bool]:
    """``X9999 26 000001 C0018 [T]``: the code, a space, and the check character in a frame,
    on one line; and whether it fits its box. It is never wrapped: at the template's size,
    else at the largest smaller size down to the floor (as any text) at which the line and
    its frame are no wider than the box; else at the template's size, running past the box
    (the caller names the field as cut)."""
    body = text[: text.rindex("[")].rstrip() + " "
    check = text[text.rindex("[") + 1 : -1]
    bold = layout.bold
    x, y = layout.box.x_mm, layout.box.y_mm
    for size in _sizes(layout.text_mm):
        if _boxed_width(body, check, size, bold=bold) <= layout.box.width_mm + 1e-6:
            whole = size <= layout.box.height_mm + 1e-6
            break
    else:
        size, whole = layout.text_mm, False
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
    return lines, frame, whole


def _boxed_width(body: str, check: str, size: float, *, bold: bool) -> float:
    """How wide the code and its framed check character print at ``size``."""
    check_width = text_width_mm(check, size, bold=bold, mono=True)
    return text_width_mm(body, size, bold=bold, mono=True) + check_width + size * 0.12


def _wrapped_lines(layout: FieldLayout, text: str) -> tuple[list[TextLine], bool]:
    """The field's lines, and whether the whole text fits: at the template's size, else at
    the largest smaller size down to the floor that holds it, else cut at the template's
    size."""
    mono = layout.name in MONO_FIELDS
    for size in _sizes(layout.text_mm):
        wrapped = _wrap(text, size, layout.box.width_mm, bold=layout.bold, mono=mono)
        if _fits(wrapped, size, layout, mono=mono):
            return _placed(layout, wrapped, size, mono=mono), True
    size = layout.text_mm
    wrapped = _wrap(text, size, layout.box.width_mm, bold=layout.bold, mono=mono)
    return _placed(layout, wrapped, size, mono=mono), False


def _sizes(text_mm: float) -> list[float]:
    """The sizes tried, largest first: the template's, then down in steps to the floor."""
    floor = min(text_mm, max(MIN_TEXT_MM, text_mm * MIN_SCALE))
    sizes = [text_mm]
    step = 1
    while text_mm * (1 - step * _SHRINK_STEP) > floor + 1e-9:
        sizes.append(round(text_mm * (1 - step * _SHRINK_STEP), 4))
        step += 1
    if floor < text_mm:
        sizes.append(floor)
    return sizes


def _fits(lines: list[str], size: float, layout: FieldLayout, *, mono: bool) -> bool:
    """Every line is inside the box: its height holds them, each is no wider than the box."""
    height = size + (len(lines) - 1) * size * LINE_SPACING
    if height > layout.box.height_mm + 1e-6:
        return False
    return all(
        text_width_mm(line, size, bold=layout.bold, mono=mono) <= layout.box.width_mm + 1e-6
        for line in lines
    )


def _placed(layout: FieldLayout, wrapped: list[str], size: float, *, mono: bool) -> list[TextLine]:
    """The lines from the box's top, as many as its height holds."""
    bottom = layout.box.y_mm + layout.box.height_mm
    lines: list[TextLine] = []
    y = layout.box.y_mm
    for line in wrapped:
        if y + size > bottom + 1e-6:
            break
        lines.append(TextLine(layout.box.x_mm, y, size, line, layout.bold, mono))
        y += size * LINE_SPACING
    return lines


def _wrap(text: str, size_mm: float, width_mm: float, *, bold: bool, mono: bool) -> list[str]:
    """Lines no wider than ``width_mm`` where the text allows: broken at spaces, and between
    Chinese characters. A word wider than the box stays whole on its line."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for piece, spaced in _pieces(paragraph):
            candidate = f"{line} {piece}" if spaced and line else f"{line}{piece}"
            too_wide = text_width_mm(candidate, size_mm, bold=bold, mono=mono) > width_mm
            if line and too_wide:
                lines.append(line)
                line = piece
            else:
                line = candidate
        lines.append(line)
    return lines


def _pieces(paragraph: str) -> list[tuple[str, bool]]:
    """What a line may be broken between: the words (True: a space before it), and within a
    word each Chinese character on its own (no space before it), a closing punctuation mark
    kept with the character before it and an opening one with the character after it."""
    pieces: list[tuple[str, bool]] = []
    for word in paragraph.split():
        if not has_cjk(word):
            pieces.append((word, True))
            continue
        parts: list[str] = []
        for run, cjk in text_runs(word):
            if not cjk:
                if parts and run[0] in _CLOSING:  # "隔离——": the dashes stay with 离
                    parts[-1] += run
                else:
                    parts.append(run)
                continue
            for char in run:
                if parts and (char in _CLOSING or parts[-1][-1] in _OPENING):
                    parts[-1] += char
                else:
                    parts.append(char)
        pieces.append((parts[0], True))
        pieces.extend((part, False) for part in parts[1:])
    return pieces
