"""The batch record of a lot as a PDF document (A4), for review, release and the archive.

A batch record is a GMP record (DOMAIN.md §4, §6): every step with who and when, what went in
and came out, the counts, the material lots and the equipment by ID, then the bags and the
deviations. The PDF shows what :func:`cellchain.manufacturing.batch_record.batch_record`
assembled and decides nothing itself.

Choices made for a document that is read on paper and kept for decades:

* Fonts are embedded: DejaVu Sans for text and DejaVu Sans Mono for codes where the system has
  them (its zero is dotted, its 1, I and l differ, and it has the α of "α-MEM", which the
  unembedded built-in Helvetica cannot be relied on to show). Without DejaVu the built-in
  Helvetica and Courier are used.
* Codes are printed in the monospaced font in their display form, check character boxed:
  ``X9999 26 000001 V0003 [R]``.
* Counts are printed one way throughout: three significant figures, ``1.60 × 10⁸``;
  population doublings with two decimals.
* Times are shown in the site's time zone, which each page names.
* Every page carries the site, the lot number, its status, "Page N of M" and who generated the
  document when, so a single page taken out of the file still says what it belongs to.
* The document carries no signatures: QA review and release are electronic signatures added
  at release; a printed form never imitates one.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import math
from collections.abc import Iterator, Sequence
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
    Indenter,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from cellchain.chain.models import Unit
from cellchain.core.identifiers import Identifier, parse_identifier
from cellchain.core.models import User
from cellchain.manufacturing.batch_record import BatchRecord, StepNode
from cellchain.manufacturing.models import (
    CellRecord,
    DeviationCategory,
    Equipment,
    EquipmentKind,
    LotStatus,
    ProcessingStep,
    StepKind,
)

__all__ = ["render_batch_record_pdf"]

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 16 * mm
HEADER_HEIGHT = 14 * mm
FOOTER_HEIGHT = 10 * mm
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN
#: how far a branch of the step tree is indented, and at most how many times
BRANCH_INDENT = 6 * mm
MAX_BRANCH_INDENT = 4
#: up to this many units are listed one full code per line; more are listed compactly
FULL_CODE_LIST_MAX = 4

INK = colors.HexColor("#1a1a1a")
MUTED = colors.HexColor("#555555")
RULE = colors.HexColor("#9a9a9a")
HEADER_FILL = colors.HexColor("#e6e6e6")
ALERT = colors.HexColor("#b00020")
ALERT_FILL = colors.HexColor("#fde8ea")
CAUTION_FILL = colors.HexColor("#fff4d6")

#: the lot's status in words, for the summary and every page's header
STATUS_WORDS: dict[str, str] = {
    LotStatus.QUARANTINE.value: "QUARANTINE — not released for use",
    LotStatus.RELEASED.value: "RELEASED",
    LotStatus.REJECTED.value: "REJECTED — not for use",
}

# Debian/Ubuntu, Fedora/Alpine, Arch: where the DejaVu fonts are usually installed.
_DEJAVU_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts/dejavu"),
)
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


# --- fonts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fonts:
    text: str
    bold: str
    mono: str
    mono_bold: str
    #: the fonts are embedded Unicode fonts (superscript digits, Greek letters print)
    unicode: bool


@functools.cache
def _fonts() -> _Fonts:
    """DejaVu Sans and Sans Mono, embedded, when installed; otherwise the built-in fonts."""
    files = {
        "CellchainSans": "DejaVuSans.ttf",
        "CellchainSans-Bold": "DejaVuSans-Bold.ttf",
        "CellchainMono": "DejaVuSansMono.ttf",
        "CellchainMono-Bold": "DejaVuSansMono-Bold.ttf",
    }
    for folder in _DEJAVU_DIRS:
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
            return _Fonts(
                "CellchainSans",
                "CellchainSans-Bold",
                "CellchainMono",
                "CellchainMono-Bold",
                unicode=True,
            )
    return _Fonts("Helvetica", "Helvetica-Bold", "Courier", "Courier-Bold", unicode=False)


@dataclass(frozen=True)
class _Styles:
    fonts: _Fonts
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


def _styles(fonts: _Fonts) -> _Styles:
    body = ParagraphStyle(
        "body", fontName=fonts.text, fontSize=9, leading=11.5, textColor=INK, spaceAfter=2
    )
    cell = ParagraphStyle("cell", parent=body, fontSize=8, leading=10, spaceAfter=0)
    return _Styles(
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


def _time(value: dt.datetime | None, zone: ZoneInfo) -> str:
    """A stored UTC time in the site's zone, with the zone's abbreviation (as on the pages)."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        raise ValueError("naive datetime refused: times in a batch record must be aware")
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _count(value: float | None, fonts: _Fonts) -> str:
    """A cell count or concentration, three significant figures: ``1.60 × 10⁸``."""
    if value is None:
        return "—"
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    mantissa = round(value / 10**exponent, 2)
    if abs(mantissa) >= 10:  # 9.996e8 rounds to 10.00 × 10⁸: write 1.00 × 10⁹
        exponent += 1
        mantissa = round(value / 10**exponent, 2)
    power = str(exponent).translate(_SUPERSCRIPT) if fonts.unicode else f"^{exponent}"
    return f"{mantissa:.2f} × 10{power}"


def _doublings(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} %"


def _days(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} d"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _passage(value: int | None) -> str:
    return "—" if value is None else f"P{value}"


def _person(user: User | None) -> str:
    """The printed name, and the account that makes it unique."""
    if user is None:
        return "—"
    return f"{user.full_name} ({user.username})"


def _words(value: str) -> str:
    return value.replace("_", " ")


def _display(code: str) -> str:
    """A stored code in display form with its check character boxed: ``X9999 26 000001 [X]``."""
    return parse_identifier(code).display


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    """A paragraph of plain text: what people typed is escaped, never read as markup."""
    return Paragraph(escape(text), style)


# --- the running header and footer --------------------------------------------------------------


@dataclass(frozen=True)
class _Running:
    """What every page shows around the content."""

    site_name: str
    lot_number: str
    #: the donation's DIN in display form, so every page names the donor link
    din: str
    status: str
    generated: str
    zone_name: str
    fonts: _Fonts


class _NumberedCanvas(Canvas):
    """A canvas that holds its pages back until the end, so each can say "Page N of M"."""

    def __init__(self, *args: Any, running: _Running, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._running = running
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # reportlab names it so
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self._draw_running(number, total)
            super().showPage()
        super().save()

    def _draw_running(self, number: int, total: int) -> None:
        run, fonts = self._running, self._running.fonts
        top = PAGE_HEIGHT - MARGIN + 2 * mm
        left, right = MARGIN, PAGE_WIDTH - MARGIN
        self.saveState()
        self.setFillColor(INK)
        self.setFont(fonts.bold, 9)
        self.drawString(left, top, run.site_name)
        self.setFont(fonts.text, 8)
        self.drawString(left, top - 4.2 * mm, "Batch record · donation")
        self.setFont(fonts.mono, 8)
        self.drawString(
            left + self.stringWidth("Batch record · donation ", fonts.text, 8),
            top - 4.2 * mm,
            run.din,
        )
        self.setFont(fonts.mono_bold, 9)
        self.drawRightString(right, top, f"Lot {run.lot_number}")
        self.setFont(fonts.bold, 8)
        self.drawRightString(right, top - 4.2 * mm, run.status)
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


# --- tables ------------------------------------------------------------------------------------


def _grid(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    widths: Sequence[float],
    styles: _Styles,
    *,
    mono_columns: Sequence[int] = (),
    right_columns: Sequence[int] = (),
    extra: Sequence[tuple[Any, ...]] = (),
) -> Table:
    """A ruled table with a header row that repeats on every page it runs onto."""
    fonts = styles.fonts
    titles = [_p(title, styles.head) for title in header]
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


def _fields(
    pairs: Sequence[tuple[str, Any]], width: float, styles: _Styles, *, label_width: float
) -> Table:
    """Label / value rows without rules, for the summary and the head of each step."""
    rows = [[_p(label, styles.small), value] for label, value in pairs]
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


# --- sections ----------------------------------------------------------------------------------


def _summary(record: BatchRecord, zone: ZoneInfo, styles: _Styles) -> list[Flowable]:
    lot, donation, fonts = record.lot, record.donation, styles.fonts
    product = lot.product_definition
    total_cells = sum(cell.cells or 0 for _unit, cell in record.bags)
    status = STATUS_WORDS.get(lot.status, lot.status.upper())
    flags = lot.limit_flags
    pairs: list[tuple[str, Any]] = [
        ("Lot number", _p(lot.lot_number, styles.field_code)),
        ("Product", _p(f"{product.code} v{product.version} — {product.title}", styles.body)),
        ("Donation (DIN)", _p(_display(donation.din), styles.field_code)),
        ("Donor", _p(donation.donor.code, styles.field_code)),
        ("Status", _p(status, ParagraphStyle("status", parent=styles.body, fontName=fonts.bold))),
        ("Made", _p(f"{_time(lot.made_at, zone)} by {_person(lot.made_by)}", styles.body)),
        ("Final passage", _p(_passage(lot.final_passage), styles.body)),
        ("Final CPD", _p(_doublings(lot.final_cumulative_pd), styles.body)),
        ("DMSO", _p(f"{lot.dmso_percent:g} %", styles.body)),
        (
            "Bags",
            _p(
                f"{len(record.bags)}, {_count(total_cells, fonts)} viable cells in all", styles.body
            ),
        ),
        (
            "Deviations",
            _p(
                f"{len(record.deviations)} recorded, {len(record.open_deviations)} open",
                styles.alert if record.open_deviations else styles.body,
            ),
        ),
        (
            "Limit flags",
            _p(f"{len(flags)} — release blocked, see below", styles.alert)
            if flags
            else _p("none", styles.body),
        ),
    ]
    out: list[Flowable] = [
        Paragraph(
            f'Batch record <font name="{fonts.mono_bold}">{escape(lot.lot_number)}</font>',
            styles.title,
        ),
        Spacer(1, 3 * mm),
        _fields(pairs, CONTENT_WIDTH, styles, label_width=32 * mm),
    ]
    if flags:
        box = Table(
            [[_p("Product limits exceeded — release is blocked", styles.alert)]]
            + [[_p(f"• {flag}", styles.alert)] for flag in flags],
            colWidths=[CONTENT_WIDTH],
            hAlign="LEFT",
        )
        box.setStyle(
            TableStyle(
                [
                    ("BOX", (0, 0), (-1, -1), 1.4, ALERT),
                    ("BACKGROUND", (0, 0), (-1, -1), ALERT_FILL),
                    ("LEFTPADDING", (0, 0), (-1, -1), 6),
                    ("TOPPADDING", (0, 0), (-1, -1), 2),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                ]
            )
        )
        out += [Spacer(1, 3 * mm), box]
    return out


@dataclass(frozen=True)
class _Numbered:
    """A step in reading order: its number, the steps it came from, how far it is indented."""

    number: int
    node: StepNode
    sources: list[int]
    branch_depth: int


def _walk(roots: Sequence[StepNode]) -> Iterator[StepNode]:
    for node in roots:
        yield node
        yield from _walk(node.children)


def _in_order(roots: Sequence[StepNode]) -> list[_Numbered]:
    """The steps depth-first, numbered 1, 2, 3 … in reading order, each naming its sources.

    A step comes after every step that made one of its inputs: a harvest that pools vessels
    passaged in two branches is read after both branches, not in the middle of the first.
    A straight chain (isolation → P1 → P2 → fill) stays at one level; a step that several
    steps went on from indents each branch; a step that pools branches comes back one level.
    No step is ever left out: one the walk did not reach is added at the end.
    """
    nodes = sorted(_walk(roots), key=lambda n: (n.step.performed_at, n.step.id))
    maker = {unit.id: node for node in nodes for unit in node.outputs}
    sources: dict[int, list[StepNode]] = {}
    dependents: dict[int, list[StepNode]] = {id(node): [] for node in nodes}
    for node in nodes:  # in step order, so each list of dependents is too
        found: list[StepNode] = []
        for unit in node.inputs:
            source = maker.get(unit.id)
            if source is not None and source is not node and all(source is not f for f in found):
                found.append(source)
        sources[id(node)] = found
        for source in found:
            dependents[id(source)].append(node)
    numbers: dict[int, int] = {}
    depths: dict[int, int] = {}
    ordered: list[StepNode] = []

    def visit(node: StepNode, depth: int) -> None:
        numbers[id(node)] = len(ordered) + 1
        depths[id(node)] = depth
        ordered.append(node)
        following = dependents[id(node)]
        for step in following:
            came_from = sources[id(step)]
            if id(step) in numbers or any(id(s) not in numbers for s in came_from):
                continue  # done already, or read after its last source
            if len(came_from) > 1:
                visit(step, max(0, min(depths[id(s)] for s in came_from) - 1))
            else:
                visit(step, depth + (1 if len(following) > 1 else 0))

    starts = [node for node in nodes if not sources[id(node)]]
    for node in starts:
        if id(node) not in numbers:
            visit(node, 1 if len(starts) > 1 else 0)
    for node in nodes:
        if id(node) not in numbers:
            visit(node, 0)
    return [
        _Numbered(
            number=numbers[id(node)],
            node=node,
            sources=sorted(numbers[id(s)] for s in sources[id(node)]),
            branch_depth=depths[id(node)],
        )
        for node in ordered
    ]


def _unit_list(units: Sequence[Unit], styles: _Styles) -> Flowable | str:
    """Unit codes in display form; many of one donation compactly: DIN once, then each unit."""
    if not units:
        return "—"
    if len(units) <= FULL_CODE_LIST_MAX:
        return Paragraph("<br/>".join(escape(_display(u.code)) for u in units), styles.code)
    groups: dict[tuple[str, str], list[Identifier]] = {}
    for unit in units:
        ident = parse_identifier(unit.code)
        groups.setdefault((ident.din, unit.kind_label), []).append(ident)
    parts = []
    for (din, kind), idents in groups.items():
        prefix = f"{din[:5]} {din[5:7]} {din[7:]}"
        # a non-breaking space keeps each unit's number with its check character
        items = ", ".join(f"{i.body[len(din) :]}\u00a0[{i.check}]" for i in idents)
        parts.append(
            f'{len(idents)} × {escape(kind)} of <font name="{styles.fonts.mono}">{prefix}</font>:'
            f'<br/><font name="{styles.fonts.mono}">{escape(items)}</font>'
        )
    return Paragraph("<br/>".join(parts), styles.cell)


def _seeded(outputs: Sequence[Unit], records: dict[int, CellRecord], fonts: _Fonts) -> str | None:
    """What the new culture vessels hold, grouped: ``8 × CS2 at 1.00 × 10⁷ cells``."""
    groups: dict[tuple[str, float | None], int] = {}
    for unit in outputs:
        cell = records.get(unit.id)
        if cell is None or cell.vessel_format is None:
            continue
        key = (cell.vessel_format, cell.cells)
        groups[key] = groups.get(key, 0) + 1
    if not groups:
        return None
    parts = [
        f"{n} × {fmt} "
        + ("(not counted)" if cells is None else f"at {_count(cells, fonts)} cells each")
        for (fmt, cells), n in groups.items()
    ]
    return "; ".join(parts)


def _step_title(step: ProcessingStep) -> str:
    try:
        return StepKind(step.kind).label.capitalize()
    except ValueError:
        return _words(step.kind).capitalize()


def _step(item: _Numbered, record: BatchRecord, zone: ZoneInfo, styles: _Styles) -> list[Flowable]:
    node, step, fonts = item.node, item.node.step, styles.fonts
    indent = min(item.branch_depth, MAX_BRANCH_INDENT) * BRANCH_INDENT
    width = CONTENT_WIDTH - indent
    came_from = ""
    if item.sources:
        steps = "step" if len(item.sources) == 1 else "steps"
        came_from = f" · from {steps} {', '.join(str(n) for n in item.sources)}"
    heading = Paragraph(
        f"Step {item.number} · {escape(_step_title(step))}"
        f'<font name="{fonts.text}" size="8" color="#555555">{came_from}</font>',
        ParagraphStyle("step", parent=styles.h2, spaceAfter=2),
    )
    pairs: list[tuple[str, Any]] = [
        (
            "Performed",
            _p(f"{_time(step.performed_at, zone)} by {_person(step.performed_by)}", styles.body),
        ),
        ("Recorded", _p(_time(step.recorded_at, zone), styles.body)),
    ]
    if step.method:
        pairs.append(("Method", _p(step.method, styles.body)))
    pairs.append(("Passage", _p(_passage(step.passage), styles.body)))
    pairs.append((f"Inputs ({len(node.inputs)})", _unit_list(node.inputs, styles)))
    if node.outputs or step.kind != StepKind.FREEZING.value:
        pairs.append((f"Outputs ({len(node.outputs)})", _unit_list(node.outputs, styles)))
    seeded = _seeded(node.outputs, record.records, fonts)
    if seeded:
        pairs.append(("Seeded", _p(seeded, styles.body)))
    counted = (
        step.cells_seeded_before,
        step.cells_harvested,
        step.viability_percent,
        step.days_in_culture,
        step.population_doublings,
    )
    harvest = any(value is not None for value in counted)
    if not harvest:  # no counts of its own (isolation, freezing): the CPD it carries on
        pairs.append(("CPD", _p(_doublings(step.cumulative_pd), styles.body)))
    block: list[Flowable] = [
        heading,
        _fields(pairs, width, styles, label_width=24 * mm),
    ]
    if harvest:
        block += [
            Spacer(1, 1.5 * mm),
            _grid(
                [
                    "Cells seeded before",
                    "Cells harvested",
                    "Viability",
                    "Days in culture",
                    "PD",
                    "CPD after",
                ],
                [
                    [
                        _count(step.cells_seeded_before, fonts),
                        _count(step.cells_harvested, fonts),
                        _percent(step.viability_percent),
                        _days(step.days_in_culture),
                        _doublings(step.population_doublings),
                        _doublings(step.cumulative_pd),
                    ]
                ],
                [width / 6] * 6,
                styles,
            ),
        ]
    materials = sorted(
        (row.material_lot for row in step.materials), key=lambda m: (m.material, m.lot_number)
    )
    block.append(Spacer(1, 1.5 * mm))
    if materials:
        block.append(
            _grid(
                ["Material", "Supplier", "Lot number", "Expiry"],
                [
                    [
                        _p(m.material, styles.cell),
                        _p(m.supplier, styles.cell),
                        m.lot_number,
                        m.expiry_date.isoformat(),
                    ]
                    for m in materials
                ],
                [width * 0.38, width * 0.27, width * 0.2, width * 0.15],
                styles,
                mono_columns=[2],
            )
        )
    else:
        block.append(_p("Materials: none recorded.", styles.small))
    block.append(Spacer(1, 1.5 * mm))
    equipment: list[Equipment] = sorted((row.item for row in step.equipment), key=lambda e: e.code)
    if equipment:
        block.append(
            _grid(
                ["Equipment ID", "Kind", "Name"],
                [[e.code, _equipment_kind(e.kind), _p(e.name, styles.cell)] for e in equipment],
                [width * 0.25, width * 0.3, width * 0.45],
                styles,
                mono_columns=[0],
            )
        )
    else:
        block.append(_p("Equipment: none recorded.", styles.small))
    if step.notes:
        block += [Spacer(1, 1.5 * mm), _p(f"Notes: {step.notes}", styles.body)]
    block.append(Spacer(1, 3 * mm))
    if indent:
        return [Indenter(left=indent), KeepTogether(block), Indenter(left=-indent)]
    return [KeepTogether(block)]


def _equipment_kind(kind: str) -> str:
    try:
        return EquipmentKind(kind).label
    except ValueError:
        return _words(kind)


def _bags(record: BatchRecord, styles: _Styles) -> list[Flowable]:
    fonts = styles.fonts
    out: list[Flowable] = [_p(f"Bags ({len(record.bags)})", styles.h1)]
    if not record.bags:
        return [*out, _p("No bags are on record for this lot.", styles.body)]
    rows = [
        [
            str(number),
            _display(unit.code),
            _number(cell.volume_ml),
            _count(cell.concentration_per_ml, fonts),
            _percent(cell.viability_percent),
            _count(cell.cells, fonts),
        ]
        for number, (unit, cell) in enumerate(record.bags, start=1)
    ]
    widths = [0.06, 0.34, 0.12, 0.18, 0.12, 0.18]
    out.append(
        _grid(
            ["#", "Bag", "Volume (mL)", "Cells / mL", "Viability", "Viable cells"],
            rows,
            [CONTENT_WIDTH * w for w in widths],
            styles,
            mono_columns=[1],
            right_columns=[0, 2, 3, 4, 5],
        )
    )
    return out


def _deviations(record: BatchRecord, zone: ZoneInfo, styles: _Styles) -> list[Flowable]:
    out: list[Flowable] = [_p(f"Deviations ({len(record.deviations)})", styles.h1)]
    if not record.deviations:
        return [*out, _p("No deviation is recorded against this lot.", styles.body)]
    rows = []
    extra: list[tuple[Any, ...]] = []
    for index, deviation in enumerate(record.deviations, start=1):
        try:
            category = DeviationCategory(deviation.category).label
        except ValueError:
            category = _words(deviation.category)
        opened = f"Opened {_time(deviation.opened_at, zone)} by {_person(deviation.opened_by)}"
        resolution = deviation.resolution or "—"
        if deviation.closed_at is not None:
            closed = f"Closed {_time(deviation.closed_at, zone)} by {_person(deviation.closed_by)}"
            resolution = f"{resolution}\n{closed}"
        rows.append(
            [
                str(deviation.id),
                _p(category, styles.cell),
                deviation.status.upper(),
                Paragraph(
                    escape(deviation.description).replace("\n", "<br/>")
                    + f'<br/><font color="#555555" size="7">{escape(opened)}</font>',
                    styles.cell,
                ),
                Paragraph(escape(resolution).replace("\n", "<br/>"), styles.cell),
            ]
        )
        if deviation.status == "open":
            extra += [
                ("BACKGROUND", (0, index), (-1, index), CAUTION_FILL),
                ("FONT", (2, index), (2, index), styles.fonts.bold, 8),
                ("TEXTCOLOR", (2, index), (2, index), ALERT),
            ]
    widths = [0.07, 0.14, 0.09, 0.38, 0.32]
    out.append(
        _grid(
            ["No.", "Category", "Status", "Description", "Resolution"],
            rows,
            [CONTENT_WIDTH * w for w in widths],
            styles,
            extra=extra,
        )
    )
    return out


def _signatures(styles: _Styles) -> list[Flowable]:
    block: list[Flowable] = [
        _p("Review and release", styles.h1),
        _p(
            "QA review and release signatures: none on this document. They are electronic "
            "signatures (printed name, date and time, meaning) applied at QA release and are "
            "not part of this record yet; do not sign this printout.",
            styles.body,
        ),
        Spacer(1, 4 * mm),
        _p("End of batch record.", styles.small),
    ]
    return [KeepTogether(block)]


def _story(record: BatchRecord, zone: ZoneInfo, styles: _Styles) -> Iterator[Flowable]:
    yield from _summary(record, zone, styles)
    ordered = _in_order(record.roots)
    yield _p(f"Processing steps ({len(ordered)})", styles.h1)
    if not ordered:
        yield _p("No processing step is on record.", styles.body)
    for item in ordered:
        yield from _step(item, record, zone, styles)
    yield from _bags(record, styles)
    yield from _deviations(record, zone, styles)
    yield from _signatures(styles)


# --- the document ------------------------------------------------------------------------------


def render_batch_record_pdf(
    record: BatchRecord,
    *,
    site_name: str,
    zone: ZoneInfo,
    generated_at: dt.datetime,
    generated_by: str,
) -> bytes:
    """The lot's batch record as an A4 PDF: summary, steps in tree order, bags, deviations.

    ``generated_at`` (aware) and ``generated_by`` (a printed name) are printed on every page:
    a printout is a copy of the record as it stood then, not the record itself.
    """
    fonts = _fonts()
    styles = _styles(fonts)
    running = _Running(
        site_name=site_name,
        lot_number=record.lot.lot_number,
        din=_display(record.donation.din),
        status=f"Status: {record.lot.status.upper()}",
        generated=f"{_time(generated_at, zone)} by {generated_by}",
        zone_name=zone.key,
        fonts=fonts,
    )
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
        pageTemplates=[PageTemplate(id="record", frames=[frame])],
        title=f"Batch record {record.lot.lot_number}",
        author=site_name,
        subject=f"Batch record of lot {record.lot.lot_number}",
        creator="cellchain",
    )
    document.build(
        list(_story(record, zone, styles)),
        canvasmaker=functools.partial(_NumberedCanvas, running=running),
    )
    return buffer.getvalue()
