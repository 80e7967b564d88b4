"""A label drawn from its template: PNG at 300 dpi (qrcode + Pillow).

The template says where everything goes; ``LabelContent`` says what each field prints and what
the QR code holds. The drawing decides nothing: a field the content leaves empty stays blank.
Fonts are DejaVu Sans Mono for the identifier (its zero is dotted; 1, I and l differ) and
DejaVu Sans for text, with Pillow's own font when DejaVu is missing. The identifier's check
character is printed in a box (DOMAIN.md §2).
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from pathlib import Path

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from cellchain.core.pdf import DEJAVU_DIRS
from cellchain.labels.templates import Box, FieldLayout, LabelTemplate

DPI = 300
MM_PER_INCH = 25.4

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class LabelContent:
    """What one label prints: the QR payload and the text of each field by name."""

    payload: str
    texts: dict[str, str] = field(default_factory=dict)


def render_png(template: LabelTemplate, content: LabelContent, *, dpi: int = DPI) -> bytes:
    """The label at its exact size in pixels at ``dpi``, as PNG bytes (with the dpi recorded)."""
    image = Image.new("L", (_px(template.width_mm, dpi), _px(template.height_mm, dpi)), 255)
    draw = ImageDraw.Draw(image)
    _draw_qr(image, template.qr, content.payload, dpi)
    for layout in template.fields:
        text = content.texts.get(layout.name, "")
        if text:
            _draw_field(draw, layout, text, dpi)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(dpi, dpi))
    return buffer.getvalue()


def _px(mm: float, dpi: int) -> int:
    return round(mm / MM_PER_INCH * dpi)


def _draw_qr(image: Image.Image, box: Box, payload: str, dpi: int) -> None:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0, box_size=1)
    code.add_data(payload)
    code.make(fit=True)
    matrix = code.get_matrix()
    side = _px(box.width_mm, dpi)
    module = max(1, side // len(matrix))  # whole pixels per module: sharp edges
    offset = (side - module * len(matrix)) // 2
    left, top = _px(box.x_mm, dpi) + offset, _px(box.y_mm, dpi) + offset
    draw = ImageDraw.Draw(image)
    for row, cells in enumerate(matrix):
        for column, dark in enumerate(cells):
            if dark:
                x, y = left + column * module, top + row * module
                draw.rectangle((x, y, x + module - 1, y + module - 1), fill=0)


def _draw_field(draw: ImageDraw.ImageDraw, layout: FieldLayout, text: str, dpi: int) -> None:
    size = _px(layout.text_mm, dpi)
    mono = layout.name in ("identifier", "coi")
    font = _font(size, bold=layout.bold, mono=mono)
    left, top = _px(layout.box.x_mm, dpi), _px(layout.box.y_mm, dpi)
    width = _px(layout.box.width_mm, dpi)
    if mono and text.endswith("]") and "[" in text:
        _draw_boxed_check(draw, (left, top), text, font)
        return
    bottom = top + _px(layout.box.height_mm, dpi)
    y = top
    for line in _wrap(draw, text, font, width):
        if y + size > bottom + 1:
            break
        draw.text((left, y), line, font=font, fill=0)
        y += round(size * 1.15)


def _draw_boxed_check(
    draw: ImageDraw.ImageDraw, at: tuple[int, int], text: str, font: Font
) -> None:
    """``X9999 26 000001 C0018 [T]`` with the check character in a drawn box."""
    body, check = text[: text.rindex("[")].rstrip(), text[text.rindex("[") + 1 : -1]
    draw.text(at, body + " ", font=font, fill=0)
    x = at[0] + round(draw.textlength(body + " ", font=font))
    draw.text((x, at[1]), check, font=font, fill=0)
    left, top, right, bottom = draw.textbbox((x, at[1]), check, font=font)
    pad = max(2, (bottom - top) // 6)
    frame = (left - pad, top - pad, right + pad, bottom + pad)
    draw.rectangle(frame, outline=0, width=pad // 2 + 1)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and draw.textlength(candidate, font=font) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


@functools.cache
def _font(size: int, *, bold: bool, mono: bool) -> Font:
    name = "DejaVuSansMono" if mono else "DejaVuSans"
    file = f"{name}-Bold.ttf" if bold else f"{name}.ttf"
    for folder in DEJAVU_DIRS:
        path = Path(folder) / file
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)
