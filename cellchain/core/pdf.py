"""Building blocks of the printed GMP documents: fonts, styles, number/time/identifier
formatting, running header/footer with page N of M, grids, and the A4 document build.

The batch record (:mod:`cellchain.manufacturing.processing.batch_record_pdf`) and the certificate of
analysis (:mod:`cellchain.quality.certificate_pdf`) are built from these pieces, so both read
the same way on paper. What each document says stays in its own module; nothing here knows
steps, bags, tests or dispositions.

Choices made for documents that are read on paper and kept for decades:

* Fonts are embedded: DejaVu Sans for text and DejaVu Sans Mono for codes where the system has
  them (its zero is dotted, its 1, I and l differ, and it has the α of "α-MEM", which the
  unembedded built-in Helvetica cannot be relied on to show). Without DejaVu the built-in
  Helvetica and Courier are used.
* A document is written in the language of the moment (:mod:`cellchain.core.i18n`: the
  reader's). In Chinese its text is printed in WenQuanYi Micro Hei (Debian's
  ``fonts-wqy-microhei``, path ``CELLCHAIN_CJK_FONT``), embedded as a subset, codes still in
  DejaVu Sans Mono; the few characters that font lacks (superscript digits of ``10⁸``) are
  printed in DejaVu Sans. Without the font a Chinese document is refused
  (:class:`FontMissing`), never printed as empty boxes.
* Codes are printed in the monospaced font in their display form, check character boxed:
  ``X9999 26 000001 V0003 [R]``.
* Counts are printed one way throughout: three significant figures, ``1.60 × 10⁸``;
  population doublings with two decimals.
* Times are shown in the site's time zone, which each page names.
* Every page carries the site, the document's name, the lot number, its status, "Page N of M"
  and who generated the document when, so a single page taken out of the file still says what
  it belongs to.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    PageTemplate,
    Paragraph,
    Table,
    TableStyle,
)

from cellchain.core.display import local_time, scientific
from cellchain.core.i18n import ACTIVE_LANGUAGE, LazyText, _, lazy
from cellchain.core.identifiers import parse_identifier
from cellchain.core.models import User
from cellchain.errors import DomainError

__all__ = [
    "ALERT",
    "ALERT_FILL",
    "CAUTION_FILL",
    "CJK_FONT_PACKAGE",
    "CJK_LANGUAGES",
    "CONTENT_WIDTH",
    "DEJAVU_DIRS",
    "FOOTER_HEIGHT",
    "HEADER_FILL",
    "HEADER_HEIGHT",
    "INK",
    "MARGIN",
    "MUTED",
    "PAGE_HEIGHT",
    "PAGE_WIDTH",
    "RULE",
    "FontMissing",
    "Fonts",
    "NumberedCanvas",
    "Running",
    "Styles",
    "build_document",
    "display_code",
    "document_fonts",
    "field_table",
    "format_count",
    "format_days",
    "format_doublings",
    "format_number",
    "format_passage",
    "format_percent",
    "format_person",
    "format_time",
    "format_when_by",
    "format_words",
    "grid_table",
    "load_fonts",
    "make_styles",
    "markup",
    "paragraph",
]

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 16 * mm
HEADER_HEIGHT = 14 * mm
FOOTER_HEIGHT = 10 * mm
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN

INK = colors.HexColor("#1a1a1a")
MUTED = colors.HexColor("#555555")
RULE = colors.HexColor("#9a9a9a")
HEADER_FILL = colors.HexColor("#e6e6e6")
ALERT = colors.HexColor("#b00020")
ALERT_FILL = colors.HexColor("#fde8ea")
CAUTION_FILL = colors.HexColor("#fff4d6")

#: Debian/Ubuntu, Fedora/Alpine, Arch: where the DejaVu fonts are usually installed
DEJAVU_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts/dejavu"),
)


# --- fonts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fonts:
    """The registered font names a document prints with."""

    text: str
    bold: str
    mono: str
    mono_bold: str
    #: the fonts are embedded Unicode fonts (superscript digits, Greek letters print)
    unicode: bool
    #: the text font is the Chinese one: what it lacks is printed in ``fallback``
    cjk: bool = False
    #: the font of the characters the Chinese text font has no glyph for
    fallback: str | None = None


@functools.cache
def load_fonts() -> Fonts:
    """DejaVu Sans and Sans Mono, embedded, when installed; otherwise the built-in fonts.

    Registered once per process; clear the cache to look again (as the tests do).
    """
    files = {
        "CellchainSans": "DejaVuSans.ttf",
        "CellchainSans-Bold": "DejaVuSans-Bold.ttf",
        "CellchainMono": "DejaVuSansMono.ttf",
        "CellchainMono-Bold": "DejaVuSansMono-Bold.ttf",
    }
    for folder in DEJAVU_DIRS:
        paths = {name: folder / file for name, file in files.items()}
        if all(path.is_file() for path in paths.values()):
            for name, path in paths.items():
                pdfmetrics.registerFont(TTFont(name, str(path)))
            pdfmetrics.registerFontFamily(
                "CellchainSans", normal="CellchainSans", bold="CellchainSans-Bold"
            )
            pdfmetrics.registerFontFamily(
                "CellchainMono", normal="CellchainMono", bold="CellchainMono-Bold"
            )
            return Fonts(
                "CellchainSans",
                "CellchainSans-Bold",
                "CellchainMono",
                "CellchainMono-Bold",
                unicode=True,
            )
    return Fonts("Helvetica", "Helvetica-Bold", "Courier", "Courier-Bold", unicode=False)


#: the languages whose documents print their text in the Chinese font
CJK_LANGUAGES = frozenset({"zh_Hans"})
#: the Debian (and Ubuntu) package of that font, named when it is missing
CJK_FONT_PACKAGE = "fonts-wqy-microhei"
#: the name the Chinese font is registered under
CJK_FONT_NAME = "CellchainCJK"


class FontMissing(DomainError):
    """A document in Chinese was asked for and the Chinese font is not installed."""

    status = 503
    title: str | LazyText = lazy("A font the document needs is not installed")


def cjk_font_path() -> Path:
    """The Chinese font's file: the app's ``CJK_FONT`` (``CELLCHAIN_CJK_FONT``), else Debian's."""
    from flask import current_app, has_app_context

    from cellchain.config import DEFAULT_CJK_FONT

    configured = current_app.config.get("CJK_FONT") if has_app_context() else None
    return Path(configured or DEFAULT_CJK_FONT)


@functools.cache
def _register_cjk(path: str) -> frozenset[int]:
    """Register the Chinese font once per process (the first face of a .ttc); the characters
    it has glyphs for."""
    font = TTFont(CJK_FONT_NAME, path, subfontIndex=0)
    pdfmetrics.registerFont(font)
    return frozenset(font.face.charToGlyph)


def _cjk_characters() -> frozenset[int]:
    """The characters the registered Chinese font can print (registering it if need be)."""
    return _register_cjk(str(cjk_font_path()))


def document_fonts() -> Fonts:
    """The fonts of a document in the language of the moment: :func:`load_fonts`, with the
    Chinese font for text when the language is Chinese. Refuses (:class:`FontMissing`)
    rather than print Chinese in a font that has no Chinese."""
    base = load_fonts()
    if ACTIVE_LANGUAGE.get() not in CJK_LANGUAGES:
        return base
    path = cjk_font_path()
    if not path.is_file():
        raise FontMissing(
            _(
                "The Chinese font for PDF documents is not installed (%(path)s). Install the "
                "Debian package %(package)s (apt-get install %(package)s) or set "
                "CELLCHAIN_CJK_FONT to a TrueType font with Chinese characters.",
                path=str(path),
                package=CJK_FONT_PACKAGE,
            )
        )
    _register_cjk(str(path))
    return Fonts(
        CJK_FONT_NAME,
        CJK_FONT_NAME,  # the font has no bold face; headings are set larger instead
        base.mono,
        base.mono_bold,
        unicode=base.unicode,
        cjk=True,
        fallback=base.text,
    )


_TAG = re.compile(r"(<[^>]*>)")
#: from here on (CJK radicals, punctuation, ideographs, full-width forms) only the Chinese
#: font has the characters
_CJK_START = 0x2E80


def markup(text: str, fonts: Fonts) -> str:
    """Paragraph markup as ``fonts`` can print it: in the Chinese font, each run of characters
    it has no glyph for (``⁸``) is set in the fallback font. Tags are left alone."""
    if not fonts.cjk or fonts.fallback is None:
        return text
    return _with_fallback(text, fonts.fallback)


def _with_fallback(text: str, fallback: str) -> str:
    known = _cjk_characters()
    out: list[str] = []
    for part in _TAG.split(text):
        if part.startswith("<"):
            out.append(part)
            continue
        run: list[str] = []
        missing = False
        for char in part:
            lacks = ord(char) not in known and not char.isspace()
            if lacks != missing and run:
                out.append(_font_run("".join(run), fallback if missing else None))
                run = []
            missing = lacks
            run.append(char)
        if run:
            out.append(_font_run("".join(run), fallback if missing else None))
    return "".join(out)


def has_cjk(text: str) -> bool:
    """``text`` has characters only the Chinese font prints (ideographs, CJK punctuation)."""
    return any(ord(char) >= _CJK_START for char in text)


def cjk_runs(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into runs of Chinese and other characters."""
    runs: list[tuple[str, bool]] = []
    for char in text:
        cjk = ord(char) >= _CJK_START
        if runs and runs[-1][1] == cjk:
            runs[-1] = (runs[-1][0] + char, cjk)
        else:
            runs.append((char, cjk))
    return runs


def cjk_font_available() -> bool:
    """The Chinese font is installed (and then registered): Chinese characters typed into an
    English document print in it rather than as empty boxes."""
    path = cjk_font_path()
    if not path.is_file():
        return False
    _register_cjk(str(path))
    return True


def _font_run(text: str, font: str | None) -> str:
    return text if font is None else f'<font name="{font}">{text}</font>'


# --- styles -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Styles:
    """The paragraph styles every printed document shares."""

    fonts: Fonts
    body: ParagraphStyle
    small: ParagraphStyle
    cell: ParagraphStyle
    head: ParagraphStyle
    code: ParagraphStyle
    field_code: ParagraphStyle
    title: ParagraphStyle
    h1: ParagraphStyle
    h2: ParagraphStyle
    alert: ParagraphStyle


def make_styles(fonts: Fonts) -> Styles:
    """Body text at 9 pt, table cells at 8 pt, codes in the monospaced font."""
    body = ParagraphStyle(
        "body", fontName=fonts.text, fontSize=9, leading=11.5, textColor=INK, spaceAfter=2
    )
    cell = ParagraphStyle("cell", parent=body, fontSize=8, leading=10, spaceAfter=0)
    return Styles(
        fonts=fonts,
        body=body,
        small=ParagraphStyle("small", parent=body, fontSize=7.5, leading=9, textColor=MUTED),
        cell=cell,
        head=ParagraphStyle("head", parent=cell, fontName=fonts.bold, fontSize=7.5, leading=9),
        code=ParagraphStyle("code", parent=cell, fontName=fonts.mono),
        field_code=ParagraphStyle("field_code", parent=body, fontName=fonts.mono, fontSize=9.5),
        title=ParagraphStyle(
            "title", parent=body, fontName=fonts.bold, fontSize=17, leading=21, spaceAfter=1
        ),
        h1=ParagraphStyle(
            "h1",
            parent=body,
            fontName=fonts.bold,
            fontSize=12,
            leading=15,
            spaceBefore=10,
            spaceAfter=4,
            keepWithNext=1,
        ),
        h2=ParagraphStyle(
            "h2", parent=body, fontName=fonts.bold, fontSize=10, leading=13, spaceBefore=8
        ),
        alert=ParagraphStyle(
            "alert", parent=body, fontName=fonts.bold, textColor=ALERT, fontSize=9.5, leading=12
        ),
    )


# --- formatting ---------------------------------------------------------------------------------


def format_time(value: dt.datetime | None, zone: ZoneInfo) -> str:
    """A stored UTC time in the site's zone with its UTC offset, as on the pages
    (``core.display.local_time``)."""
    if value is None:
        return "—"
    return local_time(value, zone)


def format_count(value: float | None, fonts: Fonts) -> str:
    """A cell count or concentration, three significant figures: ``1.60 × 10⁸``.

    Without Unicode fonts the power is written ``10^8``: the built-in fonts lack superscripts.
    """
    if value is None:
        return "—"
    return scientific(value, superscript=fonts.unicode)


def format_doublings(value: float | None) -> str:
    """Population doublings, two decimals."""
    return "—" if value is None else f"{value:.2f}"


def format_percent(value: float | None) -> str:
    """A percentage (viability), one decimal."""
    return "—" if value is None else f"{value:.1f} %"


def format_days(value: float | None) -> str:
    """A duration in days, one decimal."""
    return "—" if value is None else f"{value:.1f} d"


def format_number(value: float | None) -> str:
    """A measured number as entered, without trailing zeros."""
    return "—" if value is None else f"{value:g}"


def format_passage(value: int | None) -> str:
    """A passage number as cell biologists write it: ``P3``."""
    return "—" if value is None else f"P{value}"


def format_person(user: User | None) -> str:
    """The printed name, and the account that makes it unique."""
    if user is None:
        return "—"
    return f"{user.full_name} ({user.username})"


def format_when_by(when: dt.datetime | None, user: User | None, zone: ZoneInfo) -> str:
    """Who did something when, as every record prints it: ``<time> by <name> (<account>)``."""
    return _("%(when)s by %(person)s", when=format_time(when, zone), person=format_person(user))


def format_words(value: str) -> str:
    """A stored code word (``cell_count``) for a reader who has no label for it."""
    return value.replace("_", " ")


def display_code(code: str) -> str:
    """A stored code in display form with its check character boxed: ``X9999 26 000001 [X]``."""
    return parse_identifier(code).display


def paragraph(text: str | LazyText, style: ParagraphStyle) -> Paragraph:
    """A paragraph of plain text: what people typed is escaped, never read as markup.
    In the Chinese font, what it cannot print is set in the fallback font; in another font,
    Chinese characters (a name typed in Chinese) in the Chinese font where it is installed."""
    escaped = escape(str(text))
    if style.fontName == CJK_FONT_NAME:
        escaped = _with_fallback(escaped, load_fonts().text)
    elif has_cjk(escaped) and cjk_font_available():
        escaped = "".join(
            _font_run(run, CJK_FONT_NAME if cjk else None) for run, cjk in cjk_runs(escaped)
        )
    return Paragraph(escaped, style)


def recall_lines(recalls: Sequence[Any]) -> list[str]:
    """Each recall naming a printed record, as a document prints it (issue 16, item 9):
    ``RECALL RC-2026-0001 (open): <reason> — /recalls/<id>``."""
    return [
        _(
            "RECALL %(number)s (%(status)s): %(reason)s — %(link)s",
            number=r.number,
            status=r.status,
            reason=r.reason,
            link="/recalls/" + str(r.id),
        )
        for r in recalls
    ]


def recall_box(recalls: Sequence[Any], styles: Styles) -> Table:
    """A red box, first on the document, naming every recall of what it describes."""
    box = Table(
        [[paragraph(line, styles.alert)] for line in recall_lines(recalls)],
        colWidths=[CONTENT_WIDTH],
        hAlign="LEFT",
    )
    box.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 1.4, ALERT),
                ("BACKGROUND", (0, 0), (-1, -1), ALERT_FILL),
                ("LEFTPADDING", (0, 0), (-1, -1), 6),
                ("TOPPADDING", (0, 0), (-1, -1), 2.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
            ]
        )
    )
    return box


# --- the running header and footer --------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    """What every page shows around the content."""

    #: the document's name in the header: "Batch record", "Certificate of analysis"
    document: str
    site_name: str
    lot_number: str
    #: the donation's DIN in display form, so every page names the donor link
    din: str
    status: str
    generated: str
    zone_name: str
    fonts: Fonts

    @classmethod
    def for_lot(
        cls,
        document: str,
        *,
        site_name: str,
        lot_number: str,
        din: str,
        lot_status: str,
        zone: ZoneInfo,
        generated_at: dt.datetime,
        generated_by: str,
        fonts: Fonts,
    ) -> Running:
        """The header and footer of a document about one lot, worded alike on every document.

        ``din`` is the stored code; ``generated_at`` must be aware, like every printed time.
        """
        return cls(
            document=document,
            site_name=site_name,
            lot_number=lot_number,
            din=display_code(din),
            status=_("Status: %(status)s", status=lot_status.upper()),
            generated=_(
                "%(when)s by %(person)s", when=format_time(generated_at, zone), person=generated_by
            ),
            zone_name=zone.key,
            fonts=fonts,
        )


class NumberedCanvas(Canvas):
    """A canvas that holds its pages back until the end, so each can say "Page N of M"."""

    def __init__(self, *args: Any, running: Running, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._running = running
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # reportlab names it so
        self._pages.append(dict(self.__dict__))
        # private in reportlab and left out of its stubs; reportlab's own showPage calls it
        self._startPage()  # type: ignore[attr-defined]

    def save(self) -> None:
        total = len(self._pages)
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self._draw_running(number, total)
            super().showPage()
        super().save()

    def header(self) -> PageHeader:
        """What the second header line and the right-hand side say: the lot and its donation.
        A document about something else (a patient) overrides this."""
        run = self._running
        return PageHeader(
            # the space is drawn too, so text copied from the page never runs the label into
            # the DIN
            label=_("%(document)s · donation ", document=run.document),
            code=run.din,
            title=_("Lot %(number)s", number=run.lot_number),
            status=run.status,
        )

    def _draw_mixed(
        self, x: float, y: float, text: str, font: str, size: float, *, right_aligned: bool = False
    ) -> float:
        """``text`` in ``font``, its Chinese characters (``批次`` before a lot number in the
        monospaced font, a site named in Chinese) in the Chinese font where it is installed;
        where the text ends."""
        runs = [(text, font)]
        if has_cjk(text) and cjk_font_available():
            runs = [(run, CJK_FONT_NAME if cjk else font) for run, cjk in cjk_runs(text)]
        if right_aligned:
            x -= sum(self.stringWidth(run, name, size) for run, name in runs)
        for run, name in runs:
            self.setFont(name, size)
            self.drawString(x, y, run)
            x += self.stringWidth(run, name, size)
        return x

    def _draw_running(self, number: int, total: int) -> None:
        run, fonts = self._running, self._running.fonts
        head = self.header()
        top = PAGE_HEIGHT - MARGIN + 2 * mm
        left, right = MARGIN, PAGE_WIDTH - MARGIN
        self.saveState()
        self.setFillColor(INK)
        self._draw_mixed(left, top, run.site_name, fonts.bold, 9)
        after = self._draw_mixed(left, top - 4.2 * mm, head.label, fonts.text, 8)
        self._draw_mixed(after, top - 4.2 * mm, head.code, fonts.mono, 8)
        self._draw_mixed(right, top, head.title, fonts.mono_bold, 9, right_aligned=True)
        if head.alert:
            self.setFillColor(ALERT)
        self._draw_mixed(right, top - 4.2 * mm, head.status, fonts.bold, 8, right_aligned=True)
        self.setFillColor(INK)
        self.setStrokeColor(RULE)
        self.setLineWidth(0.6)
        self.line(left, top - 6.5 * mm, right, top - 6.5 * mm)
        bottom = MARGIN - 4 * mm
        self.line(left, bottom + 4 * mm, right, bottom + 4 * mm)
        self.setFillColor(MUTED)
        generated = _(
            "Generated %(when_by)s. Times in %(zone)s.", when_by=run.generated, zone=run.zone_name
        )
        self._draw_mixed(left, bottom, generated, fonts.text, 7.5)
        self.setFillColor(INK)
        page = _("Page %(number)s of %(total)s", number=number, total=total)
        self._draw_mixed(right, bottom, page, fonts.bold, 8, right_aligned=True)
        self.restoreState()


@dataclass(frozen=True)
class PageHeader:
    """The parts of the running header that name the document's subject."""

    label: str  #: before the code, e.g. "Batch record · donation "
    code: str  #: in the mono font, e.g. the DIN with its check character
    title: str  #: top right, e.g. "Lot X999926000001X-L01"
    status: str  #: below it, e.g. the lot's status
    alert: bool = False  #: the status in the alert colour


# --- tables ------------------------------------------------------------------------------------


def grid_table(
    header: Sequence[str | LazyText],
    rows: Sequence[Sequence[Any]],
    widths: Sequence[float],
    styles: Styles,
    *,
    mono_columns: Sequence[int] = (),
    right_columns: Sequence[int] = (),
    extra: Sequence[tuple[Any, ...]] = (),
) -> Table:
    """A ruled table with a header row that repeats on every page it runs onto."""
    fonts = styles.fonts
    titles = [paragraph(title, styles.head) for title in header]
    body = [list(row) for row in rows]
    # Chinese has no spaces to break at: a text cell too wide for its column, or with a
    # character the Chinese font lacks (10⁸), becomes a paragraph that wraps in its column
    # and falls back; one that fits stays plain, so the table's own style (an open
    # deviation's status in red) still applies. In another document a cell with Chinese
    # characters becomes one, to print them in the Chinese font.
    right = ParagraphStyle("cell_right", parent=styles.cell, alignment=TA_RIGHT)

    def wraps(column: int, cell: Any) -> bool:
        if not isinstance(cell, str | LazyText) or column in mono_columns:
            return False
        text = str(cell)
        if not fonts.cjk:
            return has_cjk(text)
        known = _cjk_characters()
        return pdfmetrics.stringWidth(text, fonts.text, 8) > widths[column] - 6 or any(
            ord(char) not in known and not char.isspace() for char in text
        )

    body = [
        [
            paragraph(cell, right if column in right_columns else styles.cell)
            if wraps(column, cell)
            else cell
            for column, cell in enumerate(row)
        ]
        for row in body
    ]
    table = Table(
        [titles, *body],
        colWidths=list(widths),
        repeatRows=1,
        hAlign="LEFT",
    )
    style: list[tuple[Any, ...]] = [
        ("FONT", (0, 1), (-1, -1), fonts.text, 8),
        ("BACKGROUND", (0, 0), (-1, 0), HEADER_FILL),
        ("GRID", (0, 0), (-1, -1), 0.4, RULE),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    for column in mono_columns:
        style.append(("FONT", (column, 1), (column, -1), fonts.mono, 8))
    for column in right_columns:
        style.append(("ALIGN", (column, 0), (column, -1), "RIGHT"))
    table.setStyle(TableStyle([*style, *extra]))
    return table


def field_table(
    pairs: Sequence[tuple[str, Any]], width: float, styles: Styles, *, label_width: float
) -> Table:
    """Label / value rows without rules, for a document's summary and the head of a section."""
    rows = [
        [
            paragraph(label, styles.small),
            paragraph(value, styles.body)
            if isinstance(value, str | LazyText) and (styles.fonts.cjk or has_cjk(str(value)))
            else value,
        ]
        for label, value in pairs
    ]
    table = Table(rows, colWidths=[label_width, width - label_width], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("FONT", (1, 0), (1, -1), styles.fonts.text, 9),
                ("TOPPADDING", (0, 0), (-1, -1), 1.2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.2),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("RIGHTPADDING", (0, 0), (-1, -1), 4),
            ]
        )
    )
    return table


# --- the document ------------------------------------------------------------------------------


def build_document(
    story: Sequence[Flowable],
    running: Running,
    *,
    title: str,
    author: str,
    subject: str | None = None,
    canvas: type[NumberedCanvas] | None = None,
) -> bytes:
    """Lay ``story`` out on A4 pages, each with the running header and footer; the PDF's bytes.

    ``title``, ``author`` and ``subject`` (the title unless given) go into the PDF's metadata.
    ``canvas`` is a ``NumberedCanvas`` subclass drawing another header (a report about a
    patient, not a lot); ``running`` is then whatever that canvas reads.
    """
    buffer = io.BytesIO()
    top = MARGIN + HEADER_HEIGHT - 4 * mm
    bottom = MARGIN + FOOTER_HEIGHT - 4 * mm
    # A frame without padding: the tables' widths are exactly the text's width.
    frame = Frame(
        MARGIN,
        bottom,
        CONTENT_WIDTH,
        PAGE_HEIGHT - top - bottom,
        leftPadding=0,
        rightPadding=0,
        topPadding=0,
        bottomPadding=0,
        id="content",
    )
    document = BaseDocTemplate(
        buffer,
        pagesize=A4,
        pageTemplates=[PageTemplate(id="page", frames=[frame])],
        title=title,
        author=author,
        subject=title if subject is None else subject,
        creator="cellchain",
    )
    maker = functools.partial(canvas or NumberedCanvas, running=running)
    document.build(list(story), canvasmaker=maker)
    return buffer.getvalue()
