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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib import colors
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
from cellchain.core.identifiers import parse_identifier
from cellchain.core.models import User

__all__ = [
    "ALERT",
    "ALERT_FILL",
    "CAUTION_FILL",
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
    "Fonts",
    "NumberedCanvas",
    "Running",
    "Styles",
    "build_document",
    "display_code",
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
    return f"{format_time(when, zone)} by {format_person(user)}"


def format_words(value: str) -> str:
    """A stored code word (``cell_count``) for a reader who has no label for it."""
    return value.replace("_", " ")


def display_code(code: str) -> str:
    """A stored code in display form with its check character boxed: ``X9999 26 000001 [X]``."""
    return parse_identifier(code).display


def paragraph(text: str, style: ParagraphStyle) -> Paragraph:
    """A paragraph of plain text: what people typed is escaped, never read as markup."""
    return Paragraph(escape(text), style)


def recall_lines(recalls: Sequence[Any]) -> list[str]:
    """Each recall naming a printed record, as a document prints it (issue 16, item 9):
    ``RECALL RC-2026-0001 (open): <reason> — /recalls/<id>``."""
    return [f"RECALL {r.number} ({r.status}): {r.reason} — /recalls/{r.id}" for r in recalls]


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
            status=f"Status: {lot_status.upper()}",
            generated=f"{format_time(generated_at, zone)} by {generated_by}",
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
            label=f"{run.document} · donation ",
            code=run.din,
            title=f"Lot {run.lot_number}",
            status=run.status,
        )

    def _draw_running(self, number: int, total: int) -> None:
        run, fonts = self._running, self._running.fonts
        head = self.header()
        top = PAGE_HEIGHT - MARGIN + 2 * mm
        left, right = MARGIN, PAGE_WIDTH - MARGIN
        self.saveState()
        self.setFillColor(INK)
        self.setFont(fonts.bold, 9)
        self.drawString(left, top, run.site_name)
        self.setFont(fonts.text, 8)
        self.drawString(left, top - 4.2 * mm, head.label)
        self.setFont(fonts.mono, 8)
        self.drawString(
            left + self.stringWidth(head.label, fonts.text, 8), top - 4.2 * mm, head.code
        )
        self.setFont(fonts.mono_bold, 9)
        self.drawRightString(right, top, head.title)
        self.setFont(fonts.bold, 8)
        if head.alert:
            self.setFillColor(ALERT)
        self.drawRightString(right, top - 4.2 * mm, head.status)
        self.setFillColor(INK)
        self.setStrokeColor(RULE)
        self.setLineWidth(0.6)
        self.line(left, top - 6.5 * mm, right, top - 6.5 * mm)
        bottom = MARGIN - 4 * mm
        self.line(left, bottom + 4 * mm, right, bottom + 4 * mm)
        self.setFillColor(MUTED)
        self.setFont(fonts.text, 7.5)
        self.drawString(left, bottom, f"Generated {run.generated}. Times in {run.zone_name}.")
        self.setFillColor(INK)
        self.setFont(fonts.bold, 8)
        self.drawRightString(right, bottom, f"Page {number} of {total}")
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
    header: Sequence[str],
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
    table = Table(
        [titles, *[list(row) for row in rows]],
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
    rows = [[paragraph(label, styles.small), value] for label, value in pairs]
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
