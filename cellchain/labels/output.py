"""The three print formats, each a translation of a laid-out ``Drawing`` (``layout.py``).

- **PNG** at 300 dpi, 1 bit per pixel (Pillow), one label at its exact size, for a desktop
  printer or a screen.
- **PDF** sheet (reportlab): many labels at their exact size on A4 pages, each outlined in a
  light cut line, symbols drawn as vector modules so they stay sharp at any printer resolution.
- **ZPL** for Zebra thermal printers: one ``^XA … ^XZ`` label per copy, the QR code printed by
  the printer itself with ``^BQ`` from the same payload, text with the scalable font ``^A0``.
  A site whose labels print in a language other than English (``CELLCHAIN_LABEL_LANGUAGES``)
  sends UTF-8 (``^CI28``) and sets each line with Chinese in the printer-resident font named by
  ``CELLCHAIN_ZPL_CJK_FONT``; without that setting its ZPL is refused (``PrinterFontMissing``).

Chinese text is drawn in the Chinese font (``layout.cjk_font``) run by run, everything else on
the same line in DejaVu, on the baseline DejaVu gives the line.

Symbols are drawn with whole dots (PNG, ZPL) per module, so module edges are sharp; a code is
never stretched, only scaled down to the largest whole module that fits its square.
"""

from __future__ import annotations

import functools
import io
import math
import zlib
from collections.abc import Iterable, Sequence

from PIL import Image, ImageDraw
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from cellchain.core.i18n import SOURCE_LANGUAGE, _, lazy
from cellchain.core.pdf import CJK_FONT_NAME, Fonts, cjk_font_available, has_cjk, load_fonts
from cellchain.errors import DomainError
from cellchain.labels.layout import (
    Drawing,
    Modules,
    Symbol,
    TextLine,
    ascent_ratio,
    cjk_font,
    cjk_font_file,
    pillow_font,
    text_runs,
)

PNG_DPI = 300
#: how the PNG is deflated: a 1-bit label is runs of one byte value, which zlib's run-length
#: strategy at level 1 finds quickest and smallest (10.2 KiB a cryobag label; the default
#: strategy: 12.7 KiB and 10 % slower; level 6: 10.8 KiB and 60 % slower)
PNG_COMPRESS_LEVEL = 1
PNG_COMPRESS_TYPE = zlib.Z_RLE
#: text lines kept rendered (a few KiB each): a lot's labels share all their lines but the
#: identifier, so a lot of a few hundred bags stays within it
TEXT_CACHE_SIZE = 1024
MM_PER_INCH = 25.4
#: the page a PDF sheet is printed on, its margin and the gap between labels
SHEET_SIZE = A4
SHEET_MARGIN_MM = 5.0
SHEET_GAP_MM = 3.0


# --- PNG ----------------------------------------------------------------------------------------


def render_png(drawing: Drawing, *, dpi: int = PNG_DPI) -> bytes:
    """The label at its exact size in pixels at ``dpi``, as a 1-bit PNG with the dpi recorded.

    One bit per pixel, as a label printer prints: black or white, text rendered without
    grey edges (FreeType's monochrome mode, hinted for the pixel grid), modules whole dots.
    The symbols are drawn as a module-sized image scaled up by a whole factor, and each text
    line is pasted from a cache of lines already rendered (a lot's labels share most of their
    lines), so a label costs a few pastes and the PNG's deflate of an eighth of the bytes a
    greyscale image had."""
    image = Image.new("1", (_dots(drawing.width_mm, dpi), _dots(drawing.height_mm, dpi)), 255)
    for symbol in drawing.symbols:
        left, top, module = _symbol_grid(symbol, dpi)
        image.paste(0, (left, top), _symbol_mask(symbol.modules, module))
    for line in drawing.lines:
        offset_x, offset_y, mask = text_mask(
            line.text, _dots(line.size_mm, dpi), bold=line.bold, mono=line.mono
        )
        x, y = _dots(line.x_mm, dpi) + offset_x, _dots(line.y_mm, dpi) + offset_y
        image.paste(0, (x, y), mask)
    draw = ImageDraw.Draw(image)
    for frame in drawing.frames:
        box = frame.box
        draw.rectangle(
            (
                _dots(box.x_mm, dpi),
                _dots(box.y_mm, dpi),
                _dots(box.x_mm + box.width_mm, dpi),
                _dots(box.y_mm + box.height_mm, dpi),
            ),
            outline=0,
            width=max(1, _dots(frame.line_mm, dpi)),
        )
    buffer = io.BytesIO()
    image.save(
        buffer,
        format="PNG",
        dpi=(dpi, dpi),
        compress_level=PNG_COMPRESS_LEVEL,
        compress_type=PNG_COMPRESS_TYPE,
    )
    return buffer.getvalue()


def _symbol_mask(modules: Modules, module: int) -> Image.Image:
    """The symbol's dark modules (255) as a mask, each module ``module`` dots square."""
    count = len(modules)
    cells = bytes(255 if dark else 0 for row in modules for dark in row)
    small = Image.frombytes("L", (count, len(modules[0]) if modules else 0), cells)
    return small.resize((count * module, count * module), Image.Resampling.NEAREST)


@functools.lru_cache(maxsize=TEXT_CACHE_SIZE)
def text_mask(text: str, size: int, *, bold: bool, mono: bool) -> tuple[int, int, Image.Image]:
    """``text`` at ``size`` pixels rendered once in 1-bit (FreeType's monochrome mode, as
    Pillow draws text on a 1-bit image), as a mask (255 where the text is dark) and its
    offset from where the text is placed: pasting it there sets the pixels drawing the text
    there would."""
    if has_cjk(text):
        return _mixed_text_mask(text, size, bold=bold, mono=mono)
    font = pillow_font(size, bold=bold, mono=mono)
    left, top, right, bottom = (
        int(edge)  # whole pixels: the text is placed at a whole pixel
        for edge in ImageDraw.Draw(Image.new("1", (1, 1))).textbbox((0, 0), text, font=font)
    )
    mask = Image.new("1", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=255)
    return left, top, mask


#: the stroke that makes the Chinese of a bold line bold, as a fraction of its size
CJK_BOLD_STROKE = 0.035


def cjk_bold_stroke(size: int) -> int:
    """The stroke, in whole pixels, of a bold line's Chinese at ``size`` pixels."""
    return max(1, round(size * CJK_BOLD_STROKE))


def _mixed_text_mask(
    text: str, size: int, *, bold: bool, mono: bool
) -> tuple[int, int, Image.Image]:
    """``text_mask`` of a line with Chinese: each run in its font (Chinese in the Chinese
    font), one after the other on the baseline the line's DejaVu font puts ``size`` below its
    top, rendered in 1-bit like any line."""
    base = pillow_font(size, bold=bold, mono=mono)
    ascent = base.getmetrics()[0]
    runs = [(run, cjk_font(size) if cjk else base) for run, cjk in text_runs(text)]
    width = sum(font.getlength(run) for run, font in runs)
    pad = size  # room for anything drawn left of, above or below its origin
    canvas = Image.new("1", (math.ceil(width) + 2 * pad, 3 * size + 2 * pad), 0)
    draw = ImageDraw.Draw(canvas)
    x = 0.0
    stroke = cjk_bold_stroke(size) if bold else 0
    for (run, cjk), (_run, font) in zip(text_runs(text), runs, strict=True):
        draw.text(
            (pad + round(x), pad + ascent),
            run,
            font=font,
            fill=255,
            anchor="ls",
            # the Chinese font has no bold face: a bold line's Chinese is drawn with a stroke
            stroke_width=stroke if cjk else 0,
            stroke_fill=255,
        )
        x += font.getlength(run)
    box = canvas.getbbox()
    if box is None:  # nothing dark (spaces only)
        return 0, 0, Image.new("1", (1, 1), 0)
    return box[0] - pad, box[1] - pad, canvas.crop(box)


# --- PDF ----------------------------------------------------------------------------------------


def render_pdf(drawings: Sequence[Drawing], *, title: str) -> bytes:
    """A sheet of labels: each at its exact size, row by row on A4 pages (portrait or
    landscape, whichever holds more of the first label's size), in the given order."""
    page = sheet_page(drawings[0].width_mm, drawings[0].height_mm) if drawings else SHEET_SIZE
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=page, pageCompression=1)
    canvas.setTitle(title)
    canvas.setAuthor("cellchain")
    canvas.setCreator("cellchain")
    page_width, page_height = page[0] / mm, page[1] / mm
    x, y, row_height = SHEET_MARGIN_MM, SHEET_MARGIN_MM, 0.0
    for drawing in drawings:
        if x > SHEET_MARGIN_MM and x + drawing.width_mm > page_width - SHEET_MARGIN_MM:
            x, y, row_height = SHEET_MARGIN_MM, y + row_height + SHEET_GAP_MM, 0.0
        if y > SHEET_MARGIN_MM and y + drawing.height_mm > page_height - SHEET_MARGIN_MM:
            canvas.showPage()
            x, y, row_height = SHEET_MARGIN_MM, SHEET_MARGIN_MM, 0.0
        _draw_pdf_label(canvas, drawing, x, y, page_height)
        x += drawing.width_mm + SHEET_GAP_MM
        row_height = max(row_height, drawing.height_mm)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _draw_pdf_label(
    canvas: Canvas, drawing: Drawing, left_mm: float, top_mm: float, page_height_mm: float
) -> None:
    """One label with its top-left corner at (left_mm, top_mm) from the page's top-left."""

    def point(x_mm: float, y_mm: float) -> tuple[float, float]:
        return (left_mm + x_mm) * mm, (page_height_mm - top_mm - y_mm) * mm

    canvas.setStrokeGray(0.75)
    canvas.setLineWidth(0.25)
    corner_x, corner_y = point(0, drawing.height_mm)
    canvas.rect(corner_x, corner_y, drawing.width_mm * mm, drawing.height_mm * mm)
    canvas.setFillGray(0)
    canvas.setStrokeGray(0)
    for symbol in drawing.symbols:
        count = len(symbol.modules)
        module = symbol.box.width_mm / count
        offset = (symbol.box.width_mm - module * count) / 2
        for run_x, run_y, length in _dark_runs(symbol):
            x, y = point(
                symbol.box.x_mm + offset + run_x * module,
                symbol.box.y_mm + offset + (run_y + 1) * module,
            )
            canvas.rect(x, y, length * module * mm, module * mm, stroke=0, fill=1)
    fonts = load_fonts()
    for line in drawing.lines:
        name = _pdf_font(fonts, line)
        baseline = line.y_mm + ascent_ratio(bold=line.bold, mono=line.mono) * line.size_mm
        if not has_cjk(line.text):
            canvas.setFont(name, line.size_mm * mm)
            canvas.drawString(*point(line.x_mm, baseline), line.text)
            continue
        cjk_font_file()  # refused when missing
        cjk_font_available()  # registered with reportlab once per process
        x, y = point(line.x_mm, baseline)
        for run, cjk in text_runs(line.text):
            font = CJK_FONT_NAME if cjk else name
            if cjk and line.bold:  # no bold face: the glyphs filled and stroked
                text = canvas.beginText(x, y)
                text.setFont(font, line.size_mm * mm)
                text.setTextRenderMode(2)
                text.textOut(run)
                canvas.saveState()
                canvas.setLineWidth(line.size_mm * mm * CJK_BOLD_STROKE)
                canvas.drawText(text)
                canvas.restoreState()
            else:
                canvas.setFont(font, line.size_mm * mm)
                canvas.drawString(x, y, run)
            x += canvas.stringWidth(run, font, line.size_mm * mm)
    for frame in drawing.frames:
        canvas.setLineWidth(frame.line_mm * mm)
        x, y = point(frame.box.x_mm, frame.box.y_mm + frame.box.height_mm)
        canvas.rect(x, y, frame.box.width_mm * mm, frame.box.height_mm * mm, stroke=1, fill=0)


def _pdf_font(fonts: Fonts, line: TextLine) -> str:
    if line.mono:
        return fonts.mono_bold if line.bold else fonts.mono
    return fonts.bold if line.bold else fonts.text


# --- ZPL ----------------------------------------------------------------------------------------

#: Zebra printers print at 203, 300 or 600 dpi; labels are written for the site's printers
ZPL_DPI = 300
#: characters ZPL's font 0 lacks, written the way a reader still understands them
_ZPL_ASCII = str.maketrans(
    {
        "—": "-",
        "–": "-",
        "−": "-",
        "×": "x",
        "≤": "<=",
        "≥": ">=",
        "°": "deg",
        "µ": "u",
        "’": "'",
        "⁰": "^0",
        "¹": "^1",
        "²": "^2",
        "³": "^3",
        "⁴": "^4",
        "⁵": "^5",
        "⁶": "^6",
        "⁷": "^7",
        "⁸": "^8",
        "⁹": "^9",
        "⁻": "^-",
    }
)


class PrinterFontMissing(DomainError):
    """ZPL was asked for labels in a language the printer's built-in font cannot print, and
    the site has not named the printer's font for it (``CELLCHAIN_ZPL_CJK_FONT``)."""

    status = 503
    title = lazy("The label printer's Chinese font is not set")


def zpl_settings() -> tuple[tuple[str, ...], str | None]:
    """The site's label languages and the printer-resident Chinese font (English and none
    outside an application)."""
    from flask import current_app, has_app_context

    from cellchain.labels.content import label_languages

    font = current_app.config.get("ZPL_CJK_FONT") if has_app_context() else None
    return label_languages(), font


def render_zpl(
    drawings: Iterable[Drawing],
    *,
    dpi: int = ZPL_DPI,
    languages: Iterable[str] | None = None,
    cjk_font: str | None = None,
) -> bytes:
    """One ZPL II label (``^XA … ^XZ``) per drawing, for a Zebra printer at ``dpi``.

    ``languages``, ``cjk_font``: the site's label languages and printer-resident Chinese font
    (``CELLCHAIN_LABEL_LANGUAGES``, ``CELLCHAIN_ZPL_CJK_FONT``) when not given. English alone:
    ASCII, font 0, as always. Another language: UTF-8 (``^CI28``), its lines in that font;
    refused when no font is set, as the printer would print nothing or boxes."""
    site_languages, site_font = zpl_settings()
    chosen = tuple(languages) if languages is not None else site_languages
    font = cjk_font if cjk_font is not None else site_font
    if all(language == SOURCE_LANGUAGE for language in chosen):
        return "".join(_zpl_label(drawing, dpi, None) for drawing in drawings).encode("ascii")
    if not font:
        raise PrinterFontMissing(
            _(
                "Labels print in Chinese here, and the Zebra printers' Chinese font is not "
                "set: set CELLCHAIN_ZPL_CJK_FONT to the font installed on the printers (e.g. "
                "E:SIMSUN.FNT). PNG and PDF labels print without it."
            )
        )
    return "".join(_zpl_label(drawing, dpi, font) for drawing in drawings).encode("utf-8")


def zpl_text(text: str, *, unicode: bool = False) -> str:
    """Text as ZPL prints it: ASCII only (the ``_ZPL_ASCII`` spellings), and without the
    characters that start a ZPL command (``^`` and ``~`` are hex-escaped with ``^FH``).
    ``unicode`` (a label in UTF-8, ``^CI28``): its Chinese characters are kept."""
    if unicode:
        kept = "".join(
            run if cjk else _ascii(run) for run, cjk in text_runs(text.translate(_ZPL_ASCII))
        )
    else:
        kept = _ascii(text.translate(_ZPL_ASCII))
    return kept.replace("_", "_5F").replace("^", "_5E").replace("~", "_7E")


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _zpl_label(drawing: Drawing, dpi: int, cjk_font: str | None) -> str:
    """One label; ``cjk_font``: the printer's Chinese font (the label is then UTF-8)."""
    commands = [
        "^XA",
        # plain ASCII (every text is transliterated by zpl_text), or UTF-8 with Chinese
        "^CI0" if cjk_font is None else "^CI28",
        f"^PW{_dots(drawing.width_mm, dpi)}",
        f"^LL{_dots(drawing.height_mm, dpi)}",
        "^LH0,0",
    ]
    for symbol in drawing.symbols:
        commands.append(_zpl_symbol(symbol, dpi))
    for line in drawing.lines:
        height = _dots(line.size_mm, dpi)
        x, y = _dots(line.x_mm, dpi), _dots(line.y_mm, dpi)
        if cjk_font is not None and has_cjk(line.text):
            # the printer's font for the whole line: ^A0 has no Chinese
            font = f"^A@N,{height},{height},{cjk_font}"
            commands.append(f"^FO{x},{y}{font}^FH^FD{zpl_text(line.text, unicode=True)}^FS")
            continue
        font = f"^A0N,{height},{height if line.bold else round(height * 0.85)}"
        commands.append(f"^FO{x},{y}{font}^FH^FD{zpl_text(line.text)}^FS")
    for frame in drawing.frames:
        box, thick = frame.box, max(1, _dots(frame.line_mm, dpi))
        commands.append(
            f"^FO{_dots(box.x_mm, dpi)},{_dots(box.y_mm, dpi)}"
            f"^GB{_dots(box.width_mm, dpi)},{_dots(box.height_mm, dpi)},{thick}^FS"
        )
    commands.append("^XZ\n")
    return "\n".join(commands)


def _zpl_symbol(symbol: Symbol, dpi: int) -> str:
    """``^BQ`` for the QR code (model 2, error correction M, the printer encodes the payload);
    a Data Matrix as ``^BX`` (ECC 200) with the same module size rule."""
    left, top, module = _symbol_grid(symbol, dpi)
    if symbol.kind == "qr":
        # ^BQ's field data: error correction M, then A (automatic input mode), then the data
        return f"^FO{left},{top}^BQN,2,{module}^FDMA,{symbol.text}^FS"
    return f"^FO{left},{top}^BXN,{module},200^FD{symbol.text}^FS"


# --- shared -------------------------------------------------------------------------------------


def _dots(value_mm: float, dpi: int) -> int:
    return round(value_mm / MM_PER_INCH * dpi)


def _symbol_grid(symbol: Symbol, dpi: int) -> tuple[int, int, int]:
    """Top-left corner and whole dots per module of a symbol centred in its square."""
    side = _dots(symbol.box.width_mm, dpi)
    count = len(symbol.modules)
    module = max(1, side // count)
    offset = (side - module * count) // 2
    return _dots(symbol.box.x_mm, dpi) + offset, _dots(symbol.box.y_mm, dpi) + offset, module


def _dark_runs(symbol: Symbol) -> Iterable[tuple[int, int, int]]:
    """(column, row, length) of each horizontal run of dark modules: fewer shapes to draw."""
    for y, row in enumerate(symbol.modules):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                yield start, y, x - start
            else:
                x += 1


def sheet_page(width_mm: float, height_mm: float) -> tuple[float, float]:
    """The A4 orientation that holds more labels of this size (portrait when equal)."""
    portrait = SHEET_SIZE
    landscape = (SHEET_SIZE[1], SHEET_SIZE[0])
    if _capacity(landscape, width_mm, height_mm) > _capacity(portrait, width_mm, height_mm):
        return landscape
    return portrait


def sheet_capacity(width_mm: float, height_mm: float) -> int:
    """How many labels of this size one PDF page holds."""
    return _capacity(sheet_page(width_mm, height_mm), width_mm, height_mm)


def _capacity(page: tuple[float, float], width_mm: float, height_mm: float) -> int:
    usable_w = page[0] / mm - 2 * SHEET_MARGIN_MM + SHEET_GAP_MM
    usable_h = page[1] / mm - 2 * SHEET_MARGIN_MM + SHEET_GAP_MM
    across = max(1, math.floor(usable_w / (width_mm + SHEET_GAP_MM)))
    down = max(1, math.floor(usable_h / (height_mm + SHEET_GAP_MM)))
    return across * down
